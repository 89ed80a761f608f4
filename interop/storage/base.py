"""The object store interface and what every backend shares: hashing while writing, key checks."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Iterator, Protocol

CHUNK = 256 * 1024


class ObjectMissing(LookupError):
    """No object under that key."""


class ObjectTooLarge(Exception):
    """The stream gave more bytes than the caller's limit; nothing was kept."""

    def __init__(self, limit: int):
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified: datetime  # aware UTC


class ObjectStore(Protocol):
    def put(self, key: str, stream: BinaryIO, length: int, content_type: str) -> tuple[int, str]:
        """Store ``stream`` (``length`` bytes, or -1 if unknown) under ``key`` as a whole or not
        at all; returns (size, sha256 hex) of what was stored."""

    def open(self, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks; raises ``ObjectMissing`` at once if there is none."""

    def delete(self, key: str) -> None:
        """Remove the object (no error if absent)."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object under ``prefix`` (what garbage collection walks)."""


class LimitedReader:
    """Wraps a readable stream: refuses (``ObjectTooLarge``) to pass more than ``limit`` bytes."""

    def __init__(self, stream: BinaryIO, limit: int):
        self._stream = stream
        self._limit = limit
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.size += len(data)
        if self.size > self._limit:
            raise ObjectTooLarge(self._limit)
        return data


class HashingReader:
    """Wraps a readable stream: counts and hashes what passes (what a backend reports)."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.size = 0
        self._sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.size += len(data)
        self._sha.update(data)
        return data

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


def check_key(key: str) -> str:
    """Keys are relative paths of plain segments: no '', '.', '..' (a local store maps them to files)."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key

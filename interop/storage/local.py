"""The embedded default: objects as files under one directory, written atomically."""
from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterator

from interop.storage.base import CHUNK, HashingReader, ObjectMissing, StoredObject, check_key

_TEMP = ".tmp-"  # prefix of files being written; a crash leaves them, gc removes them


class LocalObjectStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put(self, key: str, stream: BinaryIO, length: int, content_type: str) -> tuple[int, str]:
        # content_type is not kept: the Binary resource that points here records it.
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f"{_TEMP}{path.name}.{uuid.uuid4().hex}")
        reader = HashingReader(stream)
        try:
            with open(temp, "wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            # Readers see the whole object or none: rename is atomic within a file system.
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return reader.size, reader.sha256

    def open(self, key: str) -> Iterator[bytes]:
        try:
            f = open(self._path(key), "rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None

        def chunks() -> Iterator[bytes]:
            with f:
                while chunk := f.read(CHUNK):
                    yield chunk

        return chunks()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        if not self.root.is_dir():
            return
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        mtime = datetime.fromtimestamp(full.stat().st_mtime, timezone.utc)
                    except FileNotFoundError:  # renamed or deleted while listing (a writer finishing)
                        continue
                    yield StoredObject(key, mtime)

"""The object store from async code: blocking calls in worker threads, request bodies streamed.

``put_chunks`` feeds an async iterator (a request body) to a backend's blocking ``put``: the
worker thread pulls one chunk at a time from the event loop, so a body is never held whole.
"""
from __future__ import annotations

import io
from typing import AsyncIterator, Iterator

import anyio
import anyio.from_thread
import anyio.to_thread
import urllib3.exceptions
from minio.error import ServerError

from ehr.outcome import FHIRError
from interop.storage.base import LimitedReader, ObjectStore


class _ChunkPuller(io.RawIOBase):
    """A blocking ``read`` over an async chunk iterator; called from an anyio worker thread."""

    def __init__(self, chunks: AsyncIterator[bytes]):
        self._chunks = chunks.__aiter__()
        self._buffer = bytearray()
        self._done = False

    async def _next(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None

    def read(self, n: int = -1) -> bytes:
        while not self._done and (n < 0 or len(self._buffer) < n):
            chunk = anyio.from_thread.run(self._next)
            if chunk is None:
                self._done = True
            else:
                self._buffer += chunk
        if n < 0:
            n = len(self._buffer)
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out


async def _call(fn, *args):
    """``fn(*args)`` in a worker thread; an object store that cannot be reached (a refused or
    broken connection, a 5xx, an unreadable directory) is a 503 the client may retry."""
    try:
        return await anyio.to_thread.run_sync(fn, *args)
    except (OSError, urllib3.exceptions.HTTPError, ServerError) as exc:
        raise FHIRError.of(
            503, "transient", f"Le stockage des documents est indisponible ({type(exc).__name__}) ; réessayez",
            headers={"Retry-After": "5"},
        ) from exc


async def put_chunks(store: ObjectStore, key: str, chunks: AsyncIterator[bytes], content_type: str, limit: int) -> tuple[int, str]:
    """Stream ``chunks`` into ``key``; ``ObjectTooLarge`` (and nothing kept) past ``limit`` bytes."""
    reader = LimitedReader(_ChunkPuller(chunks), limit)
    return await _call(store.put, key, reader, -1, content_type)


async def put_bytes(store: ObjectStore, key: str, data: bytes, content_type: str) -> tuple[int, str]:
    return await _call(store.put, key, io.BytesIO(data), len(data), content_type)


async def open_chunks(store: ObjectStore, key: str) -> Iterator[bytes]:
    """The object's chunk iterator, opened in a thread (``ObjectMissing`` raised here)."""
    return await _call(store.open, key)


async def read_all(store: ObjectStore, key: str) -> bytes:
    return await _call(lambda: b"".join(store.open(key)))


async def delete(store: ObjectStore, key: str) -> None:
    await _call(store.delete, key)

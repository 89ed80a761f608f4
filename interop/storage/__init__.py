"""Object storage for large payloads (the bytes of Binary resources): one small interface, a
local directory and S3 (MinIO or any S3-compatible service) behind it.

Backends are synchronous (the ``minio`` client is); the async server calls them in worker
threads through ``interop.storage.aio``.  Keys are server-made paths such as
``Binary/<id>/<uuid>``; see docs/storage.md.
"""
from interop.storage.base import ObjectMissing, ObjectStore, ObjectTooLarge, StoredObject
from interop.storage.config import app_store, open_store

__all__ = ["ObjectMissing", "ObjectStore", "ObjectTooLarge", "StoredObject", "app_store", "open_store"]

"""S3-compatible storage (MinIO in docker-compose.yml) through the ``minio`` client."""
from __future__ import annotations

import threading
from typing import BinaryIO, Iterator

from minio import Minio
from minio.error import S3Error

from interop.storage.base import CHUNK, HashingReader, ObjectMissing, StoredObject, check_key

# Unknown lengths (a streamed upload) go up in parts of this size: S3's minimum is 5 MiB, and
# one part is what an upload holds in memory.
PART_SIZE = 8 * 1024 * 1024
_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}


class S3ObjectStore:
    def __init__(self, client: Minio, bucket: str, prefix: str = ""):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._bucket_ready = False
        self._lock = threading.Lock()

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._lock:
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:  # another process made it first
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            self._bucket_ready = True

    def put(self, key: str, stream: BinaryIO, length: int, content_type: str) -> tuple[int, str]:
        self._ensure_bucket()
        reader = HashingReader(stream)
        # With length -1 the client uploads in parts and aborts the multipart upload on failure.
        # One part at a time: with parallel uploads the client queues parts without bound, so a
        # fast client and a slow S3 would put the whole body in memory.
        self.client.put_object(
            self.bucket, self._name(key), reader, length=length, content_type=content_type,
            part_size=PART_SIZE if length < 0 else 0, num_parallel_uploads=1,
        )
        return reader.size, reader.sha256

    def open(self, key: str) -> Iterator[bytes]:
        self._ensure_bucket()
        try:
            response = self.client.get_object(self.bucket, self._name(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ObjectMissing(key) from None
            raise

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.stream(CHUNK)
            finally:
                response.close()
                response.release_conn()

        return chunks()

    def delete(self, key: str) -> None:
        self._ensure_bucket()
        self.client.remove_object(self.bucket, self._name(key))

    def exists(self, key: str) -> bool:
        self._ensure_bucket()
        try:
            self.client.stat_object(self.bucket, self._name(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                return False
            raise
        return True

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        self._ensure_bucket()
        for obj in self.client.list_objects(self.bucket, prefix=self.prefix + prefix, recursive=True):
            yield StoredObject(obj.object_name[len(self.prefix):], obj.last_modified)

"""The object store the settings name: ``storage_url`` (file:… or s3://bucket[/prefix])."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ehr.settings import Settings
from interop.storage.base import ObjectStore


def open_store(settings: Settings) -> ObjectStore:
    url = settings.storage_url
    if url is None:
        from interop.storage.local import LocalObjectStore

        return LocalObjectStore(settings.data_dir / "objects")
    if url.startswith("file:"):
        from interop.storage.local import LocalObjectStore

        return LocalObjectStore(Path(url.removeprefix("file:").removeprefix("//")))
    parts = urlsplit(url)  # the settings validated it: s3://bucket[/prefix] with an endpoint
    if parts.scheme == "s3" and parts.netloc and settings.s3_endpoint:
        from minio import Minio

        from interop.storage.s3 import S3ObjectStore

        secret = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None
        client = Minio(
            settings.s3_endpoint, access_key=settings.s3_access_key, secret_key=secret,
            secure=settings.s3_secure, region=settings.s3_region,
        )
        return S3ObjectStore(client, parts.netloc, parts.path)
    raise ValueError(f"SIJILL_STORAGE_URL must be file:<dir> or s3://<bucket>[/prefix], not {url!r}")


def app_store(state) -> ObjectStore:
    """The store of one app (``app.state``: its settings), made once on first use."""
    if getattr(state, "object_store", None) is None:
        state.object_store = open_store(state.settings)
    return state.object_store

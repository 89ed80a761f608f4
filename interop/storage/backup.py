"""Backup and restore of the database and the document store together (docs/operations.md).

A backup is a directory: the database dump (``ehr.store.dump``), every stored object under
``objects/`` and ``manifest.json`` (when, the database's revision, each object's size and
SHA-256).  The database is copied first, then the objects: a document is stored before the row
that points to it commits, so every object the copied database refers to is in the store by
then (objects written later are copied too; they are harmless orphans).

Restoring checks every object against the manifest before touching anything, records the
restore point in the store, puts the objects back, then replaces the database.  The restore
point tells ``storage gc`` to keep every object newer than the backup: after an older database
comes back, documents written since are orphans to it but must not be deleted.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import orjson

from ehr.store import dump
from interop.storage.base import CHUNK, ObjectMissing, ObjectStore

MANIFEST = "manifest.json"
FORMAT = 1
RESTORE_POINT = "_sijill/restore-point.json"  # outside Binary/: gc never lists it


@dataclass
class BackupReport:
    path: Path
    revision: str | None
    objects: int
    bytes: int


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _objects_dir(root: Path) -> Path:
    return root / "objects"


def _copy_out(store: ObjectStore, key: str, target: Path) -> tuple[int, str]:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with open(target, "wb") as out:
        for chunk in store.open(key):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def backup(database_url: str, store: ObjectStore, dest: Path) -> BackupReport:
    """Write a backup into the new directory ``dest`` while the server keeps running."""
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty: a backup goes into a new directory")
    dest.mkdir(parents=True, exist_ok=True)
    snapshot_at = _now()  # the database copy is at least this recent
    revision = dump.head_revision(database_url)
    database_file = dump.dump_name(database_url)
    dump.dump(database_url, dest / database_file)
    objects = []
    for listed in store.list(""):
        if listed.key == RESTORE_POINT:
            continue
        try:
            size, sha = _copy_out(store, listed.key, _objects_dir(dest).joinpath(*listed.key.split("/")))
        except ObjectMissing:  # collected meanwhile: the copied database does not refer to it
            continue
        objects.append({"key": listed.key, "size": size, "sha256": sha})
    manifest = {
        "format": FORMAT, "created": _now().isoformat(), "snapshot_at": snapshot_at.isoformat(),
        "database": {"backend": "sqlite" if database_file.endswith("sqlite") else "postgresql",
                     "file": database_file, "revision": revision},
        "objects": objects,
    }
    (dest / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return BackupReport(dest, revision, len(objects), sum(o["size"] for o in objects))


def read_manifest(src: Path) -> dict:
    try:
        manifest = orjson.loads((src / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise ValueError(f"{src} holds no {MANIFEST}: not a Sijill backup") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"backup format {manifest.get('format')!r} is not {FORMAT}")
    return manifest


def _check_objects(src: Path, manifest: dict) -> None:
    for obj in manifest["objects"]:
        path = _objects_dir(src).joinpath(*obj["key"].split("/"))
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        if path.stat().st_size != obj["size"] or digest.hexdigest() != obj["sha256"]:
            raise ValueError(f"object {obj['key']} of the backup is damaged (size or SHA-256 differ from the manifest)")


def restore(src: Path, database_url: str, store: ObjectStore) -> dict:
    """Bring back the database and the documents of the backup ``src``; returns its manifest.
    The server and the workers must be stopped; run ``sijill db upgrade`` afterwards."""
    manifest = read_manifest(src)
    backend = "sqlite" if dump.dump_name(database_url).endswith("sqlite") else "postgresql"
    if manifest["database"]["backend"] != backend:
        raise ValueError(f"the backup holds a {manifest['database']['backend']} database, the target is {backend}")
    _check_objects(src, manifest)
    # First, so that a restore stopped half-way already protects newer documents from gc.
    point = {"snapshot_at": manifest["snapshot_at"], "restored_at": _now().isoformat(), "backup": manifest["created"]}
    body = orjson.dumps(point)
    store.put(RESTORE_POINT, io.BytesIO(body), len(body), "application/json")
    for obj in manifest["objects"]:
        if not store.exists(obj["key"]):
            _put_file(store, obj["key"], _objects_dir(src).joinpath(*obj["key"].split("/")))
    dump.load(database_url, src / manifest["database"]["file"])
    return manifest


def _put_file(store: ObjectStore, key: str, path: Path) -> None:
    with open(path, "rb") as f:
        store.put(key, f, path.stat().st_size, "application/octet-stream")


def restore_point(store: ObjectStore) -> datetime | None:
    """The snapshot time of the backup last restored into this store (None: never restored)."""
    try:
        point = orjson.loads(b"".join(store.open(RESTORE_POINT)))
    except ObjectMissing:
        return None
    return datetime.fromisoformat(point["snapshot_at"])


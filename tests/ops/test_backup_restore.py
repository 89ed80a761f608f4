"""Backup and restore: a backup taken while care sheets, patients and documents are being
written restores into a fresh database and document store with everything consistent: each
Binary's bytes, each care sheet's ledger, the audit chain; gc then spares newer documents."""
from __future__ import annotations

import asyncio
import hashlib
import io
import os
import uuid
from datetime import timedelta

import anyio.to_thread
import httpx
import psycopg
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from claims.tables import claim_ledger
from ehr.cli import app as cli
from ehr.settings import Settings, get_settings
from ehr.store.db import create_engine
from ehr.store.schema import resource
from interop.binary.gc import collect
from interop.storage.backup import backup, read_manifest, restore
from interop.storage.local import LocalObjectStore
from tests.claims import builders as b
from tests.claims.conftest import claims_tables, fresh_reference_choice  # noqa: F401  (shared fixtures)
from tests.conftest import BASE, PG_ADMIN, TEST_LIMITS, running_app

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


@pytest.fixture
def fresh_database(database_url, tmp_path):
    """An empty database of the same backend: where the backup is restored."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'restored.db'}"
        return
    name = f"sijill_restore_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _settings(url: str, tmp_path, objects) -> Settings:
    return Settings(_env_file=None, database_url=url, base_url=BASE, data_dir=tmp_path / "data", auth_required=False,
                    storage_url=f"file:{objects}", **TEST_LIMITS)


def _cli(url: str, *args: str):
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, list(args), env={"SIJILL_DATABASE_URL": url})
    finally:
        get_settings.cache_clear()


async def _write_day(client, world, n: int) -> None:
    """One desk's work: a patient, a document and a care sheet."""
    fund, doc, pat, cov = world
    assert (await client.post("/Patient", json={"resourceType": "Patient", "name": [{"family": f"Load{n}"}]})).status_code == 201
    pdf = b"%PDF-1.4 compte rendu " + str(n).encode() * 200
    assert (await client.post("/Binary", content=pdf, headers={"Content-Type": "application/pdf"})).status_code == 201
    sheet = b.claim(pat["id"], cov["id"], [b.act("C", 80, b.days_ago(1))], provider=b.provider_ref(doc))
    assert (await client.post("/Claim", json=sheet)).status_code == 201


async def test_a_backup_under_load_restores_whole(claims_tables, fresh_database, tmp_path):
    live_objects, restored_objects = tmp_path / "live-objects", tmp_path / "restored-objects"
    async with running_app(_settings(claims_tables, tmp_path, live_objects)) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, headers=HEADERS) as client:
            world = (await b.fund(client, "CNSS"), await b.practitioner(client))
            pat = await b.patient(client)
            world = (*world, pat, await b.coverage(client, pat["id"], world[0]["id"]))
            for n in range(3):
                await _write_day(client, world, n)
            backing_up = asyncio.ensure_future(
                anyio.to_thread.run_sync(backup, claims_tables, LocalObjectStore(live_objects), tmp_path / "backup"))
            n = 3
            while not backing_up.done() and n < 60:  # writes keep coming while the copy is taken
                await _write_day(client, world, n)
                n += 1
            report = await backing_up
            await _write_day(client, world, 99)  # after the backup: not in it
    assert report.objects >= 3
    manifest = read_manifest(tmp_path / "backup")
    assert manifest["database"]["revision"] and len(manifest["objects"]) == report.objects

    restore(tmp_path / "backup", fresh_database, LocalObjectStore(restored_objects))
    assert (await anyio.to_thread.run_sync(_cli, fresh_database, "db", "upgrade")).exit_code == 0
    verified = await anyio.to_thread.run_sync(_cli, fresh_database, "audit", "verify")
    assert verified.exit_code == 0 and "audit chain intact" in verified.output, verified.output

    engine = create_engine(fresh_database)
    try:
        async with engine.connect() as conn:
            count = lambda t: select(func.count()).select_from(resource).where(resource.c.res_type == t, ~resource.c.deleted)  # noqa: E731
            claims = (await conn.execute(count("Claim"))).scalar()
            binaries = (await conn.execute(count("Binary"))).scalar()
            patients = (await conn.execute(count("Patient"))).scalar()
            ledger = (await conn.execute(select(func.count()).select_from(claim_ledger))).scalar()
    finally:
        await engine.dispose()
    assert claims >= 3 and binaries >= 3 and patients >= 4
    assert ledger == claims  # every care sheet restored with its place in the exchange
    assert binaries < n + 1  # the write after the backup is not in it

    async with running_app(_settings(fresh_database, tmp_path, restored_objects)) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, headers=HEADERS) as client:
            found = (await client.get("/Binary", params={"_count": 200})).json()["entry"]
            assert len(found) == binaries
            for e in found:  # every restored Binary serves its bytes
                raw = await client.get(f"/Binary/{e['resource']['id']}", headers={"Accept": "application/pdf"})
                assert raw.status_code == 200 and raw.content.startswith(b"%PDF-1.4 compte rendu ")
            assert (await client.get("/Claim", params={"_summary": "count"})).json()["total"] == claims


async def test_gc_after_a_restore_keeps_documents_newer_than_the_backup(claims_tables, fresh_database, tmp_path):
    objects = tmp_path / "objects"
    store = LocalObjectStore(objects)
    store.put("Binary/old-orphan/1", _stream(b"left by a crash"), -1, "application/pdf")
    day_ago = os.stat(objects / "Binary/old-orphan/1").st_mtime - 86_400
    os.utime(objects / "Binary/old-orphan/1", (day_ago, day_ago))
    backup(claims_tables, store, tmp_path / "backup")
    async with running_app(_settings(claims_tables, tmp_path, objects)) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, headers=HEADERS) as client:
            newer = await client.post("/Binary", content=b"%PDF-1.4 after the backup", headers={"Content-Type": "application/pdf"})
            assert newer.status_code == 201
    # The older database comes back beside the same document store.
    restore(tmp_path / "backup", fresh_database, store)
    engine = create_engine(fresh_database)
    try:
        done = await collect(engine, store, min_age=timedelta(0))
    finally:
        await engine.dispose()
    assert done.deleted == ["Binary/old-orphan/1"]  # older than the backup and referenced by nothing
    kept = [o.key for o in store.list("Binary/")]
    assert len(kept) == 1 and kept[0].startswith(f"Binary/{newer.json()['id']}/")  # newer: kept


def _stream(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


def test_a_damaged_backup_is_refused_before_anything_changes(claims_tables, fresh_database, tmp_path):
    store = LocalObjectStore(tmp_path / "objects")
    store.put("Binary/x/1", _stream(b"%PDF-1.4 x"), -1, "application/pdf")
    backup(claims_tables, store, tmp_path / "backup")
    (tmp_path / "backup" / "objects" / "Binary" / "x" / "1").write_bytes(b"%PDF-1.4 y")
    target = LocalObjectStore(tmp_path / "target")
    with pytest.raises(ValueError, match="damaged"):
        restore(tmp_path / "backup", fresh_database, target)
    assert list(target.list("")) == []
    assert hashlib.sha256(b"%PDF-1.4 x").hexdigest() == read_manifest(tmp_path / "backup")["objects"][0]["sha256"]


def test_db_downgrade_undoes_every_migration_and_upgrade_redoes_them(fresh_database):
    assert _cli(fresh_database, "db", "upgrade").exit_code == 0
    down = _cli(fresh_database, "db", "downgrade", "base")
    assert down.exit_code == 0, down.output
    up = _cli(fresh_database, "db", "upgrade")
    assert up.exit_code == 0, up.output

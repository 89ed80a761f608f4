"""The audit inbox and its sealer: requests record events without locking anything shared, and the
sealer chains each committed event exactly once (SQLite and PostgreSQL)."""
from __future__ import annotations

import asyncio
import shutil

import httpx
import orjson
import pytest
import typer
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from ehr.security.audit import (
    AuditSealer,
    append,
    audit_event,
    install_append_only,
    pending_count,
    purge,
    seal,
    seal_pending,
    verify,
)
from ehr.security.cli import audit_app
from ehr.security.tables import audit_chain, audit_inbox, audit_log
from ehr.settings import get_settings
from ehr.store.clock import now_us
from ehr.store.db import create_engine, read_connection, write_transaction
from tests.conftest import BASE, running_app

DAY_US = 86_400 * 1_000_000


def event(marker: str, days_ago: int = 0) -> dict:
    """An event told apart from the others by the resource it names."""
    return audit_event("read", None, patient="Patient/p1", what=f"Observation/{marker}", recorded_us=now_us() - days_ago * DAY_US)


def marker(chained: bytes) -> str:
    """The marker of one of our events; the DICOM type code of the server's own (a purge)."""
    chained_event = orjson.loads(chained)
    named = [x["what"]["reference"] for x in chained_event["entity"] if x["what"].get("reference", "").startswith("Observation/")]
    return named[0].removeprefix("Observation/") if named else chained_event["type"]["code"]


async def record(engine, *markers: str, days_ago: int = 0) -> None:
    async with write_transaction(engine) as conn:
        await append(conn, [event(m, days_ago) for m in markers])


async def chain(engine) -> list[tuple[int, str]]:
    async with read_connection(engine) as conn:
        rows = (await conn.execute(select(audit_log.c.seq, audit_log.c.event).order_by(audit_log.c.seq))).all()
    return [(seq, marker(data)) for seq, data in rows]


async def waiting(engine) -> int:
    async with read_connection(engine) as conn:
        return await pending_count(conn)


async def check(engine):
    async with read_connection(engine) as conn:
        return await verify(conn)


async def triggers(engine) -> None:
    async with engine.begin() as conn:
        await install_append_only(conn)


# --- recording -------------------------------------------------------------------------------------
async def test_recording_touches_no_shared_row_and_waits_for_the_sealer(db):
    await record(db, "a", "b")
    async with read_connection(db) as conn:
        assert (await conn.execute(select(func.count()).select_from(audit_chain))).scalar_one() == 0  # no head, no lock
        rows = (await conn.execute(select(audit_inbox).order_by(audit_inbox.c.id))).all()
    assert await chain(db) == []
    assert [r.patient_ref for r in rows] == ["Patient/p1", "Patient/p1"]
    stored = orjson.loads(rows[0].event)
    assert "id" not in stored and stored["entity"][1]["what"]["reference"] == "Observation/a"
    assert (await check(db)).pending == 2


async def test_a_rolled_back_write_leaves_no_event_and_a_committed_one_is_chained(db):
    await record(db, "before")
    with pytest.raises(RuntimeError):
        async with write_transaction(db) as conn:
            await append(conn, [event("rolled-back")])
            raise RuntimeError("the change this event records failed")
    await record(db, "after")
    assert await waiting(db) == 2
    assert await seal_pending(db) == 2
    assert await chain(db) == [(1, "before"), (2, "after")]
    report = await check(db)
    assert report.ok and report.checked == 2 and report.pending == 0
    async with read_connection(db) as conn:
        second = orjson.loads((await conn.execute(select(audit_log.c.event).where(audit_log.c.seq == 2))).scalar_one())
    assert second["id"] == "2"  # the chain gives the id: AuditEvent/2


async def test_sealing_goes_in_order_by_batches_and_only_once(db):
    for m in "abcde":
        await record(db, m)
    async with write_transaction(db) as conn:
        assert await seal(conn, limit=2) == 2
    assert await chain(db) == [(1, "a"), (2, "b")] and await waiting(db) == 3
    assert await seal_pending(db, batch=2) == 3
    assert await seal_pending(db) == 0
    assert [m for _, m in await chain(db)] == list("abcde")
    assert (await check(db)).ok


async def test_a_seal_that_fails_before_commit_loses_nothing(db):
    """A crash between chaining and commit: the events are still in the inbox, the chain unchanged."""
    await record(db, "a", "b", "c")
    with pytest.raises(RuntimeError):
        async with write_transaction(db) as conn:
            assert await seal(conn) == 3
            raise RuntimeError("the sealer's host went away")
    assert await chain(db) == [] and await waiting(db) == 3
    assert await seal_pending(db) == 3
    report = await check(db)
    assert report.ok and report.checked == 3


async def test_the_inbox_is_append_only_but_for_the_sealer(db):
    await triggers(db)
    await record(db, "a", "b")
    for statement in ("UPDATE audit_inbox SET recorded = 0", "DELETE FROM audit_inbox") + (
        ("TRUNCATE audit_inbox",) if db.dialect.name == "postgresql" else ()
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with write_transaction(db) as conn:
                await conn.execute(text(statement))
    assert await seal_pending(db) == 2  # the sealer's DELETE goes through...
    await record(db, "c")
    with pytest.raises(DBAPIError, match="append-only"):  # ...and leaves no door open behind it
        async with write_transaction(db) as conn:
            await conn.execute(text("DELETE FROM audit_inbox"))
    async with read_connection(db) as conn:
        assert (await conn.execute(select(audit_chain.c.sealing))).scalar_one() is False
    assert await seal_pending(db) == 1 and (await check(db)).ok


async def test_tampering_with_sealed_events_is_still_detected(db):
    await record(db, "a", "b", "c")
    await seal_pending(db)
    async with write_transaction(db) as conn:
        forged = b'{"id":"2","resourceType":"AuditEvent"}'
        await conn.execute(audit_log.update().where(audit_log.c.seq == 2).values(event=forged))
    report = await check(db)
    assert not report.ok and report.broken_seq == 2


async def test_purge_seals_first(db):
    await record(db, "old-1", "old-2", days_ago=400)
    await seal_pending(db)
    await record(db, "old-3", days_ago=400)  # still in the inbox when the purge starts
    await record(db, "recent")
    async with write_transaction(db) as conn:
        purged = await purge(conn, now_us() - 365 * DAY_US)
    assert purged.deleted == 3 and purged.anchor_seq == 3
    assert await waiting(db) == 0
    assert [m for _, m in await chain(db)] == ["recent", "110101"]  # the purge event comes last
    report = await check(db)
    assert report.ok and report.checked == 2


# --- concurrency -------------------------------------------------------------------------------------
async def test_concurrent_sealers_chain_every_event_exactly_once(db):
    """Writers keep recording while three sealers (three engines: three hosts) seal in small
    batches: one linear chain, every committed event once, and the sealers' counts add up."""
    url = db.url.render_as_string(hide_password=False)
    hosts = [create_engine(url) for _ in range(3)]
    writing_done = asyncio.Event()
    expected = {f"w{w}-{i}-{k}" for w in range(6) for i in range(20) for k in range(2)}

    async def writer(w: int) -> None:
        for i in range(20):
            await record(db, f"w{w}-{i}-0", f"w{w}-{i}-1")

    async def sealer(engine) -> int:
        sealed = 0
        while not writing_done.is_set():
            sealed += await seal_pending(engine, batch=7)
            await asyncio.sleep(0)
        return sealed

    try:
        sealers = [asyncio.create_task(sealer(e)) for e in hosts]
        await asyncio.gather(*(writer(w) for w in range(6)))
        writing_done.set()
        counts = await asyncio.gather(*sealers)
        counts.append(await seal_pending(db))
    finally:
        for e in hosts:
            await e.dispose()
    assert sum(counts) == len(expected)
    chained = await chain(db)
    assert [seq for seq, _ in chained] == list(range(1, len(expected) + 1))
    assert sorted(m for _, m in chained) == sorted(expected)
    report = await check(db)
    assert report.ok and report.checked == len(expected) and report.pending == 0


async def test_writers_wait_neither_for_each_other_nor_for_the_sealer(db):
    """On PostgreSQL: with a write transaction still open and a sealer holding the chain-head lock,
    another write records its event and commits under a 300 ms lock_timeout."""
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite serialises every writer on its database lock anyway")
    await record(db, "committed-first")
    async with db.connect() as first, db.connect() as sealer, db.connect() as second_sealer, db.connect() as second:
        first_tx = await first.begin()
        await append(first, [event("open-write")])  # not committed yet

        sealer_tx = await sealer.begin()
        await sealer.execute(text("SET LOCAL lock_timeout = '300ms'"))
        assert await seal(sealer) == 1  # takes the committed event, does not wait for the open write

        second_tx = await second.begin()
        await second.execute(text("SET LOCAL lock_timeout = '300ms'"))
        await append(second, [event("concurrent-write")])
        await second_tx.commit()  # neither the open write nor the sealer's lock held it up

        async with second_sealer.begin():  # a second sealer does queue: sealers take turns
            await second_sealer.execute(text("SET LOCAL lock_timeout = '300ms'"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await seal(second_sealer)

        await sealer_tx.commit()
        await first_tx.commit()
    assert await seal_pending(db) == 2
    assert [m for _, m in await chain(db)] == ["committed-first", "open-write", "concurrent-write"]
    assert (await check(db)).ok


async def test_the_background_sealer_chains_without_being_asked_and_drains_at_stop(db):
    background = AuditSealer(db, interval_seconds=0.05).start()
    try:
        await record(db, "a")
        for _ in range(200):
            if await chain(db):
                break
            await asyncio.sleep(0.025)
        assert await chain(db) == [(1, "a")]
        await record(db, "b")
    finally:
        await background.stop()
    assert await chain(db) == [(1, "a"), (2, "b")] and await waiting(db) == 0


# --- through the server ----------------------------------------------------------------------------
@pytest.fixture
def secure_settings(secure_settings):
    # The background sealer sleeps for an hour: whatever gets sealed here, a request sealed it.
    return secure_settings.model_copy(update={"audit_seal_interval_seconds": 3600})


async def test_a_trail_search_shows_what_happened_a_moment_ago(world):
    async with world.client("D1") as d1:
        assert (await d1.get("/Observation/obs-a")).status_code == 200
    assert await waiting(world.app.state.engine) >= 1  # recorded, not sealed yet
    async with world.client("pa") as amina:
        body = (await amina.get("/AuditEvent", params={"patient": "Patient/pa"})).json()
        reads = [
            e["resource"] for e in body.get("entry", [])
            if e["resource"]["agent"][0]["who"].get("reference") == "Practitioner/d1" and e["resource"]["action"] == "R"
        ]
        assert len(reads) == 1
        by_id = await amina.get(f"/AuditEvent/{reads[0]['id']}")  # the id is final once served
    assert by_id.status_code == 200 and by_id.json() == reads[0]


async def test_the_server_seals_in_the_background(settings):
    fast = settings.model_copy(update={"audit_seal_interval_seconds": 0.05})
    async with running_app(fast) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
            created = await c.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Alaoui"}]},
                                   headers={"Content-Type": "application/fhir+json"})
        assert created.status_code == 201
        engine = app.state.engine
        for _ in range(200):
            if await chain(engine) and await waiting(engine) == 0:
                break
            await asyncio.sleep(0.025)
        async with read_connection(engine) as conn:
            events = [orjson.loads(e) for e in (await conn.execute(select(audit_log.c.event))).scalars()]
    assert any(e["action"] == "C" and e["entity"][0]["what"]["reference"] == f"Patient/{created.json()['id']}" for e in events)


# --- command line ----------------------------------------------------------------------------------
runner = CliRunner()


def test_sijill_audit_seal_and_verify(sqlite_template, tmp_path, monkeypatch):
    path = tmp_path / "cli.db"
    shutil.copyfile(sqlite_template, path)  # migrated: the inbox and its triggers exist
    url = f"sqlite+aiosqlite:///{path}"
    monkeypatch.setenv("SIJILL_DATABASE_URL", url)
    get_settings.cache_clear()
    cli = typer.Typer()
    cli.add_typer(audit_app, name="audit")

    async def recorded(*markers: str) -> None:
        engine = create_engine(url)
        try:
            await record(engine, *markers)
        finally:
            await engine.dispose()

    try:
        asyncio.run(recorded("a", "b", "c"))
        first = runner.invoke(cli, ["audit", "seal"])
        assert first.exit_code == 0 and "sealed 3 events" in first.stdout
        assert "sealed 0 events" in runner.invoke(cli, ["audit", "seal"]).stdout
        asyncio.run(recorded("d", "e"))
        verified = runner.invoke(cli, ["audit", "verify"])
        assert verified.exit_code == 0, verified.stdout
        assert "intact" in verified.stdout and "5 events" in verified.stdout and "sealed 2 events first" in verified.stdout
    finally:
        get_settings.cache_clear()

"""AuditEvents (BALP shape, valid R4B) and the hash-chained trail on SQLite and PostgreSQL.

Events are recorded in the inbox and sealed into the chain (``fill`` does both); the inbox and
the sealer themselves are specified in ``test_audit_inbox``."""
from __future__ import annotations

import asyncio

import orjson
import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError

from ehr.security.audit import (
    APPEND_ONLY_DDL,
    INBOX_APPEND_ONLY_DDL,
    append,
    audit_event,
    audit_events,
    break_glass_event,
    install_append_only,
    login_failure_event,
    purge,
    retention_purge_event,
    seal_pending,
    verify,
)
from ehr.security.principal import BreakGlassGrant, Principal
from ehr.security.roles import Role
from ehr.security.scopes import ScopeSet
from ehr.security.tables import audit_chain, audit_log
from ehr.store.clock import now_us
from ehr.store.db import write_transaction

DOCTOR = Principal(
    subject="demo-doctor",
    role=Role.DOCTOR,
    scopes=ScopeSet.parse("user/*.cruds"),
    fhir_user="Practitioner/demo-doctor",
    client_id="portal",
    token_id="jti-1",
    issuer="https://idp.example.ma",
)
DAY_US = 86_400 * 1_000_000


def valid(event: dict) -> AuditEvent:
    return AuditEvent.model_validate(event)


# --- builder --------------------------------------------------------------------------------------
def test_read_event_is_balp_shaped_and_valid():
    event = audit_event("read", DOCTOR, patient="Patient/p1", what="Observation/o1/_history/2", address="10.0.0.9", site="https://fhir.sijill.ma/fhir")
    valid(event)
    assert event["type"]["code"] == "rest" and event["subtype"][0]["code"] == "read" and event["action"] == "R"
    assert event["outcome"] == "0"
    user, server = event["agent"]
    assert user["requestor"] and user["who"]["reference"] == "Practitioner/demo-doctor"
    assert user["who"]["identifier"] == {"system": "https://idp.example.ma", "value": "demo-doctor"}
    assert user["policy"] == ["jti-1"] and user["network"] == {"address": "10.0.0.9", "type": "2"}
    assert not server["requestor"]
    patient, data = event["entity"]
    assert patient["what"]["reference"] == "Patient/p1" and patient["role"]["code"] == "1"
    assert data["what"]["reference"] == "Observation/o1/_history/2" and data["role"]["code"] == "4"
    assert "purposeOfEvent" not in event


@pytest.mark.parametrize(
    "interaction,action", [("create", "C"), ("vread", "R"), ("update", "U"), ("patch", "U"), ("delete", "D"), ("search-type", "E"), ("operation", "E")]
)
def test_actions(interaction, action):
    assert audit_event(interaction, DOCTOR)["action"] == action


def test_search_one_event_per_patient():
    events = audit_events("search-type", DOCTOR, patients=["Patient/a", "Patient/b", "Patient/a", None], what="Observation", query="code=1234-5&_count=10")
    assert [e["entity"][0]["what"]["reference"] for e in events] == ["Patient/a", "Patient/b"]
    assert len({e["recorded"] for e in events}) == 1
    for e in events:
        model = valid(e)
        assert model.entity[1].query == b"code=1234-5&_count=10" or e["entity"][1]["query"]
        assert e["entity"][1]["role"]["code"] == "24"
    assert len(audit_events("search-type", DOCTOR, patients=[], what="Observation", query="")) == 1


def test_failure_outcomes():
    denied = audit_event("read", DOCTOR, status=403, what="Patient/p9", description="no care relationship")
    assert denied["outcome"] == "4" and denied["outcomeDesc"] == "no care relationship"
    assert audit_event("create", DOCTOR, status=500)["outcome"] == "8"
    assert "outcomeDesc" not in audit_event("read", DOCTOR, description="ignored on success")
    with pytest.raises(ValueError):
        audit_event("browse", DOCTOR)


def test_break_the_glass_marks_events_about_that_patient():
    now = now_us()
    grant = BreakGlassGrant("Patient/p1", "unconscious patient in emergency", now, now + 3_600_000_000)
    doctor = DOCTOR.with_break_glass(grant)
    granted = break_glass_event(doctor, grant, address="10.0.0.1")
    valid(granted)
    assert granted["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
    during = audit_event("read", doctor, patient="Patient/p1", what="Condition/c1")
    assert during["agent"][0]["purposeOfUse"][0]["coding"][0]["code"] == "BTG"
    other = audit_event("read", doctor, patient="Patient/p2", what="Condition/c2")
    assert "purposeOfEvent" not in other
    expired = audit_event("read", doctor, patient="Patient/p1", recorded_us=now + 2 * 3_600_000_000)
    assert "purposeOfEvent" not in expired


def test_system_and_failure_events_are_valid():
    valid(login_failure_event("The token has expired", address="192.0.2.1"))
    valid(retention_purge_event(10, "00" * 32, 10, now_us()))
    valid(audit_event("read", None, status=401, what="Patient/p1"))


# --- the chain ------------------------------------------------------------------------------------
def sample(i: int, days_ago: int = 0) -> dict:
    return audit_event("read", DOCTOR, patient=f"Patient/p{i % 3}", what=f"Observation/o{i}", recorded_us=now_us() - days_ago * DAY_US)


async def fill(engine, count: int, days_ago: int = 0, per_tx: int = 2, sealed: bool = True) -> None:
    for start in range(0, count, per_tx):
        async with write_transaction(engine) as conn:
            await append(conn, [sample(i, days_ago) for i in range(start, min(count, start + per_tx))])
    if sealed:
        await seal_pending(engine)


async def check(engine):
    async with engine.connect() as conn:
        return await verify(conn)


async def test_append_and_verify(db):
    async with db.connect() as conn:
        empty = await verify(conn)
    assert empty.ok and empty.checked == 0
    await fill(db, 7)
    report = await check(db)
    assert report.ok and report.checked == 7 and report.head_seq == 7 and len(report.head_hash) == 64
    async with db.connect() as conn:
        rows = (await conn.execute(select(audit_log.c.seq, audit_log.c.patient_ref, audit_log.c.event).order_by(audit_log.c.seq))).all()
    assert [r.seq for r in rows] == list(range(1, 8))
    assert [r.patient_ref for r in rows][:3] == ["Patient/p0", "Patient/p1", "Patient/p2"]
    assert orjson.loads(rows[4].event)["id"] == "5"


async def test_rolled_back_append_leaves_no_trace(db):
    await fill(db, 2)
    with pytest.raises(RuntimeError):
        async with write_transaction(db) as conn:
            await append(conn, [sample(9)])
            raise RuntimeError("the change this event records failed")
    await fill(db, 1)
    report = await check(db)
    assert report.ok and report.checked == 3


async def tamper(engine, statement) -> None:
    async with write_transaction(engine) as conn:
        await conn.execute(statement)


async def test_altered_event_detected(db):
    await fill(db, 5)
    async with db.connect() as conn:
        raw = (await conn.execute(select(audit_log.c.event).where(audit_log.c.seq == 3))).scalar_one()
    forged = bytes(raw).replace(b"Practitioner/demo-doctor", b"Practitioner/someone-else")
    await tamper(db, update(audit_log).where(audit_log.c.seq == 3).values(event=forged))
    report = await check(db)
    assert not report.ok and report.broken_seq == 3 and "altered" in report.reason and report.checked == 2


async def test_rehashed_row_breaks_the_next_link(db):
    from ehr.security.audit_log import link_hash

    await fill(db, 5)
    async with db.connect() as conn:
        row = (await conn.execute(select(audit_log).where(audit_log.c.seq == 3))).one()
    forged = bytes(row.event).replace(b'"Observation/o2"', b'"Observation/o999"')
    await tamper(db, update(audit_log).where(audit_log.c.seq == 3).values(event=forged, hash=link_hash(bytes(row.prev_hash), forged)))
    report = await check(db)
    assert not report.ok and report.broken_seq == 4 and "prev_hash" in report.reason


async def test_deleted_row_detected(db):
    await fill(db, 5)
    await tamper(db, delete(audit_log).where(audit_log.c.seq == 2))
    report = await check(db)
    assert not report.ok and report.broken_seq == 2 and "missing" in report.reason


async def test_column_edit_detected(db):
    await fill(db, 4)
    await tamper(db, update(audit_log).where(audit_log.c.seq == 2).values(patient_ref="Patient/elsewhere"))
    report = await check(db)
    assert not report.ok and report.broken_seq == 2 and "columns" in report.reason


async def test_truncated_tail_detected(db):
    await fill(db, 4)
    await tamper(db, delete(audit_log).where(audit_log.c.seq == 4))
    report = await check(db)
    assert not report.ok and "head" in report.reason


async def test_purge_keeps_chain_verifiable(db):
    await fill(db, 6, days_ago=400)
    await fill(db, 3, days_ago=1)
    async with write_transaction(db) as conn:
        result = await purge(conn, now_us() - 365 * DAY_US)
    assert result.deleted == 6 and result.anchor_seq == 6
    report = await check(db)
    assert report.ok and report.anchor_seq == 6 and report.checked == 4  # 3 kept + the purge event
    async with db.connect() as conn:
        last = orjson.loads((await conn.execute(select(audit_log.c.event).order_by(audit_log.c.seq.desc()).limit(1))).scalar_one())
    valid(last)
    assert last["type"]["code"] == "110101" and last["action"] == "D"
    # Purging again with nothing old enough is a no-op; appends continue the chain.
    async with write_transaction(db) as conn:
        assert (await purge(conn, now_us() - 365 * DAY_US)).deleted == 0
    await fill(db, 2)
    assert (await check(db)).ok


async def test_moved_anchor_detected(db):
    await fill(db, 6, days_ago=400)
    await fill(db, 2)
    async with write_transaction(db) as conn:
        await purge(conn, now_us() - 365 * DAY_US)
    # Someone deletes more of the old trail by hand and moves the anchor to match.
    async with db.connect() as conn:
        row8 = (await conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == 8))).scalar_one()
    await tamper(db, delete(audit_log).where(audit_log.c.seq <= 8))
    await tamper(db, update(audit_chain).values(anchor_seq=8, anchor_hash=bytes(row8)))
    report = await check(db)
    assert not report.ok


async def test_only_a_prefix_is_purged(db):
    await fill(db, 2, days_ago=400)
    await fill(db, 1, days_ago=1)
    await fill(db, 2, days_ago=400)  # old-dated but appended after a recent one: kept
    async with write_transaction(db) as conn:
        assert (await purge(conn, now_us() - 365 * DAY_US)).deleted == 2
    assert (await check(db)).ok


async def test_append_only_triggers(db):
    await fill(db, 3, days_ago=400)
    await fill(db, 1)
    async with db.begin() as conn:
        await install_append_only(conn)
        await install_append_only(conn)  # idempotent
    with pytest.raises(DBAPIError, match="append-only"):
        await tamper(db, update(audit_log).where(audit_log.c.seq == 1).values(patient_ref=None))
    with pytest.raises(DBAPIError, match="append-only"):
        await tamper(db, delete(audit_log).where(audit_log.c.seq == 4))
    if db.dialect.name == "postgresql":
        from sqlalchemy import text

        with pytest.raises(DBAPIError, match="append-only"):
            await tamper(db, text("TRUNCATE audit_log"))
    # The retention purge is the one path that may delete.
    async with write_transaction(db) as conn:
        assert (await purge(conn, now_us() - 365 * DAY_US)).deleted == 3
    assert (await check(db)).ok
    with pytest.raises(DBAPIError, match="append-only"):
        await tamper(db, delete(audit_log))


async def test_concurrent_appends_stay_linear(db):
    async def writer(n: int):
        for i in range(5):
            async with write_transaction(db) as conn:
                await append(conn, [sample(n * 10 + i), sample(n * 10 + i + 100)])

    await asyncio.gather(*(writer(n) for n in range(4)))
    assert await seal_pending(db) == 40
    report = await check(db)
    assert report.ok and report.checked == 40 and report.pending == 0


def test_ddl_covers_both_dialects():
    assert set(APPEND_ONLY_DDL) == set(INBOX_APPEND_ONLY_DDL) == {"postgresql", "sqlite"}

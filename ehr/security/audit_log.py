"""The append-only, hash-chained audit trail (table ``audit_log``).

Each row stores the canonical JSON of one AuditEvent and ``hash = SHA-256(prev_hash || event)``,
so changing, removing or reordering any row breaks every later link; ``verify`` finds the first
broken one.  Appends lock the chain-head row, which keeps the chain linear on PostgreSQL (row
lock) and SQLite (the database write lock), and run in the caller's transaction so an event
commits or rolls back with the change it records.

Retention purges a prefix of the chain: the hash of the last purged row becomes the anchor the
first kept row must link to, and the purge itself is appended as an event that states the anchor
(so a quietly moved anchor does not verify).  Only what is newer than the last published head
hash can be truncated undetected: publish ``verify``'s head hash regularly.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import orjson
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.security import audit_events
from ehr.security.tables import audit_chain, audit_log
from ehr.store.clock import parse_instant_bounds

GENESIS = bytes(32)
_HEAD = 1

# DDL that makes audit_log refuse UPDATE, DELETE (outside a purge) and TRUNCATE.  The lead's
# migration runs the statements of the database's dialect, one by one (no '%' and no ':name', so
# DB-API parameter styles and SQLAlchemy's text() / Alembic's op.execute leave them alone).
APPEND_ONLY_DDL: dict[str, tuple[str, ...]] = {
    "postgresql": (
        """CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_chain WHERE id = 1 AND purging) THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION USING MESSAGE = 'audit_log is append-only: ' || TG_OP || ' refused',
    ERRCODE = 'insufficient_privilege';
END $$""",
        "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
    ),
    "sqlite": (
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
        "WHEN NOT EXISTS (SELECT 1 FROM audit_chain WHERE id = 1 AND purging) "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END",
    ),
}


async def install_append_only(conn: AsyncConnection) -> None:
    """Create the append-only triggers for this connection's database (idempotent)."""
    for ddl in APPEND_ONLY_DDL[conn.dialect.name]:
        await conn.execute(text(ddl))  # as a migration's op.execute would run it


def canonical(event: dict) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def link_hash(prev_hash: bytes, event_bytes: bytes) -> bytes:
    return hashlib.sha256(prev_hash + event_bytes).digest()


def _recorded_us(event: dict) -> int:
    return parse_instant_bounds(event["recorded"])[0]


_HEAD_COLUMNS = (audit_chain.c.head_seq, audit_chain.c.head_hash, audit_chain.c.anchor_seq, audit_chain.c.anchor_hash)


async def _lock_head(conn: AsyncConnection) -> tuple[int, bytes, int, bytes]:
    """Lock the chain head and read it, in one statement: a no-op UPDATE … RETURNING takes the row
    lock (PostgreSQL) or the write lock (SQLite) and hands back the head."""
    touch = (
        update(audit_chain).where(audit_chain.c.id == _HEAD).values(head_seq=audit_chain.c.head_seq).returning(*_HEAD_COLUMNS)
    )
    row = (await conn.execute(touch)).first()
    if row is None:
        try:
            async with conn.begin_nested():  # another appender may create it at the same moment
                await conn.execute(
                    audit_chain.insert().values(
                        id=_HEAD, head_seq=0, head_hash=GENESIS, anchor_seq=0, anchor_hash=GENESIS, purging=False
                    )
                )
        except IntegrityError:
            pass
        row = (await conn.execute(touch)).one()
    return row.head_seq, bytes(row.head_hash), row.anchor_seq, bytes(row.anchor_hash)


async def append(conn: AsyncConnection, events: Sequence[dict]) -> list[int]:
    """Chain ``events`` in order, in the caller's transaction; returns their sequence numbers.

    Each event gets ``id`` = its sequence number, so it can be served as ``AuditEvent/<seq>``.
    """
    if not events:
        return []
    seq, prev, _, _ = await _lock_head(conn)
    rows = []
    for event in events:
        seq += 1
        data = canonical({**event, "id": str(seq)})
        digest = link_hash(prev, data)
        rows.append(
            {
                "seq": seq,
                "recorded": _recorded_us(event),
                "patient_ref": audit_events.event_patient(event),
                "event": data,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    await conn.execute(audit_log.insert(), rows)
    await conn.execute(update(audit_chain).where(audit_chain.c.id == _HEAD).values(head_seq=seq, head_hash=prev))
    return [r["seq"] for r in rows]


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int  # rows whose link was verified
    head_seq: int
    head_hash: str  # hex: publish it elsewhere to detect truncation of the tail
    anchor_seq: int
    broken_seq: int | None = None  # first row (or head) where the chain fails
    reason: str | None = None


async def verify(conn: AsyncConnection, batch: int = 2000) -> VerifyReport:
    """Walk the whole chain from its anchor; report the first broken link, if any."""
    head = (await conn.execute(select(audit_chain).where(audit_chain.c.id == _HEAD))).first()
    if head is None:
        count = (await conn.execute(select(func.count()).select_from(audit_log))).scalar_one()
        reason = None if count == 0 else "rows exist but the chain head is missing"
        return VerifyReport(count == 0, 0, 0, GENESIS.hex(), 0, None if count == 0 else 1, reason)
    head_seq, head_hash = head.head_seq, bytes(head.head_hash)
    anchor_seq, anchor_hash = head.anchor_seq, bytes(head.anchor_hash)

    def broken(seq: int, why: str, checked: int) -> VerifyReport:
        return VerifyReport(False, checked, head_seq, head_hash.hex(), anchor_seq, seq, why)

    expected_seq, prev, checked = anchor_seq + 1, anchor_hash, 0
    attested: tuple[int, str] | None = None
    columns = (audit_log.c.seq, audit_log.c.recorded, audit_log.c.patient_ref, audit_log.c.event, audit_log.c.prev_hash, audit_log.c.hash)
    result = await conn.stream(select(*columns).order_by(audit_log.c.seq).execution_options(yield_per=batch))
    async for row in result:
        seq, data = row.seq, bytes(row.event)
        if seq != expected_seq:
            why = "rows before the anchor remain" if seq < expected_seq else f"rows {expected_seq}..{seq - 1} are missing"
            await result.close()
            return broken(min(seq, expected_seq), why, checked)
        if bytes(row.prev_hash) != prev:
            await result.close()
            return broken(seq, "prev_hash does not match the previous row's hash", checked)
        if link_hash(prev, data) != bytes(row.hash):
            await result.close()
            return broken(seq, "the event was altered (hash mismatch)", checked)
        try:
            event = orjson.loads(data)
            consistent = event.get("id") == str(seq) and row.recorded == _recorded_us(event) and row.patient_ref == audit_events.event_patient(event)
        except (orjson.JSONDecodeError, KeyError, ValueError, AttributeError):
            consistent = False
        if not consistent:
            await result.close()
            return broken(seq, "the row's columns do not match its event", checked)
        attested = audit_events.purge_anchor(event) or attested
        prev, expected_seq, checked = bytes(row.hash), seq + 1, checked + 1
    if expected_seq - 1 != head_seq or prev != head_hash:
        return broken(expected_seq, "the chain head does not match the last row (tail truncated or head altered)", checked)
    if anchor_seq and attested != (anchor_seq, anchor_hash.hex()):
        return broken(anchor_seq + 1, "the anchor was moved without a purge event attesting it", checked)
    return VerifyReport(True, checked, head_seq, head_hash.hex(), anchor_seq)


@dataclass(frozen=True)
class PurgeReport:
    deleted: int
    anchor_seq: int


async def purge(conn: AsyncConnection, older_than_us: int) -> PurgeReport:
    """Remove the oldest events (the prefix recorded before ``older_than_us``), keeping the rest verifiable."""
    head_seq, _, anchor_seq, _ = await _lock_head(conn)
    first_kept = (
        await conn.execute(select(func.min(audit_log.c.seq)).where(audit_log.c.recorded >= older_than_us))
    ).scalar_one()
    # Only a prefix can go: a row is kept if anything before it must be kept.
    new_anchor = head_seq if first_kept is None else first_kept - 1
    if new_anchor <= anchor_seq:
        return PurgeReport(0, anchor_seq)
    anchor_hash = bytes((await conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == new_anchor))).scalar_one())
    head = update(audit_chain).where(audit_chain.c.id == _HEAD)
    await conn.execute(head.values(purging=True))
    deleted = (await conn.execute(audit_log.delete().where(audit_log.c.seq <= new_anchor))).rowcount or 0
    await conn.execute(head.values(purging=False, anchor_seq=new_anchor, anchor_hash=anchor_hash))
    await append(conn, [audit_events.retention_purge_event(new_anchor, anchor_hash.hex(), deleted, older_than_us)])
    return PurgeReport(deleted, new_anchor)

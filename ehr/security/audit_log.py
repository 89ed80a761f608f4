"""The append-only, hash-chained audit trail (table ``audit_log``) and its sealer.

Each row stores the canonical JSON of one AuditEvent and ``hash = SHA-256(prev_hash || event)``,
so changing, removing or reordering any row breaks every later link; ``verify`` finds the first
broken one.  Requests do not write here: they put their events in the inbox
(``audit_inbox.append``, a plain INSERT in their own transaction), and ``seal`` moves the inbox
into the chain in batches, under the chain-head lock (a row lock on PostgreSQL, the write lock
on SQLite), assigning ``seq``, ``prev_hash`` and ``hash`` and deleting what it chained in the
same transaction: each event is either in the inbox or in the chain, never both, never neither.
One lock per batch of thousands of events instead of one per request, held for milliseconds
instead of until a request commits.

Retention purges a prefix of the chain: the hash of the last purged row becomes the anchor the
first kept row must link to, and the purge itself is chained as an event that states the anchor
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
from ehr.security.audit_inbox import canonical, last_id, pending_count, recorded_us
from ehr.security.tables import audit_chain, audit_inbox, audit_log

GENESIS = bytes(32)
SEAL_BATCH = 2000  # events chained per transaction (one chain-head lock each)
_HEAD = 1


def _append_only_ddl(table: str, flag: str) -> dict[str, tuple[str, ...]]:
    """DDL that makes ``table`` refuse UPDATE, TRUNCATE and DELETE, except a DELETE made while
    the chain head's ``flag`` is set: only a transaction holding the chain-head lock sets it, and
    it clears it before committing, so no other transaction ever sees it set.  Migrations run the
    statements of the database's dialect one by one (no '%' and no ':name', so DB-API parameter
    styles and SQLAlchemy's text() / Alembic's op.execute leave them alone)."""
    return {
        "postgresql": (
            f"""CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_chain WHERE id = 1 AND {flag}) THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION USING MESSAGE = '{table} is append-only: ' || TG_OP || ' refused',
    ERRCODE = 'insufficient_privilege';
END $$""",
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()",
        ),
        "sqlite": (
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END",
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} "
            f"WHEN NOT EXISTS (SELECT 1 FROM audit_chain WHERE id = 1 AND {flag}) "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END",
        ),
    }


# audit_log: only the retention purge deletes (migration 0002); audit_inbox: only the sealer (0004).
APPEND_ONLY_DDL = _append_only_ddl("audit_log", "purging")
INBOX_APPEND_ONLY_DDL = _append_only_ddl("audit_inbox", "sealing")


async def install_append_only(conn: AsyncConnection) -> None:
    """Create the append-only triggers of the chain and the inbox for this connection's database
    (idempotent)."""
    for ddl in APPEND_ONLY_DDL[conn.dialect.name] + INBOX_APPEND_ONLY_DDL[conn.dialect.name]:
        await conn.execute(text(ddl))  # as a migration's op.execute would run it


def link_hash(prev_hash: bytes, event_bytes: bytes) -> bytes:
    return hashlib.sha256(prev_hash + event_bytes).digest()


_HEAD_COLUMNS = (audit_chain.c.head_seq, audit_chain.c.head_hash, audit_chain.c.anchor_seq, audit_chain.c.anchor_hash)
_head = update(audit_chain).where(audit_chain.c.id == _HEAD)


async def _lock_head(conn: AsyncConnection) -> tuple[int, bytes, int, bytes]:
    """Lock the chain head and read it, in one statement: a no-op UPDATE … RETURNING takes the row
    lock (PostgreSQL) or the write lock (SQLite) and hands back the head.  Only the sealer and the
    purge take it, in their own short transactions, never a request."""
    touch = _head.values(head_seq=audit_chain.c.head_seq).returning(*_HEAD_COLUMNS)
    row = (await conn.execute(touch)).first()
    if row is None:
        try:
            async with conn.begin_nested():  # another sealer may create it at the same moment
                await conn.execute(
                    audit_chain.insert().values(
                        id=_HEAD, head_seq=0, head_hash=GENESIS, anchor_seq=0, anchor_hash=GENESIS, purging=False, sealing=False
                    )
                )
        except IntegrityError:
            pass
        row = (await conn.execute(touch)).one()
    return row.head_seq, bytes(row.head_hash), row.anchor_seq, bytes(row.anchor_hash)


async def _chain(conn: AsyncConnection, seq: int, prev: bytes, events: Sequence[tuple[int, str | None, dict]]) -> tuple[int, bytes]:
    """Insert (recorded µs, patient_ref, event) after the locked head at ``seq``/``prev``; each
    event gets ``id`` = its sequence number, so it is served as ``AuditEvent/<seq>``.  Returns the
    new head (the caller stores it)."""
    rows = []
    for recorded, patient_ref, event in events:
        seq += 1
        data = canonical({**event, "id": str(seq)})
        digest = link_hash(prev, data)
        rows.append({"seq": seq, "recorded": recorded, "patient_ref": patient_ref, "event": data, "prev_hash": prev, "hash": digest})
        prev = digest
    if rows:
        await conn.execute(audit_log.insert(), rows)
    return seq, prev


class SealConflict(RuntimeError):
    """The inbox rows being sealed changed under the chain-head lock (cannot happen unless the
    inbox was altered by hand): the sealing transaction is rolled back, nothing is lost."""


async def seal(conn: AsyncConnection, limit: int = SEAL_BATCH, upto: int | None = None) -> int:
    """Move up to ``limit`` committed inbox events (ids ≤ ``upto`` when given), oldest id first,
    to the end of the chain, and delete them from the inbox, in the caller's transaction (commit
    it at once: it holds the chain-head lock).  Returns how many were sealed.

    The head is locked before the inbox is read, so two sealers (several processes or hosts)
    take turns, and the second reads the inbox only after the first committed: it never sees
    rows the first already chained.  The DELETE must remove exactly the rows read, or the whole
    transaction fails (``SealConflict``).
    """
    seq, prev, _, _ = await _lock_head(conn)
    i = audit_inbox
    query = select(i.c.id, i.c.recorded, i.c.patient_ref, i.c.event).order_by(i.c.id).limit(limit)
    if upto is not None:
        query = query.where(i.c.id <= upto)
    rows = (await conn.execute(query)).all()
    if not rows:
        return 0
    head_seq, head_hash = await _chain(conn, seq, prev, [(r.recorded, r.patient_ref, orjson.loads(r.event)) for r in rows])
    ids = [r.id for r in rows]
    await conn.execute(_head.values(sealing=True))  # lets this transaction's DELETE through the inbox trigger
    deleted = (await conn.execute(i.delete().where(i.c.id.in_(ids)))).rowcount
    if deleted != len(ids):
        raise SealConflict(f"sealed {len(ids)} inbox events but deleted {deleted}")
    await conn.execute(_head.values(sealing=False, head_seq=head_seq, head_hash=head_hash))
    return len(ids)


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int  # rows whose link was verified
    head_seq: int
    head_hash: str  # hex: publish it elsewhere to detect truncation of the tail
    anchor_seq: int
    broken_seq: int | None = None  # first row (or head) where the chain fails
    reason: str | None = None
    pending: int = 0  # events in the inbox, not chained (so not verified) yet


async def verify(conn: AsyncConnection, batch: int = 2000) -> VerifyReport:
    """Walk the whole chain from its anchor; report the first broken link, if any.  Events still
    in the inbox are counted, not verified: seal first (``sijill audit verify`` does)."""
    pending = await pending_count(conn)
    head = (await conn.execute(select(audit_chain).where(audit_chain.c.id == _HEAD))).first()
    if head is None:
        count = (await conn.execute(select(func.count()).select_from(audit_log))).scalar_one()
        reason = None if count == 0 else "rows exist but the chain head is missing"
        return VerifyReport(count == 0, 0, 0, GENESIS.hex(), 0, None if count == 0 else 1, reason, pending)
    head_seq, head_hash = head.head_seq, bytes(head.head_hash)
    anchor_seq, anchor_hash = head.anchor_seq, bytes(head.anchor_hash)

    def broken(seq: int, why: str, checked: int) -> VerifyReport:
        return VerifyReport(False, checked, head_seq, head_hash.hex(), anchor_seq, seq, why, pending)

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
            consistent = event.get("id") == str(seq) and row.recorded == recorded_us(event) and row.patient_ref == audit_events.event_patient(event)
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
    return VerifyReport(True, checked, head_seq, head_hash.hex(), anchor_seq, pending=pending)


@dataclass(frozen=True)
class PurgeReport:
    deleted: int
    anchor_seq: int


async def purge(conn: AsyncConnection, older_than_us: int) -> PurgeReport:
    """Remove the oldest events (the prefix recorded before ``older_than_us``), keeping the rest
    verifiable.  The inbox is sealed first, so old events still waiting there are purged too and
    the purge event (chained directly: it states the new anchor) comes after everything."""
    upto = await last_id(conn)
    while upto is not None and await seal(conn, upto=upto):
        pass
    head_seq, head_hash, anchor_seq, _ = await _lock_head(conn)
    first_kept = (
        await conn.execute(select(func.min(audit_log.c.seq)).where(audit_log.c.recorded >= older_than_us))
    ).scalar_one()
    # Only a prefix can go: a row is kept if anything before it must be kept.
    new_anchor = head_seq if first_kept is None else first_kept - 1
    if new_anchor <= anchor_seq:
        return PurgeReport(0, anchor_seq)
    anchor_hash = bytes((await conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == new_anchor))).scalar_one())
    await conn.execute(_head.values(purging=True))
    deleted = (await conn.execute(audit_log.delete().where(audit_log.c.seq <= new_anchor))).rowcount or 0
    event = audit_events.retention_purge_event(new_anchor, anchor_hash.hex(), deleted, older_than_us)
    head_seq, head_hash = await _chain(conn, head_seq, head_hash, [(recorded_us(event), audit_events.event_patient(event), event)])
    await conn.execute(_head.values(purging=False, anchor_seq=new_anchor, anchor_hash=anchor_hash, head_seq=head_seq, head_hash=head_hash))
    return PurgeReport(deleted, new_anchor)

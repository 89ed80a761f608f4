"""The submission ledger: one row per care sheet and payer, the idempotency key, the clock."""
from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from claims.tables import claim_ledger

QUEUED, IN_REVIEW, DECIDED, PAID = "queued", "in-review", "decided", "paid"
SUPERSEDED = "superseded"  # replaced by a correction (claims.corrections): never decided or paid again
OPEN_STATUSES = (QUEUED, IN_REVIEW)
SETTLED_STATUSES = (DECIDED, PAID)


@dataclass(frozen=True)
class LedgerRow:
    id: int
    provider_inpe: str
    claim_identifier: str
    payer_rank: int
    claim_id: str
    response_id: str
    eob_id: str | None
    patient_id: str
    provider_ref: str | None
    fund_ref: str
    fund_code: str
    coverage_id: str | None
    use: str
    care_setting: str
    service_date: str
    fingerprint: str
    parent_id: int | None
    related_claim_id: str | None
    received_at: int
    due_at: int
    status: str
    escalated_at: int | None
    decided_at: int | None
    decided_by: str | None
    outcome: str | None
    submitted_cents: int
    benefit_cents: int | None
    patient_share_cents: int | None
    payee: str | None
    ruleset_version: str | None
    preauth_ref: str | None
    preauth_from: str | None
    preauth_until: str | None
    corrects_id: int | None = None  # the row this correction replaces


_COLUMNS = [claim_ledger.c[f.name] for f in fields(LedgerRow)]


def _row(r) -> LedgerRow:
    return LedgerRow(*r)


async def by_key(conn: AsyncConnection, provider_inpe: str, identifier: str, rank: int = 1) -> LedgerRow | None:
    row = (
        await conn.execute(
            select(*_COLUMNS).where(
                claim_ledger.c.provider_inpe == provider_inpe,
                claim_ledger.c.claim_identifier == identifier,
                claim_ledger.c.payer_rank == rank,
            )
        )
    ).first()
    return _row(row) if row else None


async def by_ids(conn: AsyncConnection, ids: list[int], *, for_update: bool = False) -> dict[int, LedgerRow]:
    if not ids:
        return {}
    stmt = select(*_COLUMNS).where(claim_ledger.c.id.in_(ids))
    rows = await conn.execute(stmt.with_for_update() if for_update else stmt)
    return {r.id: r for r in map(_row, rows)}


async def corrections_of(conn: AsyncConnection, ids: list[int]) -> dict[int, LedgerRow]:
    """The correction received for each of ``ids`` (rows that some correction replaces)."""
    if not ids:
        return {}
    rows = await conn.execute(select(*_COLUMNS).where(claim_ledger.c.corrects_id.in_(ids)))
    return {r.corrects_id: r for r in map(_row, rows)}


async def complementary_of(conn: AsyncConnection, ids: list[int]) -> list[LedgerRow]:
    """The complementary insurers' rows (rank > 1) following these primary rows."""
    if not ids:
        return []
    rows = await conn.execute(select(*_COLUMNS).where(claim_ledger.c.parent_id.in_(ids)).order_by(claim_ledger.c.id))
    return list(map(_row, rows))


async def by_claim(conn: AsyncConnection, claim_id: str, rank: int = 1, *, for_update: bool = False) -> LedgerRow | None:
    """``for_update``: locked until the caller's commit (PostgreSQL; SQLite writers are serialised)."""
    stmt = select(*_COLUMNS).where(claim_ledger.c.claim_id == claim_id, claim_ledger.c.payer_rank == rank)
    row = (await conn.execute(stmt.with_for_update() if for_update else stmt)).first()
    return _row(row) if row else None


async def by_keys(conn: AsyncConnection, keys: list[tuple[str, str]], rank: int = 1) -> dict[tuple[str, str], LedgerRow]:
    """Rows by idempotency key (provider INPE, sheet number), in one query."""
    if not keys:
        return {}
    inpes = sorted({k[0] for k in keys})
    stmt = select(*_COLUMNS).where(
        claim_ledger.c.provider_inpe.in_(inpes),
        claim_ledger.c.claim_identifier.in_(sorted({k[1] for k in keys})),
        claim_ledger.c.payer_rank == rank,
    )
    wanted = set(keys)
    rows = map(_row, await conn.execute(stmt))
    return {(r.provider_inpe, r.claim_identifier): r for r in rows if (r.provider_inpe, r.claim_identifier) in wanted}


async def insert_many(conn: AsyncConnection, values: list[dict]) -> dict[tuple[str, str], int]:
    """Insert rows of one payer rank; returns the ids of those inserted by key (provider, sheet
    number).  A key that already exists (a concurrent submission won) is left out.
    """
    if not values:
        return {}
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = (
        dialect_insert(claim_ledger)
        .on_conflict_do_nothing(index_elements=["provider_inpe", "claim_identifier", "payer_rank"])
        .returning(claim_ledger.c.id, claim_ledger.c.provider_inpe, claim_ledger.c.claim_identifier)
    )
    return {(inpe, ident): lid for lid, inpe, ident in await conn.execute(stmt, values)}


async def insert_new(conn: AsyncConnection, values: dict) -> int | None:
    """Insert a ledger row; None if its key (provider, identifier, rank) already exists.

    On PostgreSQL a concurrent insert of the same key makes this wait for that transaction,
    then do nothing if it committed: the caller reads the winner's row and answers with it.
    """
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = (
        dialect_insert(claim_ledger)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["provider_inpe", "claim_identifier", "payer_rank"])
        .returning(claim_ledger.c.id)
    )
    return (await conn.execute(stmt)).scalar()


async def lock_open(conn: AsyncConnection, ids: list[int]) -> list[int]:
    """Those of ``ids`` still open (queued or in review), locked until the caller's commit."""
    if not ids:
        return []
    stmt = select(claim_ledger.c.id).where(claim_ledger.c.id.in_(ids), claim_ledger.c.status.in_(OPEN_STATUSES))
    return list((await conn.execute(stmt.with_for_update())).scalars())


async def move_queued(conn: AsyncConnection, ids: list[int], status: str) -> list[int]:
    """Move those of ``ids`` still queued to ``status``; returns the ids moved."""
    if not ids:
        return []
    stmt = (
        update(claim_ledger)
        .where(claim_ledger.c.id.in_(ids), claim_ledger.c.status == QUEUED)
        .values(status=status)
        .returning(claim_ledger.c.id)
    )
    return list((await conn.execute(stmt)).scalars())


async def set_decided(conn: AsyncConnection, rows: list[dict]) -> None:
    """Write decisions on rows ``lock_open`` returned (one executemany; each dict has ``id``)."""
    if not rows:
        return
    columns = [k for k in rows[0] if k != "id"]
    stmt = (
        update(claim_ledger)
        .where(claim_ledger.c.id == bindparam("b_id"))
        .values({c: bindparam(f"b_{c}") for c in columns})
    )
    await conn.execute(stmt, [{f"b_{k}": v for k, v in r.items()} for r in rows])


async def transition(conn: AsyncConnection, ledger_id: int, from_statuses: tuple[str, ...], **values) -> bool:
    """Move a row on only if it is still in one of ``from_statuses`` (never decide twice)."""
    result = await conn.execute(
        update(claim_ledger)
        .where(claim_ledger.c.id == ledger_id, claim_ledger.c.status.in_(from_statuses))
        .values(**values)
    )
    return result.rowcount == 1

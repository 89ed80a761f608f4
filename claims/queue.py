"""The durable job queue in the database (``claim_job``), the same on SQLite and PostgreSQL.

Taking work is a short transaction that leases jobs (``locked_by``/``locked_until``) in
deadline order: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so workers on several hosts never
wait on each other, ``BEGIN IMMEDIATE`` on SQLite where writers are serialised anyway.  A
job is finished by deleting it in the same transaction that writes its result, after
checking (under a row lock) that the lease is still ours; a crashed worker's lease simply
expires and the job is taken again.  The attempt counter is bumped when leasing, so it
survives crashes and a job that keeps killing workers is eventually handed to a human.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from claims.tables import claim_job
from ehr.store.db import write_transaction

ADJUDICATE = "adjudicate"
# Escalated jobs sort before every ordinary one, and by deadline among themselves.
ESCALATION_BOOST_US = 10 * 365 * 86_400 * 1_000_000


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    ledger_id: int
    attempts: int


async def enqueue(conn: AsyncConnection, ledger_id: int, due_at: int, now: int, kind: str = ADJUDICATE) -> None:
    await enqueue_many(conn, [(ledger_id, due_at)], now, kind)


async def enqueue_many(conn: AsyncConnection, claims: list[tuple[int, int]], now: int, kind: str = ADJUDICATE) -> None:
    """One job per (ledger id, deadline); the deadline is the job's priority."""
    if claims:
        await conn.execute(claim_job.insert(), [
            dict(kind=kind, ledger_id=ledger_id, run_after=now, priority=due_at, attempts=0, created_at=now)
            for ledger_id, due_at in claims
        ])


def _available(now: int):
    return and_(
        claim_job.c.run_after <= now,
        or_(claim_job.c.locked_until.is_(None), claim_job.c.locked_until < now),
    )


async def lease(engine: AsyncEngine, worker: str, limit: int, now: int, lease_us: int) -> list[Job]:
    """Lease up to ``limit`` due jobs, earliest deadline first, in a transaction of its own."""
    candidates = (
        select(claim_job.c.id)
        .where(_available(now))
        .order_by(claim_job.c.priority, claim_job.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite renders nothing (BEGIN IMMEDIATE)
        .scalar_subquery()
    )
    stmt = (
        update(claim_job)
        .where(claim_job.c.id.in_(candidates))
        .values(locked_by=worker, locked_until=now + lease_us, attempts=claim_job.c.attempts + 1)
        .returning(claim_job.c.id, claim_job.c.kind, claim_job.c.ledger_id, claim_job.c.attempts)
    )
    async with write_transaction(engine) as conn:
        rows = (await conn.execute(stmt)).all()
    return sorted((Job(*r) for r in rows), key=lambda j: j.id)


async def still_leased(conn: AsyncConnection, jobs: list[Job], worker: str, now: int) -> list[Job]:
    """The jobs this worker still holds, locked until the end of the caller's transaction.

    A lease that expired may have been taken by another worker: its row then names that
    worker and this one must not write a result for it.
    """
    if not jobs:
        return []
    stmt = (
        select(claim_job.c.id)
        .where(claim_job.c.id.in_([j.id for j in jobs]), claim_job.c.locked_by == worker)
        .with_for_update()
    )
    mine = set((await conn.execute(stmt)).scalars())
    return [j for j in jobs if j.id in mine]


async def finish(conn: AsyncConnection, job_ids: list[int]) -> None:
    if job_ids:
        await conn.execute(delete(claim_job).where(claim_job.c.id.in_(job_ids)))


async def retry_later(engine: AsyncEngine, job: Job, worker: str, error: str, run_after: int) -> None:
    """Give a failed job back, to be retried after ``run_after`` (only if still ours)."""
    async with write_transaction(engine) as conn:
        await conn.execute(
            update(claim_job)
            .where(claim_job.c.id == job.id, claim_job.c.locked_by == worker)
            .values(locked_by=None, locked_until=None, run_after=run_after, last_error=error[:2000])
        )


async def escalate(conn: AsyncConnection, ledger_ids: list[int]) -> None:
    """Move these claims' jobs ahead of every ordinary job (still in deadline order).

    Called once per claim: the ledger's ``escalated_at`` says whether it already was.
    """
    if ledger_ids:
        await conn.execute(
            update(claim_job)
            .where(claim_job.c.ledger_id.in_(ledger_ids))
            .values(priority=claim_job.c.priority - ESCALATION_BOOST_US)
        )

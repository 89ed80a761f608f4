"""The adjudication worker (``sijill worker``; also ``python -m claims.worker``).

Each round: escalate claims near their deadline, lease a batch of jobs (earliest deadline
first), then in ONE transaction per batch re-check the leases under row locks, load the
batch's facts, adjudicate, write every decision (ClaimResponse, EOB, ledger, lines, outbox,
complementary follow-up) and delete the jobs.  A crash anywhere before that commit leaves the
jobs leased; the lease expires and another worker (or this one, restarted) takes them again.
A crash after the commit leaves nothing to redo.  So each claim is decided exactly once:
the ledger only moves to ``decided`` from an open status, and decided lines are unique per
claim and line, which fails any second decision's transaction.

Several workers run side by side (several processes or hosts on PostgreSQL); on PostgreSQL
the batch transaction also takes an advisory lock per patient, so two workers never judge the
same patient's claims (duplicates, frequency limits, ceilings) from stale history.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import socket
import traceback
from collections import Counter as Tally
from collections import defaultdict
from datetime import date
from decimal import Decimal

import httpx
import orjson
import typer
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from claims import ledger, queue
from claims.adjudication.engine import adjudicate, adjudicate_complementary
from claims.adjudication.facts import load_facts
from claims.adjudication.model import Decision, LineDecision, PriorLine
from claims.adjudication.ruleset import Rulesets, rulesets
from claims.caresheet import today
from claims.cliff_notices import remind_due
from claims.clock import HOUR_US, now_us
from claims.corrections import supersede_on_decision
from claims.coverage import coverage_facts, payor_refs
from claims.ledger import LedgerRow
from claims.messaging.dispatch import deliver_messages
from claims.lookups import resources_by_id
from claims.money import from_cents
from claims.notify import Subscriptions, deliver_due
from claims.observe import count_decisions, serve_worker_metrics
from claims.ports import reference_for
from claims.recording import ToRecord, current_responses, record_decisions, record_pends
from claims.review import resume_expired_pauses
from claims.settings import ClaimsSettings, get_claims_settings
from claims.tables import claim_decision_line, claim_ledger, claim_review_task
from ehr.interactions.context import Context
from ehr.ops.logs import setup_logging
from ehr.security.audit_sealer import seal_pending
from ehr.settings import get_settings
from ehr.store.db import create_engine, write_transaction

log = logging.getLogger("sijill.claims.worker")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(self, engine: AsyncEngine, settings: ClaimsSettings | None = None, base_url: str | None = None,
                 name: str | None = None) -> None:
        self.engine = engine
        self.settings = settings or get_claims_settings()
        self.base_url = base_url or get_settings().base_url
        self.name = name or worker_name()
        self.subscriptions = Subscriptions()
        self.rulesets: Rulesets = rulesets()

    # --- one round -------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Escalate, then take and finish one batch; returns how many jobs were finished."""
        await self.escalate()
        now = now_us()
        jobs = await queue.lease(self.engine, self.name, self.settings.batch_size, now, self.settings.lease_seconds * 1_000_000)
        if not jobs:
            return 0
        try:
            return await self._process(jobs)
        except Exception as exc:  # the whole batch rolled back: isolate the culprit one job at a time
            log.warning("batch of %d failed (%s); retrying one by one", len(jobs), exc)
            done = 0
            for job in jobs:
                try:
                    done += await self._process([job])
                except Exception as one:  # noqa: BLE001 — a job's failure must not stop the worker
                    await self._failed(job, one)
            return done

    async def _process(self, jobs: list[queue.Job]) -> int:
        now = now_us()
        self.tally: tuple[Tally, Tally] = (Tally(), Tally())  # this batch's decisions, pends (claims.observe)
        async with write_transaction(self.engine) as conn:
            mine = await queue.still_leased(conn, jobs, self.name, now)
            if not mine:
                return 0
            rows = await ledger.by_ids(conn, [j.ledger_id for j in mine])
            await self._lock_patients(conn, rows.values())
            await self.subscriptions.refresh(conn)
            # Index rows of every resource the batch writes go in at once, before the commit.
            ctx = Context(conn, self.base_url, pending_index=[])
            open_rows = [r for r in rows.values() if r.status in ledger.OPEN_STATUSES]
            primary = [r for r in open_rows if r.payer_rank == 1 and r.status == ledger.QUEUED]
            complementary = [r for r in open_rows if r.payer_rank > 1]
            priors = await current_responses(ctx, [r.response_id for r in open_rows])
            claims = await resources_by_id(conn, [("Claim", r.claim_id) for r in open_rows])
            await self._decide_primary(ctx, primary, claims, priors, now)
            await self._decide_complementary(ctx, complementary, claims, priors, now)
            await supersede_on_decision(ctx, [r.id for r in open_rows], self.subscriptions)  # corrections decided here
            await ctx.flush()
            await queue.finish(conn, [j.id for j in mine])
        count_decisions(*self.tally)  # committed: now they count
        return len(mine)

    async def _lock_patients(self, conn: AsyncConnection, rows) -> None:
        if conn.dialect.name != "postgresql":
            return  # SQLite: this transaction already holds the database's write lock
        keys = sorted(
            int.from_bytes(hashlib.blake2b(f"claims:patient:{pid}".encode(), digest_size=8).digest(), "big", signed=True)
            for pid in {r.patient_id for r in rows}
        )
        # One statement, locks taken in sorted order (unnest keeps the array's order): no deadlock.
        await conn.execute(text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS t(k)"), {"keys": keys})

    async def _decide_primary(self, ctx: Context, rows: list[LedgerRow], claims, priors, now: int) -> None:
        if not rows:
            return
        tz = self.settings.timezone
        facts = await load_facts(ctx.conn, rows, await reference_for(ctx.conn), self.rulesets, tz)
        by_patient: dict[str, list] = defaultdict(list)
        for f in facts.values():
            by_patient[f.sheet.patient_id].append(f)
        decided: list[ToRecord] = []
        pended: list[ToRecord] = []
        for row in sorted(rows, key=lambda r: (r.due_at, r.id)):
            f = facts[row.id]
            rules = self.rulesets.version(row.fund_code, f.sheet.service_date)
            claim = claims[("Claim", row.claim_id)]
            if rules is None:
                decision = _no_rules(f.sheet.lines, row)
            else:
                decision = adjudicate(f, rules)
            if decision.pend is not None:
                pended.append(ToRecord(row, claim, decision, priors.get(row.response_id)))
                continue
            decided.append(ToRecord(row, claim, decision, priors.get(row.response_id), complementary=f.complementary))
            if row.use != "claim":
                continue
            # Later claims of the batch see this one's lines (duplicates, limits, ceilings).
            for other in by_patient[row.patient_id]:
                if other.ledger_id != row.id:
                    other.prior_lines.extend(_as_prior(row, decision))
        self.tally[1].update(r.row.fund_code for r in pended)
        self.tally[0].update((r.row.fund_code, r.decision.outcome) for r in decided)
        await record_pends(ctx, pended, now=now)
        await record_decisions(ctx, decided, now=now, subscriptions=self.subscriptions,
                               deadline_hours=self.settings.deadline_hours)

    async def _decide_complementary(self, ctx: Context, rows: list[LedgerRow], claims, priors, now: int) -> None:
        if not rows:
            return
        parents = [r.parent_id for r in rows]
        t = claim_decision_line.c
        lines: dict[int, list[LineDecision]] = {}
        for lr in await ctx.conn.execute(
            select(t.ledger_id, t.sequence, t.code_system, t.code, t.service_date, t.quantity, t.submitted_cents,
                   t.eligible_cents, t.benefit_cents, t.rate_permille).where(t.ledger_id.in_(parents)).order_by(t.sequence)
        ):
            lines.setdefault(lr.ledger_id, []).append(LineDecision(
                lr.sequence, lr.code_system, lr.code, date.fromisoformat(lr.service_date), Decimal(str(lr.quantity)),
                from_cents(lr.submitted_cents), from_cents(lr.eligible_cents), Decimal(lr.rate_permille) / 1000,
                from_cents(lr.benefit_cents),
            ))
        covs = await resources_by_id(ctx.conn, [("Coverage", r.coverage_id) for r in rows])
        orgs = await resources_by_id(ctx.conn, payor_refs(covs.values()))
        decided: list[ToRecord] = []
        for row in rows:
            on = date.fromisoformat(row.service_date)
            rules = self.rulesets.version(row.fund_code, on)
            cov_json = covs.get(("Coverage", row.coverage_id))
            cov = coverage_facts(cov_json, orgs) if cov_json else None
            covered = cov is not None and cov.in_force(on)
            if rules is None or rules.complementary is None:
                decision = _no_rules(lines.get(row.parent_id, []), row)
            else:
                decision = adjudicate_complementary(lines.get(row.parent_id, []), rules, covered)
            decided.append(ToRecord(row, claims[("Claim", row.claim_id)], decision, priors.get(row.response_id)))
        self.tally[0].update((r.row.fund_code, r.decision.outcome) for r in decided)
        await record_decisions(ctx, decided, now=now, subscriptions=self.subscriptions)

    async def _failed(self, job: queue.Job, exc: Exception) -> None:
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        log.error("job %s (ledger %s) failed, attempt %d: %s", job.id, job.ledger_id, job.attempts, error)
        if job.attempts >= self.settings.max_attempts:
            await self._park(job, error)
            return
        delay = min(2 ** job.attempts, 300) * 1_000_000
        await queue.retry_later(self.engine, job, self.name, error, now_us() + delay)

    async def _park(self, job: queue.Job, error: str) -> None:
        """Keeps failing: hand it to the fund's agents so it is still decided in time."""
        now = now_us()
        async with write_transaction(self.engine) as conn:
            if not await queue.still_leased(conn, [job], self.name, now):
                return
            row = (await ledger.by_ids(conn, [job.ledger_id])).get(job.ledger_id)
            if row is not None and row.status == ledger.QUEUED:
                await ledger.transition(conn, row.id, (ledger.QUEUED,), status=ledger.IN_REVIEW)
                await conn.execute(claim_review_task.insert().values(
                    ledger_id=row.id, fund_code=row.fund_code, reason_code="technical", detail=error[:2000],
                    proposal=orjson.dumps({"lines": []}), status="open", due_at=row.due_at, escalated=0,
                    created_at=now, paused_total_us=0,
                ))
            await queue.finish(conn, [job.id])

    # --- the clock ---------------------------------------------------------------------------

    async def escalate(self) -> int:
        """Flag claims and appeals whose deadline is near and move their work to the front."""
        from claims import appeals

        now = now_us()
        horizon = now + self.settings.escalate_before_hours * HOUR_US
        led = claim_ledger.c
        async with write_transaction(self.engine) as conn:
            await resume_expired_pauses(conn, now)
            ids = list((await conn.execute(
                select(led.id).where(led.status.in_(ledger.OPEN_STATUSES), led.escalated_at.is_(None), led.due_at <= horizon)
                .limit(1000)
            )).scalars())
            if ids:
                # Review task before ledger row, the order an agent's decision locks them in (no deadlock).
                await conn.execute(update(claim_review_task).where(claim_review_task.c.ledger_id.in_(ids)).values(escalated=1))
                await conn.execute(update(claim_ledger).where(led.id.in_(ids)).values(escalated_at=now))
                await queue.escalate(conn, ids)
            appealed = await appeals.escalate(conn, now, horizon)  # no job: their Task goes first in the queue
        if ids or appealed:
            log.info("escalated %d claims and %d appeals near their deadline", len(ids), appealed)
        return len(ids) + appealed

    # --- the loop ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, deliver: bool = True) -> None:
        async with httpx.AsyncClient() as http:
            while not stop.is_set():
                try:
                    done = await self.run_once()
                    sent = await deliver_due(self.engine, self.settings, http) if deliver else 0
                    sent += await deliver_messages(self.engine, self.settings, http, base_url=self.base_url) if deliver else 0
                    if not done and not sent:
                        await remind_due(self.engine, self.settings, self.base_url,
                                         today(self.settings.timezone))  # ALD transitions about to end
                        await seal_pending(self.engine)  # the audit trail is chained even with no API server up
                except DBAPIError as exc:  # a deadlock, a lost connection: nothing was committed, go on
                    log.warning("worker round failed (%s); retrying", exc.orig.__class__.__name__ if exc.orig else exc)
                    done = sent = 0
                if not done and not sent:
                    try:
                        await asyncio.wait_for(stop.wait(), self.settings.idle_sleep_seconds)
                    except asyncio.TimeoutError:
                        pass


def _as_prior(row: LedgerRow, decision: Decision) -> list[PriorLine]:
    return [PriorLine(row.id, row.provider_inpe, ln.code, ln.service_date, ln.benefit, row.fund_code) for ln in decision.lines]


def _no_rules(lines, row: LedgerRow) -> Decision:
    """No rule set in force for the date of care: nothing can be paid (coverage reason)."""
    out = []
    for ln in lines:
        out.append(LineDecision(ln.sequence, ln.system, ln.code, ln.service_date, ln.quantity,
                                getattr(ln, "submitted", Decimal(0)), Decimal(0), Decimal(0), Decimal(0), ["not-covered"]))
    return Decision(out, f"{row.fund_code.lower()}-none", "insured")


async def run_worker(database_url: str | None = None, *, once: bool = False, name: str | None = None) -> None:
    from ehr.plugins import load_plugins

    load_plugins()  # the write hooks every store() in this process must run, as in the API

    settings = get_settings()
    engine = create_engine(database_url or settings.database_url, pool_size=4)
    worker = Worker(engine, get_claims_settings(), settings.base_url, name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except NotImplementedError:  # pragma: no cover
            pass
    try:
        if once:
            while await worker.run_once():
                pass
        else:
            log.info("worker %s started", worker.name)
            await worker.run(stop)
    finally:
        await engine.dispose()


def worker_command(
    once: bool = typer.Option(False, "--once", help="Drain the queue, then exit (instead of running until stopped)."),
    name: str = typer.Option(None, help="This worker's name in leases (default host:pid)."),
) -> None:
    """Adjudicate queued care sheets by deadline (runs until SIGTERM; several may run at once)."""
    settings = get_settings()
    setup_logging(settings)
    serve_worker_metrics(settings.claims_worker_metrics_port)
    asyncio.run(run_worker(once=once, name=name))


if __name__ == "__main__":  # pragma: no cover
    typer.run(worker_command)

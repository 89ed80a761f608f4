"""What an operator watches of the care-sheet exchange (docs/operations.md).

Read from the database at scrape time (``ehr.ops.metrics.gauge_sources``), by fund: open care
sheets and the oldest one's age against the deadline (the 48-hour clock), the time left before
the earliest deadline, sheets received and decided in the last hour, the review queue's depth.
Every query walks an index over a bounded range (open rows, the last hour, one fund).
Counted in the worker (``sijill worker``'s own metrics port): decisions and pends, once their
transaction has committed, so ``rate()`` of them is the worker's decisions per second.
``/health/ready`` fails when more jobs than ``claims_ready_max_queue`` wait (workers behind).
"""
from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import Metric
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from claims import ledger
from claims.adjudication.ruleset import rulesets
from claims.review import CLOSED
from claims.tables import claim_job, claim_ledger, claim_review_task
from ehr.ops.health import backlog, readiness_check
from ehr.ops.metrics import gauge, gauge_sources
from ehr.settings import Settings, get_settings

WORKER_REGISTRY = CollectorRegistry()
DECIDED = Counter("sijill_claims_worker_decided", "Care sheets decided by this worker, by fund and outcome",
                  ["fund", "outcome"], registry=WORKER_REGISTRY)
PENDED = Counter("sijill_claims_worker_pended", "Care sheets handed to the fund's agents by this worker, by fund",
                 ["fund"], registry=WORKER_REGISTRY)
HOUR_S = 3600


def count_decisions(decided: Tally, pended: Tally) -> None:
    """A committed batch: ``decided`` by (fund, outcome), ``pended`` by fund."""
    for (fund, outcome), n in decided.items():
        DECIDED.labels(fund, outcome or "unknown").inc(n)
    for fund, n in pended.items():
        PENDED.labels(fund).inc(n)


def serve_worker_metrics(port: int | None) -> None:
    """The worker's counters on ``port`` (all interfaces: publish it on an internal network only)."""
    if port:
        start_http_server(port, registry=WORKER_REGISTRY)


@readiness_check("claims_queue")
async def _queue_bounded(conn: AsyncConnection, settings: Settings) -> str | None:
    return await backlog(conn, claim_job, settings.claims_ready_max_queue, "care sheets wait for a worker")


async def _open_sheets(conn: AsyncConnection, now: float) -> list[Metric]:
    c = claim_ledger.c
    rows = (await conn.execute(
        select(c.fund_code, c.status, func.count(), func.min(c.received_at), func.min(c.due_at))
        .where(c.status.in_(ledger.OPEN_STATUSES)).group_by(c.fund_code, c.status)
    )).all()
    oldest: dict[str, tuple[float, float]] = {}
    for fund, _status, _n, received, due in rows:
        age, left = now - received / 1e6, due / 1e6 - now
        previous = oldest.get(fund)
        oldest[fund] = (max(age, previous[0]), min(left, previous[1])) if previous else (age, left)
    return [
        gauge("sijill_claims_deadline_seconds", "The deadline a care sheet is decided within",
              get_settings().claims_deadline_hours * HOUR_S),
        gauge("sijill_claims_open", "Care sheets received and not yet decided, by fund and status",
              labels=("fund", "status"), samples=(([f, s], n) for f, s, n, _, _ in rows)),
        gauge("sijill_claims_oldest_open_age_seconds", "Age of the oldest undecided care sheet, by fund",
              labels=("fund",), samples=(([f], v[0]) for f, v in oldest.items())),
        gauge("sijill_claims_deadline_remaining_seconds",
              "Time left before the earliest deadline of an undecided care sheet (negative: overdue), by fund",
              labels=("fund",), samples=(([f], v[1]) for f, v in oldest.items())),
    ]


async def _last_hour(conn: AsyncConnection, now: float) -> list[Metric]:
    c = claim_ledger.c
    since = int((now - HOUR_S) * 1e6)
    funds = rulesets().codes()
    received = [
        ([fund], (await conn.execute(select(func.count()).where(and_(c.fund_code == fund, c.received_at >= since)))).scalar_one())
        for fund in funds
    ]
    decided = (await conn.execute(
        select(c.fund_code, func.count()).where(c.status.in_((*ledger.SETTLED_STATUSES, ledger.SUPERSEDED)), c.decided_at >= since)
        .group_by(c.fund_code)
    )).all()
    t = claim_review_task.c
    queue = [
        ([fund], (await conn.execute(select(func.count()).where(and_(t.fund_code == fund, t.status != CLOSED)))).scalar_one())
        for fund in funds
    ]
    return [
        gauge("sijill_claims_received_last_hour", "Care sheets received in the last hour, by fund", labels=("fund",), samples=received),
        gauge("sijill_claims_decided_last_hour", "Care sheets decided in the last hour, by fund",
              labels=("fund",), samples=(([f], n) for f, n in decided)),
        gauge("sijill_claims_review_queue", "Care sheets pended and waiting for an agent of the fund, by fund",
              labels=("fund",), samples=queue),
    ]


gauge_sources.extend((_open_sheets, _last_hour))

"""Prometheus metrics: ``GET /metrics`` (off unless ``metrics_token`` is set; then a bearer
token) and the request counters the access-log middleware feeds.

Two kinds of numbers.  Counted in the process: requests by route template (never the raw path:
ids stay out and the label set stays small), method and status, with a latency histogram.
Read from the database at scrape time: the audit inbox and the sealer's lag, the connection
pool, and what domain packages add to ``gauge_sources`` (the claims clock and queues); these
are indexed or bounded queries, computed once per ``metrics_cache_seconds`` however often
Prometheus scrapes.

Several processes (``sijill serve --workers N``) share their counters through
prometheus-client's multiprocess mode: the serve command points ``PROMETHEUS_MULTIPROC_DIR``
at a fresh directory before the workers start, and a scrape of any worker sums them all.
"""
from __future__ import annotations

import asyncio
import hmac
import os
import time
from typing import Awaitable, Callable, Iterable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.outcome import FHIRError

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "sijill_http_requests", "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"], registry=REGISTRY,
)
LATENCY = Histogram(
    "sijill_http_request_duration_seconds", "Time to answer a request, by route template and method",
    ["route", "method"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

# async (conn, now in epoch seconds) -> metric families; registered by domain packages.
GaugeSource = Callable[[AsyncConnection, float], Awaitable[Iterable[Metric]]]
gauge_sources: list[GaugeSource] = []

router = APIRouter(include_in_schema=False)


def observe_request(method: str | None, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, method or "", str(status)).inc()
    LATENCY.labels(route, method or "").observe(seconds)


def gauge(name: str, doc: str, value: float | None = None, labels: Iterable[str] = (),
          samples: Iterable[tuple[list[str], float]] = ()) -> GaugeMetricFamily:
    """A gauge family with one unlabelled ``value`` or labelled ``samples``."""
    family = GaugeMetricFamily(name, doc, value=value, labels=None if value is not None else list(labels))
    for label_values, sample in samples:
        family.add_metric(label_values, sample)
    return family


async def _audit_gauges(conn: AsyncConnection, now: float) -> list[Metric]:
    from ehr.security.tables import audit_inbox

    size, oldest = (await conn.execute(select(func.count(), func.min(audit_inbox.c.recorded)))).one()
    lag = now - oldest / 1_000_000 if oldest is not None else 0.0
    return [
        gauge("sijill_audit_inbox_events", "Audit events recorded and not yet sealed into the chain", size),
        gauge("sijill_audit_sealer_lag_seconds", "Age of the oldest audit event waiting to be sealed", max(lag, 0.0)),
    ]


gauge_sources.append(_audit_gauges)


def _pool_gauges(engine) -> list[Metric]:
    pool = engine.pool
    if not all(callable(getattr(pool, name, None)) for name in ("size", "checkedout", "overflow")):
        return []  # a pool without a queue (NullPool): nothing to report
    return [
        gauge("sijill_db_pool_size", "Connections the pool keeps open (this process)", pool.size()),
        gauge("sijill_db_pool_checked_out", "Connections in use (this process)", pool.checkedout()),
        gauge("sijill_db_pool_overflow", "Connections opened beyond the pool size (this process)", max(pool.overflow(), 0)),
    ]


class _Fixed:
    """Already computed families, for a registry that collects them."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


async def _database_gauges(request: Request) -> list[Metric]:
    state = request.app.state
    cached = getattr(state, "metrics_cache", None)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    async with state.engine.connect() as conn:
        now = time.time()
        families = [f for source in gauge_sources for f in await source(conn, now)]
    state.metrics_cache = (time.monotonic() + state.settings.metrics_cache_seconds, families)
    return families


def process_registry() -> CollectorRegistry:
    """This process's counters, or every worker's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


def _authorize(request: Request) -> None:
    token = request.app.state.settings.metrics_token
    if token is None:
        raise FHIRError.of(404, "not-found", "Metrics are off on this server (set SIJILL_METRICS_TOKEN)")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise FHIRError.of(401, "login", "The metrics token is missing or wrong", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    _authorize(request)
    families = await asyncio.wait_for(_database_gauges(request), request.app.state.settings.health_timeout_seconds * 5)
    scrape = CollectorRegistry()
    scrape.register(_Fixed([*families, *_pool_gauges(request.app.state.engine)]))
    body = generate_latest(process_registry()) + generate_latest(scrape)
    return Response(body, media_type=CONTENT_TYPE_LATEST)

"""Database faults a client can act on: contention, outages and cost limits — never a 500.

A deadlock or serialization-failure victim was rolled back by the database, so its transaction
is simply run again, a bounded number of times with jittered backoff (``retrying_write``).  What
still fails, and an unreachable database, answers 503 with Retry-After and an OperationOutcome
of code ``transient``; a statement stopped by the statement timeout answers 503 ``too-costly``
naming the limit.  Nothing is half-written: each case is a rolled-back transaction.
"""
from __future__ import annotations

import logging
import sqlite3
from typing import Awaitable, Callable, TypeVar

import orjson
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from ehr.outcome import FHIRError
from ehr.store.db import write_transaction

log = logging.getLogger("sijill.faults")
T = TypeVar("T")

CONTENTION, UNAVAILABLE, TIMEOUT = "contention", "unavailable", "timeout"
# PostgreSQL SQLSTATEs: https://www.postgresql.org/docs/current/errcodes-appendix.html
_VICTIM_STATES = {"40P01", "40001"}  # deadlock, serialization failure: rolled back, worth running again
_CONTENTION_STATES = _VICTIM_STATES | {"55P03"}  # + lock_timeout: queued long enough, not run again
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "53300", "53000"}  # shutdown, cannot connect now, too many connections
_TIMEOUT_STATE = "57014"  # query_canceled: statement_timeout
RETRY_AFTER_SECONDS = 2


def fault_kind(exc: BaseException) -> str | None:
    """What a database exception means for the client, or None for a genuine bug."""
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection freed in time: overloaded
        return UNAVAILABLE
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    if exc.connection_invalidated:
        return UNAVAILABLE
    orig = exc.orig
    state = getattr(orig, "sqlstate", None)
    if state:
        if state in _CONTENTION_STATES:
            return CONTENTION
        if state == _TIMEOUT_STATE:
            return TIMEOUT
        if state.startswith("08") or state in _UNAVAILABLE_STATES:
            return UNAVAILABLE
        return None
    if isinstance(orig, sqlite3.OperationalError) or type(orig).__name__ == "OperationalError":
        message = str(orig).lower()
        if "locked" in message or "busy" in message:
            return CONTENTION
        if "interrupted" in message:
            return TIMEOUT
        if isinstance(orig, sqlite3.Error):
            return UNAVAILABLE if "unable to open" in message or "disk i/o" in message else None
        return UNAVAILABLE  # psycopg without a SQLSTATE: the server could not be reached at all
    return None


def as_outcome(exc: BaseException, statement_timeout_ms: int | None) -> FHIRError | None:
    """The 503 a client can act on for a database fault (None: not one)."""
    kind = fault_kind(exc)
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if kind == CONTENTION:
        return FHIRError.of(503, "transient", "Concurrent requests on the same resources kept this one from "
                            "completing (deadlock or lock wait); nothing was written; retry", headers=retry)
    if kind == UNAVAILABLE:
        return FHIRError.of(503, "transient", "The database is unavailable; nothing was written; retry later", headers=retry)
    if kind == TIMEOUT:
        limit = f"{statement_timeout_ms} ms" if statement_timeout_ms else "its limit"
        return FHIRError.of(503, "too-costly", f"A database statement ran past the statement timeout ({limit}, "
                            "SIJILL_STATEMENT_TIMEOUT_MS); nothing was written; narrow the request or retry later",
                            headers=retry)
    return None


def each_attempt(value: T) -> Callable[[], T]:
    """``value`` for the first attempt of a write, then a fresh copy of it as it was now (a write
    stamps the resources it is given: a retried attempt must start from the request's)."""
    snapshot = orjson.dumps(value)
    first = [value]
    return lambda: first.pop() if first else orjson.loads(snapshot)


def _is_victim(exc: BaseException) -> bool:
    """Chosen by PostgreSQL as a deadlock / serialization victim: rolled back, safe to run again.
    (A lock wait past lock_timeout, or SQLite's "database is locked" after its 30 s busy timeout,
    has queued long enough: not run again.)"""
    return isinstance(exc, sa_exc.DBAPIError) and getattr(exc.orig, "sqlstate", None) in _VICTIM_STATES


async def retrying_write(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]], attempts: int) -> T:
    """``work(conn)`` in a write transaction, run again (in a new transaction) if the database
    chose it as a deadlock or serialization victim; ``work`` must start from its inputs each time
    (it may not rely on anything an earlier, rolled-back attempt changed)."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(max(1, attempts)), wait=wait_random_exponential(multiplier=0.02, max=1.0),
        retry=retry_if_exception(_is_victim), reraise=True,
        before_sleep=lambda state: log.info("write retried after contention (attempt %d)", state.attempt_number),
    )
    async for attempt in retrying:
        with attempt:
            async with write_transaction(engine) as conn:
                return await work(conn)
    raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover

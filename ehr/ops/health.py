"""Liveness and readiness: ``GET /health/live`` and ``GET /health/ready``.

What an orchestrator, a load balancer and the image's HEALTHCHECK ask: no token, no clinical
data, only the name of each check and, when it fails, why.  ``live`` touches nothing (the
process answers); ``ready`` checks that the database answers, that its schema is at the
migrations' head, that the object store answers, that the audit inbox is not piling up (the
sealer keeps up) and what domain packages add to ``readiness_checks`` (the claims queue).
Each check is bounded by ``health_timeout_seconds``; any failure answers 503 with every
check's result.  Counts are capped (``LIMIT bound + 1``), so a probe costs the same on a
backlog of millions.
"""
from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Table, func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.settings import Settings

OK = "ok"
# name -> check(conn, settings): None when fine, else why not (no clinical data).
ReadinessCheck = Callable[[AsyncConnection, Settings], Awaitable[str | None]]
readiness_checks: dict[str, ReadinessCheck] = {}

router = APIRouter(prefix="/health", include_in_schema=False)


def readiness_check(name: str) -> Callable[[ReadinessCheck], ReadinessCheck]:
    def register(check: ReadinessCheck) -> ReadinessCheck:
        readiness_checks[name] = check
        return check

    return register


async def backlog(conn: AsyncConnection, table: Table, bound: int, what: str) -> str | None:
    """Why ``table`` holds too many rows (more than ``bound``; 0: no bound), or None.  Counted
    up to ``bound + 1`` only, so the probe is cheap whatever the table holds."""
    if not bound:
        return None
    rows = select(literal(1)).select_from(table).limit(bound + 1).subquery()
    over = (await conn.execute(select(func.count()).select_from(rows))).scalar_one() > bound
    return f"more than {bound} {what}" if over else None


@lru_cache(maxsize=1)
def migration_head() -> str | None:
    from alembic.script import ScriptDirectory

    from ehr.store.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@readiness_check("migrations")
async def _migrations_at_head(conn: AsyncConnection, _settings: Settings) -> str | None:
    current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    head = migration_head()
    return None if current == head else f"schema at {current}, code expects {head}: run `sijill db upgrade`"


@readiness_check("audit_inbox")
async def _audit_inbox_bounded(conn: AsyncConnection, settings: Settings) -> str | None:
    from ehr.security.tables import audit_inbox

    return await backlog(conn, audit_inbox, settings.health_max_audit_inbox, "audit events wait to be sealed")


async def _database(request: Request, settings: Settings) -> dict[str, str]:
    results: dict[str, str] = {}
    try:
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            results["database"] = OK
            for name, check in readiness_checks.items():
                try:
                    results[name] = await check(conn, settings) or OK
                except Exception as exc:  # noqa: BLE001 - reported as the check's failure
                    results[name] = f"check failed: {type(exc).__name__}"
    except Exception as exc:  # noqa: BLE001 - an unreachable database is the answer, not an error
        results["database"] = f"unreachable: {type(exc).__name__}"
    return results


async def _object_store(request: Request) -> str:
    from interop.storage.config import app_store

    try:
        await asyncio.to_thread(app_store(request.app.state).exists, "health/probe")
    except Exception as exc:  # noqa: BLE001
        return f"unreachable: {type(exc).__name__}"
    return OK


async def _within(probe: Awaitable, timeout: float, late):
    """``probe``'s result, or ``late`` when it takes longer than ``timeout`` seconds."""
    try:
        return await asyncio.wait_for(probe, timeout)
    except TimeoutError:
        return late


@router.get("/live")
async def live() -> JSONResponse:
    """The process answers (its event loop runs); nothing else is touched."""
    return JSONResponse({"status": "live"})


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """200 when every check passes, else 503; the body names each check and its result."""
    settings: Settings = request.app.state.settings
    timeout = settings.health_timeout_seconds
    late = f"no answer within {timeout:g} s"
    database, store = await asyncio.gather(
        _within(_database(request, settings), timeout, {"database": late}),
        _within(_object_store(request), timeout, late),
    )
    checks = {**database, "object_store": store}
    healthy = all(result == OK for result in checks.values())
    return JSONResponse({"status": "ready" if healthy else "unready", "checks": checks}, status_code=200 if healthy else 503)

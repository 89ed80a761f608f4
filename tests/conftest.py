"""Fixtures: a clean database per test on each backend, and clients against a real app.

Backends: the embedded SQLite default and PostgreSQL (``SIJILL_TEST_BACKENDS`` picks; both by
default).  PostgreSQL gets one database per test session, migrated once and truncated between
tests; SQLite gets a migrated template file copied per test.  With ``CI=true`` an unreachable
PostgreSQL fails the run instead of skipping.

``settings``/``app``/``client`` run the server without tokens (``auth_required=False``: an
unrestricted in-process caller), which is how the core API specifications exercise it; the
security specifications (``tests/security``) build authenticated apps from ``secure_settings``.
"""
from __future__ import annotations

import os
import shutil
import time as real_time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from ehr.app import create_app
from ehr.settings import Settings
from ehr.store.migrate import upgrade

PG_ADMIN = os.environ.get("SIJILL_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = [b.strip() for b in os.environ.get("SIJILL_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]
BASE = "http://test/fhir"


def _pg_reachable(url: str = PG_ADMIN) -> str | None:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc)


def require_postgresql(url: str = PG_ADMIN) -> None:
    """Fail (in CI) or skip (elsewhere) when PostgreSQL cannot be reached at ``url``."""
    problem = _pg_reachable(url)
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI and is unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")


@pytest.fixture(scope="session")
def pg_database() -> str:
    require_postgresql()
    name = f"sijill_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    upgrade(url.replace("postgresql://", "postgresql+psycopg://"))
    yield url
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def _truncate(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )]
        if tables:
            # The audit trail's append-only triggers refuse TRUNCATE; a test reset is the one
            # exception, made by disabling triggers for this session only.
            conn.execute("SET session_replication_role = replica")
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY")


def fresh_database(request, backend: str, tmp_path: Path) -> str:
    """A migrated, empty database on ``backend`` (PostgreSQL: the session's, truncated)."""
    if backend == "postgresql":
        pg = request.getfixturevalue("pg_database")
        _truncate(pg)
        return pg.replace("postgresql://", "postgresql+psycopg://")
    template = request.getfixturevalue("sqlite_template")
    path = tmp_path / "sijill.db"
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> str:
    return fresh_database(request, request.param, tmp_path)


# Limits no test should reach, and plain logs (pytest captures them).
TEST_LIMITS = {"rate_limit": "1000000/minute", "rate_limit_anonymous": "1000000/minute", "log_json": False}


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return Settings(
        _env_file=None, database_url=database_url, base_url=BASE, data_dir=tmp_path / "data", auth_required=False,
        **TEST_LIMITS,
    )


@asynccontextmanager
async def running_app(settings: Settings):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def app(settings):
    async with running_app(settings) as app:
        yield app


@pytest.fixture
async def client(app) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    ) as c:
        yield c


class ServerClock:
    """The server's clock (``ehr.store.clock.now_us``, which every module reads), moved forward
    by the test.  Mint tokens before moving it: they are checked against the real time."""

    def __init__(self, real):
        self.real, self.offset_ns = real, 0

    def advance(self, *, days: float = 0, minutes: float = 0) -> None:
        self.offset_ns += int((days * 86_400 + minutes * 60) * 1e9)

    def time_ns(self) -> int:
        return self.real.time_ns() + self.offset_ns


@pytest.fixture
def server_clock(monkeypatch) -> ServerClock:
    from ehr.store import clock

    moved = ServerClock(real_time)
    monkeypatch.setattr(clock, "time", moved)
    return moved

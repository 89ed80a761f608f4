"""Search tests run on both backends: SQLite (a temp file per test) and PostgreSQL (one
database per session, tables created with ``metadata.create_all`` and truncated per test).
With ``CI=true`` an unreachable PostgreSQL fails the run instead of skipping it.

Resources are written straight into ``resource`` (version 1) and indexed with
``index_resource``, so these tests need nothing but the search package and the schema.
"""
from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from sqlalchemy import create_engine as create_sync_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ehr.store.db import create_engine, sync_url
from ehr.store.schema import metadata

PG_ADMIN = os.environ.get("SIJILL_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_problem() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc)


@pytest.fixture(scope="session")
def pg_search_url():
    problem = _pg_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI and is unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    name = f"sijill_search_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    async_url = url.replace("postgresql://", "postgresql+psycopg://")
    sync = create_sync_engine(sync_url(async_url))
    metadata.create_all(sync)
    sync.dispose()
    yield async_url
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate(url: str) -> None:
    sync = create_sync_engine(sync_url(url))
    with sync.begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(t.name for t in metadata.sorted_tables) + " RESTART IDENTITY"))
    sync.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def search_db_url(request, tmp_path) -> str:
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_search_url")
        _truncate(url)
        return url
    url = f"sqlite+aiosqlite:///{tmp_path / 'search.db'}"
    sync = create_sync_engine(sync_url(url))
    metadata.create_all(sync)
    sync.dispose()
    return url


@pytest.fixture
async def db(search_db_url) -> AsyncEngine:
    engine = create_engine(search_db_url)
    yield engine
    await engine.dispose()



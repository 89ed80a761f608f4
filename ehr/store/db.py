"""Database engine: one async SQLAlchemy engine per process, SQLite or PostgreSQL.

Writes go through ``write_transaction`` so that on SQLite they take the write lock up front
(``BEGIN IMMEDIATE``): a deferred transaction that later tries to write can fail with
"database is locked" instead of waiting its turn.
"""
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_connect(dbapi_conn, _record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the single writer; busy_timeout queues writers instead of
    # failing them; synchronous=NORMAL stays durable across process crashes in WAL mode.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn) -> None:
    write = conn.get_execution_options().get("sqlite_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    """Pooled engine; a burst beyond ``pool_size`` borrows up to half as many again (those are
    closed when returned, so the pool must cover the steady concurrency)."""
    if is_sqlite(url):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size // 2)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size // 2)


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that commits on success and rolls back on error."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(sqlite_write=True)
        async with conn.begin():
            yield conn


@asynccontextmanager
async def read_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        yield conn


def sync_url(url: str) -> str:
    """The synchronous driver URL for the same database (Alembic, CLI tools)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return u.set(drivername="sqlite").render_as_string(hide_password=False)
    return u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)

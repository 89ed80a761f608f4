"""Database engine: one async SQLAlchemy engine per process, SQLite or PostgreSQL.

Writes go through ``write_transaction`` so that on SQLite they take the write lock up front
(``BEGIN IMMEDIATE``): a deferred transaction that later tries to write can fail with
"database is locked" instead of waiting its turn.  The API's engine has a statement timeout
(PostgreSQL's ``statement_timeout`` and ``lock_timeout``; on SQLite a progress handler), the
tools' and workers' engines none.
"""
import math
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_


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


def _statement_deadline(timeout_ms: int):
    """SQLite has no statement timeout: a progress handler interrupts the statement running past
    ``timeout_ms`` (SQLite then raises "interrupted" and the statement's work is undone)."""
    def connect(dbapi_conn, record) -> None:
        deadline = [math.inf]
        record.info["sijill_deadline"] = deadline
        handler = lambda: 1 if time.monotonic() > deadline[0] else 0  # noqa: E731 - nonzero interrupts
        await_(dbapi_conn.driver_connection.set_progress_handler(handler, 10_000))

    def before(conn, _cursor, _statement, _params, _context, _many) -> None:
        conn.info["sijill_deadline"][0] = time.monotonic() + timeout_ms / 1000

    def after(conn, _cursor, _statement, _params, _context, _many) -> None:
        conn.info["sijill_deadline"][0] = math.inf  # COMMIT and the rest are not interrupted

    return connect, before, after


def create_engine(url: str, pool_size: int = 20, statement_timeout_ms: int = 0) -> AsyncEngine:
    """Pooled engine; a burst beyond ``pool_size`` borrows up to half as many again (those are
    closed when returned, so the pool must cover the steady concurrency).  ``statement_timeout_ms``
    (0: none) stops a statement running longer: the API's cost limit; tools and workers use none."""
    if is_sqlite(url):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size // 2)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        if statement_timeout_ms:
            connect, before, after = _statement_deadline(statement_timeout_ms)
            event.listen(engine.sync_engine, "connect", connect)
            event.listen(engine.sync_engine, "before_cursor_execute", before)
            event.listen(engine.sync_engine, "after_cursor_execute", after)
        return engine
    # A lock wait gives up first (half the budget): the client hears "contention, retry"
    # (55P03) rather than "too costly" for a statement that only queued behind other writers.
    connect_args = {}
    if statement_timeout_ms:
        lock_ms = max(1, statement_timeout_ms // 2)
        connect_args["options"] = f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={lock_ms}"
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size // 2, connect_args=connect_args)


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

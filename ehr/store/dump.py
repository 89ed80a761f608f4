"""The database half of a backup: a consistent copy of the whole database in one file.

PostgreSQL: ``pg_dump`` in its custom format (one snapshot of every table, restored with
``pg_restore`` in a single transaction).  SQLite: the online backup API (a consistent copy taken
while the server writes).  The password goes through the environment, never the command line.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from ehr.store.db import is_sqlite, sync_url


def dump_name(database_url: str) -> str:
    return "database.sqlite" if is_sqlite(database_url) else "database.pgdump"


def head_revision(database_url: str) -> str | None:
    """The Alembic revision the database is at (what a restore brings back)."""
    engine = create_sync_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def _libpq(url: URL) -> tuple[list[str], dict[str, str]]:
    args = ["--host", url.host or "127.0.0.1", "--port", str(url.port or 5432), "--dbname", url.database or ""]
    if url.username:
        args += ["--username", url.username]
    env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
    return args, env


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _sqlite_path(database_url: str) -> str:
    return make_url(database_url).database or ""


def dump(database_url: str, target: Path) -> None:
    """Copy the database into ``target`` (consistent, while the server keeps writing)."""
    if is_sqlite(database_url):
        with sqlite3.connect(_sqlite_path(database_url)) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        return
    args, env = _libpq(make_url(database_url))
    _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(target), *args], env)


def load(database_url: str, source: Path) -> None:
    """Replace the database's content by the dump ``source`` (all or nothing).  The server and
    the workers must be stopped: their connections would see the tables vanish."""
    if is_sqlite(database_url):
        path = Path(_sqlite_path(database_url))
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(source) as dumped, sqlite3.connect(path) as live:
            dumped.backup(live)
        return
    args, env = _libpq(make_url(database_url))
    _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
          "--exit-on-error", *args, str(source)], env)

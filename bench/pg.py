"""PostgreSQL chores for the benchmark: a fresh database, its migration, sizes, and the
write floor (raw psycopg ``executemany`` of the same resources into a scratch table)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterable

import orjson
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

FLOOR_TABLE = "bench_floor"


def libpq_url(url: str) -> str:
    """``postgresql+psycopg://…`` (SQLAlchemy) -> ``postgresql://…`` (libpq)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def maintenance_url(url: str) -> str:
    return make_url(libpq_url(url)).set(database="postgres").render_as_string(hide_password=False)


def unreachable(url: str) -> str | None:
    """Why PostgreSQL cannot be reached for ``url`` (None when it can)."""
    import psycopg

    try:
        with psycopg.connect(maintenance_url(url), connect_timeout=5):
            return None
    except psycopg.Error as exc:
        return str(exc)


def recreate_database(url: str) -> None:
    """Drop (forcing out stale sessions of an earlier run) and create the database of ``url``."""
    name = make_url(url).database
    if not name or name in ("postgres", "template0", "template1"):
        raise ValueError(f"refusing to recreate database {name!r}")
    with psycopg.connect(maintenance_url(url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def sijill_command() -> list[str]:
    """The ``sijill`` CLI of this interpreter's environment (``python -m ehr.cli`` if not installed)."""
    exe = Path(sys.executable).with_name("sijill")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ehr.cli"]


def migrate(url: str, log: Path) -> None:
    """``sijill db upgrade`` with ``SIJILL_DATABASE_URL`` set: the real migration path."""
    env = {**os.environ, "SIJILL_DATABASE_URL": url}
    with log.open("ab") as out:
        proc = subprocess.run([*sijill_command(), "db", "upgrade"], env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"sijill db upgrade failed (exit {proc.returncode}); see {log}")


def server_version(url: str) -> str:
    with psycopg.connect(maintenance_url(url), connect_timeout=5) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def store_size(url: str) -> dict:
    """Current resources by type and the database's size on disk."""
    with psycopg.connect(libpq_url(url)) as conn:
        by_type = dict(conn.execute(
            "SELECT res_type, count(*) FROM resource WHERE NOT deleted GROUP BY res_type ORDER BY 1").fetchall())
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return {"resources": sum(by_type.values()), "by_type": by_type, "database_mb": round(size / 2**20, 1)}


def count_stored(url: str, res_type: str) -> int:
    with psycopg.connect(libpq_url(url)) as conn:
        return conn.execute("SELECT count(*) FROM resource WHERE res_type = %s", (res_type,)).fetchone()[0]


@dataclass
class FloorWrite:
    rows: int
    seconds: float  # time inside executemany + commit only (serialisation excluded)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {"rows": self.rows, "seconds": round(self.seconds, 3), "rows_per_s": round(self.rows_per_s, 1)}


def create_floor_table(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (res_type varchar(64) NOT NULL, res_id varchar(64) NOT NULL, "
        "content bytea NOT NULL, PRIMARY KEY (res_type, res_id))").format(sql.Identifier(FLOOR_TABLE)))
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(FLOOR_TABLE)))
    conn.commit()


def insert_floor(url: str, resources: Iterable[dict], batch: int = 1000, time_budget_s: float = 600.0) -> FloorWrite:
    """Raw inserts of ``resources`` (one transaction per ``batch``), timed around the database
    calls only: the cost of storing bytes by key, with no FHIR work at all."""
    insert = sql.SQL("INSERT INTO {} (res_type, res_id, content) VALUES (%s, %s, %s)").format(
        sql.Identifier(FLOOR_TABLE))
    rows, spent = 0, 0.0
    it = iter(resources)
    with psycopg.connect(libpq_url(url)) as conn:
        create_floor_table(conn)
        with conn.cursor() as cur:
            while spent < time_budget_s:
                chunk = [(r["resourceType"], r["id"], orjson.dumps(r)) for r in islice(it, batch)]
                if not chunk:
                    break
                t0 = time.perf_counter()
                cur.executemany(insert, chunk)
                conn.commit()
                spent += time.perf_counter() - t0
                rows += len(chunk)
    return FloorWrite(rows, spent)

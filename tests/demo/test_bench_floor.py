"""The benchmark's floors, database chores, wrk scripts and process handling, for real.

Needs the local PostgreSQL (skipped when unreachable); the wrk test also needs wrk.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest

from bench import pg, scenarios, wrk
from bench.floor_read import create_app
from bench.procs import RssSampler, Service, descendants, free_port
from ehr.demo import iter_resources
from tests.conftest import require_postgresql

REPO = Path(__file__).resolve().parents[2]
PG_BASE = os.environ.get("SIJILL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DB_URL = PG_BASE.rsplit("/", 1)[0] + f"/sijill_test_bench_{os.getpid()}"


@pytest.fixture(scope="module")
def database():
    require_postgresql(pg.maintenance_url(PG_BASE))
    pg.recreate_database(DB_URL)
    yield DB_URL
    with psycopg.connect(pg.maintenance_url(DB_URL), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "sijill_test_bench_{os.getpid()}" WITH (FORCE)')


@pytest.fixture(scope="module")
def floor_rows(database):
    resources = list(iter_resources(15, seed=8, heavy_every=0))
    result = pg.insert_floor(database, iter(resources), batch=100)
    return resources, result


def test_recreate_refuses_system_databases():
    with pytest.raises(ValueError):
        pg.recreate_database("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def test_libpq_url_drops_the_sqlalchemy_driver():
    assert pg.libpq_url("postgresql+psycopg://postgres@127.0.0.1:5432/x") == "postgresql://postgres@127.0.0.1:5432/x"


def test_write_floor_stores_the_same_bytes(database, floor_rows):
    resources, result = floor_rows
    assert result.rows == len(resources) > 2000  # reference population + 15 patients
    assert result.seconds > 0 and result.rows_per_s == result.rows / result.seconds
    with psycopg.connect(pg.libpq_url(database)) as conn:
        assert conn.execute(f"SELECT count(*) FROM {pg.FLOOR_TABLE}").fetchone()[0] == len(resources)
        sample = resources[-1]
        row = conn.execute(f"SELECT content FROM {pg.FLOOR_TABLE} WHERE res_type = %s AND res_id = %s",
                           (sample["resourceType"], sample["id"])).fetchone()
    assert bytes(row[0]) == orjson.dumps(sample)
    # A second run starts from an empty scratch table instead of failing on duplicates.
    again = pg.insert_floor(database, iter(resources[:10]))
    assert again.rows == 10
    assert pg.insert_floor(database, iter(resources)).rows == len(resources)  # restored for the read tests


async def test_read_floor_returns_stored_bytes(database, floor_rows):
    resources, _ = floor_rows
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    app = create_app(pg.libpq_url(database), pg.FLOOR_TABLE, pool_size=2)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://floor") as client:
            ok = await client.get(f"/fhir/Patient/{patient['id']}")
            missing = await client.get("/fhir/Patient/no-such-id")
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/fhir+json"
    assert ok.content == orjson.dumps(patient)
    assert missing.status_code == 404


def test_wrk_scripts_against_the_floor_server(database, floor_rows, tmp_path):
    if not wrk.available():
        pytest.skip(wrk.INSTALL_HINT)
    resources, _ = floor_rows
    port = free_port()
    env = {**os.environ, "BENCH_FLOOR_DSN": pg.libpq_url(database), "BENCH_FLOOR_TABLE": pg.FLOOR_TABLE,
           "BENCH_FLOOR_POOL": "2", "PYTHONPATH": str(REPO)}
    floor = Service("floor", [sys.executable, "-m", "uvicorn", "bench.floor_read:app_from_env", "--factory",
                              "--port", str(port), "--workers", "1", "--log-level", "warning"], env, tmp_path / "floor.log")
    try:
        ids = [r["id"] for r in resources if r["resourceType"] == "Patient"]
        paths = tmp_path / "read.paths"
        paths.write_text("\n".join(f"/fhir/Patient/{i}" for i in ids) + "\n/fhir/Patient/absent\n")
        base = f"http://127.0.0.1:{port}"
        assert floor.wait_ready(f"{base}/fhir/Patient/{ids[0]}", timeout_s=30), floor.tail()
        read = wrk.run(base, "paths.lua", [str(paths)], connections=4, duration_s=1, threads=2)
        assert read.requests > 20 and read.rps > 0
        assert 0 < read.errors["status"] < read.requests  # the one absent id answers 404
        assert 0 < read.latency_ms["p50"] <= read.latency_ms["p99"] <= read.latency_ms["max"]
        bodies = tmp_path / "create.bodies"
        bodies.write_bytes(b"\n".join(scenarios.create_bodies(9, count=3)) + b"\n")
        create = wrk.run(base, "create.lua", [str(bodies), "/fhir/Patient"], connections=2, duration_s=1, threads=1)
        assert create.requests > 0 and create.errors["status"] == create.requests  # the floor has no POST: 405
    finally:
        floor.stop()
    assert not floor.alive()


def test_migration_through_the_cli_and_store_size(database, tmp_path):
    pg.recreate_database(database)
    pg.migrate(database, tmp_path / "migrate.log")
    with psycopg.connect(pg.libpq_url(database)) as conn:  # migrations may seed definitions
        live = conn.execute("SELECT count(*) FROM resource WHERE NOT deleted").fetchone()[0]
    size = pg.store_size(database)
    assert size["resources"] == live == sum(size["by_type"].values()) and size["database_mb"] > 0


def test_rss_sampler_follows_a_service_and_its_children(tmp_path):
    svc = Service("sleepers", ["/bin/sh", "-c", "sleep 30 & sleep 30 & wait"], dict(os.environ), tmp_path / "s.log")
    try:
        deadline = time.monotonic() + 5
        while len(descendants(svc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        sampler = RssSampler(svc.pid, interval_s=0.05)
        sampler.start()
        time.sleep(0.3)
        mem = sampler.stop()
    finally:
        svc.stop(grace_s=5)
    assert not svc.alive()
    assert mem.samples >= 2
    assert len(mem.peak_mb) == 3 and mem.root == svc.pid
    assert set(mem.workers()) == set(mem.peak_mb) - {svc.pid}
    assert {mem.role(p) for p in mem.peak_mb} == {"master", "worker"}
    assert mem.max_worker_mb > 0
    assert mem.to_json()["processes"][0]["cmd"]

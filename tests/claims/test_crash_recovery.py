"""Two real worker processes on one database; one is killed (SIGKILL) while it holds work.

Every claim must end decided exactly once: one decision per claim, one decided version of
each ClaimResponse, one ExplanationOfBenefit, no job left — and the claims the dead worker
held are decided by the survivor once the dead worker's leases expire.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from claims.clock import now_us
from claims.tables import claim_decision_line, claim_job, claim_ledger
from ehr.store.schema import resource, resource_version
from tests.claims import builders as b
from tests.claims.test_adjudication_scenarios import World, submit

ROOT = Path(__file__).resolve().parents[2]
PATIENTS, PER_PATIENT = 6, 15


def start_worker(name: str, database_url: str, base_url: str, log: Path) -> subprocess.Popen:
    env = dict(os.environ, SIJILL_DATABASE_URL=database_url, SIJILL_BASE_URL=base_url,
               SIJILL_CLAIMS_BATCH_SIZE="3", SIJILL_CLAIMS_LEASE_SECONDS="2", SIJILL_CLAIMS_IDLE_SLEEP_SECONDS="0.05",
               SIJILL_LOG_LEVEL="info")
    return subprocess.Popen([sys.executable, "-m", "claims.worker", "--name", name], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=log.open("wb"))


async def _victim_holds(engine, logs) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            held = list((await conn.execute(
                select(claim_job.c.ledger_id).where(claim_job.c.locked_by == "victim", claim_job.c.locked_until > now_us())
            )).scalars())
        if held:
            return held
        await asyncio.sleep(0.002)
    raise AssertionError("the victim never took work: " + logs["victim"].read_text()[-3000:])


async def _scalar(engine, stmt):
    async with engine.connect() as conn:
        return (await conn.execute(stmt)).scalar_one()


async def _started(logs: dict[str, Path]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(p.exists() and "started" in p.read_text() for p in logs.values()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("workers did not start: " + " / ".join(p.read_text()[-2000:] for p in logs.values()))


async def _held_by_victim(engine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.execute(
            select(claim_job.c.ledger_id).where(claim_job.c.locked_by == "victim", claim_job.c.locked_until > now_us())
        )).scalars())


async def test_killed_worker_loses_nothing_and_decides_nothing_twice(client, app, settings, database_url, tmp_path):
    w = await World().build(client)
    sheets = []
    for p in range(PATIENTS):
        pat = await b.patient(client, cin=f"BK55{p:04d}")
        cov = await b.coverage(client, pat["id"], w.fund["id"])
        sheets += [b.claim(pat["id"], cov["id"], [b.act("C", 80, b.days_ago(day))], provider=b.provider_ref(w.doctor))
                   for day in range(1, PER_PATIENT + 1)]
    total = len(sheets)
    engine = app.state.engine
    logs = {n: tmp_path / f"{n}.log" for n in ("victim", "survivor")}
    # Both workers run while providers submit; the victim is killed at a moment it holds
    # leased jobs (between taking them and committing their decisions).
    victim = start_worker("victim", database_url, settings.base_url, logs["victim"])
    survivor = start_worker("survivor", database_url, settings.base_url, logs["survivor"])
    held: list[int] = []
    try:
        await _started(logs)  # both are up, polling the queue
        for sheet in sheets:
            await submit(client, sheet)
            if not held and (held := await _held_by_victim(engine)):
                victim.send_signal(signal.SIGKILL)
        if not held:
            held = await _victim_holds(engine, logs)
            victim.send_signal(signal.SIGKILL)
        await asyncio.to_thread(victim.wait, 10)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if await _scalar(engine, select(func.count()).select_from(claim_ledger).where(claim_ledger.c.status == "decided")) == total:
                break
            assert survivor.poll() is None, logs["survivor"].read_text()[-3000:]
            await asyncio.sleep(0.2)
    finally:
        for proc in (victim, survivor):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:  # in a thread: the app's own tasks (its audit sealer) must keep running meanwhile
                    await asyncio.to_thread(proc.wait, 15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    assert victim.returncode == -signal.SIGKILL
    assert survivor.returncode == 0, logs["survivor"].read_text()[-3000:]

    async with engine.connect() as conn:
        statuses = dict((await conn.execute(select(claim_ledger.c.status, func.count()).group_by(claim_ledger.c.status))).all())
        jobs = (await conn.execute(select(func.count()).select_from(claim_job))).scalar_one()
        lines = (await conn.execute(select(func.count()).select_from(claim_decision_line))).scalar_one()
        held_status = set((await conn.execute(select(claim_ledger.c.status).where(claim_ledger.c.id.in_(held)))).scalars())
        versions = dict((await conn.execute(
            select(resource_version.c.res_id, func.count()).where(resource_version.c.res_type == "ClaimResponse")
            .group_by(resource_version.c.res_id)
        )).all())
        eobs = (await conn.execute(select(func.count()).select_from(resource).where(resource.c.res_type == "ExplanationOfBenefit"))).scalar_one()
    assert statuses == {"decided": total}
    assert jobs == 0 and lines == total and eobs == total
    assert len(versions) == total and set(versions.values()) == {2}  # queued, then decided: once
    assert held_status == {"decided"}  # what the dead worker held was retaken and finished

"""Contention is not an error: transactions racing on the same resources all end in an answer a
client can act on (success, or 409/503 saying to retry), never 500, and nothing is half-written."""
from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import text

from ehr.store.db import create_engine
from ehr.store.faults import CONTENTION, as_outcome, fault_kind, retrying_write
from tests.api.helpers import issues, patient

RACERS = 80


def _transaction(first: str, second: str, n: int) -> dict:
    """Updates two Patients, in the order given: half the racers go one way, half the other."""
    def put(pid: str) -> dict:
        return {"resource": patient(family=f"Racer{n}", id=pid), "request": {"method": "PUT", "url": f"Patient/{pid}"}}

    def observe(pid: str) -> dict:
        return {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": f"race {n}"},
                             "subject": {"reference": f"Patient/{pid}"}}, "request": {"method": "POST", "url": "Observation"}}

    # A second PUT of the same Patient takes the ordinary (one by one) path, in entry order.
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [put(first), observe(first), put(second), observe(second)]}


async def _create(client, pid: str) -> None:
    assert (await client.put(f"/Patient/{pid}", json=patient(family="Start", id=pid))).status_code == 201


@pytest.fixture
def postgresql_only(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks and deadlocks are PostgreSQL's (SQLite serialises every writer)")


async def test_transactions_in_opposite_orders_never_answer_500(client, postgresql_only):
    await _create(client, "a")
    await _create(client, "b")
    answers = await asyncio.gather(*(
        client.post("", json=_transaction("a", "b", n) if n % 2 else _transaction("b", "a", n)) for n in range(RACERS)
    ))
    statuses = [r.status_code for r in answers]
    assert 500 not in statuses
    assert set(statuses) <= {200, 409, 503}, statuses
    for refused in (r for r in answers if r.status_code != 200):
        assert refused.status_code == 409 or refused.headers["Retry-After"]
        assert issues(refused)[0]["code"] in ("transient", "conflict")
    won = statuses.count(200)
    assert won > 0
    # Every winner made one version of each Patient and its two Observations: none half-written.
    for pid in ("a", "b"):
        assert (await client.get(f"/Patient/{pid}")).json()["meta"]["versionId"] == str(1 + won)
    observations = (await client.get("/Observation", params={"_summary": "count"})).json()["total"]
    assert observations == 2 * won


async def test_single_updates_racing_never_answer_500(client, postgresql_only):
    await _create(client, "c")
    answers = await asyncio.gather(*(
        client.put("/Patient/c", json=patient(family=f"Solo{n}", id="c")) for n in range(RACERS)
    ))
    assert {r.status_code for r in answers} <= {200, 409, 503}
    assert (await client.get("/Patient/c")).json()["meta"]["versionId"] == str(1 + sum(r.status_code == 200 for r in answers))


async def _opposite_locks(engine, attempts: int, runs: Counter) -> list:
    """Two writers taking the same two locks in opposite orders: PostgreSQL kills one of them."""
    async def writer(name: str, first: int, second: int):
        async def attempt(conn):
            runs[name] += 1
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": first})
            await asyncio.sleep(0.3)  # both hold their first lock now
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": second})
            return name

        return await retrying_write(engine, attempt, attempts)

    return await asyncio.gather(writer("a", 41, 42), writer("b", 42, 41), return_exceptions=True)


async def test_a_deadlock_victim_is_run_again(database_url, postgresql_only):
    engine = create_engine(database_url)
    try:
        runs: Counter = Counter()
        assert sorted(await _opposite_locks(engine, 3, runs)) == ["a", "b"]
        assert sum(runs.values()) == 3  # the victim ran twice, the other once
        runs.clear()
        answers = await _opposite_locks(engine, 1, runs)  # no retry allowed: the victim's error stays
        victim = next(a for a in answers if isinstance(a, Exception))
        assert fault_kind(victim) == CONTENTION
        error = as_outcome(victim, None)
        assert error.status == 503 and error.issues[0].code == "transient" and error.headers["Retry-After"]
    finally:
        await engine.dispose()

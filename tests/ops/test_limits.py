"""Cost limits: costly search shapes are refused before any SQL with a 400 naming the limit, a
Bundle of too many searches with 413, and a statement past the timeout is stopped (503)."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from ehr.store.db import create_engine
from ehr.store.faults import as_outcome
from tests.api.helpers import expressions, issues, patient


def _too_costly(resp, setting: str, where: str, status: int = 400) -> None:
    assert resp.status_code == status, resp.text
    issue = issues(resp)[0]
    assert issue["code"] == "too-costly"
    assert setting in issue["diagnostics"]
    assert where in expressions(resp)


async def test_sort_keys_are_bounded(client):
    assert (await client.post("/Patient", json=patient())).status_code == 201
    five = ",".join(["family", "-given", "birthdate", "_lastUpdated", "gender"])
    assert (await client.get("/Patient", params={"_sort": five})).status_code == 200
    _too_costly(await client.get("/Patient", params={"_sort": five + ",-family"}), "SIJILL_MAX_SORT_KEYS", "http._sort")
    _too_costly(await client.get("/Patient", params=[("_sort", "family")] * 6), "SIJILL_MAX_SORT_KEYS", "http._sort")


async def test_one_parameter_repeated_is_bounded(client):
    assert (await client.get("/Patient", params=[("name", f"n{i}") for i in range(50)])).status_code == 200
    _too_costly(await client.get("/Patient", params=[("name", f"n{i}") for i in range(51)]),
                "SIJILL_MAX_SEARCH_PARAM_VALUES", "http.name")
    alternatives = ",".join(f"n{i}" for i in range(51))  # commas count as much as repeats
    _too_costly(await client.get("/Patient", params={"name": alternatives}), "SIJILL_MAX_SEARCH_PARAM_VALUES", "http.name")
    _too_costly(await client.post("/Patient/_search", content="&".join(f"name=n{i}" for i in range(51)),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"}),
                "SIJILL_MAX_SEARCH_PARAM_VALUES", "http.name")


async def test_parameters_in_all_are_bounded(client):
    many = [(p, "x") for p in ("name", "family", "given", "address", "telecom", "phone")] * 10
    assert (await client.get("/Patient", params=many)).status_code == 200
    _too_costly(await client.get("/Patient", params=many + [("gender", "female")]), "SIJILL_MAX_SEARCH_PARAMS", "http.gender")


async def test_includes_and_wildcards_are_bounded(client):
    three_wildcards = [("_revinclude", "*"), ("_include", "*"), ("_include:iterate", "*"), ("_include", "Patient:organization")]
    assert (await client.get("/Patient", params=three_wildcards)).status_code == 200
    _too_costly(await client.get("/Patient", params=[("_include", "*"), ("_include:iterate", "*"), ("_include", "Observation:*"), ("_include", "Encounter:*")]),
                "SIJILL_MAX_WILDCARD_INCLUDES", "http._include")
    eleven = [("_revinclude", "Observation:subject")] * 11
    _too_costly(await client.get("/Patient", params=eleven), "SIJILL_MAX_INCLUDES", "http._revinclude")


def _searches(n: int, kind: str = "batch") -> dict:
    return {"resourceType": "Bundle", "type": kind,
            "entry": [{"request": {"method": "GET", "url": f"Patient?name=n{i}"}} for i in range(n)]}


async def test_searches_in_one_bundle_are_bounded(client):
    answer = await client.post("", json=_searches(50))
    assert answer.status_code == 200 and len(answer.json()["entry"]) == 50
    _too_costly(await client.post("", json=_searches(51)), "SIJILL_MAX_BUNDLE_SEARCHES", "Bundle.entry[50]", 413)
    _too_costly(await client.post("", json=_searches(51, "transaction")), "SIJILL_MAX_BUNDLE_SEARCHES", "Bundle.entry[50]", 413)


async def test_a_costly_search_inside_a_batch_is_refused_as_its_entry(client):
    bundle = {"resourceType": "Bundle", "type": "batch",
              "entry": [{"request": {"method": "GET", "url": "Patient?_sort=" + ",".join(["family"] * 6)}}]}
    entry = (await client.post("", json=bundle)).json()["entry"][0]
    assert entry["response"]["status"] == "400"
    assert "SIJILL_MAX_SORT_KEYS" in entry["response"]["outcome"]["issue"][0]["diagnostics"]


async def test_the_capability_statement_states_the_limits(client):
    doc = (await client.get("/metadata")).json()["rest"][0]["documentation"]
    for stated in ("5 _sort keys", "60 parameters", "50 searches", "statement timeout: 10000 ms"):
        assert stated in doc


async def test_a_statement_past_the_timeout_is_stopped(database_url):
    engine = create_engine(database_url, pool_size=1, statement_timeout_ms=200)
    endless = ("SELECT pg_sleep(5)" if database_url.startswith("postgresql")
               else "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n")
    started = time.monotonic()
    try:
        with pytest.raises(Exception) as stopped:
            async with engine.connect() as conn:
                await conn.execute(text(endless))
        assert time.monotonic() - started < 3
        error = as_outcome(stopped.value, 200)
        assert error.status == 503 and error.issues[0].code == "too-costly"
        assert "200 ms" in error.issues[0].diagnostics and "SIJILL_STATEMENT_TIMEOUT_MS" in error.issues[0].diagnostics
        async with engine.connect() as conn:  # the connection serves the next statement normally
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()

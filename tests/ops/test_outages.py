"""Outages: a database (or document store) that cannot be reached answers 503 with Retry-After
and an OperationOutcome saying to retry; nothing is half-written; service resumes by itself."""
from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from sqlalchemy.engine import make_url

from ehr.settings import Settings
from tests.api.helpers import issues, patient
from tests.conftest import BASE, TEST_LIMITS, running_app
from tests.ops.tcp_proxy import TcpProxy

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


@pytest.fixture
def pg_url(database_url) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("a network outage needs a database server (SQLite is a local file)")
    return database_url


def _settings(url: str, tmp_path, **extra) -> Settings:
    return Settings(_env_file=None, database_url=url, base_url=BASE, data_dir=tmp_path / "data", auth_required=False,
                    **TEST_LIMITS, **extra)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _transient(resp) -> None:
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["Retry-After"]) > 0
    assert issues(resp)[0]["code"] == "transient"


def _bundle(*families: str) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(family=f, cin=None), "request": {"method": "POST", "url": "Patient"}} for f in families]}


async def test_a_database_nobody_listens_on_answers_503(pg_url, tmp_path):
    url = make_url(pg_url).set(port=_free_port()).render_as_string(hide_password=False)
    async with running_app(_settings(url, tmp_path)) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, headers=HEADERS) as client:
            _transient(await client.get("/Patient"))
            _transient(await client.post("/Patient", json=patient()))
            _transient(await client.post("", json=_bundle("Bennani")))
            assert (await client.get("/metadata")).status_code == 200  # what needs no database still answers


async def test_a_database_cut_mid_service_answers_503_then_recovers(pg_url, tmp_path):
    real = make_url(pg_url)
    proxy = await TcpProxy(real.port or 5432).start()
    url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    async with running_app(_settings(url, tmp_path)) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, headers=HEADERS) as client:
            assert (await client.post("/Patient", json=patient(family="Before", cin=None))).status_code == 201
            await proxy.cut()
            _transient(await client.post("", json=_bundle("Lost1", "Lost2")))
            _transient(await client.post("/Patient", json=patient(family="Lost3", cin=None)))
            _transient(await client.get("/Patient"))
            await proxy.start()  # the database is back on the same address
            deadline = time.monotonic() + 15
            while (resp := await client.post("", json=_bundle("After1", "After2"))).status_code == 503:
                assert time.monotonic() < deadline, "the server did not recover by itself"
                await asyncio.sleep(0.5)
            assert resp.status_code == 200, resp.text
            names = sorted(e["resource"]["name"][0]["family"] for e in (await client.get("/Patient")).json()["entry"])
            assert names == ["After1", "After2", "Before"]  # nothing of the failed writes is there
    await proxy.cut()


async def test_a_document_store_nobody_listens_on_answers_503(database_url, tmp_path):
    s3 = {"storage_url": "s3://documents", "s3_endpoint": f"127.0.0.1:{_free_port()}", "s3_secure": False,
          "s3_access_key": "sijill", "s3_secret_key": "sijill-secret"}
    async with running_app(_settings(database_url, tmp_path, **s3)) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, headers=HEADERS) as client:
            _transient(await client.post("/Binary", content=b"%PDF-1.4 lettre", headers={"Content-Type": "application/pdf"}))
            assert (await client.get("/Binary", params={"_summary": "count"})).json()["total"] == 0  # nothing half-written

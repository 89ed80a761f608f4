"""Logs: every line of a request carries its id, errors included, and no clinical data."""
import io
import logging

import httpx
import orjson
import pytest

from ehr.ops.logs import RequestIdFilter
from ehr.security.middleware import QUIET_LOGGERS, JsonLogFormatter
from tests.conftest import BASE

NAME, CIN = "Zineb Lahlimi-Secret", "BK998877"


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    for name in QUIET_LOGGERS:  # as configure_logging does for the server
        logging.getLogger(name).setLevel(logging.WARNING)
    yield lambda: [orjson.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(level)


def _raw(app) -> httpx.AsyncClient:
    # As a server answers it: the 500 handler's response, not the exception, reaches the client.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=BASE)


async def test_a_sane_request_id_is_echoed_and_a_wild_one_replaced(client):
    mine = await client.get("/metadata", headers={"X-Request-ID": "desk-7-0001"})
    wild = await client.get("/metadata", headers={"X-Request-ID": "a b\" {}"})
    assert mine.headers["x-request-id"] == "desk-7-0001"
    assert wild.headers["x-request-id"] != "a b\" {}" and len(wild.headers["x-request-id"]) == 32


async def test_an_error_logs_the_request_id_and_no_clinical_data(app, json_log):
    @app.get("/boom-for-test")
    async def boom():
        logging.getLogger("sijill.test").warning("about to fail")
        raise RuntimeError(f"patient {NAME} {CIN}")  # a message quoting clinical data

    patient = {"resourceType": "Patient", "name": [{"text": NAME}],
               "identifier": [{"system": "https://sijill.ma/id/cin", "value": CIN}]}
    async with _raw(app) as c:
        created = await c.post("/Patient", json=patient, headers={"Content-Type": "application/fhir+json", "X-Request-ID": "req-1"})
        found = await c.get("/Patient", params={"name": NAME, "identifier": CIN}, headers={"X-Request-ID": "req-2"})
        failed = await c.get("http://test/boom-for-test", headers={"X-Request-ID": "req-3"})
    assert created.status_code == 201 and found.status_code == 200
    assert failed.status_code == 500 and failed.headers["x-request-id"] == "req-3"
    lines = json_log()
    raw = orjson.dumps(lines).decode()
    assert NAME not in raw and CIN not in raw and "Lahlimi" not in raw
    of_failure = [e for e in lines if e.get("request_id") == "req-3"]
    assert {e["msg"] for e in of_failure} >= {"about to fail", "unhandled error", "request"}
    assert next(e for e in of_failure if e["msg"] == "unhandled error")["exception"] == "RuntimeError"
    assert {e["request_id"] for e in lines if e["msg"] == "request"} >= {"req-1", "req-2", "req-3"}

"""HTTP hardening on a small FastAPI app, driven through httpx."""
from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi import FastAPI, Request
from pydantic import SecretStr

from ehr.security.middleware import (
    AccessLogMiddleware,
    BodySizeLimitMiddleware,
    JsonLogFormatter,
    RateLimitMiddleware,
    SecurityHeadersMiddleware,
    add_cors,
    install_middleware,
)
from ehr.settings import Settings

from .conftest import AUDIENCE, asgi_client, make_app


def plain_app() -> FastAPI:
    app = FastAPI()

    @app.get("/fhir/Patient/{pid}")
    async def read(pid: str):
        return {"resourceType": "Patient", "id": pid}

    @app.post("/echo")
    async def echo(request: Request):
        return {"size": len(await request.body())}

    return app


async def test_security_headers():
    app = plain_app()
    app.add_middleware(SecurityHeadersMiddleware, hsts_seconds=600)
    async with asgi_client(app) as http:
        r = await http.get("/fhir/Patient/1")
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in r.headers  # plain http: HSTS would be meaningless
    async with asgi_client(app, base_url="https://testserver") as https:
        assert (await https.get("/fhir/Patient/1")).headers["strict-transport-security"] == "max-age=600; includeSubDomains"


async def test_cors_allow_list():
    app = plain_app()
    add_cors(app, Settings(_env_file=None, cors_origins=["https://portal.sijill.ma/"]))
    async with asgi_client(app) as http:
        pre = await http.options(
            "/fhir/Patient/1",
            headers={"Origin": "https://portal.sijill.ma", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"},
        )
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://portal.sijill.ma"
        evil = await http.options(
            "/fhir/Patient/1", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
        )
        assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
        simple = await http.get("/fhir/Patient/1", headers={"Origin": "https://portal.sijill.ma"})
        assert "ETag" in simple.headers["access-control-expose-headers"]


def test_cors_wildcard_refused():
    with pytest.raises(ValueError, match="allow-list"):
        Settings(_env_file=None, cors_origins=["*"])


def test_rate_limit_setting_validated():
    with pytest.raises(ValueError):
        Settings(_env_file=None, rate_limit="lots")


async def test_body_size_limit_declared_and_streamed():
    app = plain_app()
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=1024)
    async with asgi_client(app) as http:
        assert (await http.post("/echo", content=b"x" * 1000)).json() == {"size": 1000}
        declared = await http.post("/echo", content=b"x" * 2000)
        assert declared.status_code == 413 and declared.json()["issue"][0]["code"] == "too-costly"

        async def chunks():  # no Content-Length: counted as it streams
            for _ in range(5):
                yield b"y" * 400

        streamed = await http.post("/echo", content=chunks())
        assert streamed.status_code == 413 and streamed.headers["content-type"] == "application/fhir+json"


async def test_rate_limit_per_client(tmp_path, ec_key):
    settings = Settings(
        _env_file=None,
        dev_issuer_enabled=True,
        dev_issuer_url="http://testserver",
        dev_issuer_private_key=SecretStr(ec_key.pem),
        audience=AUDIENCE,
        rate_limit="3/minute",
        rate_limit_anonymous="2/minute",
        client_secrets={"cnss-gateway": SecretStr("x")},
    )
    app = make_app(settings)
    app.add_middleware(RateLimitMiddleware, **RateLimitMiddleware.options(settings))
    issuer = app.state.security.issuer
    doctor = {"Authorization": f"Bearer {issuer.issue_token('doctor').access_token}"}
    doctor_again = {"Authorization": f"Bearer {issuer.issue_token('doctor').access_token}"}  # same user, new token
    patient = {"Authorization": f"Bearer {issuer.issue_token('patient', 'patient/*.rs').access_token}"}
    async with asgi_client(app) as http:
        assert [(await http.get("/fhir/Observation", headers=h)).status_code for h in (doctor, doctor_again, doctor)] == [200, 200, 200]
        limited = await http.get("/fhir/Observation", headers=doctor_again)
        assert limited.status_code == 429 and limited.json()["issue"][0]["code"] == "throttled"
        assert int(limited.headers["retry-after"]) >= 1
        # Another client has its own budget.
        assert (await http.get("/fhir/Observation", headers=patient)).status_code == 200
        # Anonymous and garbage-token callers share the (smaller) per-address budget.
        codes = [(await http.get("/fhir/Observation", headers=h)).status_code for h in ({}, {"Authorization": "Bearer junk1"}, {"Authorization": "Bearer junk2"})]
        assert codes == [401, 401, 429]


async def test_rate_limit_skips_preflight():
    app = plain_app()
    app.add_middleware(RateLimitMiddleware, rate="1/minute", anonymous_rate="1/minute")
    async with asgi_client(app) as http:
        assert (await http.get("/fhir/Patient/1")).status_code == 200
        assert (await http.get("/fhir/Patient/1")).status_code == 429
        assert (await http.options("/fhir/Patient/1")).status_code != 429


@pytest.fixture
def log_stream():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("test.access")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream


async def test_access_log_has_no_clinical_data(log_stream):
    logger, stream = log_stream
    app = plain_app()
    app.add_middleware(AccessLogMiddleware, logger=logger)
    async with asgi_client(app) as http:
        r = await http.get("/fhir/Patient/BK123456?name=Alaoui&birthdate=1985-04-12", headers={"X-Request-ID": "req-1"})
        assert r.headers["x-request-id"] == "req-1"
        r2 = await http.get("/fhir/Patient/1", headers={"X-Request-ID": "bad id with spaces"})
        assert r2.headers["x-request-id"] != "bad id with spaces"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["route"] == "/fhir/Patient/{pid}" and lines[0]["status"] == 200 and lines[0]["request_id"] == "req-1"
    text = stream.getvalue()
    for secret in ("BK123456", "Alaoui", "1985-04-12"):
        assert secret not in text


def test_formatter_drops_extras_and_exception_messages():
    formatter = JsonLogFormatter()
    try:
        raise ValueError("Patient Fatima Zahra Alaoui, CIN BK123456")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    record.patient_name = "Alaoui"  # not a whitelisted field
    record.status = 500
    entry = json.loads(formatter.format(record))
    assert entry["exception"] == "ValueError" and entry["status"] == 500 and entry["stack"]
    assert "Alaoui" not in json.dumps(entry) and "BK123456" not in json.dumps(entry)


async def test_install_middleware_stack(tmp_path):
    settings = Settings(_env_file=None, audience=AUDIENCE, cors_origins=["https://portal.sijill.ma"], rate_limit_anonymous="5/minute")
    app = make_app(settings)
    install_middleware(app, settings, max_body_bytes=64)
    async with asgi_client(app) as http:
        r = await http.get("/fhir/Observation", headers={"Origin": "https://portal.sijill.ma"})
        assert r.status_code == 401 and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["access-control-allow-origin"] == "https://portal.sijill.ma"
        assert "www-authenticate" in r.headers["access-control-expose-headers"].lower()
        assert (await http.post("/fhir/Observation", content=b"z" * 100)).status_code == 413

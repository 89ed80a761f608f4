"""The security layer as wired into the real application: discovery, CapabilityStatement,
HTTP hardening, structured logs, and the audit CLI on the server's own database."""
from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from typer.testing import CliRunner

from ehr.security.cli import audit_app
from ehr.security.middleware import JsonLogFormatter
from ehr.settings import Settings, get_settings
from tests.conftest import BASE, running_app

from .world import seed_world

SMART = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


async def test_metadata_is_public_and_describes_the_security(world):
    async with world.client(None) as c:
        cs = (await c.get("/metadata")).json()
        smart = (await c.get("/.well-known/smart-configuration")).json()
    security = cs["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert security["extension"][0]["url"] == SMART and uris["token"] == smart["token_endpoint"] == "http://test/auth/token"
    assert "client_credentials" in smart["grant_types_supported"]
    patient = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Patient")
    assert any(op["name"] == "break-glass" for op in patient["operation"])
    consent = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Consent")
    assert {"provision-type", "exempt-actor"} <= {p["name"] for p in consent["searchParam"]}


async def test_security_headers_on_every_answer(world):
    async with world.client(None) as anonymous, world.client("D1") as d1:
        for r in (await anonymous.get("/metadata"), await anonymous.get("/Patient/pa"), await d1.get("/Patient/pa"), await d1.get("/Patient/pb")):
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["cache-control"] == "no-store"
            assert r.headers["x-request-id"]


async def test_body_limit_and_rate_limits_through_the_app(database_url, tmp_path, rsa_key):
    from pydantic import SecretStr

    settings = Settings(
        _env_file=None, database_url=database_url, base_url=BASE, data_dir=tmp_path / "data", dev_issuer_enabled=True,
        dev_issuer_private_key=SecretStr(rsa_key.pem), max_body_bytes=2048, rate_limit="5/minute", rate_limit_anonymous="3/minute",
        cors_origins=["https://portail.sijill.ma"], log_json=False, identity_cache_seconds=0,
    )
    async with running_app(settings) as app:
        world = await seed_world(app)
        async with world.client("D1") as d1:
            big = await d1.post("/Observation", content=b'{"resourceType":"Observation","note":[{"text":"' + b"x" * 4096 + b'"}]}')
            assert big.status_code == 413 and big.json()["issue"][0]["code"] == "too-costly"
            statuses = [(await d1.get("/Patient/pa")).status_code for _ in range(6)]
            assert statuses.count(429) >= 1 and statuses[0] == 200
        async with world.client("D3") as d3:  # another user has their own bucket
            assert (await d3.get("/Patient/pa")).status_code == 200
        async with world.client(None, Origin="https://portail.sijill.ma") as browser:
            r = await browser.get("/metadata")
            assert r.headers["access-control-allow-origin"] == "https://portail.sijill.ma"
            throttled = [(await browser.get("/metadata")).status_code for _ in range(4)]
            assert 429 in throttled
        async with world.client(None, Origin="https://evil.example") as evil:
            assert "access-control-allow-origin" not in (await evil.options(
                "/Patient", headers={"Access-Control-Request-Method": "GET"})).headers


async def test_access_log_carries_no_ids_or_clinical_data(world, caplog):
    caplog.set_level(logging.INFO, logger="sijill.access")
    async with world.client("D1") as d1:
        await d1.get("/Patient/pa", params={"name": "Alaoui"})
        await d1.get("/Observation", params={"code": "8867-4", "subject": "Patient/pa"})
    lines = [JsonLogFormatter().format(r) for r in caplog.records if r.name == "sijill.access"]
    assert len(lines) == 2
    for line in lines:
        entry = orjson.loads(line)
        assert entry["role"] == "doctor" and entry["route"].startswith("/fhir/{res_type}")
        assert "pa" not in line.replace("path", "") and "Alaoui" not in line and "8867" not in line


async def test_audit_verify_cli_on_the_server_database(world, database_url, monkeypatch):
    async with world.client("D1") as d1:
        for ref in ("Patient/pa", "Observation/obs-a", "Patient/pb"):
            await d1.get(f"/{ref}")
    monkeypatch.setenv("SIJILL_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        result = await asyncio.to_thread(CliRunner().invoke, audit_app, ["verify"])  # the CLI runs its own loop
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "audit chain intact" in result.output


@pytest.mark.parametrize("user", ["D1", "pa"])
async def test_total_estimate_is_not_offered_to_restricted_callers(world, user):
    async with world.client(user) as c:
        body = (await c.get("/Observation", params={"_total": "estimate", "_count": 0})).json()
    assert body["total"] == {"D1": 1, "pa": 2}[user]

"""``sijill token`` and ``sijill audit verify|purge`` through Typer's runner."""
from __future__ import annotations

import asyncio

import pytest
import typer
from sqlalchemy import update
from typer.testing import CliRunner

from ehr.security.audit import append, audit_event
from ehr.security.cli import audit_app, token_command
from ehr.security.principal import principal_from_claims
from ehr.security.roles import Role
from ehr.security.services import SecurityServices
from ehr.security.tables import SECURITY_TABLES, audit_log
from ehr.settings import get_settings
from ehr.store.clock import now_us
from ehr.store.db import create_engine, write_transaction
from ehr.store.schema import metadata

runner = CliRunner()


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("token")(token_command)
    app.add_typer(audit_app, name="audit")
    return app


@pytest.fixture
def env(tmp_path, monkeypatch):
    db = tmp_path / "cli.db"
    monkeypatch.setenv("SIJILL_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    monkeypatch.setenv("SIJILL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIJILL_BASE_URL", "http://127.0.0.1:8000/fhir")
    monkeypatch.setenv("SIJILL_DEV_ISSUER_ENABLED", "true")
    get_settings.cache_clear()
    yield f"sqlite+aiosqlite:///{db}"
    get_settings.cache_clear()


def test_token_verifies_on_the_server_side(env, tmp_path):
    result = runner.invoke(cli(), ["token", "--user", "agent-cnops", "--scopes", "user/Claim.rs"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.count(".") == 2
    assert (tmp_path / "data" / "dev-issuer-key.pem").exists()  # the server will load the same key

    async def check():
        services = SecurityServices(get_settings())
        try:
            return await services.principal(f"Bearer {token}")
        finally:
            await services.aclose()

    principal = asyncio.run(check())
    assert principal.role is Role.INSURER and principal.fund == "Organization/cnops"
    assert principal.allows("Claim", "s") and not principal.allows("Coverage", "r")


def test_token_errors(env, monkeypatch):
    assert runner.invoke(cli(), ["token", "--user", "nobody"]).exit_code == 2
    monkeypatch.setenv("SIJILL_DEV_ISSUER_ENABLED", "false")
    get_settings.cache_clear()
    result = runner.invoke(cli(), ["token", "--user", "doctor"])
    assert result.exit_code == 2 and "disabled" in result.output


async def _prepare(url: str, old: int, recent: int) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: metadata.create_all(c, tables=list(SECURITY_TABLES)))
    async with write_transaction(engine) as conn:
        events = [audit_event("read", None, what=f"Patient/p{i}", recorded_us=now_us() - 800 * 86_400_000_000) for i in range(old)]
        events += [audit_event("read", None, what=f"Patient/q{i}") for i in range(recent)]
        await append(conn, events)
    await engine.dispose()


async def _tamper(url: str) -> None:
    engine = create_engine(url)
    async with write_transaction(engine) as conn:
        await conn.execute(update(audit_log).where(audit_log.c.seq == 6).values(event=b'{"resourceType":"AuditEvent"}'))
    await engine.dispose()


def test_audit_verify_purge_and_tamper(env):
    asyncio.run(_prepare(env, old=4, recent=3))
    ok = runner.invoke(cli(), ["audit", "verify"])
    assert ok.exit_code == 0 and "intact" in ok.stdout and "7 events" in ok.stdout
    purged = runner.invoke(cli(), ["audit", "purge", "--older-than-days", "730"])
    assert purged.exit_code == 0 and "purged 4 events" in purged.stdout
    again = runner.invoke(cli(), ["audit", "verify"])
    assert again.exit_code == 0 and "anchor 4" in again.stdout
    asyncio.run(_tamper(env))
    broken = runner.invoke(cli(), ["audit", "verify"])
    assert broken.exit_code == 1 and "BROKEN at seq 6" in broken.stdout


def test_claims_of_cli_token_match_demo_user(env):
    token = runner.invoke(cli(), ["token", "--user", "patient"]).stdout.strip()
    from jose import jwt

    claims = jwt.get_unverified_claims(token)
    assert claims["fhirUser"] == "http://127.0.0.1:8000/fhir/Patient/demo-patient" and claims["patient"] == "demo-patient"
    assert principal_from_claims(claims, get_settings()).role is Role.PATIENT

"""/health/live and /health/ready: no token, no clinical data, 503 with the failing check named."""
import httpx
from sqlalchemy import insert

from ehr.ops import health
from ehr.security.tables import audit_inbox
from tests.conftest import running_app


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_live_answers_without_a_token(secure_app):
    async with _client(secure_app) as c:
        r = await c.get("/health/live")
    assert r.status_code == 200 and r.json() == {"status": "live"}


async def test_ready_checks_everything_without_a_token(secure_app):
    async with _client(secure_app) as c:
        r = await c.get("/health/ready")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    assert r.json()["checks"] == {n: "ok" for n in ("database", "migrations", "audit_inbox", "claims_queue", "object_store")}
    assert "x-request-id" in r.headers


async def test_ready_fails_when_the_schema_is_behind(app, monkeypatch):
    monkeypatch.setattr(health, "migration_head", lambda: "9999")
    async with _client(app) as c:
        r = await c.get("/health/ready")
    assert r.status_code == 503
    assert "9999" in r.json()["checks"]["migrations"] and r.json()["checks"]["database"] == "ok"


async def test_ready_fails_when_the_audit_inbox_piles_up(settings):
    piled = settings.model_copy(update={"health_max_audit_inbox": 2, "audit_seal_interval_seconds": 3600})
    async with running_app(piled) as app:
        async with app.state.engine.begin() as conn:
            await conn.execute(insert(audit_inbox), [{"recorded": 1, "patient_ref": None, "event": b"{}"}] * 3)
        async with _client(app) as c:
            r = await c.get("/health/ready")
    assert r.status_code == 503
    assert r.json()["checks"]["audit_inbox"] == "more than 2 audit events wait to be sealed"


async def test_ready_fails_when_the_database_is_unreachable(settings):
    down = settings.model_copy(update={"database_url": "postgresql+psycopg://sijill@127.0.0.1:1/none", "health_timeout_seconds": 3})
    async with running_app(down) as app:
        async with _client(app) as c:
            r = await c.get("/health/ready")
            live = await c.get("/health/live")
    assert r.status_code == 503 and r.json()["checks"]["database"].startswith("unreachable")
    assert live.status_code == 200  # the process itself is fine: no restart wanted


async def test_ready_fails_when_the_object_store_is_unreachable(settings):
    down = settings.model_copy(update={"storage_url": "s3://documents", "s3_endpoint": "127.0.0.1:1", "s3_secure": False,
                                       "health_timeout_seconds": 3})
    async with running_app(down) as app:
        async with _client(app) as c:
            r = await c.get("/health/ready")
    assert r.status_code == 503
    assert r.json()["checks"]["object_store"] != "ok" and r.json()["checks"]["database"] == "ok"

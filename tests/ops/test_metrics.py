"""/metrics: off by default, a bearer token when on; route templates, never raw paths."""
import httpx
import pytest
from pydantic import SecretStr

from tests.conftest import BASE, running_app

TOKEN = "scrape-me-0123456789"


@pytest.fixture
async def metered(settings):
    async with running_app(settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})) as app:
        yield app


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_metrics_are_off_unless_a_token_is_set(client):
    r = await client.get("http://test/metrics")
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}"])
async def test_metrics_refuse_a_missing_or_wrong_token(metered, authorization):
    async with _client(metered) as c:
        r = await c.get("/metrics", headers={"Authorization": authorization} if authorization else {})
    assert r.status_code == 401 and "Bearer" in r.headers["www-authenticate"]


async def test_metrics_count_requests_by_route_template_and_read_the_database(metered):
    async with _client(metered) as c:
        await c.put(f"{BASE}/Patient/metered-1", json={"resourceType": "Patient", "id": "metered-1"},
                    headers={"Content-Type": "application/fhir+json"})
        await c.get(f"{BASE}/Patient/metered-1")
        r = await c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'sijill_http_requests_total{method="GET",route="/fhir/{res_type}/{res_id}",status="200"}' in text
    assert "sijill_http_request_duration_seconds_bucket" in text
    assert "metered-1" not in text  # ids never become labels
    for gauge in ("sijill_audit_inbox_events", "sijill_audit_sealer_lag_seconds", "sijill_db_pool_checked_out"):
        assert f"\n{gauge} " in text, gauge
    assert "\nsijill_claims_deadline_seconds 172800.0" in text  # the 48-hour clock the dashboard draws
    assert 'sijill_claims_received_last_hour{fund="CNSS"} 0.0' in text
    assert 'sijill_claims_review_queue{fund="CNOPS"} 0.0' in text


def test_the_dashboard_draws_only_metrics_the_server_exports():
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text())
    exported = set(re.findall(r'"(sijill_[a-z_]+)"', (Path(__file__).resolve().parents[2] / "ehr/ops/metrics.py").read_text()))
    exported |= set(re.findall(r'"(sijill_[a-z_]+)"', (Path(__file__).resolve().parents[2] / "claims/observe.py").read_text()))
    exported |= {f"{name}_total" for name in exported} | {f"{name}_bucket" for name in exported}
    first = dashboard["panels"][0]
    assert first["targets"][0]["expr"] == "sijill_claims_oldest_open_age_seconds"  # the 48-hour clock, first
    assert first["fieldConfig"]["defaults"]["max"] == 48 * 3600
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"sijill_[a-z_]+", target["expr"]):
                assert name in exported, name

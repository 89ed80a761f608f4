"""Providers' rest-hook subscriptions to their claims' decisions: outbox, retries, status."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import orjson
import pytest
from sqlalchemy import select, update

from claims.notify import backoff_us, deliver_due
from claims.settings import ClaimsSettings
from claims.tables import claim_outbox
from claims.uris import INPE
from ehr.parsing import check_structure
from tests.claims import builders as b
from tests.claims.test_adjudication_scenarios import World, drain, submit


class Hook:
    """A provider's endpoint on the loopback: records what it receives, fails while told to."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, bytes]] = []
        self.failures_left = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if hook.failures_left:
                    hook.failures_left -= 1
                    self.send_response(503)
                else:
                    hook.received.append((dict(self.headers), body))
                    self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def subscription(endpoint: str, criteria: str, payload: str | None = "application/fhir+json") -> dict:
    channel = {"type": "rest-hook", "endpoint": endpoint, "header": ["Authorization: Bearer provider-secret"]}
    if payload:
        channel["payload"] = payload
    return {"resourceType": "Subscription", "status": "requested", "reason": "Décisions de mes feuilles de soins",
            "criteria": criteria, "channel": channel}


async def test_provider_notified_of_decisions_with_retries(client, app, settings, hook):
    w = await World().build(client)
    created = await b.create(client, subscription(hook.url, f"ClaimResponse?requestor:identifier={INPE}|101234567&outcome=complete"))
    assert created["status"] == "active"
    other = await b.create(client, subscription(hook.url, "ClaimResponse?requestor=Practitioner/someone-else"))
    queued = await submit(client, w.sheet([b.act("C", 80, b.days_ago(1))]))
    await drain(app, settings)

    cfg = ClaimsSettings(notify_backoff_seconds=30, notify_max_attempts=3)
    hook.failures_left = 3  # the endpoint is down through the quick in-process retries
    async with httpx.AsyncClient() as http:
        assert await deliver_due(app.state.engine, cfg, http) == 0
        async with app.state.engine.connect() as conn:
            row = (await conn.execute(select(claim_outbox))).one()
        assert row.status == "pending" and row.attempts == 1 and row.subscription_id == created["id"]
        assert row.next_attempt_at - row.created_at >= backoff_us(1, cfg) - 10_000_000
        status = (await client.get(f"/Subscription/{created['id']}/$status")).json()
        assert status["resourceType"] == "SubscriptionStatus" and "503" in status["error"][0]["text"]
        check_structure(status, "SubscriptionStatus")
        # not due yet: nothing is sent
        assert await deliver_due(app.state.engine, cfg, http) == 0
        async with app.state.engine.begin() as conn:
            await conn.execute(update(claim_outbox).values(next_attempt_at=0))
        assert await deliver_due(app.state.engine, cfg, http) == 1
    headers, body = hook.received[0]
    assert headers["Authorization"] == "Bearer provider-secret"
    sent = orjson.loads(body)
    assert sent["resourceType"] == "ClaimResponse" and sent["id"] == queued["id"] and sent["outcome"] == "complete"
    status = (await client.get(f"/Subscription/{created['id']}/$status")).json()
    counts = {e["url"]: e["valueInteger"] for e in status["extension"][0]["extension"]}
    assert counts == {"pending": 0, "delivered": 1, "failed": 0}
    other_status = (await client.get(f"/Subscription/{other['id']}/$status")).json()
    assert other_status["eventsSinceSubscriptionStart"] == "0"


async def test_given_up_notifications_put_the_subscription_in_error(client, app, settings):
    w = await World().build(client)
    dead = "http://127.0.0.1:9/nothing-listens-here"
    sub = await b.create(client, subscription(dead, "ClaimResponse?insurer=Organization/" + w.fund["id"], payload=None))
    await submit(client, w.sheet([b.act("C", 80, b.days_ago(1))]))
    await drain(app, settings)
    cfg = ClaimsSettings(notify_max_attempts=1)
    async with httpx.AsyncClient() as http:
        assert await deliver_due(app.state.engine, cfg, http) == 0
    async with app.state.engine.connect() as conn:
        assert (await conn.execute(select(claim_outbox.c.status))).scalar_one() == "failed"
    after = (await client.get(f"/Subscription/{sub['id']}")).json()
    assert after["status"] == "error" and after["error"]


async def test_unsupported_criteria_refused(client):
    resp = await client.post("/Subscription", json=subscription("https://example.org/h", "ClaimResponse?foo=bar"))
    assert resp.status_code == 422 and resp.json()["issue"][0]["expression"] == ["Subscription.criteria"]


def test_backoff_grows_exponentially_up_to_its_ceiling():
    cfg = ClaimsSettings(notify_backoff_seconds=30, notify_backoff_max_seconds=3600)
    delays = [backoff_us(n, cfg) // 1_000_000 for n in range(1, 10)]
    assert delays[:4] == [30, 60, 120, 240] and delays[-1] == 3600

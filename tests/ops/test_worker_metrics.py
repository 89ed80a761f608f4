"""The worker counts a decision once its batch has committed: rate() of it is decisions per second."""
import httpx

from claims.observe import DECIDED, WORKER_REGISTRY, serve_worker_metrics
from tests.claims import builders as b
from tests.claims.test_adjudication_scenarios import World, drain, submit


def _decided(fund: str) -> float:
    return sum(WORKER_REGISTRY.get_sample_value("sijill_claims_worker_decided_total", {"fund": fund, "outcome": o}) or 0
               for o in ("approved", "partial", "rejected"))


async def test_decisions_are_counted_by_fund_after_commit(client, app, settings, free_tcp_port):
    w = await World().build(client)
    before = _decided("CNSS")
    await submit(client, w.sheet([b.act("C", 80, b.days_ago(1))]))
    assert await drain(app, settings) == 1
    assert _decided("CNSS") == before + 1
    serve_worker_metrics(free_tcp_port)
    scraped = httpx.get(f"http://127.0.0.1:{free_tcp_port}/metrics", timeout=10).text
    assert 'sijill_claims_worker_decided_total{fund="CNSS"' in scraped and DECIDED._name in scraped

"""The HTTP loader against a stand-in FHIR endpoint (httpx mock transport, no network)."""
from __future__ import annotations

import asyncio

import httpx
import orjson

from ehr.demo.generator import patient_bundles
from ehr.demo.loader import load_over_http, serialised


class FakeFhirBase:
    """Accepts transaction Bundles at POST [base]; fails the patients it is told to."""

    def __init__(self, fail_patients: set[str] = frozenset()) -> None:
        self.received: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_patients = fail_patients
        self.auth: set[str | None] = set()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path == "/fhir"
        assert request.headers["content-type"] == "application/fhir+json"
        self.auth.add(request.headers.get("authorization"))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.002)  # let other requests overlap
            bundle = orjson.loads(request.content)
            self.received.append(bundle)
            first = bundle["entry"][0]["resource"]
            if first["resourceType"] == "Patient" and first["id"] in self.fail_patients:
                outcome = {"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "processing", "diagnostics": "boom"}]}
                return httpx.Response(422, json=outcome)
            return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response",
                                             "entry": [{"response": {"status": "201"}} for _ in bundle["entry"]]})
        finally:
            self.in_flight -= 1


async def test_loads_reference_first_then_every_patient_with_bounded_concurrency():
    fake = FakeFhirBase()
    result = await load_over_http("http://fhir.test/fhir/", 30, seed=2, concurrency=4, token="t0k",
                                  transport=httpx.MockTransport(fake))
    assert fake.received[0]["entry"][0]["resource"]["resourceType"] == "Organization"  # reference population
    patients = [b["entry"][0]["resource"]["id"] for b in fake.received[1:]]
    assert sorted(patients) == sorted(f"pat-2-{i}" for i in range(30))
    assert 1 < fake.max_in_flight <= 4
    assert fake.auth == {"Bearer t0k"}
    expected = sum(len(b["entry"]) for b in fake.received)
    assert result.bundles == 31 and result.failed_bundles == 0
    assert result.resources == expected
    assert result.seconds > 0 and result.resources_per_s == expected / result.seconds


async def test_failures_are_counted_and_described_not_raised():
    fake = FakeFhirBase(fail_patients={"pat-1-3", "pat-1-5"})
    bundles = list(serialised(patient_bundles(8, seed=1)))
    result = await load_over_http("http://fhir.test/fhir", 8, concurrency=2, include_reference=False,
                                  bundles=bundles, transport=httpx.MockTransport(fake))
    assert result.bundles == 8 and result.failed_bundles == 2
    failed_sizes = sum(n for body, n in bundles if b'"id":"pat-1-3"' in body or b'"id":"pat-1-5"' in body)
    assert result.resources == sum(n for _, n in bundles) - failed_sizes
    assert len(result.errors) == 2 and all(e.startswith("HTTP 422") and "boom" in e for e in result.errors)
    assert result.to_json()["failed_bundles"] == 2


async def test_unreachable_server_is_a_counted_failure():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    result = await load_over_http("http://fhir.test/fhir", 3, include_reference=False,
                                  transport=httpx.MockTransport(refuse))
    assert result.failed_bundles == 3 and result.resources == 0
    assert result.errors[0].startswith("ConnectError")


async def test_time_budget_stops_after_a_prefix_of_the_population():
    class Slow(FakeFhirBase):
        async def __call__(self, request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.05)
            return await super().__call__(request)

    fake = Slow()
    bundles = list(serialised(patient_bundles(200, seed=4)))  # generated up front: only the sends are timed
    result = await load_over_http("http://fhir.test/fhir", 200, seed=4, concurrency=2, include_reference=False,
                                  bundles=bundles, time_budget_s=0.3, transport=httpx.MockTransport(fake))
    assert result.stopped_early
    sent = [b["entry"][0]["resource"]["id"] for b in fake.received]
    assert 1 <= len(sent) < 100 and result.bundles == len(sent)
    assert sorted(sent, key=lambda s: int(s.rsplit("-", 1)[1])) == [f"pat-4-{i}" for i in range(len(sent))]

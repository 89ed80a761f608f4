"""Every operation declares who may call it, and the dispatcher holds everyone else to it.

* every registered operation declares its callers; one registered without is refused to every
  token role (403) at system, type and instance level, and only the unrestricted in-process
  caller runs it;
* per operation, each role it does not declare gets 403 before anything is looked up (an id
  that does not exist answers the same 403), and the roles it declares get past the check;
* a fund's review queue and 48-hour figures are for that fund's agents and gateway only.
Both databases (the ``database_url`` fixture family).
"""
from __future__ import annotations

import pytest
from fastapi.responses import Response

from ehr.operations import registry
from ehr.operations.registry import operation, registered

from .world import USERS

NOT_OPEN = "is not open to this caller"
EVERYONE = set(USERS)
PARAMETERS = {"resourceType": "Parameters", "parameter": []}

# (method, URL, the world's users the operation admits): one row per registration and level kind.
CASES = [
    ("GET", "/ValueSet/$expand?url=http://hl7.org/fhir/ValueSet/administrative-gender", EVERYONE),
    ("GET", "/CodeSystem/$lookup?system=http://hl7.org/fhir/administrative-gender&code=male", EVERYONE),
    ("GET", "/ValueSet/$validate-code?url=http://hl7.org/fhir/ValueSet/administrative-gender&code=male", EVERYONE),
    ("GET", "/ConceptMap/$translate?code=male&system=http://hl7.org/fhir/administrative-gender", EVERYONE),
    ("POST", "/Patient/$validate", EVERYONE),
    ("GET", "/Patient/pa/$everything", {"pa", "pb", "D1", "D2", "D3", "D4"}),
    ("GET", "/Patient/no-such-patient/$everything", {"pa", "pb", "D1", "D2", "D3", "D4"}),
    ("POST", "/Patient/pa/$break-glass", {"D1", "D2", "D3", "D4"}),
    ("GET", "/Claim/$review-queue?fund=Organization/cnss", {"AG"}),
    ("GET", "/Claim/$review-queue?fund=cnops", {"AGO"}),
    ("GET", "/Claim/$review-queue", {"AG", "AGO"}),
    ("POST", "/Claim/claim-a/$decide", {"AG", "AGO"}),
    ("POST", "/Claim/claim-a/$request-info", {"AG", "AGO"}),
    ("POST", "/Claim/claim-a/$appeal", EVERYONE - {"AD"}),
    ("POST", "/Claim/$submit", {"D1", "D2", "D3", "D4", "PH", "PA"}),
    ("GET", "/Subscription/no-such-subscription/$status", {"D1", "D2", "D3", "D4", "PA"}),
    ("GET", "/Organization/cnss/$sla", {"AG", "AD"}),
    ("GET", "/Organization/no-such-fund/$sla", {"AD"}),
    ("GET", "/ClaimResponse/cr-a/$letter", EVERYONE - {"AD"}),
    ("GET", "/PaymentReconciliation/no-such-payment/$letter", {"pa", "pb", "AG", "AGO", "PA"}),
    ("GET", "/Patient/pa/$access-report", {"pa", "pb", "PA"}),
    ("GET", "/$export", {"AD"}),  # and the funds' gateways (below); never an agent's own token
    ("GET", "/Patient/$export", {"AD"}),
]


def test_every_registered_operation_declares_its_callers():
    undeclared = [(op.name, sorted(op.levels), sorted(op.types or ())) for op in registered() if not op.callers]
    assert undeclared == []


@pytest.mark.parametrize(("method", "url", "admitted"), CASES, ids=[f"{m} {u.split('?')[0]}" for m, u, _ in CASES])
async def test_roles_an_operation_does_not_declare_are_refused(world, method, url, admitted):
    wrong = []
    for user in sorted(USERS):
        async with world.client(user) as c:
            r = await c.request(method, url, json=PARAMETERS if method == "POST" else None)
        refused = r.status_code == 403 and NOT_OPEN in r.text
        if refused == (user in admitted):
            wrong.append((user, r.status_code, r.text[:160]))
        if refused:
            assert r.json()["issue"][0]["code"] == "forbidden"
    assert wrong == []


async def test_the_funds_gateways_call_their_own_funds_operations(world):
    token = world.issuer.issue_client_token(world.issuer.directory.clients["cnss-gateway"]).access_token
    async with world.client(None, Authorization=f"Bearer {token}") as gateway:
        queue = await gateway.get("/Claim/$review-queue", params={"fund": "Organization/cnss"})
        assert queue.status_code == 200 and queue.json()["resourceType"] == "Bundle"
        assert (await gateway.get("/Organization/cnss/$sla")).status_code == 200
        assert (await gateway.get("/Claim/$review-queue", params={"fund": "Organization/cnops"})).status_code == 403
        assert (await gateway.get("/Organization/cnops/$sla")).status_code == 403
        export = await gateway.get("/$export")  # admitted: on to the handler, which wants Prefer: respond-async
        assert export.status_code == 400 and NOT_OPEN not in export.text


async def test_an_agent_without_fund_gets_their_own_funds_queue(world):
    async with world.client("AG") as agent:
        own = await agent.get("/Claim/$review-queue")
        named = await agent.get("/Claim/$review-queue", params={"fund": "Organization/cnss"})
    assert own.status_code == named.status_code == 200
    assert own.json()["total"] == named.json()["total"]


# --- an operation without a declaration ------------------------------------------------------------


@pytest.fixture
def undeclared(monkeypatch):
    """``$probe``, registered as a plugin would, without saying who may call it."""
    monkeypatch.setitem(registry._REGISTRY, "probe", [])

    @operation("probe", levels={"system", "type", "instance"})
    async def probe(inv):
        return Response(b'{"resourceType": "Parameters"}', 200, media_type="application/fhir+json")

    return ["/$probe", "/Patient/$probe", "/Patient/pa/$probe"]


async def test_an_operation_without_declaration_is_refused_to_every_token_role(world, undeclared):
    for user in sorted(USERS):
        async with world.client(user) as c:
            for url in undeclared:
                r = await c.get(url)
                assert r.status_code == 403, (user, url, r.text)
                assert "declares no callers" in r.json()["issue"][0]["diagnostics"]


async def test_only_the_unrestricted_caller_runs_an_undeclared_operation(client, undeclared):
    assert (await client.put("/Patient/pa", json={"resourceType": "Patient", "id": "pa"})).status_code == 201
    for url in undeclared:
        r = await client.get(url)
        assert r.status_code == 200, (url, r.text)

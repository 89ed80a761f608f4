"""A fund's review queue and 48-hour figures, with tokens: only that fund's agents and gateway
call them (403 for every other role and for another fund's agents, whatever exists), and each
patient whose care sheet the queue lists finds the agent's read in their trail."""
from __future__ import annotations

from claims.uris import INPE
from claims.worker import Worker
from ehr.interactions.transaction import Options, transaction
from tests.claims import builders as b
from tests.claims.test_appeals import (  # noqa: F401  (fixtures: secure_app, signing_key)
    ADMIN, CNOPS_AGENT, CNSS_AGENT, DOCTOR, OTHER_PATIENT, PAPER_AGENT, PATIENT, PHARMACIST, _appeal, _decided_claim, _seed,
    secure_app, signing_key,
)
from tests.conftest import BASE
from tests.security.test_audit_trail import by, trail

QUEUE = "/Claim/$review-queue"


async def _brahim_covered_by_cnss(app) -> None:
    s = app.state.security.settings
    coverage = {"resourceType": "Coverage", "id": "cov-b", "status": "active", "beneficiary": {"reference": "Patient/pb"},
                "subscriber": {"reference": "Patient/pb"}, "payor": [{"reference": "Organization/cnss"}],
                "period": {"start": "2020-01-01"}}
    # Dr d1 saw Brahim last week: the care sheet he sends is for a patient in his care.
    visit = {"resourceType": "Encounter", "id": "enc-d1-pb", "status": "finished", "class": {"code": "AMB"},
             "subject": {"reference": "Patient/pb"}, "participant": [{"individual": {"reference": "Practitioner/d1"}}],
             "period": {"start": b.days_ago(3).isoformat(), "end": b.days_ago(3).isoformat()}}
    opts = Options(s.base_url, s.default_page_size, s.max_page_size, s.max_bundle_entries, False)
    await transaction(app.state.engine, {"resourceType": "Bundle", "type": "transaction",
                                         "entry": [{"resource": coverage, "request": {"method": "PUT", "url": "Coverage/cov-b"}},
                                                   {"resource": visit, "request": {"method": "PUT", "url": "Encounter/enc-d1-pb"}}]}, opts)


async def _decided_for_brahim(app, callers) -> str:
    sheet = b.claim("pb", "cov-b", [b.act("C", 80, b.days_ago(2))],
                    provider={"reference": "Practitioner/d1", "identifier": {"system": INPE, "value": "101234567"}})
    sheet["insurer"] = {"reference": "Organization/cnss"}
    async with callers.client(DOCTOR) as doctor:
        resp = await doctor.post("/Claim", json=sheet)
    assert resp.status_code == 201, resp.text
    await Worker(app.state.engine, base_url=BASE, name="test-worker").run_once()
    return resp.json()["request"]["reference"].split("/")[1]


async def _two_appeals_in_the_cnss_queue(app) -> tuple:
    callers = await _seed(app)
    await _brahim_covered_by_cnss(app)
    amina, brahim = await _decided_claim(app, callers, DOCTOR, 1), await _decided_for_brahim(app, callers)
    assert await _appeal(callers, PATIENT, amina) == 201
    assert await _appeal(callers, OTHER_PATIENT, brahim) == 201
    return callers, amina, brahim


async def test_only_the_funds_own_agents_and_gateway_read_its_queue(secure_app):
    callers, amina, brahim = await _two_appeals_in_the_cnss_queue(secure_app)
    for who in (PATIENT, DOCTOR, PHARMACIST, ADMIN, PAPER_AGENT, CNOPS_AGENT):
        async with callers.client(who) as c:
            for query in ({"fund": "Organization/cnss"}, {"fund": "cnss"}, {}):
                if who is CNOPS_AGENT and not query:
                    continue  # their own (empty) queue, below
                r = await c.get(QUEUE, params=query)
                assert r.status_code == 403, (who.username, query, r.text)
                assert r.json()["issue"][0]["code"] == "forbidden" and "entry" not in r.json()
    async with callers.client(CNOPS_AGENT) as cnops:
        own = await cnops.get(QUEUE)
        assert own.status_code == 200 and own.json()["total"] == 0
    async with callers.client(CNSS_AGENT) as cnss:
        assert (await cnss.get(QUEUE, params={"fund": "Organization/cnops"})).status_code == 403
        named, own = (await cnss.get(QUEUE, params={"fund": "Organization/cnss"})).json(), (await cnss.get(QUEUE)).json()
    focus = {e["resource"]["focus"]["reference"] for e in named["entry"] if e["resource"]["resourceType"] == "Task"}
    assert focus == {f"Claim/{amina}", f"Claim/{brahim}"} and own["total"] == named["total"] == 2
    gateway = callers.issuer.issue_client_token(callers.issuer.directory.clients["cnss-gateway"]).access_token
    async with callers.client(None, Authorization=f"Bearer {gateway}") as system:
        assert (await system.get(QUEUE)).json()["total"] == 2
        assert (await system.get(QUEUE, params={"fund": "Organization/cnops"})).status_code == 403


async def test_each_patient_in_the_queue_sees_the_agents_read(secure_app):
    callers, *_ = await _two_appeals_in_the_cnss_queue(secure_app)
    async with callers.client(CNSS_AGENT) as cnss:
        assert (await cnss.get(QUEUE)).status_code == 200
    async with callers.client(DOCTOR) as doctor:  # refused: in nobody's trail, since nothing was read
        assert (await doctor.get(QUEUE, params={"fund": "Organization/cnss"})).status_code == 403
    for patient in (PATIENT, OTHER_PATIENT):
        reads = [e for e in await trail(callers, patient) if e["subtype"][-1]["code"] == "$review-queue"]
        assert [(e["agent"][0]["who"]["reference"], e["outcome"]) for e in reads] == [("Practitioner/ag", "0")], patient.username
        assert reads[0]["entity"][0]["what"] == {"reference": patient.fhir_user}
        assert by(reads, "Practitioner/d1") == []


async def test_a_funds_48_hour_figures_are_for_that_fund_and_the_administrator(secure_app):
    callers = await _seed(secure_app)
    for who, fund, status in [(CNSS_AGENT, "cnss", 200), (CNSS_AGENT, "cnops", 403), (CNOPS_AGENT, "cnops", 200),
                              (ADMIN, "cnss", 200), (DOCTOR, "cnss", 403), (PATIENT, "cnss", 403), (PAPER_AGENT, "cnss", 403),
                              (CNSS_AGENT, "no-such-fund", 403), (ADMIN, "no-such-fund", 404)]:
        async with callers.client(who) as c:
            r = await c.get(f"/Organization/{fund}/$sla")
        assert r.status_code == status, (who.username, fund, r.text)
        if status == 200:
            assert r.json()["resourceType"] == "MeasureReport" and r.json()["reporter"] == {"reference": f"Organization/{fund}"}
    gateway = callers.issuer.issue_client_token(callers.issuer.directory.clients["cnss-gateway"]).access_token
    async with callers.client(None, Authorization=f"Bearer {gateway}") as system:
        assert (await system.get("/Organization/cnss/$sla")).status_code == 200
        assert (await system.get("/Organization/cnops/$sla")).status_code == 403

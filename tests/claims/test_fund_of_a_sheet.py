"""The fund a care sheet is routed to is recorded in it (``Claim.insurer``), and that fund's
agents — with their own tokens — read, question and decide it; another fund's agents do not
learn it exists."""
from __future__ import annotations

from sqlalchemy import func, select

from claims.tables import claim_ledger
from claims.uris import FUND, INPE
from claims.worker import Worker
from tests.claims import builders as b
from tests.claims.test_appeals import CNOPS_AGENT, CNSS_AGENT, DOCTOR, _seed, secure_app, signing_key  # noqa: F401
from tests.claims.test_review import params


async def _claim(client, answer: dict) -> dict:
    resp = await client.get(f"/{answer['request']['reference']}")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_a_sheet_without_insurer_is_stored_with_the_fund_it_was_routed_to(client, app):
    cnops, cnss = await b.fund(client, "CNOPS"), await b.fund(client, "CNSS")
    doc, pat = await b.practitioner(client), await b.patient(client)
    # the patient left CNOPS for CNSS 10 days ago; the sheet still names the old coverage
    old = await b.coverage(client, pat["id"], cnops["id"], start=b.days_ago(900), end=b.days_ago(11))
    await b.coverage(client, pat["id"], cnss["id"], start=b.days_ago(10))
    resp = await client.post("/Claim", json=b.claim(pat["id"], old["id"], [b.act("C", 80, b.days_ago(2))], provider=b.provider_ref(doc)))
    assert resp.status_code == 201, resp.text
    assert (await _claim(client, resp.json()))["insurer"] == {"reference": f"Organization/{cnss['id']}"}

    # naming the routed fund, by reference or by its fund identifier, is accepted and completed
    named = b.claim(pat["id"], old["id"], [b.act("C", 80, b.days_ago(3))], provider=b.provider_ref(doc))
    named["insurer"] = {"identifier": {"system": FUND, "value": "CNSS"}, "display": "CNSS"}
    stored = await _claim(client, (await client.post("/Claim", json=named)).json())
    assert stored["insurer"] == {"reference": f"Organization/{cnss['id']}", "identifier": {"system": FUND, "value": "CNSS"},
                                 "display": "CNSS"}

    # naming another fund than the one covering the date of care is refused, and nothing is written
    async with app.state.engine.connect() as conn:
        before = (await conn.execute(select(func.count()).select_from(claim_ledger))).scalar_one()
    # (a Patient is no insurer at all: Claim.insurer is a Reference(Organization) in FHIR)
    for wrong, where in (({"reference": f"Organization/{cnops['id']}"}, "Claim.insurer"),
                         ({"identifier": {"system": FUND, "value": "CNOPS"}}, "Claim.insurer"),
                         ({"reference": f"Patient/{pat['id']}"}, "Claim.insurer.reference")):
        sheet = b.claim(pat["id"], old["id"], [b.act("C", 80, b.days_ago(4))], provider=b.provider_ref(doc))
        sheet["insurer"] = wrong
        resp = await client.post("/Claim", json=sheet)
        assert resp.status_code == 422, resp.text
        assert resp.json()["issue"][0]["expression"] == [where]
    async with app.state.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(claim_ledger))).scalar_one() == before


async def test_every_way_in_records_the_fund(client, app):
    cnss = await b.fund(client, "CNSS")
    doc, pat = await b.practitioner(client), await b.patient(client)
    cov = await b.coverage(client, pat["id"], cnss["id"])

    def sheet(days: int, **kw) -> dict:
        return b.claim(pat["id"], cov["id"], [b.act("C", 80, b.days_ago(days))], provider=b.provider_ref(doc), **kw)

    wrong = sheet(2)
    wrong["insurer"] = {"reference": "Organization/elsewhere"}
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": r, "request": {"method": "POST", "url": "Claim"}} for r in (sheet(1), wrong)
    ]}
    resp = await client.post("", json=batch)
    assert resp.status_code == 200, resp.text
    first, refused = resp.json()["entry"]
    assert refused["response"]["status"].startswith("422")
    assert refused["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[1].resource.insurer"]
    created = await client.get(f"/{first['response']['location'].split('/_history')[0]}")
    assert (await _claim(client, created.json()))["insurer"]["reference"] == f"Organization/{cnss['id']}"

    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": sheet(3), "request": {"method": "POST", "url": "Claim"}}]}
    resp = await client.post("", json=transaction)
    assert resp.status_code == 200, resp.text
    answer = (await client.get(f"/{resp.json()['entry'][0]['response']['location'].split('/_history')[0]}")).json()
    original = await _claim(client, answer)
    assert original["insurer"]["reference"] == f"Organization/{cnss['id']}"

    # a correction is a new sheet: routed and recorded like any other
    correction = sheet(3, number="FSE-FUND-CORR")
    correction["related"] = [{"claim": {"reference": f"Claim/{original['id']}"}, "relationship": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship", "code": "prior"}]}}]
    resp = await client.post("/Claim", json=correction)
    assert resp.status_code == 201, resp.text
    assert (await _claim(client, resp.json()))["insurer"]["reference"] == f"Organization/{cnss['id']}"


# --- with tokens: the fund's own agent ------------------------------------------------------------


async def test_the_funds_agent_reads_questions_and_decides_a_sheet_sent_without_insurer(secure_app):
    callers = await _seed(secure_app)
    sheet = b.claim("pa", "cov-a", [b.act("KC3053", 6300, b.days_ago(2))],  # above the threshold: an agent decides
                    provider={"reference": "Practitioner/d1", "identifier": {"system": INPE, "value": "101234567"}})
    async with callers.client(DOCTOR) as doctor:
        resp = await doctor.post("/Claim", json=sheet)
        assert resp.status_code == 201, resp.text
        queued = resp.json()
        claim_id = queued["request"]["reference"].split("/")[1]
        attachment = await doctor.post("/DocumentReference", json={
            "resourceType": "DocumentReference", "status": "current", "subject": {"reference": "Patient/pa"},
            "context": {"related": [{"reference": f"Claim/{claim_id}"}]},
            "content": [{"attachment": {"contentType": "application/pdf", "title": "Compte rendu opératoire"}}]})
        assert attachment.status_code == 201, attachment.text
    await Worker(secure_app.state.engine, base_url=secure_app.state.security.settings.base_url, name="test-worker").run_once()

    async with callers.client(CNOPS_AGENT) as other_fund:  # neither read nor decided by another fund: 404
        for url in (f"/Claim/{claim_id}", f"/ClaimResponse/{queued['id']}", f"/DocumentReference/{attachment.json()['id']}"):
            assert (await other_fund.get(url)).status_code == 404, url
        assert (await other_fund.get("/Claim", params={"_id": claim_id})).json().get("total", 0) == 0
        for op in ("$request-info", "$decide"):
            resp = await other_fund.post(f"/Claim/{claim_id}/{op}", json=params(note="x", message="x"))
            assert resp.status_code == 404, (op, resp.text)

    async with callers.client(CNSS_AGENT) as agent:
        claim = await agent.get(f"/Claim/{claim_id}")
        assert claim.status_code == 200 and claim.json()["insurer"] == {"reference": "Organization/cnss"}
        assert (await agent.get(f"/ClaimResponse/{queued['id']}")).json()["outcome"] == "queued"
        assert (await agent.get(f"/DocumentReference/{attachment.json()['id']}")).status_code == 200
        found = (await agent.get("/Claim", params={"insurer": "Organization/cnss", "patient": "Patient/pa"})).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [claim_id]
        queue = (await agent.get("/Claim/$review-queue")).json()
        assert f"Claim/{claim_id}" in {e["resource"]["focus"]["reference"] for e in queue["entry"] if e["resource"]["resourceType"] == "Task"}
        asked = await agent.post(f"/Claim/{claim_id}/$request-info", json=params(message="Merci de joindre le devis signé"))
        assert asked.status_code in (200, 201), asked.text
        resp = await agent.post(f"/Claim/{claim_id}/$decide", json=params(note="Acte justifié par le compte rendu"))
        assert resp.status_code == 200, resp.text
        decided = resp.json()
        assert decided["outcome"] == "complete" and decided["insurer"] == {"reference": "Organization/cnss"}
        async with secure_app.state.engine.connect() as conn:
            eob_id = (await conn.execute(select(claim_ledger.c.eob_id).where(claim_ledger.c.claim_id == claim_id))).scalar_one()
        assert (await agent.get(f"/ExplanationOfBenefit/{eob_id}")).status_code == 200
    async with callers.client(CNOPS_AGENT) as other_fund:
        assert (await other_fund.get(f"/ExplanationOfBenefit/{eob_id}")).status_code == 404

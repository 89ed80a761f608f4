"""Submitting care sheets: business validation, idempotency, routing, the queued answer."""
from __future__ import annotations

from sqlalchemy import select

from claims.tables import claim_job, claim_ledger
from claims.uris import EXT_DEADLINE, INPE
from ehr.parsing import check_structure
from tests.claims import builders as b


async def _world(client, code="CNSS"):
    fund = await b.fund(client, code)
    doc = await b.practitioner(client)
    pat = await b.patient(client)
    cov = await b.coverage(client, pat["id"], fund["id"])
    return fund, doc, pat, cov


async def test_submission_answers_queued_response_with_deadline(client, app):
    fund, doc, pat, cov = await _world(client)
    sheet = b.claim(pat["id"], cov["id"], [b.act("C", 80, b.days_ago(1))], provider=b.provider_ref(doc))
    resp = await client.post("/Claim", json=sheet)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["resourceType"] == "ClaimResponse"
    assert body["outcome"] == "queued"
    assert body["insurer"]["reference"] == f"Organization/{fund['id']}"
    deadline = next(e["valueDateTime"] for e in body["extension"] if e["url"] == EXT_DEADLINE)
    assert deadline.endswith("Z")
    assert resp.headers["location"].split("/fhir/")[1].startswith(f"ClaimResponse/{body['id']}/_history/1")
    # the claim itself is stored and readable
    claim_id = body["request"]["reference"].split("/")[1]
    assert (await client.get(f"/Claim/{claim_id}")).status_code == 200
    async with app.state.engine.connect() as conn:
        row = (await conn.execute(select(claim_ledger))).one()
        job = (await conn.execute(select(claim_job))).one()
    assert row.status == "queued" and row.fund_code == "CNSS" and row.provider_inpe == "101234567"
    assert row.due_at - row.received_at == 48 * 3600 * 1_000_000
    assert job.ledger_id == row.id and job.priority == row.due_at


async def test_business_rules_each_reported_with_its_expression(client, app):
    fund, doc, pat, cov = await _world(client)
    item = b.act("C", 80, b.days_ago(1))
    item["unitPrice"]["currency"] = "EUR"
    future = b.act("CS", 150, b.days_ago(-3))
    sheet = b.claim(pat["id"], cov["id"], [item, future], provider=b.provider_ref(doc))
    del sheet["identifier"]
    sheet["total"]["value"] = 1
    resp = await client.post("/Claim", json=sheet)
    assert resp.status_code == 422, resp.text
    found = {e for i in resp.json()["issue"] for e in i.get("expression", [])}
    assert {"Claim.identifier", "Claim.item[0].unitPrice.currency", "Claim.item[1].servicedDate"} <= found
    # nothing was stored: no ledger row, no claim
    async with app.state.engine.connect() as conn:
        assert (await conn.execute(select(claim_ledger))).first() is None


async def test_references_must_resolve_and_coverage_must_be_the_patients(client):
    fund, doc, pat, cov = await _world(client)
    other = await b.patient(client, cin="BK654321")
    sheet = b.claim(other["id"], cov["id"], [b.act("C", 80, b.days_ago(1))], provider=b.provider_ref(doc))
    resp = await client.post("/Claim", json=sheet)
    assert resp.status_code == 422
    assert resp.json()["issue"][0]["expression"] == ["Claim.insurance[0].coverage"]
    ghost = b.claim(pat["id"], cov["id"], [b.act("C", 80, b.days_ago(1))],
                    provider={"reference": "Practitioner/nobody"})
    resp = await client.post("/Claim", json=ghost)
    assert resp.status_code == 422 and resp.json()["issue"][0]["expression"] == ["Claim.provider"]
    anonymous = b.claim(pat["id"], cov["id"], [b.act("C", 80, b.days_ago(1))], provider={"display": "Dr X"})
    resp = await client.post("/Claim", json=anonymous)
    assert resp.status_code == 422 and "INPE" in resp.json()["issue"][0]["diagnostics"]


async def test_resubmission_returns_the_same_answer_never_a_second_claim(client, app):
    fund, doc, pat, cov = await _world(client)
    sheet = b.claim(pat["id"], cov["id"], [b.act("C", 80, b.days_ago(1))], provider=b.provider_ref(doc), number="FSE-2026-000777")
    first = await client.post("/Claim", json=sheet)
    again = await client.post("/Claim", json=sheet)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    async with app.state.engine.connect() as conn:
        assert len((await conn.execute(select(claim_ledger))).all()) == 1
        assert len((await conn.execute(select(claim_job))).all()) == 1
    # the same number for other lines is a conflict, not a silent overwrite
    changed = b.claim(pat["id"], cov["id"], [b.act("CS", 150, b.days_ago(1))], provider=b.provider_ref(doc), number="FSE-2026-000777")
    resp = await client.post("/Claim", json=changed)
    assert resp.status_code == 409 and resp.json()["issue"][0]["expression"] == ["Claim.identifier"]


async def test_routed_to_the_fund_covering_the_service_date(client, app):
    cnops = await b.fund(client, "CNOPS")
    cnss = await b.fund(client, "CNSS")
    doc = await b.practitioner(client)
    pat = await b.patient(client)
    # the patient left CNOPS for CNSS 10 days ago; the sheet still names the old coverage
    old = await b.coverage(client, pat["id"], cnops["id"], start=b.days_ago(900), end=b.days_ago(11))
    await b.coverage(client, pat["id"], cnss["id"], start=b.days_ago(10))
    resp = await client.post("/Claim", json=b.claim(pat["id"], old["id"], [b.act("C", 80, b.days_ago(2))], provider=b.provider_ref(doc)))
    assert resp.status_code == 201
    assert resp.json()["insurer"]["reference"] == f"Organization/{cnss['id']}"
    # care before the change goes to CNOPS
    resp = await client.post("/Claim", json=b.claim(pat["id"], old["id"], [b.act("C", 80, b.days_ago(20))], provider=b.provider_ref(doc)))
    assert resp.json()["insurer"]["reference"] == f"Organization/{cnops['id']}"


async def test_submit_operation_takes_a_bundle_with_the_referenced_resources(client, app):
    fund = await b.fund(client, "CNSS")
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001", "resource": {
                "resourceType": "Patient", "identifier": [{"system": "https://fhir.sijill.ma/sid/cin", "value": "BJ445566"}],
                "name": [{"family": "Idrissi", "given": ["Youssef"]}], "birthDate": "1975-01-01"}},
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002", "resource": {
                "resourceType": "Practitioner", "identifier": [{"system": INPE, "value": "101777777"}], "active": True}},
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000003", "resource": {
                "resourceType": "Coverage", "status": "active",
                "identifier": [{"system": "https://fhir.sijill.ma/sid/cnss", "value": "112345678"}],
                "beneficiary": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"},
                "payor": [{"reference": f"Organization/{fund['id']}"}], "period": {"start": "2020-01-01"}}},
        ],
    }
    sheet = b.claim("x", "y", [b.act("C", 80, b.days_ago(1))],
                    provider={"reference": "urn:uuid:00000000-0000-4000-8000-000000000002"}, number="FSE-2026-100001")
    sheet["patient"] = {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"}
    sheet["insurance"][0]["coverage"] = {"reference": "urn:uuid:00000000-0000-4000-8000-000000000003"}
    bundle["entry"].append({"resource": sheet})
    resp = await client.post("/Claim/$submit", json=bundle)
    assert resp.status_code == 201, resp.text
    assert resp.json()["resourceType"] == "ClaimResponse" and resp.json()["outcome"] == "queued"
    assert "/ClaimResponse/" in resp.headers["location"]
    again = await client.post("/Claim/$submit", json=bundle)
    assert again.status_code == 200 and again.json()["id"] == resp.json()["id"]
    patients = await client.get("/Patient", params={"identifier": "https://fhir.sijill.ma/sid/cin|BJ445566"})
    assert patients.json().get("total") == 1


async def test_eligibility_answers_fund_regime_dependants_and_exemptions(client):
    fund, doc, pat, cov = await _world(client)
    await client.delete(f"/Coverage/{cov['id']}")
    cov = await b.coverage(client, pat["id"], fund["id"], ald=["ALD09"], regime="salaries")
    child = await b.patient(client, cin="BK000777", birth="2019-05-05")
    await b.coverage(client, child["id"], fund["id"], subscriber_id=pat["id"], relationship="child")
    req = {
        "resourceType": "CoverageEligibilityRequest", "status": "active", "purpose": ["validation", "benefits"],
        "patient": {"reference": f"Patient/{pat['id']}"}, "created": b.today().isoformat(),
        "servicedDate": b.today().isoformat(), "insurer": {"reference": f"Organization/{fund['id']}"},
    }
    resp = await client.post("/CoverageEligibilityRequest", json=req)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["resourceType"] == "CoverageEligibilityResponse" and body["outcome"] == "complete"
    check_structure(body, "CoverageEligibilityResponse")
    ins = body["insurance"][0]
    assert ins["inforce"] is True and ins["coverage"]["reference"] == f"Coverage/{cov['id']}"
    ext = {e["url"].rsplit("/", 1)[1]: e for e in ins["extension"]}
    assert ext["amo-regime"]["valueCoding"]["code"] == "salaries"
    assert ext["coverage-dependant"]["valueReference"]["reference"] == f"Patient/{child['id']}"
    items = {i["category"]["coding"][0]["code"]: i for i in ins["item"]}
    assert items["ambulatory"]["benefit"][0]["allowedUnsignedInt"] == 30
    assert items["ALD09"]["benefit"][0]["allowedUnsignedInt"] == 0 and "Diabète" in items["ALD09"]["name"]
    assert items["hospital"]["authorizationRequired"] is True
    assert items["pharmacy"]["extension"][0]["valueBoolean"] is True  # tiers payant
    # a lapsed coverage answers "not in force"
    req["servicedDate"] = "2019-06-01"
    lapsed = (await client.post("/CoverageEligibilityRequest", json=req)).json()
    assert lapsed["insurance"][0]["inforce"] is False and "Aucune couverture" in lapsed["disposition"]

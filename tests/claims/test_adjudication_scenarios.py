"""End-to-end scenarios: a provider submits, the worker decides, the provider reads the answer."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from claims.caresheet import today
from claims.tables import claim_decision_line, claim_job, claim_ledger
from claims.uris import ATC, EXT_RULESET, MEDICINE
from claims.worker import Worker
from tests.claims import builders as b


async def drain(app, settings) -> int:
    worker = Worker(app.state.engine, base_url=settings.base_url, name="test-worker")
    total = 0
    while n := await worker.run_once():
        total += n
    return total


async def submit(client, sheet) -> dict:
    resp = await client.post("/Claim", json=sheet)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def decided(client, queued: dict) -> dict:
    resp = await client.get(f"/ClaimResponse/{queued['id']}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["outcome"] == "complete", body
    return body


def reasons(item: dict) -> str | None:
    benefit = b.adjudication(item, "benefit")
    return benefit["reason"]["coding"][0]["code"] if "reason" in benefit else None


class World:
    async def build(self, client, fund_code="CNSS", **cov):
        self.fund = await b.fund(client, fund_code)
        self.doctor = await b.practitioner(client, "101234567")
        self.patient = await b.patient(client)
        self.coverage = await b.coverage(client, self.patient["id"], self.fund["id"], **cov)
        return self

    def sheet(self, items, **kw):
        kw.setdefault("provider", b.provider_ref(self.doctor))
        return b.claim(self.patient["id"], self.coverage["id"], items, **kw)


async def test_ambulatory_consultation_paid_at_70_percent_of_tnr(client, app, settings):
    w = await World().build(client)
    # the GP asks 100 MAD; the TNR is 80: the fund pays 70 % of 80
    queued = await submit(client, w.sheet([b.act("C", 100, b.days_ago(1))]))
    assert await drain(app, settings) == 1
    answer = await decided(client, queued)
    item = answer["item"][0]
    assert b.amount(item, "submitted") == 100
    assert b.amount(item, "eligible") == 80
    assert b.amount(item, "benefit") == 56
    assert b.amount(item, "copay") == 24  # ticket modérateur
    assert b.adjudication(item, "eligpercent")["value"] == 70
    assert reasons(item) == "above-tariff"
    assert b.amount(item, "patient-share") == 44
    assert "partiellement" not in answer["disposition"] and "accordée" in answer["disposition"]
    assert any(e["url"] == EXT_RULESET and e["valueString"] == "cnss-2025.1" for e in answer["extension"])
    assert answer["payeeType"]["coding"][0]["code"] == "subscriber"  # reimbursed to the insured
    # the patient's explanation of benefit says the same
    async with app.state.engine.connect() as conn:
        row = (await conn.execute(select(claim_ledger))).one()
        jobs = (await conn.execute(select(func.count()).select_from(claim_job))).scalar_one()
    assert row.status == "decided" and row.benefit_cents == 5600 and row.outcome == "approved" and jobs == 0
    eob = (await client.get(f"/ExplanationOfBenefit/{row.eob_id}")).json()
    assert eob["patient"]["reference"] == f"Patient/{w.patient['id']}"
    assert b.amount(eob["item"][0], "benefit") == 56


async def test_ald_patient_paid_in_full_for_linked_acts_only(client, app, settings):
    w = await World().build(client, ald=["ALD09"])  # diabetes
    sheet = w.sheet(
        [b.act("CS", 150, b.days_ago(2), diagnosis=[1]), b.act("B1013", 66, b.days_ago(2))],  # and an HbA1c
        diagnoses=["E11.9"],
    )
    queued = await submit(client, sheet)
    await drain(app, settings)
    answer = await decided(client, queued)
    diabetes, lab = answer["item"]
    assert b.amount(diabetes, "benefit") == 150 and b.adjudication(diabetes, "eligpercent")["value"] == 100
    assert b.amount(lab, "benefit") == 46.2  # 70 % of 66: not linked to the ALD
    assert answer["payeeType"]["coding"][0]["code"] == "provider"  # ALD care: tiers payant


async def test_dependant_child_covered_through_parent(client, app, settings):
    w = await World().build(client)
    child = await b.patient(client, cin=None or "BK999001", birth=(today() - timedelta(days=6 * 365)).isoformat())
    cov = await b.coverage(client, child["id"], w.fund["id"], subscriber_id=w.patient["id"], relationship="child")
    sheet = b.claim(child["id"], cov["id"], [b.act("CS", 150, b.days_ago(1))], provider=b.provider_ref(w.doctor))
    queued = await submit(client, sheet)
    await drain(app, settings)
    answer = await decided(client, queued)
    assert b.amount(answer["item"][0], "benefit") == 105


async def test_expired_coverage_rejected(client, app, settings):
    w = await World().build(client, start=b.days_ago(400), end=b.days_ago(30))
    queued = await submit(client, w.sheet([b.act("C", 80, b.days_ago(1))]))
    await drain(app, settings)
    answer = await decided(client, queued)
    item = answer["item"][0]
    assert b.amount(item, "benefit") == 0 and reasons(item) == "not-covered"
    assert "refusée" in answer["disposition"]
    notes = {n["language"]["coding"][0]["code"]: n["text"] for n in answer["processNote"]}
    assert "couverture" in notes["fr"] and notes["ar"]


async def test_unknown_provider_rejected(client, app, settings):
    w = await World().build(client)
    stranger = {"identifier": {"system": "https://fhir.sijill.ma/sid/inpe", "value": "109999999"}}
    queued = await submit(client, w.sheet([b.act("C", 80, b.days_ago(1))], provider=stranger))
    await drain(app, settings)
    answer = await decided(client, queued)
    assert reasons(answer["item"][0]) == "provider-unknown"
    assert b.amount(answer["item"][0], "benefit") == 0


async def test_duplicate_of_a_paid_act_rejected(client, app, settings):
    w = await World().build(client)
    day = b.days_ago(3)
    first = await submit(client, w.sheet([b.act("C", 80, day)]))
    await drain(app, settings)
    # the same consultation sent again under another sheet number
    again = await submit(client, w.sheet([b.act("C", 80, day)]))
    await drain(app, settings)
    assert b.amount((await decided(client, first))["item"][0], "benefit") == 56
    second = await decided(client, again)
    assert reasons(second["item"][0]) == "duplicate" and b.amount(second["item"][0], "benefit") == 0


async def test_duplicates_in_one_batch_are_caught(client, app, settings):
    w = await World().build(client)
    day = b.days_ago(3)
    one = await submit(client, w.sheet([b.act("C", 80, day)]))
    two = await submit(client, w.sheet([b.act("C", 80, day)]))
    assert await drain(app, settings) == 2
    benefits = sorted([b.amount((await decided(client, r))["item"][0], "benefit") for r in (one, two)])
    assert benefits == [0, 56]


async def test_frequency_limit_one_consultation_a_day(client, app, settings):
    w = await World().build(client)
    other = await b.practitioner(client, "101234568")
    day = b.days_ago(2)
    await submit(client, w.sheet([b.act("C", 80, day)]))
    await drain(app, settings)
    queued = await submit(client, w.sheet([b.act("CS", 150, day)], provider=b.provider_ref(other)))
    await drain(app, settings)
    answer = await decided(client, queued)
    assert reasons(answer["item"][0]) == "frequency-limit"


async def test_hospital_stay_needs_preauthorization(client, app, settings):
    w = await World().build(client)
    clinic = await b.facility(client, "201234567")
    stay = [b.act("FH6001", 550, b.days_ago(2), quantity=3)]
    no_pa = await submit(client, w.sheet(stay, provider=b.provider_ref(clinic), kind="institutional", documents=["discharge"]))
    await drain(app, settings)
    answer = await decided(client, no_pa)
    assert reasons(answer["item"][0]) == "preauth-missing"

    # the clinic asks first: the fund answers with an authorisation number and its validity
    request = w.sheet([b.act("FH6001", 550, today(), quantity=3)], provider=b.provider_ref(clinic),
                      kind="institutional", use="preauthorization", documents=["discharge"])
    pa = await submit(client, request)
    await drain(app, settings)
    granted = await decided(client, pa)
    ref = granted["preAuthRef"]
    assert ref.startswith("PA-CNSS-") and granted["preAuthPeriod"]["start"] == today().isoformat()

    stay = [b.act("FH6001", 550, today(), quantity=3)]
    queued = await submit(client, w.sheet(stay, provider=b.provider_ref(clinic), kind="institutional",
                                          documents=["discharge"], preauth=[ref]))
    await drain(app, settings)
    paid = await decided(client, queued)
    assert b.amount(paid["item"][0], "benefit") == 1485  # 90 % of 3 days at 550 in a private clinic
    assert paid["payeeType"]["coding"][0]["code"] == "provider"

    wrong = await submit(client, w.sheet(stay, provider=b.provider_ref(clinic), kind="institutional",
                                         documents=["discharge"], preauth=["PA-CNSS-99999999"]))
    await drain(app, settings)
    assert reasons((await decided(client, wrong))["item"][0]) == "preauth-invalid"


async def test_late_submission_penalised_or_rejected_per_fund_rule(client, app, settings):
    cnss = await World().build(client)
    queued = await submit(client, cnss.sheet([b.act("C", 80, b.days_ago(75))]))
    cnops_fund = await b.fund(client, "CNOPS")
    cnops_cov = await b.coverage(client, cnss.patient["id"], cnops_fund["id"], start=b.days_ago(3000), end=b.days_ago(70))
    late = await submit(client, b.claim(cnss.patient["id"], cnops_cov["id"], [b.act("CS", 150, b.days_ago(80))],
                                        provider=b.provider_ref(cnss.doctor)))
    await drain(app, settings)
    penalised = (await decided(client, queued))["item"][0]
    assert reasons(penalised) == "late-penalty"
    assert b.amount(penalised, "benefit") == 44.8  # 56 less the 20 % penalty
    rejected = (await decided(client, late))["item"][0]
    assert reasons(rejected) == "late-rejected" and b.amount(rejected, "benefit") == 0


async def test_pharmacy_sheet_paid_against_prescription_and_dispense(client, app, settings):
    w = await World().build(client)
    pharmacy = await b.facility(client, "301234567", kind="pharmacie")
    day = b.days_ago(1)
    # prescribed by substance (ATC), dispensed as a pack (EAN-13: Clamoxyl 1 g, box of 12)
    med = {"coding": [{"system": ATC, "code": "J01CA04", "display": "amoxicillin"}]}
    pack = {"coding": [{"system": MEDICINE, "code": "6118001010363"}, {"system": ATC, "code": "J01CA04"}]}
    rx = await b.create(client, {
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "medicationCodeableConcept": med, "subject": {"reference": f"Patient/{w.patient['id']}"},
        "authoredOn": day.isoformat(), "requester": {"reference": f"Practitioner/{w.doctor['id']}"},
        "dispenseRequest": {"quantity": {"value": 2}},
    })
    await b.create(client, {
        "resourceType": "MedicationDispense", "status": "completed", "medicationCodeableConcept": pack,
        "subject": {"reference": f"Patient/{w.patient['id']}"},
        "authorizingPrescription": [{"reference": f"MedicationRequest/{rx['id']}"}],
        "quantity": {"value": 2}, "whenHandedOver": f"{day.isoformat()}T10:00:00Z",
    })
    sheet = w.sheet(
        [b.medicine("6118001010363", 56.80, day, boxes=2), b.medicine("6118001000746", 13.90, day),
         b.medicine("6118001004812", 26.00, day)],
        provider=b.provider_ref(pharmacy), kind="pharmacy", prescription=rx["id"],
    )
    queued = await submit(client, sheet)
    await drain(app, settings)
    answer = await decided(client, queued)
    amox, paracetamol, ibuprofen = answer["item"]
    assert b.amount(amox, "eligible") == 84.6  # 2 boxes at the 42.30 reimbursement base
    assert b.amount(amox, "benefit") == 59.22
    assert reasons(paracetamol) == "prescription-unmatched"  # never prescribed nor dispensed
    assert reasons(ibuprofen) == "not-in-basket"  # not reimbursable
    assert "partiellement" in answer["disposition"]
    assert answer["payeeType"]["coding"][0]["code"] == "provider"  # pharmacy: tiers payant
    async with app.state.engine.connect() as conn:
        lines = (await conn.execute(select(claim_decision_line).order_by(claim_decision_line.c.sequence))).all()
    assert [ln.benefit_cents for ln in lines] == [5922, 0, 0]

"""Corrected resubmissions: a new sheet replaces one already received, decided against it."""
from __future__ import annotations

from sqlalchemy import func, select

from claims.caresheet import today
from claims.payment import pay_day
from claims.tables import claim_job, claim_ledger, claim_payment
from claims.uris import CLAIM_NUMBER, EXT_SUPERSEDED_BY, RELATED_CLAIM_RELATIONSHIP
from ehr.parsing import check_structure
from tests.claims import builders as b
from tests.claims.test_adjudication_scenarios import World, decided, drain, reasons, submit
from tests.claims.test_review import line, params

TZ = "Africa/Casablanca"


def correcting(sheet: dict, original: dict) -> dict:
    """``sheet`` as the correction of the claim ``original`` answered (its queued ClaimResponse)."""
    sheet["related"] = [{
        "claim": {"reference": original["request"]["reference"]},
        "relationship": {"coding": [{"system": RELATED_CLAIM_RELATIONSHIP, "code": "prior"}]},
    }]
    return sheet


def claim_id(answer: dict) -> str:
    return answer["request"]["reference"].split("/")[1]


async def ledger_of(app, answer: dict):
    async with app.state.engine.connect() as conn:
        return (await conn.execute(select(claim_ledger).where(claim_ledger.c.response_id == answer["id"]))).one()


async def pay(app, settings):
    return await pay_day(app.state.engine, today(), base_url=settings.base_url, tz=TZ)


async def paid_cents(app, *answers) -> int:
    """What was paid in all for these claims (every payment, difference and recovery)."""
    ids = [(await ledger_of(app, a)).id for a in answers]
    async with app.state.engine.connect() as conn:
        return (await conn.execute(select(func.coalesce(func.sum(claim_payment.c.amount_cents), 0))
                                   .where(claim_payment.c.ledger_id.in_(ids)))).scalar_one()


async def check_reconciliations(client, summary) -> list[dict]:
    """Every reconciliation of the run is valid FHIR and its details add up to its total, to the centime."""
    out = []
    for rec_id, _, _, n, total in summary.reconciliations:
        rec = (await client.get(f"/PaymentReconciliation/{rec_id}")).json()
        check_structure(rec, "PaymentReconciliation")
        assert len(rec["detail"]) == n
        assert round(sum(d["amount"]["value"] for d in rec["detail"]) * 100) == total == round(rec["paymentAmount"]["value"] * 100)
        out.append(rec)
    return out


async def _decided_then_corrected(client, app, settings, first: list, second: list, *, paid_first: bool):
    w = await World().build(client)
    original = await submit(client, w.sheet(first))
    await drain(app, settings)
    if paid_first:
        await pay(app, settings)
    correction = await submit(client, correcting(w.sheet(second), original))
    assert await drain(app, settings) == 1
    return w, original, correction


async def test_a_decided_claim_is_replaced_by_its_correction_whose_lines_are_not_duplicates_of_it(client, app, settings):
    day = b.days_ago(2)
    # coded as a GP consultation; it was a specialist's: one consultation a day, so the original's
    # line would make the correction's a frequency-limit rejection if it still counted
    w, original, correction = await _decided_then_corrected(
        client, app, settings, [b.act("C", 80, day)], [b.act("CS", 150, day)], paid_first=False)
    answer = await decided(client, correction)
    assert b.amount(answer["item"][0], "benefit") == 105 and reasons(answer["item"][0]) is None
    old = await ledger_of(app, original)
    new = await ledger_of(app, correction)
    assert old.status == "superseded" and new.status == "decided" and new.corrects_id == old.id
    # the original's answer says it was replaced, and by what (a new version: its history keeps the decision)
    replaced = (await client.get(f"/ClaimResponse/{original['id']}")).json()
    assert replaced["status"] == "cancelled" and replaced["meta"]["versionId"] == "3"
    check_structure(replaced, "ClaimResponse")
    ext = next(e for e in replaced["extension"] if e["url"] == EXT_SUPERSEDED_BY)
    parts = {p["url"]: p["valueReference"]["reference"] for p in ext["extension"]}
    assert parts == {"claim": correction["request"]["reference"], "response": f"ClaimResponse/{correction['id']}"}
    assert f"n° {new.claim_identifier}" in replaced["disposition"]
    was = (await client.get(f"/ClaimResponse/{original['id']}/_history/2")).json()
    assert b.amount(was["item"][0], "benefit") == 56
    eob = (await client.get(f"/ExplanationOfBenefit/{old.eob_id}")).json()
    assert eob["status"] == "cancelled"
    # another sheet of the same consultation is still a duplicate: of the correction, not of the original
    again = await submit(client, w.sheet([b.act("CS", 150, day)]))
    await drain(app, settings)
    assert reasons((await decided(client, again))["item"][0]) == "duplicate"


async def test_higher_correction_before_payment_only_the_correction_is_paid(client, app, settings):
    day = b.days_ago(2)
    _, original, correction = await _decided_then_corrected(
        client, app, settings, [b.act("C", 80, day)], [b.act("CS", 150, day)], paid_first=False)
    summary = await pay(app, settings)
    (rec,) = await check_reconciliations(client, summary)
    assert summary.total_cents == 10500 and [d["amount"]["value"] for d in rec["detail"]] == [105]
    assert rec["detail"][0]["type"]["coding"][0]["code"] == "payment"
    assert await paid_cents(app, original) == 0 and await paid_cents(app, correction) == 10500


async def test_lower_correction_before_payment_only_the_correction_is_paid(client, app, settings):
    day = b.days_ago(2)
    _, original, correction = await _decided_then_corrected(
        client, app, settings, [b.act("CS", 150, day)], [b.act("C", 80, day)], paid_first=False)
    summary = await pay(app, settings)
    await check_reconciliations(client, summary)
    assert summary.total_cents == 5600
    assert await paid_cents(app, original) == 0 and await paid_cents(app, correction) == 5600
    assert (await pay(app, settings)).reconciliations == []


async def test_higher_correction_after_payment_pays_the_difference(client, app, settings):
    day = b.days_ago(2)
    _, original, correction = await _decided_then_corrected(
        client, app, settings, [b.act("C", 80, day)], [b.act("CS", 150, day)], paid_first=True)
    assert (await ledger_of(app, original)).status == "superseded"  # paid, then replaced
    summary = await pay(app, settings)
    (rec,) = await check_reconciliations(client, summary)
    (detail,) = rec["detail"]
    assert detail["amount"]["value"] == 49 and detail["type"]["coding"][0]["code"] == "adjustment"
    assert detail["predecessor"]["value"] == (await ledger_of(app, original)).claim_identifier
    assert detail["request"]["reference"] == correction["request"]["reference"]
    # what the sheet was paid in all is what its correction decided
    assert await paid_cents(app, original, correction) == 10500
    assert (await pay(app, settings)).reconciliations == []


async def test_lower_correction_after_payment_is_recovered_on_the_payees_next_reconciliation(client, app, settings):
    day = b.days_ago(2)
    w, original, correction = await _decided_then_corrected(
        client, app, settings, [b.act("CS", 150, day)], [b.act("C", 80, day)], paid_first=True)
    # 49 MAD were paid too much; the insured has nothing else to be paid today: the recovery waits
    waiting = await pay(app, settings)
    assert waiting.reconciliations == [] and (await ledger_of(app, correction)).status == "decided"
    # the insured's next reimbursement carries it as a negative detail
    later = await submit(client, w.sheet([b.act("CS", 150, b.days_ago(1))]))
    await drain(app, settings)
    summary = await pay(app, settings)
    (rec,) = await check_reconciliations(client, summary)
    amounts = sorted(d["amount"]["value"] for d in rec["detail"])
    assert amounts == [-49, 105] and summary.total_cents == 5600 == round(rec["paymentAmount"]["value"] * 100)
    assert "déduction" in rec["disposition"]
    notice = (await client.get(f"/PaymentNotice/{(await _notice_id(app, later))}")).json()
    assert notice["amount"]["value"] == 56
    assert await paid_cents(app, original, correction) == 5600  # 150 → 105 paid, 49 taken back
    assert (await ledger_of(app, correction)).status == "paid"


async def _notice_id(app, answer) -> str:
    row = await ledger_of(app, answer)
    async with app.state.engine.connect() as conn:
        return (await conn.execute(select(claim_payment.c.notice_id).where(claim_payment.c.ledger_id == row.id))).scalar_one()


async def test_a_correction_of_a_correction_chains_and_is_paid_against_all_it_replaces(client, app, settings):
    day = b.days_ago(2)
    w, original, first = await _decided_then_corrected(
        client, app, settings, [b.act("C", 80, day)], [b.act("CS", 150, day)], paid_first=True)
    await pay(app, settings)  # 56, then 49
    second = await submit(client, correcting(w.sheet([b.act("CS", 150, day), b.act("B1013", 66, day)]), first))
    await drain(app, settings)
    assert (await ledger_of(app, first)).status == "superseded"
    summary = await pay(app, settings)
    await check_reconciliations(client, summary)
    assert summary.total_cents == 4620  # the forgotten HbA1c: 70 % of 66
    assert await paid_cents(app, original, first, second) == 15120


async def test_a_queued_claim_is_withdrawn_by_its_correction(client, app, settings):
    w = await World().build(client)
    day = b.days_ago(1)
    original = await submit(client, w.sheet([b.act("C", 80, day)]))
    correction = await submit(client, correcting(w.sheet([b.act("CS", 150, day)]), original))
    old = await ledger_of(app, original)
    assert old.status == "superseded" and old.decided_at is not None
    async with app.state.engine.connect() as conn:
        jobs = (await conn.execute(select(claim_job.c.ledger_id))).scalars().all()
    assert jobs == [(await ledger_of(app, correction)).id]  # the original's job is gone
    withdrawn = (await client.get(f"/ClaimResponse/{original['id']}")).json()
    assert withdrawn["status"] == "cancelled" and withdrawn["outcome"] == "complete" and "retirée" in withdrawn["disposition"]
    check_structure(withdrawn, "ClaimResponse")
    assert await drain(app, settings) == 1
    assert b.amount((await decided(client, correction))["item"][0], "benefit") == 105
    assert (await client.get(f"/ClaimResponse/{original['id']}")).json()["meta"]["versionId"] == "2"  # never decided


async def test_a_second_correction_of_the_same_original_is_refused(client, app, settings):
    day = b.days_ago(2)
    w, original, _ = await _decided_then_corrected(
        client, app, settings, [b.act("C", 80, day)], [b.act("CS", 150, day)], paid_first=False)
    resp = await client.post("/Claim", json=correcting(w.sheet([b.act("CS", 140, day)]), original))
    assert resp.status_code == 409, resp.text
    issue = resp.json()["issue"][0]
    assert issue["expression"] == ["Claim.related[0].claim"] and "déjà été remplacée" in issue["diagnostics"]
    async with app.state.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(claim_ledger))).scalar_one() == 2


async def test_two_corrections_of_one_sheet_in_one_batch_only_the_first_is_received(client, app, settings):
    w = await World().build(client)
    day = b.days_ago(2)
    original = await submit(client, w.sheet([b.act("C", 80, day)]))
    await drain(app, settings)
    entries = [{"resource": correcting(w.sheet([b.act("CS", amount, day)]), original),
                "request": {"method": "POST", "url": "Claim"}} for amount in (150, 140)]
    resp = await client.post("", json={"resourceType": "Bundle", "type": "batch", "entry": entries})
    assert resp.status_code == 200, resp.text
    first, second = resp.json()["entry"]
    assert first["response"]["status"].startswith("201")
    assert second["response"]["status"].startswith("409")
    issue = second["response"]["outcome"]["issue"][0]
    first_number = entries[0]["resource"]["identifier"][0]["value"]
    assert issue["expression"] == ["Bundle.entry[1].resource.related[0].claim"] and f"n° {first_number}" in issue["diagnostics"]


async def test_a_correction_must_come_from_the_same_provider_for_the_same_patient(client, app, settings):
    w = await World().build(client)
    day = b.days_ago(2)
    original = await submit(client, w.sheet([b.act("C", 80, day)]))
    await drain(app, settings)
    other = await b.practitioner(client, "101234568")
    resp = await client.post("/Claim", json=correcting(w.sheet([b.act("CS", 150, day)], provider=b.provider_ref(other)), original))
    assert resp.status_code == 422 and resp.json()["issue"][0]["expression"] == ["Claim.related[0].claim"]
    assert "prestataire" in resp.json()["issue"][0]["diagnostics"]
    child = await b.patient(client, cin="BK770002", birth="2015-01-01")
    cov = await b.coverage(client, child["id"], w.fund["id"], subscriber_id=w.patient["id"], relationship="child")
    sheet = b.claim(child["id"], cov["id"], [b.act("CS", 150, day)], provider=b.provider_ref(w.doctor))
    resp = await client.post("/Claim", json=correcting(sheet, original))
    assert resp.status_code == 422 and "même patient" in resp.json()["issue"][0]["diagnostics"]
    ghost = {"request": {"reference": "Claim/never-sent"}}
    resp = await client.post("/Claim", json=correcting(w.sheet([b.act("CS", 150, day)]), ghost))
    assert resp.status_code == 422 and resp.json()["issue"][0]["code"] == "not-found"
    by_number = correcting(w.sheet([b.act("CS", 150, day)]), original)
    by_number["related"][0]["claim"] = {"identifier": {"system": CLAIM_NUMBER, "value": "FSE-TEST-000001"}}
    resp = await client.post("/Claim", json=by_number)
    assert resp.status_code == 422 and resp.json()["issue"][0]["expression"] == ["Claim.related[0].claim"]
    assert (await ledger_of(app, original)).status == "decided"  # untouched by the refusals


async def test_a_pended_correction_names_what_it_replaces_and_the_agents_decision_supersedes_it(client, app, settings):
    w = await World().build(client)
    day = b.days_ago(2)
    original = await submit(client, w.sheet([b.act("C", 80, day)]))
    await drain(app, settings)
    # the surgery was forgotten: the corrected sheet is above the review threshold
    correction = await submit(client, correcting(w.sheet([b.act("C", 80, day), b.act("KC3053", 6300, day)]), original))
    await drain(app, settings)
    assert (await ledger_of(app, original)).status == "decided"  # until the correction is decided
    queue = (await client.get("/Claim/$review-queue", params={"fund": w.fund["id"]})).json()
    task = queue["entry"][0]["resource"]
    check_structure(task, "Task")
    assert {"type": {"text": "feuille corrigée"}, "valueReference": original["request"]} in task["input"]
    # an in-review original cannot be corrected again meanwhile
    resp = await client.post("/Claim", json=correcting(w.sheet([b.act("C", 80, day)]), correction))
    assert resp.status_code == 409 and "examen" in resp.json()["issue"][0]["diagnostics"]
    resp = await client.post(f"/Claim/{claim_id(correction)}/$decide",
                             json=params(note="Acte justifié", agent="Practitioner/agent-cnss-7", line=[line(2, "accept")]))
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert b.amount(answer["item"][0], "benefit") == 56  # the original's consultation is not its own duplicate
    assert (await ledger_of(app, original)).status == "superseded"
    assert (await client.get(f"/ClaimResponse/{original['id']}")).json()["status"] == "cancelled"


async def test_a_correction_sent_in_a_transaction_keeps_the_id_its_attachment_references(client, app, settings):
    w = await World().build(client)
    day = b.days_ago(2)
    original = await submit(client, w.sheet([b.act("C", 80, day)]))
    await drain(app, settings)
    sheet = correcting(w.sheet([b.act("CS", 150, day)], documents=["attachment"]), original)
    url = "urn:uuid:7d0c8f5e-1c2b-4b4e-9f00-0000000000aa"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": url, "resource": sheet, "request": {"method": "POST", "url": "Claim"}},
        {"resource": {"resourceType": "DocumentReference", "status": "current",
                      "subject": {"reference": f"Patient/{w.patient['id']}"},
                      "context": {"related": [{"reference": url}]},
                      "content": [{"attachment": {"contentType": "application/pdf", "data": "JVBERi0="}}]},
         "request": {"method": "POST", "url": "DocumentReference"}},
    ]}
    resp = await client.post("", json=bundle)
    assert resp.status_code == 200, resp.text
    doc_location = resp.json()["entry"][1]["response"]["location"]
    doc = (await client.get("/" + doc_location.split("/_history")[0])).json()
    row = await ledger_of(app, {"id": resp.json()["entry"][0]["response"]["location"].split("/")[1]})
    assert doc["context"]["related"][0]["reference"] == f"Claim/{row.claim_id}"
    assert (await client.get(f"/Claim/{row.claim_id}")).status_code == 200
    assert row.corrects_id == (await ledger_of(app, original)).id


async def test_the_complementary_insurers_claim_follows_the_correction(client, app, settings):
    w = await World().build(client)
    mgpap = await b.fund(client, "MGPAP")
    await b.coverage(client, w.patient["id"], mgpap["id"], order=2, regime="mutuelle")
    day = b.days_ago(2)
    original = await submit(client, w.sheet([b.act("C", 80, day)]))
    assert await drain(app, settings) == 2  # AMO 56, then the mutuelle 80 % of the 24 left: 19.20
    assert (await pay(app, settings)).total_cents == 5600 + 1920
    await submit(client, correcting(w.sheet([b.act("CS", 150, day)]), original))
    assert await drain(app, settings) == 2  # AMO 105, then the mutuelle 80 % of the 45 left: 36
    async with app.state.engine.connect() as conn:
        rows = (await conn.execute(select(claim_ledger).order_by(claim_ledger.c.id))).all()
    first_amo, first_mutual, amo, mutual = rows
    assert (first_amo.status, first_mutual.status) == ("superseded", "superseded")
    assert (amo.corrects_id, mutual.corrects_id) == (first_amo.id, first_mutual.id)
    assert (await client.get(f"/ClaimResponse/{first_mutual.response_id}")).json()["status"] == "cancelled"
    summary = await pay(app, settings)
    await check_reconciliations(client, summary)
    assert sorted(cents for *_, cents in summary.reconciliations) == [1680, 4900]  # each insurer pays its difference

"""The complementary insurer's share of the ticket modérateur follows the AMO decision in force:
revised after an appeal, and recovered when a correction leaves the patient nothing to pay."""
from __future__ import annotations

from sqlalchemy import func, select

from claims.tables import claim_appeal, claim_ledger, claim_payment
from claims.worker import Worker
from ehr.parsing import check_structure
from tests.claims import builders as b
from tests.claims.test_adjudication_scenarios import World, decided, drain, submit
from tests.claims.test_appeals import appeal_params
from tests.claims.test_corrections import check_reconciliations, claim_id, correcting, pay
from tests.claims.test_review import line, params

AGENT = "Practitioner/agent-cnss-7"


async def _with_mutual(client, **cov) -> tuple[World, dict]:
    w = await World().build(client, **cov)
    mgpap = await b.fund(client, "MGPAP")
    await b.coverage(client, w.patient["id"], mgpap["id"], order=2, regime="mutuelle")
    return w, mgpap


async def _rows(app, answer: dict) -> tuple:
    """The sheet's AMO row and its complementary insurer's."""
    async with app.state.engine.connect() as conn:
        amo = (await conn.execute(select(claim_ledger).where(claim_ledger.c.response_id == answer["id"]))).one()
        mutual = (await conn.execute(select(claim_ledger).where(claim_ledger.c.parent_id == amo.id))).one()
    return amo, mutual


async def _paid_in_all(app, row) -> int:
    """What an insurer paid for one claim: its payment, and the differences paid or recovered since."""
    async with app.state.engine.connect() as conn:
        paid = (await conn.execute(select(func.coalesce(func.sum(claim_payment.c.amount_cents), 0))
                                   .where(claim_payment.c.ledger_id == row.id))).scalar_one()
        revised = (await conn.execute(select(func.coalesce(func.sum(claim_appeal.c.payable_cents), 0))
                                      .where(claim_appeal.c.ledger_id == row.id, claim_appeal.c.paid_on.is_not(None)))).scalar_one()
    return paid + revised


async def _appeal_and_decide(client, answer: dict, *lines) -> dict:
    assert (await client.post(f"/Claim/{claim_id(answer)}/$appeal", json=appeal_params(party="patient"))).status_code == 201
    resp = await client.post(f"/Claim/{claim_id(answer)}/$decide", json=params(note="Recours fondé", agent=AGENT, line=list(lines)))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_after_a_paid_appeal_the_mutuelle_decides_again_and_its_overpayment_is_recovered(client, app, settings):
    w, mgpap = await _with_mutual(client)
    # AMO 56 of the 80 MAD TNR; the mutuelle 80 % of the 24 MAD ticket modérateur: 19.20
    answer = await submit(client, w.sheet([b.act("C", 80, b.days_ago(2))]))
    assert await drain(app, settings) == 2
    assert (await pay(app, settings)).total_cents == 5600 + 1920
    _, mutual = await _rows(app, answer)
    first = (await client.get(f"/ClaimResponse/{mutual.response_id}")).json()
    assert b.amount(first["item"][0], "benefit") == 19.2

    # on appeal the fund takes the whole consultation: nothing is left to the patient, nor to the mutuelle
    await _appeal_and_decide(client, answer, line(1, "adjust", 80))
    amo, mutual = await _rows(app, answer)
    assert (amo.benefit_cents, mutual.benefit_cents, mutual.status) == (8000, 0, "paid")
    revised = (await client.get(f"/ClaimResponse/{mutual.response_id}")).json()
    check_structure(revised, "ClaimResponse")
    assert revised["meta"]["versionId"] == "4"  # queued, decided, paid, revised: one answer, its history the story
    assert revised["insurer"]["reference"] == f"Organization/{mgpap['id']}"
    assert b.amount(revised["item"][0], "submitted") == 0 and b.amount(revised["item"][0], "benefit") == 0
    assert "révisée après le recours" in revised["disposition"]
    eob = (await client.get(f"/ExplanationOfBenefit/{mutual.eob_id}")).json()
    assert b.amount(eob["item"][0], "benefit") == 0
    async with app.state.engine.connect() as conn:
        appeal, follow_up = (await conn.execute(select(claim_appeal).order_by(claim_appeal.c.id))).all()
    assert follow_up.follows_id == appeal.id and follow_up.ledger_id == mutual.id and follow_up.status == "closed"
    assert follow_up.contested == f"ClaimResponse/{mutual.response_id}/_history/3"  # the paid version
    assert (follow_up.before_cents, follow_up.after_cents, follow_up.payable_cents) == (1920, 0, -1920)
    # the queue shows no task for it: nobody has to decide it
    assert "entry" not in (await client.get("/Claim/$review-queue", params={"fund": mgpap["id"]})).json()

    # next run: the fund pays its 24 MAD increase; the mutuelle has nothing to pay this insured, so the 19.20 waits
    summary = await pay(app, settings)
    (rec,) = await check_reconciliations(client, summary)
    assert rec["paymentIssuer"]["reference"] == f"Organization/{w.fund['id']}"
    assert [d["amount"]["value"] for d in rec["detail"]] == [24]
    # the insured's next care: the mutuelle deducts what it paid too much
    later = await submit(client, w.sheet([b.act("CS", 150, b.days_ago(1))]))  # AMO 105, mutuelle 80 % of 45: 36
    await drain(app, settings)
    summary = await pay(app, settings)
    recs = await check_reconciliations(client, summary)
    mutual_rec = next(r for r in recs if r["paymentIssuer"]["reference"] == f"Organization/{mgpap['id']}")
    assert sorted(d["amount"]["value"] for d in mutual_rec["detail"]) == [-19.2, 36]
    assert mutual_rec["paymentAmount"]["value"] == 16.8 and "révisées" in mutual_rec["disposition"]
    assert (await pay(app, settings)).reconciliations == []  # recovered once
    amo, mutual = await _rows(app, answer)
    assert await _paid_in_all(app, amo) == 8000 and await _paid_in_all(app, mutual) == 0
    assert (await _rows(app, later))[1].status == "paid"


async def test_an_appeal_before_payment_changes_what_the_mutuelle_pays(client, app, settings):
    w, mgpap = await _with_mutual(client)
    answer = await submit(client, w.sheet([b.act("C", 80, b.days_ago(2))]))
    await drain(app, settings)
    # 70 of the 80: 10 left as ticket modérateur, of which the mutuelle pays 80 %
    await _appeal_and_decide(client, answer, line(1, "adjust", 70))
    amo, mutual = await _rows(app, answer)
    assert (amo.benefit_cents, mutual.benefit_cents, mutual.status) == (7000, 800, "decided")
    async with app.state.engine.connect() as conn:
        follow_up = (await conn.execute(select(claim_appeal).where(claim_appeal.c.follows_id.is_not(None)))).one()
    assert (follow_up.before_cents, follow_up.after_cents, follow_up.payable_cents) == (1920, 800, 0)  # not paid yet
    summary = await pay(app, settings)
    await check_reconciliations(client, summary)
    assert sorted(cents for *_, cents in summary.reconciliations) == [800, 7000]
    assert (await pay(app, settings)).reconciliations == []


async def test_an_appeal_keeping_the_amo_decision_leaves_the_mutuelle_alone(client, app, settings):
    w, _ = await _with_mutual(client)
    answer = await submit(client, w.sheet([b.act("C", 80, b.days_ago(2))]))
    await drain(app, settings)
    await _appeal_and_decide(client, answer)  # "Recours fondé" but no line changed: the decision stands
    _, mutual = await _rows(app, answer)
    assert (await client.get(f"/ClaimResponse/{mutual.response_id}")).json()["meta"]["versionId"] == "2"
    async with app.state.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(claim_appeal))).scalar_one() == 1


async def test_a_mutuelle_still_to_decide_reads_the_decision_revised_on_appeal(client, app, settings):
    w, _ = await _with_mutual(client)
    answer = await submit(client, w.sheet([b.act("C", 80, b.days_ago(2))]))
    # one batch: the AMO decision; the mutuelle's claim waits in the queue
    assert await Worker(app.state.engine, base_url=settings.base_url, name="w").run_once() == 1
    _, mutual = await _rows(app, answer)
    assert mutual.status == "queued"
    await _appeal_and_decide(client, answer, line(1, "adjust", 80))
    assert await drain(app, settings) == 1
    _, mutual = await _rows(app, answer)
    assert (mutual.status, mutual.benefit_cents) == ("decided", 0)
    async with app.state.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(claim_appeal))).scalar_one() == 1  # nothing to revise


async def test_a_correction_leaving_nothing_to_pay_recovers_what_the_mutuelle_paid(client, app, settings):
    w, mgpap = await _with_mutual(client, ald=["ALD09"])
    # a diabetic's specialist visit, coded without its ALD diagnosis: 70 % (105), the mutuelle 80 % of 45 (36)
    original = await submit(client, w.sheet([b.act("CS", 150, b.days_ago(3))]))
    assert await drain(app, settings) == 2
    assert (await pay(app, settings)).total_cents == 10500 + 3600
    # corrected with its diagnosis: 100 % in ALD, paid to the doctor; the patient owes nothing
    correction = await submit(client, correcting(
        w.sheet([b.act("CS", 150, b.days_ago(3), diagnosis=[1])], diagnoses=["E11"]), original))
    assert await drain(app, settings) == 2  # the correction, then the mutuelle's claim that settles the original's
    amo, mutual = await _rows(app, correction)
    _, replaced = await _rows(app, original)
    assert (amo.benefit_cents, amo.patient_share_cents) == (15000, 0)
    assert (mutual.corrects_id, mutual.fund_code, mutual.benefit_cents, mutual.status) == (replaced.id, "MGPAP", 0, "decided")
    assert replaced.status == "superseded"
    answer = await decided(client, {"id": mutual.response_id})
    assert answer["insurer"]["reference"] == f"Organization/{mgpap['id']}" and b.amount(answer["item"][0], "benefit") == 0
    assert (await client.get(f"/ClaimResponse/{replaced.response_id}")).json()["status"] == "cancelled"
    # the mutuelle has nothing to pay this insured today: the 36 MAD wait for its next reimbursement
    summary = await pay(app, settings)
    issuers = [r["paymentIssuer"]["reference"] for r in await check_reconciliations(client, summary)]
    assert f"Organization/{mgpap['id']}" not in issuers
    # a visit and a blood test: the mutuelle owes 36 + 15.84, less the 36 it paid too much
    await submit(client, w.sheet([b.act("CS", 150, b.days_ago(1)), b.act("B1013", 66, b.days_ago(1))]))
    await drain(app, settings)
    summary = await pay(app, settings)
    recs = await check_reconciliations(client, summary)
    mutual_rec = next(r for r in recs if r["paymentIssuer"]["reference"] == f"Organization/{mgpap['id']}")
    recovered = next(d for d in mutual_rec["detail"] if d["amount"]["value"] < 0)
    assert recovered["amount"]["value"] == -36 and recovered["type"]["coding"][0]["code"] == "adjustment"
    assert recovered["predecessor"]["value"] == replaced.claim_identifier
    assert mutual_rec["paymentAmount"]["value"] == 15.84
    # over the sheet and its correction, the mutuelle paid what the decision in force says: nothing
    assert await _paid_in_all(app, replaced) + await _paid_in_all(app, (await _rows(app, correction))[1]) == 0
    assert (await pay(app, settings)).reconciliations == []

"""After the decision: complementary insurers, daily payment to the cent, the SLA report."""
from __future__ import annotations

from rich.console import Console
from sqlalchemy import func, select, update

from claims.clock import HOUR_US, now_us
from claims.payment import pay_day
from claims.sla import print_report, sla_report
from claims.tables import claim_ledger, claim_payment
from claims.caresheet import today
from ehr.parsing import check_structure
from tests.claims import builders as b
from tests.claims.test_adjudication_scenarios import World, decided, drain, submit


async def test_complementary_insurer_pays_its_share_of_the_ticket_moderateur(client, app, settings):
    w = await World().build(client)
    mgpap = await b.fund(client, "MGPAP")
    await b.coverage(client, w.patient["id"], mgpap["id"], order=2, regime="mutuelle")
    queued = await submit(client, w.sheet([b.act("C", 80, b.days_ago(1))]))
    assert await drain(app, settings) == 2  # the AMO decision, then the complementary one
    assert b.amount((await decided(client, queued))["item"][0], "benefit") == 56
    async with app.state.engine.connect() as conn:
        rows = (await conn.execute(select(claim_ledger).order_by(claim_ledger.c.payer_rank))).all()
    assert [r.fund_code for r in rows] == ["CNSS", "MGPAP"] and rows[1].parent_id == rows[0].id
    second = (await client.get(f"/ClaimResponse/{rows[1].response_id}")).json()
    assert second["insurer"]["reference"] == f"Organization/{mgpap['id']}" and second["outcome"] == "complete"
    item = second["item"][0]
    assert b.amount(item, "eligible") == 24 and b.amount(item, "benefit") == 19.2  # 80 % of the 24 MAD left


async def test_daily_payment_reconciles_to_the_cent_and_never_pays_twice(client, app, settings):
    w = await World().build(client, ald=["ALD09"])
    child = await b.patient(client, cin="BK770001", birth="2018-02-02")
    child_cov = await b.coverage(client, child["id"], w.fund["id"], subscriber_id=w.patient["id"], relationship="child")
    pharmacy = await b.facility(client, "301234567", kind="pharmacie")
    await submit(client, w.sheet([b.act("C", 100, b.days_ago(1))]))  # reimbursed to the insured: 56
    await submit(client, w.sheet([b.act("CS", 150, b.days_ago(2), diagnosis=[1])], diagnoses=["E11"]))  # ALD: provider, 150
    await submit(client, w.sheet([b.act("CS", 150, b.days_ago(3), diagnosis=[1])], diagnoses=["E10"]))  # ALD: provider, 150
    await submit(client, b.claim(child["id"], child_cov["id"], [b.act("CS", 133.33, b.days_ago(1))],
                                 provider=b.provider_ref(w.doctor)))  # child: 93.33 to the parent
    await submit(client, w.sheet([b.medicine("6118001000746", 13.9, b.days_ago(1))], provider=b.provider_ref(pharmacy),
                                 kind="pharmacy"))  # no prescription: nothing to pay
    await drain(app, settings)
    summary = await pay_day(app.state.engine, today(), base_url=settings.base_url, tz="Africa/Casablanca")
    async with app.state.engine.connect() as conn:
        decided_total = (await conn.execute(
            select(func.sum(claim_ledger.c.benefit_cents)).where(claim_ledger.c.status == "paid"))).scalar_one()
        paid = (await conn.execute(select(claim_payment))).all()
    assert summary.total_cents == decided_total == 5600 + 15000 + 15000 + 9333
    assert len(paid) == 4
    by_payee = {payee: cents for _, _, payee, _, cents in summary.reconciliations}
    assert by_payee[f"Patient/{w.patient['id']}"] == 5600 + 9333  # the parent is reimbursed for the child too
    assert by_payee[f"Practitioner/{w.doctor['id']}"] == 30000
    for rec_id, _, _, n, cents in summary.reconciliations:
        rec = (await client.get(f"/PaymentReconciliation/{rec_id}")).json()
        check_structure(rec, "PaymentReconciliation")
        assert len(rec["detail"]) == n
        assert round(sum(d["amount"]["value"] for d in rec["detail"]) * 100) == cents == round(rec["paymentAmount"]["value"] * 100)
    notice_ids = {p.notice_id for p in paid}
    for nid in notice_ids:
        notice = (await client.get(f"/PaymentNotice/{nid}")).json()
        check_structure(notice, "PaymentNotice")
        assert notice["payment"]["reference"].startswith("PaymentReconciliation/")
    again = await pay_day(app.state.engine, today(), base_url=settings.base_url, tz="Africa/Casablanca")
    assert again.reconciliations == []


async def test_sla_report_per_fund_and_day_with_breaches(client, app, settings):
    w = await World().build(client)
    for days in (1, 2, 3):
        await submit(client, w.sheet([b.act("CS", 150, b.days_ago(days))]))
    big = await submit(client, w.sheet([b.act("KC3053", 6300, b.days_ago(4))]))  # pended for an agent
    await drain(app, settings)
    async with app.state.engine.begin() as conn:
        # one decided claim took 50 hours; the pended one is already past its deadline
        first = (await conn.execute(select(claim_ledger.c.id).where(claim_ledger.c.status == "decided").limit(1))).scalar_one()
        await conn.execute(update(claim_ledger).where(claim_ledger.c.id == first).values(
            decided_at=claim_ledger.c.received_at + 50 * HOUR_US))
        await conn.execute(update(claim_ledger).where(claim_ledger.c.response_id == big["id"]).values(due_at=now_us() - HOUR_US))
    async with app.state.engine.connect() as conn:
        (fd,) = await sla_report(conn, today(), tz="Africa/Casablanca", fund_code="CNSS")
    assert (fd.received, fd.decided, fd.within_deadline) == (4, 3, 2)
    assert fd.percentile(99) == 50.0 and fd.percentile(50) < 1
    assert sorted(b_.reason for b_ in fd.breaches) == ["backlog", "high-amount"]

    report = (await client.get(f"/Organization/{w.fund['id']}/$sla", params={"date": today().isoformat()})).json()
    assert report["resourceType"] == "MeasureReport" and report["reporter"]["reference"] == f"Organization/{w.fund['id']}"
    check_structure(report, "MeasureReport")
    groups = {g["code"]["coding"][0]["code"]: g for g in report["group"]}
    assert groups["decided-by-deadline"]["measureScore"]["value"] == 50.0
    assert groups["decision-time-p99"]["measureScore"]["value"] == 50.0
    assert groups["breaches"]["population"][0]["count"] == 2
    assert len(report["evaluatedResource"]) == 2
    console = Console(record=True, width=140)
    print_report([fd], console)
    text = console.export_text()
    assert "CNSS" in text and "50.0%" in text and "Montant élevé" in text
    bad = await client.get(f"/Organization/{w.fund['id']}/$sla", params={"date": "hier"})
    assert bad.status_code == 400

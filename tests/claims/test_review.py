"""Pended claims: the agents' queue, line-by-line decisions with who and why, the paused clock."""
from __future__ import annotations

from sqlalchemy import select, update

from claims.clock import HOUR_US, now_us
from claims.tables import claim_decision_line, claim_job, claim_ledger, claim_review_task
from claims.uris import EXT_DECIDED_BY
from claims.worker import Worker
from ehr.parsing import check_structure
from tests.claims import builders as b
from tests.claims.test_adjudication_scenarios import World, drain, reasons, submit


def params(**values) -> dict:
    out = []
    for name, value in values.items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, dict) and "part" in v:
                out.append({"name": name, "part": v["part"]})
            else:
                out.append({"name": name, "valueString": v})
    return {"resourceType": "Parameters", "parameter": out}


def line(sequence: int, decision: str, benefit: float | None = None, reason: str | None = None, note: str | None = None) -> dict:
    part = [{"name": "sequence", "valueInteger": sequence}, {"name": "decision", "valueCode": decision}]
    if benefit is not None:
        part.append({"name": "benefit", "valueMoney": {"value": benefit, "currency": "MAD"}})
    if reason:
        part.append({"name": "reason", "valueCode": reason})
    if note:
        part.append({"name": "note", "valueString": note})
    return {"part": part}


async def _pended(client, app, settings, fund="CNSS"):
    w = await World().build(client, fund_code=fund)
    # two joint replacements: 12,600 MAD, above every fund's review threshold
    sheet = w.sheet([b.act("KC3053", 6300, b.days_ago(1)), b.act("C", 80, b.days_ago(1)), b.act("KC3054", 6300, b.days_ago(1))])
    queued = await submit(client, sheet)
    await drain(app, settings)
    return w, queued, queued["request"]["reference"].split("/")[1]


async def test_high_amount_pended_then_decided_line_by_line_by_an_agent(client, app, settings):
    w, queued, claim_id = await _pended(client, app, settings)
    still = (await client.get(f"/ClaimResponse/{queued['id']}")).json()
    assert still["outcome"] == "queued" and "examen" in still["disposition"]
    async with app.state.engine.connect() as conn:
        row = (await conn.execute(select(claim_ledger))).one()
        assert row.status == "in-review"
        assert (await conn.execute(select(claim_job))).first() is None  # pended: no job left

    queue = (await client.get("/Claim/$review-queue", params={"fund": f"Organization/{w.fund['id']}"})).json()
    task = queue["entry"][0]["resource"]
    assert task["resourceType"] == "Task" and task["focus"]["reference"] == f"Claim/{claim_id}"
    check_structure(task, "Task")
    assert task["statusReason"]["coding"][0]["code"] == "high-amount"
    assert queue["entry"][1]["resource"]["resourceType"] == "Claim"

    body = params(note="Cotation excessive pour l'acte décrit", agent="Practitioner/agent-cnss-7",
                  line=[line(1, "adjust", 3000, note="Cotation KC 300 non justifiée : KC 150 retenu")])
    resp = await client.post(f"/Claim/{claim_id}/$decide", json=body)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    k, c, knee = answer["item"]
    assert b.amount(k, "benefit") == 3000 and reasons(k) == "agent-adjusted"
    assert b.amount(c, "benefit") == 56 and b.amount(knee, "benefit") == 4410  # not named: the proposal stands
    assert any(e["url"] == EXT_DECIDED_BY and e["valueString"] == "Practitioner/agent-cnss-7" for e in answer["extension"])
    async with app.state.engine.connect() as conn:
        row = (await conn.execute(select(claim_ledger))).one()
        lines = (await conn.execute(select(claim_decision_line).order_by(claim_decision_line.c.sequence))).all()
        task_row = (await conn.execute(select(claim_review_task))).one()
    assert row.status == "decided" and row.decided_by == "Practitioner/agent-cnss-7" and row.benefit_cents == 300000 + 5600 + 441000
    assert lines[0].note.startswith("Cotation KC 300") and lines[1].note == "Cotation excessive pour l'acte décrit"
    assert task_row.status == "closed" and task_row.resolution.startswith("Cotation")

    again = await client.post(f"/Claim/{claim_id}/$decide", json=body)
    assert again.status_code == 409
    gone = (await client.get("/Claim/$review-queue", params={"fund": w.fund["id"]})).json()
    assert "entry" not in gone


async def test_decide_checks_its_parameters(client, app, settings):
    _, _, claim_id = await _pended(client, app, settings)
    resp = await client.post(f"/Claim/{claim_id}/$decide", json=params(note="x", agent="Practitioner/a", line=[line(1, "adjust", 99999)]))
    assert resp.status_code == 422 and "benefit" in resp.json()["issue"][0]["expression"][0]
    resp = await client.post(f"/Claim/{claim_id}/$decide", json=params(agent="Practitioner/a"))
    assert resp.status_code == 400
    resp = await client.post(f"/Claim/{claim_id}/$decide", json=params(note="x", agent="Practitioner/a", line=[line(9, "reject")]))
    assert resp.status_code == 422


async def test_request_for_information_pauses_the_clock_only_as_the_fund_allows(client, app, settings):
    # CNOPS lets a request for information stop the clock for up to 24 hours
    w, queued, claim_id = await _pended(client, app, settings, fund="CNOPS")
    async with app.state.engine.connect() as conn:
        due_before = (await conn.execute(select(claim_ledger.c.due_at))).scalar_one()
    resp = await client.post(f"/Claim/{claim_id}/$request-info",
                             json=params(message="Merci de joindre le compte rendu opératoire", agent="Practitioner/agent-cnops-2"))
    assert resp.status_code == 201, resp.text
    request = resp.json()
    assert request["resourceType"] == "CommunicationRequest" and request["about"][0]["reference"] == f"Claim/{claim_id}"
    check_structure(request, "CommunicationRequest")
    queue = (await client.get("/Claim/$review-queue", params={"fund": w.fund["id"], "status": "waiting-info"})).json()
    assert queue["entry"][0]["resource"]["status"] == "on-hold"

    # the provider answers five hours later
    async with app.state.engine.begin() as conn:
        await conn.execute(update(claim_review_task).values(paused_at=now_us() - 5 * HOUR_US))
    answer = {
        "resourceType": "Communication", "status": "completed",
        "basedOn": [{"reference": f"CommunicationRequest/{request['id']}"}],
        "subject": {"reference": f"Patient/{w.patient['id']}"},
        "payload": [{"contentString": "Compte rendu joint"}],
    }
    assert (await client.post("/Communication", json=answer)).status_code == 201
    async with app.state.engine.connect() as conn:
        due_after = (await conn.execute(select(claim_ledger.c.due_at))).scalar_one()
        task = (await conn.execute(select(claim_review_task))).one()
    assert 5 * HOUR_US <= due_after - due_before < 5 * HOUR_US + 60 * 1_000_000
    assert task.status == "open" and task.paused_at is None

    # a second request whose answer never comes: the clock restarts after the rest of the 24 h
    await client.post(f"/Claim/{claim_id}/$request-info", json=params(message="Et la facture ?", agent="Practitioner/agent-cnops-2"))
    async with app.state.engine.begin() as conn:
        await conn.execute(update(claim_review_task).values(paused_at=now_us() - 30 * HOUR_US))
    await Worker(app.state.engine, base_url=settings.base_url).escalate()
    async with app.state.engine.connect() as conn:
        final_due = (await conn.execute(select(claim_ledger.c.due_at))).scalar_one()
        task = (await conn.execute(select(claim_review_task))).one()
    assert final_due - due_before == task.paused_total_us == 24 * HOUR_US
    assert task.paused_at is None


async def test_cnss_requests_do_not_stop_the_clock(client, app, settings):
    _, _, claim_id = await _pended(client, app, settings, fund="CNSS")
    async with app.state.engine.connect() as conn:
        due_before = (await conn.execute(select(claim_ledger.c.due_at))).scalar_one()
    resp = await client.post(f"/Claim/{claim_id}/$request-info", json=params(message="Ordonnance ?", agent="Practitioner/a"))
    assert resp.status_code == 201
    async with app.state.engine.connect() as conn:
        task = (await conn.execute(select(claim_review_task))).one()
        assert task.paused_at is None and task.status == "waiting-info"
        assert (await conn.execute(select(claim_ledger.c.due_at))).scalar_one() == due_before


async def test_escalation_flags_claims_near_their_deadline_and_moves_them_first(client, app, settings):
    w = await World().build(client)
    early = await submit(client, w.sheet([b.act("C", 80, b.days_ago(1))]))
    urgent = await submit(client, w.sheet([b.act("CS", 150, b.days_ago(2))]))
    async with app.state.engine.begin() as conn:
        await conn.execute(update(claim_ledger).where(claim_ledger.c.response_id == urgent["id"]).values(due_at=now_us() + HOUR_US))
    worker = Worker(app.state.engine, base_url=settings.base_url)
    assert await worker.escalate() == 1
    async with app.state.engine.connect() as conn:
        jobs = (await conn.execute(
            select(claim_job.c.priority, claim_ledger.c.response_id, claim_ledger.c.escalated_at)
            .join(claim_ledger, claim_ledger.c.id == claim_job.c.ledger_id).order_by(claim_job.c.priority)
        )).all()
    assert jobs[0].response_id == urgent["id"] and jobs[0].escalated_at is not None
    assert jobs[1].response_id == early["id"] and jobs[1].escalated_at is None
    assert await worker.escalate() == 0  # once only
    await drain(app, settings)
    answer = (await client.get(f"/ClaimResponse/{urgent['id']}")).json()
    assert any(e["url"].endswith("claim-escalated") for e in answer["extension"])

"""Appeals under the 48-hour clock like every claim: measured by the SLA report, paused by a
request for information as the fund allows, escalated near their deadline."""
from __future__ import annotations

from rich.console import Console
from sqlalchemy import select, update

from claims.caresheet import today
from claims.clock import HOUR_US, now_us, to_instant
from claims.sla import print_report, sla_report
from claims.tables import claim_appeal, claim_ledger
from claims.worker import Worker
from ehr.parsing import check_structure
from tests.claims import builders as b
from tests.claims.test_adjudication_scenarios import World, drain, submit
from tests.claims.test_appeals import appeal_of, appeal_params
from tests.claims.test_corrections import claim_id, ledger_of
from tests.claims.test_review import line, params

TZ = "Africa/Casablanca"
AGENT = "Practitioner/agent-7"


async def _decided_sheets(client, app, settings, w: World, days: list[int]) -> list[dict]:
    """Consultations decided by the worker, one a day (so none is another's duplicate)."""
    answers = [await submit(client, w.sheet([b.act("C", 80, b.days_ago(d))])) for d in days]
    await drain(app, settings)
    return answers


async def _appeal(client, answer: dict, party: str = "provider") -> dict:
    resp = await client.post(f"/Claim/{claim_id(answer)}/$appeal", json=appeal_params(party=party))
    assert resp.status_code == 201, resp.text
    return resp.json()


async def _appeal_row(app, answer: dict):
    ledger_id = (await ledger_of(app, answer)).id
    async with app.state.engine.connect() as conn:
        return (await conn.execute(select(claim_appeal).where(claim_appeal.c.ledger_id == ledger_id))).one()


async def _set_appeal(app, answer: dict, **values) -> None:
    ledger_id = (await ledger_of(app, answer)).id
    async with app.state.engine.begin() as conn:
        await conn.execute(update(claim_appeal).where(claim_appeal.c.ledger_id == ledger_id).values(**values))


async def _request_info(client, answer: dict, message: str = "Merci de joindre le compte rendu") -> dict:
    resp = await client.post(f"/Claim/{claim_id(answer)}/$request-info", json=params(message=message, agent=AGENT))
    assert resp.status_code == 201, resp.text
    return resp.json()


def _answer_to(request: dict, patient_id: str) -> dict:
    return {"resourceType": "Communication", "status": "completed",
            "basedOn": [{"reference": f"CommunicationRequest/{request['id']}"}],
            "subject": {"reference": f"Patient/{patient_id}"}, "payload": [{"contentString": "Pièce jointe"}]}


# --- measured ------------------------------------------------------------------------------


async def test_appeals_are_measured_per_fund_and_day_beside_the_claims(client, app, settings):
    w = await World().build(client)
    mgpap = await b.fund(client, "MGPAP")
    await b.coverage(client, w.patient["id"], mgpap["id"], order=2, regime="mutuelle")
    quick, late, forgotten, waiting = await _decided_sheets(client, app, settings, w, [1, 2, 3, 4])
    for answer in (quick, late, forgotten, waiting):
        await _appeal(client, answer)
    # decided at once — and, the AMO benefit going up, the mutuelle's decision is revised: that
    # revision follows the appeal, it is not one more appeal to measure
    resp = await client.post(f"/Claim/{claim_id(quick)}/$decide",
                             json=params(note="Recours fondé", agent=AGENT, line=[line(1, "adjust", 64)]))
    assert resp.status_code == 200, resp.text
    # decided 50 hours after it was received, 2 hours late
    assert (await client.post(f"/Claim/{claim_id(late)}/$decide",
                              json=params(note="Décision maintenue", agent=AGENT))).status_code == 200
    received = (await _appeal_row(app, late)).received_at
    await _set_appeal(app, late, closed_at=received + 50 * HOUR_US)
    # still open, past its deadline: the agents' review did not end in time
    await _set_appeal(app, forgotten, due_at=now_us() - HOUR_US)
    # past its deadline while the fund waits for the provider (CNSS: the clock does not stop)
    await _request_info(client, waiting)
    await _set_appeal(app, waiting, due_at=now_us() - 2 * HOUR_US)

    async with app.state.engine.connect() as conn:
        cnss, mutual = await sla_report(conn, today(), tz=TZ)
    assert (cnss.fund_code, mutual.fund_code) == ("CNSS", "MGPAP")
    assert (cnss.received, cnss.decided, cnss.within_deadline, cnss.breaches) == (4, 4, 4, [])  # the claims, unchanged
    appeals = cnss.appeals
    assert (appeals.received, appeals.decided, appeals.within_deadline, appeals.open_in_time) == (4, 2, 1, 0)
    assert appeals.share_within == 0.25 and appeals.percentile(99) == 50.0 and appeals.percentile(50) < 1
    assert sorted((br.reason, br.decided) for br in appeals.breaches) == [
        ("appeal", False), ("appeal", True), ("waiting-info", False)]
    assert next(br for br in appeals.breaches if br.decided).overdue_hours == 2.0
    assert mutual.received == 4 and mutual.appeals.received == 0

    report = (await client.get(f"/Organization/{w.fund['id']}/$sla", params={"date": today().isoformat()})).json()
    check_structure(report, "MeasureReport")
    groups = {g["code"]["coding"][0]["code"]: g for g in report["group"]}
    assert groups["decided-by-deadline"]["measureScore"]["value"] == 100.0
    assert groups["appeal-decided-by-deadline"]["measureScore"]["value"] == 25.0
    populations = {p["code"]["coding"][0]["code"]: p["count"] for p in groups["appeal-decided-by-deadline"]["population"]}
    assert populations == {"initial-population": 4, "denominator": 4, "numerator": 1}
    assert groups["appeal-decided"]["population"][0]["count"] == 2
    assert groups["appeal-decision-time-p99"]["measureScore"]["value"] == 50.0
    breaches = groups["appeal-breaches"]
    assert breaches["population"][0]["count"] == 3
    strata = {s["value"]["coding"][0]["code"]: s["population"][0]["count"] for s in breaches["stratifier"][0]["stratum"]}
    assert strata == {"appeal": 2, "waiting-info": 1}
    late_claims = {r["reference"] for r in report["evaluatedResource"]}
    assert late_claims == {a["request"]["reference"] for a in (late, forgotten, waiting)}

    console = Console(record=True, width=160)
    print_report([cnss], console)
    text = console.export_text()
    assert "Délai de décision des recours (48 h)" in text and "25.0%" in text
    assert "CNSS (recours): 2 dépassement(s) — Recours : examen par un agent" in text
    assert "CNSS (recours): 1 dépassement(s) — En attente de la réponse du prestataire" in text


# --- paused --------------------------------------------------------------------------------


async def test_a_request_for_information_pauses_the_appeals_clock_as_the_fund_allows(client, app, settings):
    # CNOPS lets requests for information stop the clock for up to 24 hours in all
    w = await World().build(client, fund_code="CNOPS")
    (answer,) = await _decided_sheets(client, app, settings, w, [2])
    task = await _appeal(client, answer)
    filed = await _appeal_row(app, answer)
    claim_due = (await ledger_of(app, answer)).due_at

    request = await _request_info(client, answer)
    check_structure(request, "CommunicationRequest")
    assert request["recipient"] == [b.provider_ref(w.doctor)]  # the provider's appeal: asked of the provider
    assert "recours" in request["category"][0]["text"]
    queue = (await client.get("/Claim/$review-queue", params={"fund": w.fund["id"], "status": "waiting-info"})).json()
    waiting = queue["entry"][0]["resource"]
    assert waiting["id"] == task["id"] and waiting["status"] == "on-hold"
    assert waiting["basedOn"] == [{"reference": f"CommunicationRequest/{request['id']}"}]
    assert "entry" not in (await client.get("/Claim/$review-queue", params={"fund": w.fund["id"], "status": "open"})).json()

    # the provider answers five hours later: the appeal's deadline moves by five hours, the claim's does not
    await _set_appeal(app, answer, paused_at=now_us() - 5 * HOUR_US)
    assert (await client.post("/Communication", json=_answer_to(request, w.patient["id"]))).status_code == 201
    resumed = await _appeal_row(app, answer)
    assert resumed.status == "open" and resumed.paused_at is None
    assert 5 * HOUR_US <= resumed.due_at - filed.due_at < 5 * HOUR_US + 60 * 1_000_000
    assert (await ledger_of(app, answer)).due_at == claim_due

    # a second request never answered: the worker restarts the clock after the rest of the 24 hours
    await _request_info(client, answer, "Et l'ordonnance ?")
    await _set_appeal(app, answer, paused_at=now_us() - 30 * HOUR_US)
    await Worker(app.state.engine, base_url=settings.base_url).escalate()
    expired = await _appeal_row(app, answer)
    assert expired.due_at - filed.due_at == expired.paused_total_us == 24 * HOUR_US
    assert expired.paused_at is None and expired.status == "waiting-info"
    # the allowance used up, a third request does not stop the clock
    await _request_info(client, answer, "Et la facture ?")
    assert (await _appeal_row(app, answer)).paused_at is None

    resp = await client.post(f"/Claim/{claim_id(answer)}/$decide", json=params(note="Décision maintenue", agent=AGENT))
    assert resp.status_code == 200, resp.text
    assert appeal_of(resp.json())["deadline"] == to_instant(expired.due_at)


async def test_a_decision_taken_while_paused_counts_the_pause(client, app, settings):
    w = await World().build(client, fund_code="CNOPS")
    (answer,) = await _decided_sheets(client, app, settings, w, [2])
    await _appeal(client, answer)
    filed = await _appeal_row(app, answer)
    await _request_info(client, answer)
    await _set_appeal(app, answer, paused_at=now_us() - 3 * HOUR_US)
    resp = await client.post(f"/Claim/{claim_id(answer)}/$decide", json=params(note="Pièce reçue par courrier", agent=AGENT))
    assert resp.status_code == 200, resp.text
    closed = await _appeal_row(app, answer)
    assert closed.status == "closed" and closed.paused_at is None
    assert 3 * HOUR_US <= closed.paused_total_us == closed.due_at - filed.due_at < 3 * HOUR_US + 60 * 1_000_000
    assert appeal_of(resp.json())["deadline"] == to_instant(closed.due_at)


async def test_cnss_appeals_clock_does_not_stop_and_a_patients_appeal_asks_the_patient(client, app, settings):
    w = await World().build(client)
    (answer,) = await _decided_sheets(client, app, settings, w, [2])
    await _appeal(client, answer, party="patient")
    filed = await _appeal_row(app, answer)
    request = await _request_info(client, answer)
    assert request["recipient"] == [{"reference": f"Patient/{w.patient['id']}"}]
    waiting = await _appeal_row(app, answer)
    assert (waiting.status, waiting.paused_at, waiting.due_at) == ("waiting-info", None, filed.due_at)
    assert waiting.info_request_id == request["id"]
    # the patient's answer puts the appeal back in the agents' queue, deadline unchanged
    assert (await client.post("/Communication", json=_answer_to(request, w.patient["id"]))).status_code == 201
    back = await _appeal_row(app, answer)
    assert (back.status, back.due_at) == ("open", filed.due_at)


async def test_request_info_on_a_claim_neither_pended_nor_appealed_is_refused(client, app, settings):
    w = await World().build(client)
    (answer,) = await _decided_sheets(client, app, settings, w, [2])
    resp = await client.post(f"/Claim/{claim_id(answer)}/$request-info", json=params(message="?", agent=AGENT))
    assert resp.status_code == 409 and "pas en cours d'examen" in resp.json()["issue"][0]["diagnostics"]


# --- escalated -----------------------------------------------------------------------------


async def test_appeals_near_their_deadline_are_escalated_once_and_go_first(client, app, settings):
    w = await World().build(client)
    calm, pressing = await _decided_sheets(client, app, settings, w, [1, 2])
    pended = await submit(client, w.sheet([b.act("KC3053", 6300, b.days_ago(3))]))  # a high amount: an agent's task
    await drain(app, settings)
    calm_task, pressing_task = await _appeal(client, calm), await _appeal(client, pressing)
    assert calm_task["priority"] == pressing_task["priority"] == "routine"
    await _set_appeal(app, pressing, due_at=now_us() + HOUR_US)
    worker = Worker(app.state.engine, base_url=settings.base_url)
    assert await worker.escalate() == 1
    assert (await _appeal_row(app, pressing)).escalated_at is not None
    assert (await _appeal_row(app, calm)).escalated_at is None
    assert await worker.escalate() == 0  # once only
    # escalated, it stays first even when its deadline then moves past another's
    await _set_appeal(app, pressing, due_at=now_us() + 12 * HOUR_US)
    await _set_appeal(app, calm, due_at=now_us() + 9 * HOUR_US)
    queue = (await client.get("/Claim/$review-queue", params={"fund": w.fund["id"]})).json()
    tasks = [e["resource"] for e in queue["entry"] if e["resource"]["resourceType"] == "Task"]
    assert [t["focus"]["reference"] for t in tasks] == [
        pressing["request"]["reference"], calm["request"]["reference"], pended["request"]["reference"]]
    assert [t["priority"] for t in tasks] == ["urgent", "routine", "routine"]

    resp = await client.post(f"/Claim/{claim_id(pressing)}/$decide", json=params(note="Décision maintenue", agent=AGENT))
    assert resp.status_code == 200, resp.text
    escalated = (await _appeal_row(app, pressing)).escalated_at
    assert appeal_of(resp.json())["escalated"] == to_instant(escalated)
    async with app.state.engine.connect() as conn:  # the claim itself was never escalated: its clock is done
        assert (await conn.execute(select(claim_ledger.c.escalated_at).where(
            claim_ledger.c.response_id == pressing["id"]))).scalar_one() is None

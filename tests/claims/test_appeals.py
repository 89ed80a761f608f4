"""Appeals (recours): contesting a decision, the agent's revised decision, its payment — and who
may act on a claim when tokens are required (appeal it, submit it through ``Claim/$submit``)."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr
from sqlalchemy import select, update

from claims.clock import DAY_US, now_us
from claims.tables import claim_appeal, claim_ledger
from claims.uris import CLAIM_NUMBER, EXT_APPEAL, EXT_DECIDED_BY, FUND, INPE
from claims.worker import Worker
from ehr.parsing import check_structure
from ehr.security.demo import DemoUser
from ehr.security.roles import Role
from ehr.settings import Settings
from tests.claims import builders as b
from tests.claims.test_adjudication_scenarios import World, decided, drain, reasons, submit
from tests.claims.test_corrections import check_reconciliations, correcting, ledger_of, pay
from tests.claims.test_review import line, params
from tests.conftest import BASE, TEST_LIMITS, running_app
from tests.security.world import World as Callers, seed_world

CONTESTED_REASON = "L'acte XYZ est un geste d'urgence pratiqué au cabinet, justifié par le compte rendu joint"


def appeal_params(reason: str | None = CONTESTED_REASON, lines: list[int] = (), party: str | None = None,
                  documents: list[dict] = ()) -> dict:
    out = []
    if reason is not None:
        out.append({"name": "reason", "valueString": reason})
    out += [{"name": "line", "valueInteger": n} for n in lines]
    out += [{"name": "document", "valueAttachment": d} for d in documents]
    if party:
        out.append({"name": "party", "valueCode": party})
    return {"resourceType": "Parameters", "parameter": out}


def appeal_of(answer: dict) -> dict | None:
    ext = next((e for e in answer.get("extension", []) if e["url"] == EXT_APPEAL), None)
    if ext is None:
        return None
    return {p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in ext["extension"]}


async def _decided(client, app, settings):
    """A consultation paid 56 MAD and an act outside the nomenclature, refused."""
    w = await World().build(client)
    queued = await submit(client, w.sheet([b.act("C", 80, b.days_ago(3)), b.act("XYZ", 50, b.days_ago(3))]))
    await drain(app, settings)
    answer = await decided(client, queued)
    assert [b.amount(i, "benefit") for i in answer["item"]] == [56, 0] and reasons(answer["item"][1]) == "no-tariff"
    return w, queued, queued["request"]["reference"].split("/")[1]


async def test_appeal_accepted_by_an_agent_with_a_partial_increase_paid_by_the_next_run(client, app, settings):
    w, queued, claim_id = await _decided(client, app, settings)
    assert (await pay(app, settings)).total_cents == 5600
    report = {"contentType": "application/pdf", "title": "Compte rendu", "data": "JVBERi0="}
    resp = await client.post(f"/Claim/{claim_id}/$appeal", json=appeal_params(lines=[2], party="provider", documents=[report]))
    assert resp.status_code == 201, resp.text
    task = resp.json()
    check_structure(task, "Task")
    assert task["status"] == "ready" and task["focus"]["reference"] == f"Claim/{claim_id}"
    assert task["requester"]["reference"] == f"Practitioner/{w.doctor['id']}"
    inputs = {i["type"]["text"]: i for i in task["input"]}
    # the version contested is the paid one (queued, decided, paid)
    assert inputs["décision contestée"]["valueReference"]["reference"] == f"ClaimResponse/{queued['id']}/_history/3"
    assert inputs["lignes contestées"]["valueString"] == "2" and inputs["pièce jointe"]["valueAttachment"]["title"] == "Compte rendu"
    # the answer says an appeal is under way, with its own 48-hour deadline
    pending = (await client.get(f"/ClaimResponse/{queued['id']}")).json()
    under_way = appeal_of(pending)
    assert under_way["status"] == "in-progress" and under_way["reason"] == CONTESTED_REASON
    assert under_way["deadline"] == task["restriction"]["period"]["end"]
    assert [b.amount(i, "benefit") for i in pending["item"]] == [56, 0]  # the decision stands meanwhile
    # the fund's agents find it in their queue
    queue = (await client.get("/Claim/$review-queue", params={"fund": w.fund["id"]})).json()
    assert [e["resource"]["id"] for e in queue["entry"]] == [task["id"], claim_id]

    # an appeal never lowers what was granted
    lower = params(note="x", agent="Practitioner/agent-cnss-7", line=[line(1, "adjust", 10)])
    resp = await client.post(f"/Claim/{claim_id}/$decide", json=lower)
    assert resp.status_code == 422 and resp.json()["issue"][0]["expression"][0].startswith("Parameters.parameter.where(name='line')[0]")
    body = params(note="Geste d'urgence justifié ; pris en charge à hauteur de l'acte le plus proche",
                  agent="Practitioner/agent-cnss-7", line=[line(2, "adjust", 30, note="Assimilé à K 10")])
    resp = await client.post(f"/Claim/{claim_id}/$decide", json=body)
    assert resp.status_code == 200, resp.text
    revised = resp.json()
    assert revised["id"] == queued["id"] and revised["meta"]["versionId"] == "5"  # a new version of the same answer
    consultation, act = revised["item"]
    assert b.amount(consultation, "benefit") == 56 and b.amount(act, "benefit") == 30 and reasons(act) == "agent-adjusted"
    assert "partiellement" in revised["disposition"]
    assert appeal_of(revised)["status"] == "completed" and "decided" in appeal_of(revised)
    assert any(e["url"] == EXT_DECIDED_BY and e["valueString"] == "Practitioner/agent-cnss-7" for e in revised["extension"])
    row = await ledger_of(app, queued)
    eob = (await client.get(f"/ExplanationOfBenefit/{row.eob_id}")).json()
    assert b.amount(eob["item"][1], "benefit") == 30
    assert row.status == "paid" and row.benefit_cents == 8600
    assert "entry" not in (await client.get("/Claim/$review-queue", params={"fund": w.fund["id"]})).json()

    summary = await pay(app, settings)
    (rec,) = await check_reconciliations(client, summary)
    (detail,) = rec["detail"]
    assert detail["amount"]["value"] == 30 and detail["type"]["coding"][0]["code"] == "adjustment"
    assert detail["identifier"] == {"system": CLAIM_NUMBER, "value": row.claim_identifier}
    assert (await pay(app, settings)).reconciliations == []  # paid once
    async with app.state.engine.connect() as conn:
        appeal = (await conn.execute(select(claim_appeal))).one()
    assert (appeal.status, appeal.before_cents, appeal.after_cents, appeal.payable_cents) == ("closed", 5600, 8600, 3000)
    assert appeal.reconciliation_id == summary.reconciliations[0][0] and appeal.closed_by == "Practitioner/agent-cnss-7"


async def test_an_increase_decided_before_payment_is_paid_with_the_claim(client, app, settings):
    _, queued, claim_id = await _decided(client, app, settings)
    resp = await client.post(f"/Claim/{claim_id}/$appeal", json=appeal_params(party="patient"))
    assert resp.status_code == 201 and resp.json()["requester"]["reference"] == f"Patient/{(await ledger_of(app, queued)).patient_id}"
    resp = await client.post(f"/Claim/{claim_id}/$decide",
                             json=params(note="Recours fondé", agent="Practitioner/agent-cnss-7", line=[line(2, "adjust", 50)]))
    assert resp.status_code == 200, resp.text
    summary = await pay(app, settings)
    (rec,) = await check_reconciliations(client, summary)
    assert [d["amount"]["value"] for d in rec["detail"]] == [106]  # 56 + 50, in one payment
    assert (await pay(app, settings)).reconciliations == []


async def test_appeals_refused_when_undecided_already_open_or_late(client, app, settings):
    w = await World().build(client)
    queued = await submit(client, w.sheet([b.act("C", 80, b.days_ago(3))]))
    claim_id = queued["request"]["reference"].split("/")[1]
    resp = await client.post(f"/Claim/{claim_id}/$appeal", json=appeal_params(party="provider"))
    assert resp.status_code == 409 and "pas encore décidée" in resp.json()["issue"][0]["diagnostics"]
    await drain(app, settings)
    resp = await client.post(f"/Claim/{claim_id}/$appeal", json=appeal_params(reason=None, party="provider"))
    assert resp.status_code == 400 and resp.json()["issue"][0]["expression"] == ["Parameters.parameter.where(name='reason')"]
    resp = await client.post(f"/Claim/{claim_id}/$appeal", json=appeal_params(lines=[7], party="provider"))
    assert resp.status_code == 422 and resp.json()["issue"][0]["expression"] == ["Parameters.parameter.where(name='line')[0]"]
    missing = appeal_params(party="provider")
    missing["parameter"].append({"name": "document", "valueReference": {"reference": "DocumentReference/nowhere"}})
    resp = await client.post(f"/Claim/{claim_id}/$appeal", json=missing)
    assert resp.status_code == 422 and resp.json()["issue"][0]["expression"] == ["Parameters.parameter.where(name='document')[0]"]
    assert (await client.post(f"/Claim/{claim_id}/$appeal", json=appeal_params(party="provider"))).status_code == 201
    again = await client.post(f"/Claim/{claim_id}/$appeal", json=appeal_params(party="patient"))
    assert again.status_code == 409 and "déjà en cours" in again.json()["issue"][0]["diagnostics"]
    # nor can the sheet be corrected while its appeal is under way
    resp = await client.post("/Claim", json=correcting(w.sheet([b.act("CS", 150, b.days_ago(3))]), queued))
    assert resp.status_code == 409 and "recours" in resp.json()["issue"][0]["diagnostics"]
    resp = await client.post(f"/Claim/{claim_id}/$decide", json=params(note="Décision maintenue", agent="Practitioner/agent-cnss-7"))
    assert resp.status_code == 200 and appeal_of(resp.json())["status"] == "completed"
    # CNSS: 60 days to appeal (SAMPLE rule set)
    async with app.state.engine.begin() as conn:
        await conn.execute(update(claim_ledger).values(decided_at=now_us() - 61 * DAY_US))
    late = await client.post(f"/Claim/{claim_id}/$appeal", json=appeal_params(party="provider"))
    assert late.status_code == 422 and "Délai de recours dépassé : 60 jours" in late.json()["issue"][0]["diagnostics"]
    async with app.state.engine.connect() as conn:
        assert len((await conn.execute(select(claim_appeal))).all()) == 1


async def test_a_replaced_claim_is_not_appealed_its_correction_is(client, app, settings):
    w, queued, claim_id = await _decided(client, app, settings)
    correction = await submit(client, correcting(w.sheet([b.act("C", 80, b.days_ago(3))]), queued))
    resp = await client.post(f"/Claim/{claim_id}/$appeal", json=appeal_params(party="provider"))
    assert resp.status_code == 409 and "correction" in resp.json()["issue"][0]["diagnostics"]
    await drain(app, settings)
    resp = await client.post(f"/Claim/{claim_id}/$appeal", json=appeal_params(party="provider"))
    assert resp.status_code == 409 and "remplacée" in resp.json()["issue"][0]["diagnostics"]
    corrected_id = correction["request"]["reference"].split("/")[1]
    assert (await client.post(f"/Claim/{corrected_id}/$appeal", json=appeal_params(party="provider"))).status_code == 201


# --- with tokens ---------------------------------------------------------------------------

CNSS_AGENT = DemoUser("agent", Role.INSURER, "Practitioner/ag", "Organization/cnss")
CNOPS_AGENT = DemoUser("agent-o", Role.INSURER, "Practitioner/ago", "Organization/cnops")
DOCTOR = DemoUser("d1", Role.DOCTOR, "Practitioner/d1")
OTHER_DOCTOR = DemoUser("d4", Role.DOCTOR, "Practitioner/d4")
PHARMACIST = DemoUser("ph", Role.PHARMACIST, "Practitioner/ph")
PATIENT = DemoUser("pa", Role.PATIENT, "Patient/pa")
OTHER_PATIENT = DemoUser("pb", Role.PATIENT, "Patient/pb")
PAPER_AGENT = DemoUser("pa-agent", Role.PAPER_AGENT, "Practitioner/pa-agent")
ADMIN = DemoUser("ad", Role.ADMIN, "Practitioner/ad")


@pytest.fixture(scope="module")
def signing_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


@pytest.fixture
async def secure_app(claims_tables, tmp_path, signing_key):
    settings = Settings(
        _env_file=None, database_url=claims_tables, base_url=BASE, data_dir=tmp_path / "data", auth_required=True,
        dev_issuer_enabled=True, dev_issuer_private_key=SecretStr(signing_key), identity_cache_seconds=0, **TEST_LIMITS,
    )
    async with running_app(settings) as app:
        yield app


def _resources() -> list[dict]:
    practitioners = [
        {"resourceType": "Practitioner", "id": pid, "active": True, "name": [{"family": pid.upper()}],
         **({"identifier": [{"system": INPE, "value": inpe}]} if inpe else {})}
        for pid, inpe in (("d1", "101234567"), ("d4", "101234599"), ("ph", None), ("ag", None), ("ago", None),
                          ("pa-agent", None), ("ad", None))
    ]
    coverage = {"resourceType": "Coverage", "id": "cov-a", "status": "active", "beneficiary": {"reference": "Patient/pa"},
                "subscriber": {"reference": "Patient/pa"}, "payor": [{"reference": "Organization/cnss"}],
                "period": {"start": "2020-01-01"}}
    return [
        {"resourceType": "Organization", "id": "cnss", "identifier": [{"system": FUND, "value": "CNSS"}], "name": "CNSS"},
        {"resourceType": "Organization", "id": "cnops", "identifier": [{"system": FUND, "value": "CNOPS"}], "name": "CNOPS"},
        *practitioners,
        {"resourceType": "Patient", "id": "pa", "name": [{"family": "Alaoui"}], "birthDate": "1980-02-03"},
        {"resourceType": "Patient", "id": "pb", "name": [{"family": "Bennani"}], "birthDate": "1975-06-07"},
        coverage,
        # the consultations the doctor bills: writes mirror reads, a care sheet needs a patient in his care
        {"resourceType": "Encounter", "id": "enc-a", "status": "finished", "class": {"code": "AMB"}, "subject": {"reference": "Patient/pa"},
         "participant": [{"individual": {"reference": "Practitioner/d1"}}], "period": {"start": b.days_ago(10).isoformat()}},
    ]


async def _seed(app) -> Callers:
    return await seed_world(app, _resources())


def _sheet(days: int) -> dict:
    # no insurer: the submission records the fund it routes the sheet to, and the fund's agents read it
    return b.claim("pa", "cov-a", [b.act("C", 80, b.days_ago(days))],
                   provider={"reference": "Practitioner/d1", "identifier": {"system": INPE, "value": "101234567"}})


async def _decided_claim(app, callers: Callers, by: DemoUser, days: int) -> str:
    async with callers.client(by) as c:
        resp = await c.post("/Claim", json=_sheet(days))
    assert resp.status_code == 201, resp.text
    await Worker(app.state.engine, base_url=BASE, name="test-worker").run_once()
    return resp.json()["request"]["reference"].split("/")[1]


async def _appeal(callers: Callers, who: DemoUser | None, claim_id: str, **kw) -> int:
    async with callers.client(who) as c:
        resp = await c.post(f"/Claim/{claim_id}/$appeal", json=appeal_params(**kw))
    return resp.status_code


async def test_who_may_appeal(secure_app):
    callers = await _seed(secure_app)
    by_provider, by_patient, by_fund = [await _decided_claim(secure_app, callers, DOCTOR, days) for days in (1, 2, 3)]
    by_counter = await _decided_claim(secure_app, callers, PAPER_AGENT, 4)  # a paper sheet entered at the counter

    assert await _appeal(callers, None, by_provider) == 401
    assert await _appeal(callers, ADMIN, by_provider) == 403
    # those who cannot read the claim do not learn it exists
    for stranger in (OTHER_DOCTOR, PHARMACIST, OTHER_PATIENT, CNOPS_AGENT):
        assert await _appeal(callers, stranger, by_provider) == 404, stranger
    assert await _appeal(callers, PAPER_AGENT, by_provider) == 404  # not a sheet they entered

    assert await _appeal(callers, DOCTOR, by_provider) == 201
    assert await _appeal(callers, PATIENT, by_patient) == 201
    assert await _appeal(callers, CNSS_AGENT, by_fund) == 400  # for whom: party is required
    assert await _appeal(callers, CNSS_AGENT, by_fund, party="patient") == 201
    assert await _appeal(callers, PAPER_AGENT, by_counter) == 201

    async with callers.client(CNSS_AGENT) as agent:
        queue = (await agent.get("/Claim/$review-queue")).json()
        requesters = {e["resource"]["focus"]["reference"]: e["resource"]["requester"]["reference"]
                      for e in queue["entry"] if e["resource"]["resourceType"] == "Task"}
        assert requesters == {f"Claim/{by_provider}": "Practitioner/d1", f"Claim/{by_patient}": "Patient/pa",
                              f"Claim/{by_fund}": "Practitioner/ag", f"Claim/{by_counter}": "Practitioner/pa-agent"}
        async with callers.client(DOCTOR) as doctor:
            refused = await doctor.post(f"/Claim/{by_provider}/$decide", json=params(note="moi-même"))
            assert refused.status_code == 403  # the provider does not decide their own appeal
        resp = await agent.post(f"/Claim/{by_provider}/$decide", json=params(note="Décision maintenue après examen"))
        assert resp.status_code == 200, resp.text
        assert any(e["url"] == EXT_DECIDED_BY and e["valueString"] == "Practitioner/ag" for e in resp.json()["extension"])


def _submission_bundle() -> dict:
    """What a provider's software sends: the sheet and the (already registered) resources it names."""
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Practitioner", "active": True, "identifier": [{"system": INPE, "value": "101234567"}]}},
        {"resource": _sheet(1)},
    ]}


async def test_submit_operation_runs_with_the_callers_rights(secure_app):
    callers = await _seed(secure_app)
    async with callers.client(None) as anonymous:
        assert (await anonymous.post("/Claim/$submit", json=_submission_bundle())).status_code == 401
    async with callers.client(PATIENT) as patient:  # a patient reads claims, never submits them
        assert (await patient.post("/Claim/$submit", json=_submission_bundle())).status_code == 403
    async with callers.client(ADMIN) as admin:  # reference data only: not a caller of $submit at all
        resp = await admin.post("/Claim/$submit", json=_submission_bundle())
        assert resp.status_code == 403 and "$submit" in resp.json()["issue"][0]["diagnostics"]
    async with callers.client(PAPER_AGENT) as counter:
        resp = await counter.post("/Claim/$submit", json=_submission_bundle())
        assert resp.status_code == 201, resp.text
        claim_id = resp.json()["request"]["reference"].split("/")[1]
        # entered by the counter agent, on the patient's behalf: they read it back, with its Provenance
        assert (await counter.get(f"/Claim/{claim_id}")).status_code == 200
        provenance = (await counter.get("/Provenance", params={"target": f"Claim/{claim_id}"})).json()
        assert provenance["entry"][0]["resource"]["agent"][0]["onBehalfOf"]["reference"] == "Patient/pa"


async def test_a_submitted_sheet_is_never_rewritten_in_place(secure_app):
    """A provider who PUTs or PATCHes a care sheet would leave it without a decision (or its
    decision without its sheet): 405, whatever the sheet; a correction is a new sheet."""
    callers = await _seed(secure_app)
    claim_id = await _decided_claim(secure_app, callers, DOCTOR, 1)
    async with callers.client(DOCTOR) as doctor:
        current = (await doctor.get(f"/Claim/{claim_id}")).json()
        for resp in (
            await doctor.put(f"/Claim/{claim_id}", json=current),
            await doctor.put("/Claim/brand-new", json={**_sheet(2), "id": "brand-new"}),
            await doctor.patch(f"/Claim/{claim_id}", json=[{"op": "replace", "path": "/status", "value": "cancelled"}],
                               headers={"Content-Type": "application/json-patch+json"}),
        ):
            assert resp.status_code == 405, resp.text
            assert resp.json()["issue"][0]["code"] == "not-supported"
        assert (await doctor.delete(f"/Claim/{claim_id}")).status_code == 403  # no role deletes a sheet anyway
        assert (await doctor.get(f"/Claim/{claim_id}")).json()["meta"]["versionId"] == current["meta"]["versionId"]
        assert (await doctor.get("/Claim/brand-new")).status_code == 404

"""The coverage cliff: an ALD patient's household crosses the AMO Tadamon threshold and back.

Registry feed (the RSU registry's own token) → notices to the patient, the treating doctor and
the fund → eligibility says "ALD transition until …" and the next regime → an ALD care sheet
during the transition is paid at the ALD rate, another one is not covered → a later feed
lowers the index: cover restored, transition closed.  A bad CSV row: 422, nothing written.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from claims.adjudication.ruleset import rulesets
from claims.cliff_notices import remind_due
from claims.settings import get_claims_settings
from claims.tables import coverage_transition, registry_feed
from claims.uris import ALD, EXT_NEXT_STEP, FUND, INPE, NOTIFICATION
from claims.worker import Worker
from ehr.security.demo import DemoUser, SystemClient
from ehr.security.roles import Role
from ehr.security.scopes import ScopeSet
from ehr.store.db import read_connection
from tests.claims import builders as b
from tests.claims.test_appeals import secure_app, signing_key  # noqa: F401  (fixtures)
from tests.conftest import BASE
from tests.security.world import seed_world

REGISTRY = SystemClient("rsu-registry", Role.REGISTRY, ScopeSet.parse("system/Organization.rs", strict=True),
                        "Organization/rsu-registry")
TADAMON_AGENT = DemoUser("agent-t", Role.INSURER, "Practitioner/agt", "Organization/tadamon")
CNSS_AGENT = DemoUser("agent-c", Role.INSURER, "Practitioner/agc", "Organization/cnss")
DOCTOR = DemoUser("d1", Role.DOCTOR, "Practitioner/d1")
PATIENT = DemoUser("pa", Role.PATIENT, "Patient/pa")
ENDED = b.days_ago(10)
HEADER = "type;menage;patient;programme;organisme;valeur;debut;fin\n"


def _resources() -> list[dict]:
    cov = {"resourceType": "Coverage", "id": "cov-t", "status": "active", "beneficiary": {"reference": "Patient/pa"},
           "subscriber": {"reference": "Patient/pa"}, "payor": [{"reference": "Organization/tadamon"}],
           "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]},
                      "value": "AMO-TADAMON"}],
           "period": {"start": "2020-01-01"},
           "costToBeneficiary": [{"valueMoney": {"value": 0, "currency": "MAD"}, "exception": [
               {"type": {"coding": [{"system": ALD, "code": "ALD09"}]}, "period": {"start": "2022-01-01"}}]}]}
    recent = (b.days_ago(40)).isoformat()
    return [
        {"resourceType": "Organization", "id": "tadamon", "identifier": [{"system": FUND, "value": "AMO-TADAMON"}], "name": "AMO Tadamon"},
        {"resourceType": "Organization", "id": "cnss", "identifier": [{"system": FUND, "value": "CNSS"}], "name": "CNSS"},
        {"resourceType": "Practitioner", "id": "d1", "active": True, "name": [{"family": "D1"}],
         "identifier": [{"system": INPE, "value": "101234567"}]},
        *({"resourceType": "Practitioner", "id": p, "name": [{"family": p}]} for p in ("agt", "agc")),
        {"resourceType": "Patient", "id": "pa", "name": [{"family": "Alaoui"}], "birthDate": "1980-02-03",
         "identifier": [{"system": "https://fhir.sijill.ma/sid/cin", "value": "AA111"}]},
        {"resourceType": "Encounter", "id": "enc-1", "status": "finished", "class": {"code": "AMB"},
         "subject": {"reference": "Patient/pa"}, "participant": [{"individual": {"reference": "Practitioner/d1"}}],
         "period": {"start": recent}},
        cov,
    ]


def _registry(world):
    token = world.issuer.issue_client_token(REGISTRY).access_token
    return world.client(None, Authorization=f"Bearer {token}", **{"Content-Type": "text/csv"})


async def _feed(world, csv_text: str):
    async with _registry(world) as c:
        return await c.post("/$registry-feed", content=(HEADER + csv_text).encode())


async def _count(app, table) -> int:
    async with read_connection(app.state.engine) as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def _eligibility(world, on) -> dict:
    async with world.client(DOCTOR) as c:
        resp = await c.post("/CoverageEligibilityRequest", json={
            "resourceType": "CoverageEligibilityRequest", "status": "active", "purpose": ["validation"],
            "patient": {"reference": "Patient/pa"}, "created": on.isoformat(), "servicedDate": on.isoformat(),
            "insurer": {"reference": "Organization/tadamon"}})
    assert resp.status_code == 201, resp.text
    return resp.json()


async def _sheet(app, world, diagnoses: list[str]) -> dict:
    sheet = b.claim("pa", "cov-t", [b.act("C", 80, b.days_ago(3), diagnosis=[1] if diagnoses else None)], diagnoses=diagnoses,
                    provider={"reference": "Practitioner/d1", "identifier": {"system": INPE, "value": "101234567"}})
    async with world.client(DOCTOR) as c:
        resp = await c.post("/Claim", json=sheet)
        assert resp.status_code == 201, resp.text
        await Worker(app.state.engine, base_url=BASE, name="test-worker").run_once()
        answer = await c.get(f"/ClaimResponse/{resp.json()['id']}")
    return answer.json()


async def test_an_ald_patient_across_the_threshold_and_back(secure_app):
    world = await seed_world(secure_app, _resources())
    resp = await _feed(world, f"seuil;;;AMO-TADAMON;;9.3264284;2020-01-01;\n"
                              f"indice;H-77;Patient/pa;AMO-TADAMON;;9.61;{ENDED - timedelta(days=30)};\n"
                              f"couverture;H-77;https://fhir.sijill.ma/sid/cin|AA111;AMO-TADAMON;AMO-TADAMON;;2020-01-01;{ENDED}\n")
    assert resp.status_code == 200, resp.text
    out = {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in resp.json()["parameter"]}
    assert out["transitionsOpened"] == 1 and out["patients"] == 1
    until = ENDED + timedelta(days=90)

    # the patient, the treating doctor and the fund are told, each by a Communication of their own
    async with world.client(PATIENT) as c:
        told = (await c.get("/Communication", params={"category": f"{NOTIFICATION}|coverage-ending"})).json()
    recipients = {e["resource"]["recipient"][0]["reference"] for e in told.get("entry", [])}
    assert "Patient/pa" in recipients
    async with world.client(DOCTOR) as c:
        told = (await c.get("/Communication", params={"category": f"{NOTIFICATION}|coverage-ending"})).json()
    assert "Practitioner/d1" in {e["resource"]["recipient"][0]["reference"] for e in told["entry"]}
    assert all("ALD09" not in p["contentString"] for e in told["entry"] for p in e["resource"]["payload"])

    # eligibility: not in force, ALD care under transition, the next regime and what to do
    answer = await _eligibility(world, b.days_ago(3))
    ins = answer["insurance"][0]
    step = {e["url"]: e for e in next(x for x in ins["extension"] if x["url"] == EXT_NEXT_STEP)["extension"]}
    assert ins["inforce"] is False and step["state"]["valueCode"] == "ald-transition"
    assert step["transitionUntil"]["valueDate"] == until.isoformat() and step["nextRegime"]["valueCoding"]["code"] == "AMO-TNS"
    assert "CNSS" in step["instructions"]["valueString"] and step["instructions-ar"]["valueString"]
    assert "transition" in answer["disposition"] and [i["category"]["coding"][0]["code"] for i in ins["item"]] == ["ALD09"]

    # the same answer pays: ALD care at the ALD rate, other care not covered
    ald_rate = rulesets().version("AMO-TADAMON", b.days_ago(3)).ald_rate
    paid = await _sheet(secure_app, world, ["E11.9"])
    assert b.amount(paid["item"][0], "benefit") == float(b.amount(paid["item"][0], "eligible") * float(ald_rate)) > 0
    refused = await _sheet(secure_app, world, [])
    assert b.amount(refused["item"][0], "benefit") == 0

    # the fund's list: its own agent sees the patient; another fund's agent is told nothing
    async with world.client(TADAMON_AGENT) as c:
        listed = (await c.get("/Organization/tadamon/$coverage-transitions")).json()
    parts = {p["name"]: p for p in listed["parameter"][0]["part"]}
    assert parts["patient"]["valueReference"]["reference"] == "Patient/pa" and parts["ald"]["valueBoolean"] is True
    assert parts["transitionUntil"]["valueDate"] == until.isoformat() and "noticeSent" in parts
    async with world.client(CNSS_AGENT) as c:
        assert (await c.get("/Organization/tadamon/$coverage-transitions")).status_code == 403  # another fund: refused by the declaration
    async with world.client(DOCTOR) as c:
        assert (await c.get("/Organization/tadamon/$coverage-transitions")).status_code == 403  # not a fund's agent

    # before the transition ends, the worker tells the patient and the fund again, once
    settings = get_claims_settings()
    assert await remind_due(secure_app.state.engine, settings, BASE, until - timedelta(days=20)) == 0
    assert await remind_due(secure_app.state.engine, settings, BASE, until - timedelta(days=5)) == 1
    assert await remind_due(secure_app.state.engine, settings, BASE, until - timedelta(days=4)) == 0
    async with world.client(PATIENT) as c:
        told = (await c.get("/Communication", params={"category": f"{NOTIFICATION}|ald-transition"})).json()
    assert sorted(e["resource"]["recipient"][0]["reference"] for e in told["entry"]) == ["Organization/tadamon", "Patient/pa"]

    # and back: a later feed lowers the index and restores the cover
    resp = await _feed(world, f"indice;H-77;Patient/pa;AMO-TADAMON;;8.1;{b.days_ago(2)};\n"
                              f"couverture;H-77;Patient/pa;AMO-TADAMON;AMO-TADAMON;;2020-01-01;\n")
    assert resp.status_code == 200, resp.text
    assert {p["name"]: p.get("valueInteger") for p in resp.json()["parameter"]}["transitionsClosed"] == 1
    answer = await _eligibility(world, b.days_ago(1))
    assert answer["insurance"][0]["inforce"] is True and "Couvert(e) par AMO-TADAMON" in answer["disposition"]
    async with world.client(TADAMON_AGENT) as c:
        assert (await c.get("/Organization/tadamon/$coverage-transitions")).json().get("parameter") is None


async def test_a_bad_row_writes_nothing_and_only_registries_and_gateways_send(secure_app):
    world = await seed_world(secure_app, _resources())
    resp = await _feed(world, "seuil;;;AMO-TADAMON;;9.3;2020-01-01;\nindice;H;Patient/pa;AMO-TADAMON;;neuf;2026-01-01;\n")
    assert resp.status_code == 422
    assert any("ligne 3" in i["diagnostics"] and "valeur" in i["diagnostics"] for i in resp.json()["issue"])
    resp = await _feed(world, "indice;H;Patient/nobody;AMO-TADAMON;;9.9;2026-01-01;\n")
    assert resp.status_code == 422 and "ligne 2" in resp.json()["issue"][0]["diagnostics"]
    assert await _count(secure_app, registry_feed) == 0 and await _count(secure_app, coverage_transition) == 0
    async with world.client(DOCTOR, **{"Content-Type": "text/csv"}) as c:
        assert (await c.post("/$registry-feed", content=(HEADER + "seuil;;;AMO-TADAMON;;9.3;2020-01-01;\n").encode())).status_code == 403

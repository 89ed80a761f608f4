"""Consent and break-the-glass, end to end through the HTTP API (both databases).

Patients record Consents that deny people, permit people, or hide labelled categories from all
but named people; doctors without a relationship break the glass with a reason, get time-limited
access flagged BTG in the trail, and the patient finds both the notification and the accesses.
"""
from __future__ import annotations

import pytest
from sqlalchemy import update

from ehr.security.tables import break_glass_grant
from ehr.store.clock import now_us
from ehr.store.db import write_transaction

from .world import CIN, OPT_IN, PRIVACY, PSY

BTG = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG", "display": "break the glass"}


def consent(patient: str, provision: dict, status: str = "active") -> dict:
    return {"resourceType": "Consent", "status": status, "scope": PRIVACY, "policyRule": OPT_IN, "patient": {"reference": f"Patient/{patient}"},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}], "provision": provision}


def actor(ref: str) -> dict:
    return {"role": {"text": "named"}, "reference": {"reference": ref}}


def reason(text: str) -> dict:
    return {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": text}]}


async def test_permit_then_withdraw(world):
    async with world.client("pa") as amina, world.client("D4") as d4:
        assert (await d4.get("/Patient/pa")).status_code == 404
        created = await amina.post("/Consent", json=consent("pa", {"type": "permit", "actor": [actor("Practitioner/d4")]}))
        assert created.status_code == 201, created.text
        assert (await d4.get("/Patient/pa")).status_code == 200
        assert (await d4.get("/Condition/cond-a-psy")).status_code == 404  # the PSY label stays hidden from him
        withdrawn = {**created.json(), "status": "inactive"}
        assert (await amina.put(f"/Consent/{withdrawn['id']}", json=withdrawn)).status_code == 200
        assert (await d4.get("/Patient/pa")).status_code == 404


async def test_deny_overrides_a_care_relationship_until_withdrawn(world):
    async with world.client("pb") as brahim, world.client("D2") as d2:
        assert (await d2.get("/Encounter/enc-b-d2")).status_code == 404  # his own Encounter, but denied
        deny = (await brahim.get("/Consent/con-b-deny")).json()
        assert (await brahim.put("/Consent/con-b-deny", json={**deny, "status": "inactive"})).status_code == 200
        assert (await d2.get("/Encounter/enc-b-d2")).status_code == 200
        assert (await d2.get("/Patient/pb")).status_code == 200


async def test_deny_an_organization(world):
    # pa denies the pharmacy: its pharmacist, who acts for it, loses even the claim it wrote
    async with world.client("pa") as amina, world.client("D1") as d1:
        assert (await d1.get("/Patient/pa")).status_code == 200
        r = await amina.post("/Consent", json=consent("pa", {"type": "deny", "actor": [actor("Practitioner/d1")]}))
        assert r.status_code == 201
        assert (await d1.get("/Patient/pa")).status_code == 404
        assert (await d1.get("/Observation/obs-a")).status_code == 404  # even what he performed himself


async def test_hidden_category_from_everyone_but_named_people(world):
    async with world.client("pa") as amina, world.client("D1") as d1, world.client("D3") as d3:
        assert (await d1.get("/Condition/cond-a-psy")).status_code == 404
        assert (await d3.get("/Condition/cond-a-psy")).status_code == 200  # named in the exception
        assert (await amina.get("/Condition/cond-a-psy")).status_code == 200  # her own record
        # a new label-hiding Consent: HIV-labelled results hidden from D3 only
        hiv = {"system": PSY["system"], "code": "HIV"}
        created = await amina.post("/Consent", json=consent("pa", {"type": "deny", "securityLabel": [hiv], "actor": [actor("Practitioner/d3")]}))
        assert created.status_code == 201, created.text
        lab = {"resourceType": "Observation", "status": "final", "meta": {"security": [hiv]},
               "code": {"coding": [{"system": "http://loinc.org", "code": "7917-8"}]}, "subject": {"reference": "Patient/pa"}}
        lab_id = (await d1.post("/Observation", json=lab)).json()["id"]
        assert (await d1.get(f"/Observation/{lab_id}")).status_code == 200
        assert (await d3.get(f"/Observation/{lab_id}")).status_code == 404
        assert (await d3.get("/Observation", params={"code": "7917-8"})).json()["total"] == 0
        # what he may not read, he may not write either: neither a new labelled result nor a label on his own
        assert (await d3.post("/Observation", json=lab)).status_code in (403, 404)
        own = (await d3.post("/Observation", json={k: v for k, v in lab.items() if k != "meta"})).json()
        relabelled = await d3.put(f"/Observation/{own['id']}", json={**own, "meta": {"security": [hiv]}})
        assert relabelled.status_code in (403, 404), relabelled.text
        assert (await d3.get(f"/Observation/{own['id']}")).json().get("meta", {}).get("security") is None


@pytest.mark.parametrize(
    ("provision", "expression"),
    [
        ({"type": "permit"}, "Consent.provision.actor"),
        ({"type": "deny", "actor": [{"role": {"text": "x"}, "reference": {"reference": "Patient/pb"}}]}, "Consent.provision.actor[0].reference"),
        ({"type": "deny", "actor": [actor("Practitioner/d1")], "action": [{"text": "access"}]}, "Consent.provision.action"),
        ({"type": "deny", "actor": [actor("Practitioner/d1")], "provision": [{"type": "permit", "actor": [actor("Practitioner/d3")]}]},
         "Consent.provision.provision[0]"),
        ({"type": "deny", "securityLabel": [PSY], "provision": [{"type": "deny", "actor": [actor("Practitioner/d3")]}]},
         "Consent.provision.provision[0]"),
        ({"type": "maybe"}, "Consent.provision.type"),
    ],
)
async def test_consents_the_policy_cannot_enforce_are_refused(world, provision, expression):
    async with world.client("pa") as amina:
        r = await amina.post("/Consent", json=consent("pa", provision))
    assert r.status_code == 422, r.text
    assert expression in [e for i in r.json()["issue"] for e in i.get("expression", [])]


async def test_break_the_glass_end_to_end(world):
    async with world.client("D4") as d4, world.client("pa") as amina:
        assert (await d4.get("/Patient/pa")).status_code == 404
        missing = await d4.post("/Patient/pa/$break-glass", json={"resourceType": "Parameters", "parameter": []})
        assert missing.status_code == 400
        assert missing.json()["issue"][0]["expression"] == ["Parameters.parameter.where(name='reason')"]
        granted = await d4.post("/Patient/pa/$break-glass", json=reason("Patiente inconsciente aux urgences"))
        assert granted.status_code == 200, granted.text
        params = {p["name"]: p for p in granted.json()["parameter"]}
        assert params["patient"]["valueReference"]["reference"] == "Patient/pa"
        # the whole record, hidden categories included
        assert (await d4.get("/Patient/pa")).status_code == 200
        assert (await d4.get("/Condition/cond-a-psy")).status_code == 200
        assert (await d4.get("/Patient/pb")).status_code == 404  # one patient only
        # asking again while the grant runs is refused: access is already there
        assert (await d4.post("/Patient/pa/$break-glass", json=reason("encore"))).status_code == 422

        # the patient is told, in her own record
        notes = (await amina.get("/Communication", params={"recipient": "Patient/pa"})).json()
        texts = [e["resource"]["payload"][0]["contentString"] for e in notes.get("entry", [])]
        assert any("ouvert en urgence" in t and "D4" in t for t in texts)
        assert not any("inconsciente" in t for t in texts)  # the reason may be clinical: never in an SMS

        # and sees who opened her file, when and why: flagged BTG
        trail = (await amina.get("/AuditEvent", params={"patient": "Patient/pa", "_count": 100})).json()
        by_d4 = [e["resource"] for e in trail["entry"] if e["resource"]["agent"][0]["who"].get("reference") == "Practitioner/d4"]
        reads = [e for e in by_d4 if e["action"] == "R" and e.get("outcome") == "0"]
        assert reads and all(e["purposeOfEvent"][0]["coding"][0] == BTG for e in reads)
        assert any(e["subtype"][-1]["code"] == "$break-glass" and e["entity"][-1].get("description") == "Patiente inconsciente aux urgences" for e in by_d4)
        assert any(e["outcome"] == "4" and e["action"] == "R" for e in by_d4)  # the refused attempt before


async def test_break_the_glass_expires(world):
    async with world.client("D4") as d4:
        assert (await d4.post("/Patient/pb/$break-glass", json=reason("urgence"))).status_code == 200
        assert (await d4.get("/Patient/pb")).status_code == 200
        async with write_transaction(world.app.state.engine) as conn:
            await conn.execute(update(break_glass_grant).values(expires_at=now_us() - 1))
        assert (await d4.get("/Patient/pb")).status_code == 404


@pytest.mark.parametrize(("user", "status"), [("D1", 422), ("PH", 403), ("pa", 403), ("AG", 403)])
async def test_only_doctors_without_access_break_the_glass(world, user, status):
    async with world.client(user) as c:
        assert (await c.post("/Patient/pa/$break-glass", json=reason("urgence"))).status_code == status


async def test_break_the_glass_on_unknown_patient(world):
    async with world.client("D4") as d4:
        assert (await d4.post("/Patient/nobody/$break-glass", json=reason("urgence"))).status_code == 404


async def test_guardian_sees_a_minor_child_only(world):
    async with world.client("pa") as amina:
        assert (await amina.get("/Observation/obs-c")).status_code == 200
    # the same link to an adult child gives nothing (a mother is not a legal guardian of an adult)
    from .test_access_matrix import _read_in_process

    pc = await _read_in_process(world, "Patient/pc")
    pc["birthDate"] = "1990-01-01"
    from ehr.interactions.transaction import Options, transaction

    s = world.app.state.security.settings
    await transaction(world.app.state.engine, {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "PUT", "url": "Patient/pc"}, "resource": pc}]}, Options(s.base_url, 20, 100, 10, False))
    async with world.client("pa") as amina:
        assert (await amina.get("/Observation/obs-c")).status_code == 404


async def test_cached_access_sets_follow_the_writes_of_this_process(secure_settings):
    """With the per-user cache on, what a user or a patient just wrote counts at once."""
    from tests.conftest import running_app

    from .world import seed_world

    async with running_app(secure_settings.model_copy(update={"identity_cache_seconds": 300})) as app:
        world = await seed_world(app)
        async with world.client("D4") as d4, world.client("pa") as amina, world.client("pb") as brahim:
            assert (await d4.get("/Patient/pa")).status_code == 404  # cached: no relationship
            encounter = {"resourceType": "Encounter", "status": "in-progress", "class": {"code": "AMB"},
                         "subject": {"reference": "Patient/pb"}, "participant": [{"individual": {"reference": "Practitioner/d4"}}],
                         "period": {"start": "2025-01-01T08:00:00Z"}}
            assert (await d4.post("/Encounter", json=encounter)).status_code == 403  # no relationship declares itself
            proof = {"resourceType": "Parameters", "parameter": [
                {"name": "identifier", "valueIdentifier": {"system": CIN, "value": "BB222"}}, {"name": "birthDate", "valueDate": "1975-06-07"}]}
            assert (await d4.post("/Patient/pb/$start-care", json=proof)).status_code == 200
            assert (await d4.get("/Patient/pb")).status_code == 200  # the care he just started, at once
            assert (await d4.post("/Encounter", json=encounter)).status_code == 201  # ...for his writes too
            permit = consent("pa", {"type": "permit", "actor": [actor("Practitioner/d4")]})
            assert (await amina.post("/Consent", json=permit)).status_code == 201
            assert (await d4.get("/Patient/pa")).status_code == 200  # her Consent, at once
            deny = consent("pb", {"type": "deny", "actor": [actor("Practitioner/d4")]})
            assert (await brahim.post("/Consent", json=deny)).status_code == 201
            assert (await d4.get("/Patient/pb")).status_code == 404  # his deny, at once, over the relationship

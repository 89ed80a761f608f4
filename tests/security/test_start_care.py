"""A doctor identifies a walk-in patient and starts care: explicit, bounded, visible (both databases).

Brahim (pb, CIN BB222, CNOPS CN-7788, born 1975-06-07) walks in to Dr D4, who has never seen
him.  D4 finds him with ``Patient/$match`` (identifier + birth date: the proof of presence),
gets his identity only, then starts care with ``$start-care``: for ``care_start_days`` he reads
and writes Brahim's file, Brahim is told and sees it in "who saw my file".  Encounters,
CareTeams and EpisodesOfCare count only once started, and only for a bounded time.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ehr.interactions.transaction import Options, transaction
from tests.conftest import running_app

from .world import CIN, seed_world

CNOPS = "https://fhir.sijill.ma/sid/cnops"
CARE_OP = "/Patient/pb/$start-care"


def match_body(system: str = CIN, value: str = "BB222", birth: str | None = "1975-06-07", **extra) -> dict:
    patient = {"resourceType": "Patient", "identifier": [{"system": system, "value": value}], **extra}
    if birth:
        patient["birthDate"] = birth
    return {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient},
                                                        {"name": "onlyCertainMatches", "valueBoolean": True}]}


def proof(value: str = "BB222", birth: str = "1975-06-07", system: str = CIN, **extra) -> dict:
    params = [{"name": "identifier", "valueIdentifier": {"system": system, "value": value}},
              {"name": "birthDate", "valueDate": birth}]
    params += [{"name": k, "valueString": v} for k, v in extra.items()]
    return {"resourceType": "Parameters", "parameter": params}


def _instant(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def seed(world, *resources: dict) -> None:
    """Write resources in-process (another system's feed: no caller, no policy)."""
    s = world.app.state.security.settings
    entries = [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]
    await transaction(world.app.state.engine, {"resourceType": "Bundle", "type": "transaction", "entry": entries},
                      Options(s.base_url, 20, 100, 100, False))


# --- $match --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("user", "status"), [(None, 401), ("PH", 403), ("pb", 403), ("AG", 403), ("AD", 403)])
async def test_only_doctors_and_counter_agents_identify_a_patient(world, user, status):
    async with world.client(user) as c:
        resp = await c.post("/Patient/$match", json=match_body())
    assert resp.status_code == status
    assert resp.json()["resourceType"] == "OperationOutcome"


async def test_a_doctor_finds_a_walk_in_patient_by_identifier_and_birth_date(world):
    async with world.client("D4") as d4, world.client("PA") as counter:
        for body in (match_body(), match_body(CNOPS, "CN-7788")):
            resp = await d4.post("/Patient/$match", json=body)
            assert resp.status_code == 200, resp.text
            bundle = resp.json()
            assert bundle["type"] == "searchset" and bundle["total"] == 1
            (entry,) = bundle["entry"]
            assert entry["search"]["mode"] == "match" and entry["search"]["score"] == 1
            patient = entry["resource"]
            # the identity only: nothing of the file, not even the address
            assert set(patient) == {"resourceType", "id", "meta", "identifier", "name", "gender", "birthDate"}
            assert patient["id"] == "pb" and entry["fullUrl"].endswith("/Patient/pb")
            assert any(t["code"] == "SUBSETTED" for t in patient["meta"]["tag"])
        assert (await counter.post("/Patient/$match", json=match_body())).json()["total"] == 1
        # finding him opened nothing
        assert (await d4.get("/Patient/pb")).status_code == 404
    async with world.client("pb") as brahim:
        trail = (await brahim.get("/AuditEvent", params={"patient": "Patient/pb"})).json()
    assert any(e["resource"]["subtype"][-1]["code"] == "$match" and e["resource"]["agent"][0]["who"]["reference"] == "Practitioner/d4"
               for e in trail["entry"])


async def test_a_wrong_birth_date_is_no_match_at_all(world):
    async with world.client("D4") as d4:
        wrong_birth = await d4.post("/Patient/$match", json=match_body(birth="1975-06-08"))
        unknown = await d4.post("/Patient/$match", json=match_body(value="ZZ999"))
    assert wrong_birth.status_code == unknown.status_code == 200
    assert wrong_birth.json() == unknown.json() == {"resourceType": "Bundle", "type": "searchset", "total": 0}


@pytest.mark.parametrize(("body", "expression"), [
    (match_body(birth=None), "Parameters.parameter.where(name='resource').resource.birthDate"),
    (match_body(birth="1975"), "Parameters.parameter.where(name='resource').resource.birthDate"),
    (match_body("https://example.org/any", "BB222"), "Parameters.parameter.where(name='resource').resource.identifier.system"),
    (match_body(identifier=[{"system": CIN, "value": "BB222"}, {"system": CNOPS, "value": "CN-7788"}]),
     "Parameters.parameter.where(name='resource').resource.identifier"),
    ({"resourceType": "Parameters", "parameter": []}, "Parameters.parameter.where(name='resource').resource"),
])
async def test_a_malformed_proof_is_a_bad_request(world, body, expression):
    async with world.client("D4") as d4:
        resp = await d4.post("/Patient/$match", json=body)
    assert resp.status_code == 400
    assert resp.json()["issue"][0]["expression"] == [expression]


async def test_repeated_misses_are_throttled_and_audited(secure_settings):
    async with running_app(secure_settings.model_copy(update={"presence_miss_limit": "3/hour"})) as app:
        world = await seed_world(app)
        async with world.client("D4") as d4, world.client("D1") as d1:
            for n in range(3):
                assert (await d4.post("/Patient/$match", json=match_body(value=f"GUESS{n}"))).json()["total"] == 0
            # the limit reached: even a right proof is refused, on every operation taking one
            throttled = await d4.post("/Patient/$match", json=match_body())
            assert throttled.status_code == 429 and throttled.json()["issue"][0]["code"] == "throttled"
            assert int(throttled.headers["Retry-After"]) > 0
            assert (await d4.post(CARE_OP, json=proof())).status_code == 429
            # another doctor is not held back by D4's misses
            assert (await d1.post("/Patient/$match", json=match_body())).json()["total"] == 1
        async with world.client("pb") as brahim:
            trail = (await brahim.get("/AuditEvent", params={"patient": "Patient/pb"})).json()
    refused = [e["resource"] for e in trail["entry"] if e["resource"]["subtype"][-1]["code"] == "$start-care"]
    assert refused and refused[0]["outcome"] == "4" and "429" in refused[0]["outcomeDesc"]


# --- $start-care ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("user", "status"), [(None, 401), ("PA", 403), ("PH", 403), ("pb", 403), ("AG", 403)])
async def test_only_a_doctor_starts_care(world, user, status):
    async with world.client(user) as c:
        assert (await c.post(CARE_OP, json=proof())).status_code == status


async def test_a_wrong_proof_answers_as_an_unknown_patient(world):
    async with world.client("D4") as d4:
        wrong = await d4.post(CARE_OP, json=proof(birth="1975-06-08"))
        other = await d4.post(CARE_OP, json=proof("AA111", "1980-02-03"))  # Amina's own proof, on Brahim's id
        unknown = await d4.post("/Patient/nobody/$start-care", json=proof())
        assert wrong.status_code == other.status_code == unknown.status_code == 404
        assert wrong.json() == other.json() == {**unknown.json(), "issue": [
            {**i, "diagnostics": i["diagnostics"].replace("nobody", "pb")} for i in unknown.json()["issue"]]}
        assert (await d4.get("/Patient/pb")).status_code == 404
        bad = await d4.post(CARE_OP, json={"resourceType": "Parameters", "parameter": []})
        assert bad.status_code == 400
        assert bad.json()["issue"][0]["expression"] == ["Parameters.parameter.where(name='identifier').valueIdentifier"]


async def test_starting_care_opens_the_file_for_a_bounded_time_and_the_patient_is_told(world, server_clock):
    async with world.client("D4") as d4, world.client("pb") as brahim:
        found = (await d4.post("/Patient/$match", json=match_body(CNOPS, "CN-7788"))).json()["entry"][0]["resource"]["id"]
        started = await d4.post(f"/Patient/{found}/$start-care", json=proof(reason="Consultation sans rendez-vous"))
        assert started.status_code == 200, started.text
        params = {p["name"]: p for p in started.json()["parameter"]}
        assert params["patient"]["valueReference"]["reference"] == "Patient/pb"
        period = params["period"]["valuePeriod"]
        days = datetime.fromisoformat(period["end"]) - datetime.fromisoformat(period["start"])
        assert days == timedelta(days=30)

        # the whole file now: reads, searches, and writes into it
        patient = (await d4.get("/Patient/pb")).json()
        assert patient["address"] == [{"city": "Rabat"}]
        assert (await d4.get("/Observation/obs-b")).status_code == 200
        obs = {"resourceType": "Observation", "status": "final", "code": {"text": "Tension artérielle"},
               "subject": {"reference": "Patient/pb"}, "performer": [{"reference": "Practitioner/d4"}]}
        assert (await d4.post("/Observation", json=obs)).status_code == 201
        assert (await d4.get("/Patient/pa")).status_code == 404  # one patient only

        # Brahim is told, in French and Arabic, by a message he reads
        notes = (await brahim.get("/Communication", params={"subject": "Patient/pb"})).json()
        (note,) = [e["resource"] for e in notes["entry"] if e["resource"].get("sender", {}).get("reference") == "Practitioner/d4"]
        assert note["category"][0]["coding"][0]["code"] == "care-started"
        assert note["recipient"] == [{"reference": "Patient/pb"}]
        french, arabic = (p["contentString"] for p in note["payload"])
        assert "D4 a ouvert votre dossier médical" in french and "ملفكم" in arabic
        assert "sans rendez-vous" not in french + arabic  # the reason may be clinical: never in an SMS
        # ... and sees it in who saw his file
        trail = (await brahim.get("/AuditEvent", params={"patient": "Patient/pb"})).json()
        start = [e["resource"] for e in trail["entry"] if e["resource"]["subtype"][-1]["code"] == "$start-care"]
        assert start and start[0]["agent"][0]["who"]["reference"] == "Practitioner/d4" and start[0]["outcome"] == "0"

        # after the period, the file closes again (his own Observation stays his to read)
        server_clock.advance(days=30, minutes=1)
        assert (await d4.get("/Patient/pb")).status_code == 404
        assert (await d4.get("/Observation/obs-b")).status_code == 404


async def test_a_conditional_reference_by_identifier_finds_a_patient_in_care(world):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "request": {"method": "POST", "url": "Observation"},
        "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "Poids"},
                     "subject": {"reference": f"Patient?identifier={CIN}|BB222"}}}]}
    async with world.client("D4") as d4:
        assert (await d4.post("/", json=bundle)).status_code in (400, 404, 412, 422)  # no patient of his
        assert (await d4.post(CARE_OP, json=proof())).status_code == 200
        found = await d4.get("/Patient", params={"identifier": f"{CIN}|BB222"})
        assert [e["resource"]["id"] for e in found.json()["entry"]] == ["pb"]
        done = await d4.post("/", json=bundle)
        assert done.status_code == 200, done.text
        created = await d4.get(done.json()["entry"][0]["response"]["location"])
        assert created.json()["subject"]["reference"] == "Patient/pb"


# --- Encounters, CareTeams, EpisodesOfCare: bounded --------------------------------------------


async def test_planned_or_undated_relationships_grant_nothing(world):
    now = datetime.now(timezone.utc)

    def encounter(rid: str, status: str, period: dict | None) -> dict:
        enc = {"resourceType": "Encounter", "id": rid, "status": status, "class": {"code": "AMB"},
               "subject": {"reference": "Patient/pb"}, "participant": [{"individual": {"reference": "Practitioner/d4"}}]}
        return {**enc, "period": period} if period else enc

    async with world.client("D4") as d4:
        for rid, status, period in [
            ("e-planned", "planned", {"start": _instant(now - timedelta(hours=1))}),
            ("e-undated", "in-progress", None),
            ("e-no-start", "finished", {"end": _instant(now - timedelta(days=1))}),
            ("e-future", "arrived", {"start": _instant(now + timedelta(days=30))}),
            ("e-cancelled", "cancelled", {"start": _instant(now - timedelta(hours=1))}),
        ]:
            await seed(world, encounter(rid, status, period))
            assert (await d4.get("/Patient/pb")).status_code == 404, rid
        await seed(world, {"resourceType": "CareTeam", "id": "ct-proposed", "status": "proposed", "subject": {"reference": "Patient/pb"},
                           "participant": [{"member": {"reference": "Practitioner/d4"}}], "period": {"start": _instant(now)}})
        assert (await d4.get("/Patient/pb")).status_code == 404
        # started and under way: care
        await seed(world, encounter("e-now", "in-progress", {"start": _instant(now - timedelta(hours=1))}))
        assert (await d4.get("/Patient/pb")).status_code == 200


async def test_an_encounter_without_end_counts_from_its_start(world, server_clock):
    async with world.client("D1") as d1, world.client("D3") as d3:
        assert (await d1.get("/Patient/pa")).status_code == 200  # enc-a started ten days ago, no end
        assert (await d3.get("/Patient/pa")).status_code == 200  # ct-a, the same
        server_clock.advance(days=365 - 10 + 1)
        assert (await d1.get("/Patient/pa")).status_code == 404
        assert (await d3.get("/Patient/pa")).status_code == 404


async def test_a_far_future_end_counts_one_window_past_the_start(world, server_clock):
    now = datetime.now(timezone.utc)
    await seed(world, {"resourceType": "Encounter", "id": "e-forever", "status": "in-progress", "class": {"code": "AMB"},
                       "subject": {"reference": "Patient/pb"}, "participant": [{"individual": {"reference": "Practitioner/d4"}}],
                       "period": {"start": _instant(now - timedelta(days=1)), "end": "2099-12-31T00:00:00Z"}})
    async with world.client("D4") as d4:
        assert (await d4.get("/Patient/pb")).status_code == 200
        server_clock.advance(days=2 * 365 - 1 - 1)  # a window past the start, then the window itself
        assert (await d4.get("/Patient/pb")).status_code == 200
        server_clock.advance(days=2)
        assert (await d4.get("/Patient/pb")).status_code == 404

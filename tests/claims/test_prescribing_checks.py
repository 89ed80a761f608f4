"""Checks at prescribing, with the doctor's own token (issue 11).

D1 has seen Amina (``pa``, covered by CNSS) ten days ago (tests/security/world.py); the medicines
are those of the SAMPLE national list (profiles/reference/sample/medicines.csv).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from claims.messaging.catalogue import fits_one_sms
from claims.tables import message_outbox
from ehr.store import repository
from tests.security.conftest import rsa_key, secure_app, secure_settings, world  # noqa: F401  (fixtures)

MEDICINE = "https://fhir.sijill.ma/CodeSystem/medicament"
OVERRIDE = "https://fhir.sijill.ma/StructureDefinition/override-reason"
GLUCOPHAGE_850, GLUCOPHAGE_1000 = "6118001032938", "6118001033300"  # metformin, 1 to 3 a day
CLAMOXYL_1G, ADVIL, DOLIPRANE_500 = "6118001010363", "6118001004812", "6118001000371"  # Advil: not reimbursable
TAHOR_10 = "6118001049950"  # the SAMPLE list: reimbursed by CNSS, not by CNOPS
LOINC = "http://loinc.org"


def line(code: str, per_day: int = 2, dose: float = 1, **extra) -> dict:
    return {
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": MEDICINE, "code": code}]},
        "subject": {"reference": "Patient/pa"}, "requester": {"reference": "Practitioner/d1"},
        "authoredOn": datetime.now(timezone.utc).date().isoformat(),
        "dosageInstruction": [{"timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                               "doseAndRate": [{"doseQuantity": {"value": dose, "unit": "comprimé"}}]}],
        **extra,
    }


def overridden(res: dict, reason: str = "Relais voulu, ancienne ligne arrêtée demain") -> dict:
    return {**res, "extension": [{"url": OVERRIDE, "valueString": reason}]}


def found(resp) -> list[tuple[str, list[str]]]:
    """(code, implicated) of each DetectedIssue contained in a refusal."""
    body = resp.json()
    return [(i["code"]["coding"][0]["code"], [r["reference"] for r in i.get("implicated", [])]) for i in body["contained"]]


async def test_a_clean_prescription_is_stored_without_detected_issue(world):
    async with world.client("D1") as d1:
        resp = await d1.post("/MedicationRequest", json=line(GLUCOPHAGE_850))
    assert resp.status_code == 201
    assert "detectedIssue" not in resp.json()


@pytest.mark.parametrize(("user", "status"), [(None, 401), ("PH", 403), ("AG", 403)])
async def test_only_prescribers_write_prescriptions(world, user, status):
    async with world.client(user) as c:
        assert (await c.post("/MedicationRequest", json=line(GLUCOPHAGE_850))).status_code == status


async def test_duplicate_therapy_is_refused_then_overridden_with_a_reason(world):
    async with world.client("D1") as d1:
        first = (await d1.post("/MedicationRequest", json=line(GLUCOPHAGE_850))).json()
        refused = await d1.post("/MedicationRequest", json=line(GLUCOPHAGE_1000))
        assert refused.status_code == 409
        assert found(refused) == [("DUPTHPY", [f"MedicationRequest/{first['id']}"])]
        issue = refused.json()["issue"][0]
        assert issue["code"] == "business-rule" and issue["expression"] == ["MedicationRequest.medicationCodeableConcept"]
        assert "Metformine" in issue["diagnostics"] and "double" in issue["diagnostics"]
        # nothing stored by the refusal
        assert (await d1.get("/MedicationRequest", params={"code": f"{MEDICINE}|{GLUCOPHAGE_1000}"})).json()["total"] == 0

        stored = await d1.post("/MedicationRequest", json=overridden(line(GLUCOPHAGE_1000)))
        assert stored.status_code == 201
        body = stored.json()
        assert "extension" not in body and len(body["detectedIssue"]) == 1
        issue = (await d1.get(f"/{body['detectedIssue'][0]['reference']}")).json()
    assert issue["status"] == "final" and issue["code"]["coding"][0]["code"] == "DUPTHPY"
    assert issue["implicated"] == [{"reference": f"MedicationRequest/{first['id']}"}]
    assert issue["patient"] == {"reference": "Patient/pa"} and issue["author"] == {"reference": "Practitioner/d1"}
    mitigation = issue["mitigation"][0]
    assert mitigation["action"]["text"] == "Relais voulu, ancienne ligne arrêtée demain"
    assert mitigation["author"] == {"reference": "Practitioner/d1"}


async def test_the_message_speaks_the_callers_language(world):
    async with world.client("D1", **{"Accept-Language": "ar"}) as d1:
        await d1.post("/MedicationRequest", json=line(GLUCOPHAGE_850))
        refused = await d1.post("/MedicationRequest", json=line(GLUCOPHAGE_1000))
    assert refused.status_code == 409
    assert "علاج مكرر" in refused.json()["issue"][0]["diagnostics"]
    assert "علاج مكرر" in refused.json()["contained"][0]["detail"]


async def test_a_cancelled_or_ended_prescription_is_no_duplicate(world):
    async with world.client("D1") as d1:
        first = (await d1.post("/MedicationRequest", json=line(GLUCOPHAGE_850))).json()
        ended = line(GLUCOPHAGE_850, dispenseRequest={"validityPeriod": {"end": "2024-01-31"}})
        assert (await d1.post("/MedicationRequest", json=ended)).status_code == 409  # still the first one running
        cancelled = await d1.put(f"/MedicationRequest/{first['id']}", json={**first, "status": "cancelled"})
        assert cancelled.status_code == 200
        assert (await d1.post("/MedicationRequest", json=line(GLUCOPHAGE_1000))).status_code == 201
        assert (await d1.get(f"/MedicationRequest/{first['id']}")).json()["status"] == "cancelled"


async def test_a_changed_line_is_checked_again_but_not_against_itself(world):
    async with world.client("D1") as d1:
        first = (await d1.post("/MedicationRequest", json=line(GLUCOPHAGE_850))).json()
        same = await d1.put(f"/MedicationRequest/{first['id']}", json={**first, "note": [{"text": "au repas"}]})
        assert same.status_code == 200
        too_much = await d1.put(f"/MedicationRequest/{first['id']}", json={**line(GLUCOPHAGE_850, per_day=5), "id": first["id"]})
        assert too_much.status_code == 409 and found(too_much) == [("DOSEHINDA", [])]
        assert (await d1.get(f"/MedicationRequest/{first['id']}")).json()["dosageInstruction"] == first["dosageInstruction"]


async def test_a_recorded_allergy_is_refused(world):
    allergy = {"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/pa"},
               "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                              "code": "active"}]},
               "code": {"text": "Amoxicilline"}}
    async with world.client("D1") as d1:
        recorded = (await d1.post("/AllergyIntolerance", json=allergy)).json()
        refused = await d1.post("/MedicationRequest", json=line(CLAMOXYL_1G))
    assert refused.status_code == 409
    assert found(refused) == [("ALGY", [f"AllergyIntolerance/{recorded['id']}"])]
    assert refused.json()["contained"][0]["severity"] == "high"


async def test_a_medicine_the_patients_fund_does_not_reimburse_is_refused(world):
    async with world.client("D1") as d1:
        refused = await d1.post("/MedicationRequest", json=line(ADVIL))
        unknown = await d1.post("/MedicationRequest", json=line("6118009999994"))
    assert refused.status_code == 409 and found(refused) == [("not-reimbursed", [])]
    assert "CNSS" in refused.json()["issue"][0]["diagnostics"]
    assert unknown.status_code == 409 and found(unknown) == [("not-listed", [])]


async def test_a_medicine_is_checked_against_the_patients_own_fund(world):
    async with world.client("D1") as d1:
        for_amina = await d1.post("/MedicationRequest", json=line(TAHOR_10, per_day=1))  # CNSS
    brahims = {**line(TAHOR_10, per_day=1), "subject": {"reference": "Patient/pb"}, "requester": {"reference": "Practitioner/d3"}}
    async with world.client("D3") as d3:
        for_brahim = await d3.post("/MedicationRequest", json=brahims)  # CNOPS
    assert for_amina.status_code == 201
    assert for_brahim.status_code == 409 and found(for_brahim) == [("not-reimbursed", [])]
    diagnostics = for_brahim.json()["issue"][0]["diagnostics"]
    assert "Tahor" in diagnostics and "CNOPS" in diagnostics and "CNSS" not in diagnostics


async def test_a_dose_above_the_usual_range_is_refused(world):
    async with world.client("D1") as d1:
        refused = await d1.post("/MedicationRequest", json=line(DOLIPRANE_500, per_day=4, dose=3))  # 12 tablets a day
        in_mg = await d1.post("/MedicationRequest", json=line(
            DOLIPRANE_500, per_day=3, dosageInstruction=[{"timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
                                                          "doseAndRate": [{"doseQuantity": {"value": 1000, "unit": "mg"}}]}]))
    assert refused.status_code == 409 and found(refused) == [("DOSEHINDA", [])]
    assert refused.json()["issue"][0]["expression"] == ["MedicationRequest.dosageInstruction"]
    assert in_mg.status_code == 201  # 3 g a day: 6 tablets of 500 mg


async def test_a_test_done_recently_is_refused_with_the_earlier_result(world):
    when = (datetime.now(timezone.utc) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    glucose = {"coding": [{"system": LOINC, "code": "2345-7", "display": "Glycémie"}]}
    order = {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "code": glucose,
             "subject": {"reference": "Patient/pa"}, "requester": {"reference": "Practitioner/d1"},
             "authoredOn": datetime.now(timezone.utc).date().isoformat()}
    async with world.client("D1") as d1:
        old = {"resourceType": "Observation", "status": "final", "code": glucose, "subject": {"reference": "Patient/pa"},
               "effectiveDateTime": "2024-01-05T08:00:00Z"}
        assert (await d1.post("/Observation", json=old)).status_code == 201
        assert (await d1.post("/ServiceRequest", json=order)).status_code == 201  # the old result is outside the window
        # Dr D1's own order now counts, and a recent result
        result = (await d1.post("/Observation", json={**old, "effectiveDateTime": when})).json()
        refused = await d1.post("/ServiceRequest", json=order)
        assert refused.status_code == 409
        (code, implicated), = found(refused)
        assert code == "duplicate-test" and f"Observation/{result['id']}" in implicated
        assert any(r.startswith("ServiceRequest/") for r in implicated)
        assert refused.json()["issue"][0]["expression"] == ["ServiceRequest.code"]
        stored = await d1.post("/ServiceRequest", json=overridden(order, "Contrôle après changement de traitement"))
    assert stored.status_code == 201 and stored.json()["supportingInfo"][0]["reference"].startswith("DetectedIssue/")


async def test_bundle_entries_are_checked_where_they_stand(world):
    def entry(res):
        return {"resource": res, "request": {"method": "POST", "url": "MedicationRequest"}}

    async with world.client("D1") as d1:
        first = (await d1.post("/MedicationRequest", json=line(GLUCOPHAGE_850))).json()
        tx = {"resourceType": "Bundle", "type": "transaction",
              "entry": [entry(line(DOLIPRANE_500)), entry(line(GLUCOPHAGE_1000))]}
        refused = await d1.post("/", json=tx)
        assert refused.status_code == 409
        assert refused.json()["issue"][0]["expression"] == ["Bundle.entry[1].resource.medicationCodeableConcept"]
        assert found(refused) == [("DUPTHPY", [f"MedicationRequest/{first['id']}"])]
        assert (await d1.get("/MedicationRequest", params={"code": f"{MEDICINE}|{DOLIPRANE_500}"})).json()["total"] == 0  # all or nothing
        batch = await d1.post("/", json={**tx, "type": "batch"})
        answers = [e["response"] for e in batch.json()["entry"]]
        assert answers[0]["status"].startswith("201") and answers[1]["status"].startswith("409")
        assert answers[1]["outcome"]["contained"][0]["code"]["coding"][0]["code"] == "DUPTHPY"
        assert answers[1]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[1].resource.medicationCodeableConcept"]


async def test_the_patient_is_told_the_whole_number_once_and_nothing_of_the_medicines(world):
    def entry(res):
        return {"resource": res, "request": {"method": "POST", "url": "MedicationRequest"}}

    async with world.client("D1") as d1:
        tx = {"resourceType": "Bundle", "type": "transaction", "entry": [entry(line(GLUCOPHAGE_850)), entry(line(DOLIPRANE_500))]}
        written = await d1.post("/", json=tx)
        assert written.status_code == 200, written.text
        first = (await d1.get(written.json()["entry"][0]["response"]["location"].split("/_history")[0])).json()
        group = first["groupIdentifier"]
        added = await d1.post("/MedicationRequest", json=line(CLAMOXYL_1G, groupIdentifier=group))  # a line added later
        assert added.status_code == 201, added.text
        assert (await d1.post("/MedicationRequest", json=line(GLUCOPHAGE_1000))).status_code == 409  # refused: nobody told
    async with world.app.state.engine.connect() as conn:
        rows = (await conn.execute(select(message_outbox.c.patient_id, message_outbox.c.communication_id)
                                   .where(message_outbox.c.event == "prescription-ready"))).all()
        (row,) = rows
        told = (await repository.current(conn, "Communication", row.communication_id)).resource()
    assert row.patient_id == "pa" and told["subject"] == {"reference": "Patient/pa"}
    assert told["about"] == [{"type": "MedicationRequest", "identifier": {"system": group["system"], "value": group["value"]}}]
    french, arabic = (p["contentString"] for p in told["payload"])
    assert group["value"] in french and group["value"] in arabic and len(group["value"]) == 14  # whole: 7SE7-N65P-TKS7
    assert fits_one_sms(french) and fits_one_sms(arabic)
    assert not any(word in french + arabic for word in ("Glucophage", "Doliprane", "metformin", GLUCOPHAGE_850))


async def test_two_lines_of_one_substance_sent_together_duplicate_each_other(world):
    def entry(res):
        return {"resource": res, "request": {"method": "POST", "url": "MedicationRequest"}}

    async with world.client("D1") as d1:
        tx = {"resourceType": "Bundle", "type": "transaction",
              "entry": [entry(line(GLUCOPHAGE_850)), entry(line(DOLIPRANE_500)), entry(line(GLUCOPHAGE_1000))]}
        refused = await d1.post("/", json=tx)
        assert refused.status_code == 409
        assert refused.json()["issue"][0]["expression"] == ["Bundle.entry[2].resource.medicationCodeableConcept"]
        (code, implicated), = found(refused)  # the first line, not yet stored, is named by the id it would have
        assert code == "DUPTHPY" and len(implicated) == 1 and implicated[0].startswith("MedicationRequest/")
        assert (await d1.get("/MedicationRequest", params={"code": f"{MEDICINE}|{GLUCOPHAGE_850}"})).json()["total"] == 0

        tx["entry"][2] = entry(overridden(line(GLUCOPHAGE_1000), "Deux dosages voulus : 850 le matin, 1000 le soir"))
        written = await d1.post("/", json=tx)
        assert written.status_code == 200, written.text
        first, _, second = [e["response"]["location"].split("/_history")[0] for e in written.json()["entry"]]
        lines = {r: (await d1.get(f"/{r}")).json() for r in (first, second)}
        assert "detectedIssue" not in lines[first] and len(lines[second]["detectedIssue"]) == 1
        assert lines[first]["groupIdentifier"] == lines[second]["groupIdentifier"]  # one prescription
        issue = (await d1.get(f"/{lines[second]['detectedIssue'][0]['reference']}")).json()
    assert issue["code"]["coding"][0]["code"] == "DUPTHPY" and issue["implicated"] == [{"reference": first}]
    assert issue["mitigation"][0]["action"]["text"] == "Deux dosages voulus : 850 le matin, 1000 le soir"

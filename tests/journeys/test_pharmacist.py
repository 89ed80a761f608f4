"""The pharmacist's journey: the prescription found by the number the patient hands over, the
minimal patient, the dispense, the pharmacy care sheet decided and paid; guessing finds nothing
and patients cannot be searched."""
from __future__ import annotations

import time

from .conftest import ATC, MEDICINE, PRESCRIPTION, care_sheet, decided, entries, paid

# Reimbursable packs of the sample medicines list (profiles/reference/sample/medicines.csv).
PACKS = {"A10BA02": ("6118001032938", 24.90), "C08CA01": ("6118001038480", 98.60)}


def test_pharmacist_dispenses_a_presented_prescription_and_is_paid(live):
    pharmacist = live.as_user("pharmacist")
    number = live.story["pharmacist"]["prescription"]
    assert number, "the demo's current prescription carries a server-assigned number"

    found = pharmacist.get("MedicationRequest", params={"group-identifier": f"{PRESCRIPTION}|{number}"})
    assert found.status_code == 200, found.text
    lines = entries(found.json(), "MedicationRequest")
    assert sorted(c["code"] for mr in lines for c in mr["medicationCodeableConcept"]["coding"] if c["system"] == ATC) \
        == ["A10BA02", "C08CA01"]
    assert {mr["groupIdentifier"]["value"] for mr in lines} == {number}
    patient = lines[0]["subject"]["reference"]

    minimal = pharmacist.get(patient).json()
    assert set(minimal) <= {"resourceType", "id", "meta", "identifier", "name", "gender", "birthDate"}
    assert any(t.get("code") == "SUBSETTED" for t in minimal["meta"]["tag"])
    assert pharmacist.get("Patient", params={"name": "alaoui"}).status_code == 403

    guessed = number[:-1] + ("A" if number[-1] != "A" else "B")
    miss = pharmacist.get("MedicationRequest", params={"group-identifier": f"{PRESCRIPTION}|{guessed}"})
    assert miss.status_code in (200, 400) and entries(miss.json(), "MedicationRequest") == []

    handed = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    for mr in lines:
        atc = next(c["code"] for c in mr["medicationCodeableConcept"]["coding"] if c["system"] == ATC)
        dispense = pharmacist.post("MedicationDispense", json={
            "resourceType": "MedicationDispense", "status": "completed", "subject": {"reference": patient},
            "medicationCodeableConcept": {"coding": [{"system": MEDICINE, "code": PACKS[atc][0]}, {"system": ATC, "code": atc}]},
            "authorizingPrescription": [{"reference": f"MedicationRequest/{mr['id']}"}],
            "performer": [{"actor": {"reference": "Practitioner/demo-pharmacist"}}],
            "quantity": {"value": 1}, "whenHandedOver": handed})
        assert dispense.status_code == 201, dispense.text

    coverages = entries(pharmacist.get("Coverage", params={"beneficiary": patient}).json(), "Coverage")
    assert coverages, "the presented prescription opens the patient's coverage"
    sheet = pharmacist.post("Claim", json=care_sheet(
        "pharmacy", patient, f"Coverage/{coverages[0]['id']}", "Organization/demo-pharmacy", "200300400",
        [(MEDICINE, code, price) for code, price in PACKS.values()]))
    assert sheet.status_code == 201, sheet.text
    response_id = sheet.headers["Location"].split("/ClaimResponse/")[1].split("/")[0]
    assert decided(pharmacist, response_id)["outcome"] in ("complete", "partial")
    paid(live, pharmacist, response_id)
    reconciliations = pharmacist.get("PaymentReconciliation")
    assert reconciliations.status_code == 200 and entries(reconciliations.json(), "PaymentReconciliation")

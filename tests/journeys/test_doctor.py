"""The doctor's journey: a walk-in patient identified, care started, the file read and written,
rights checked, an e-prescription, a care sheet decided by the worker and paid; a patient not
in care stays invisible."""
from __future__ import annotations

import time

from .conftest import ACTS, CIN, PRESCRIPTION, care_sheet, decided, entries, paid, parameters

ME = "Practitioner/demo-doctor"


def _now(minutes_ago: int = 0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 60 * minutes_ago))


def test_doctor_serves_a_walk_in_patient_end_to_end(live):
    doctor = live.as_user("doctor")
    walk_in = live.story["doctor"]["walk_in"]
    cin = {"system": CIN, "value": walk_in["cin"]}

    def match(birth_date: str) -> list[dict]:
        answer = doctor.post("Patient/$match", json=parameters(
            resource={"resourceType": "Patient", "identifier": [cin], "birthDate": birth_date}))
        assert answer.status_code == 200, answer.text
        return entries(answer.json(), "Patient")

    assert match("1901-01-01") == []  # the identifier alone proves nothing
    [found] = match(walk_in["birthDate"])
    assert set(found) <= {"resourceType", "id", "meta", "identifier", "name", "gender", "birthDate"}
    patient = f"Patient/{found['id']}"
    assert doctor.get(patient).status_code == 404  # identified is not yet in care

    started = doctor.post(f"{patient}/$start-care", json=parameters(
        identifier=cin, birthDate=walk_in["birthDate"], reason="Consultation sans rendez-vous"))
    assert started.status_code == 200, started.text
    assert doctor.get(patient).json()["id"] == found["id"]
    assert doctor.get(f"{patient}/$everything").status_code == 200

    encounter = doctor.post("Encounter", json={
        "resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": patient}, "participant": [{"individual": {"reference": ME}}],
        "period": {"start": _now(20), "end": _now()}})
    assert encounter.status_code == 201, encounter.text
    visit = {"reference": f"Encounter/{encounter.json()['id']}"}
    temperature = doctor.post("Observation", json={
        "resourceType": "Observation", "status": "final", "subject": {"reference": patient}, "encounter": visit,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5", "display": "Body temperature"}]},
        "effectiveDateTime": _now(10), "performer": [{"reference": ME}],
        "valueQuantity": {"value": 38.6, "unit": "°C", "system": "http://unitsofmeasure.org", "code": "Cel"}})
    assert temperature.status_code == 201, temperature.text
    angina = doctor.post("Condition", json={
        "resourceType": "Condition", "subject": {"reference": patient}, "encounter": visit, "recorder": {"reference": ME},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "J03", "display": "Acute tonsillitis"}]}})
    assert angina.status_code == 201, angina.text

    rights = doctor.post("CoverageEligibilityRequest", json={
        "resourceType": "CoverageEligibilityRequest", "status": "active", "purpose": ["validation", "benefits"],
        "patient": {"identifier": cin}, "created": time.strftime("%Y-%m-%d"), "provider": {"reference": ME},
        "insurer": {"display": "Organisme du patient"}})  # 1..1 in FHIR R4
    assert rights.status_code == 201, rights.text
    coverage = rights.json()["insurance"][0]["coverage"]["reference"]
    assert rights.json()["insurance"][0]["inforce"] is True

    prescription = doctor.post("MedicationRequest", json={
        "resourceType": "MedicationRequest", "status": "active", "intent": "order", "subject": {"reference": patient},
        "encounter": visit, "authoredOn": _now(), "requester": {"reference": ME},
        "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "J01CA04"}]},
        "dosageInstruction": [{"text": "1 comprimé de 1 g 2 fois par jour pendant 8 jours"}]})
    assert prescription.status_code == 201, prescription.text
    number = prescription.json()["groupIdentifier"]
    assert number["system"] == PRESCRIPTION and len(number["value"]) >= 6

    sheet = doctor.post("Claim", json=care_sheet("professional", patient, coverage, ME, "100200300", [(ACTS, "C", 150.0)]))
    assert sheet.status_code == 201, sheet.text
    response_id = sheet.headers["Location"].split("/ClaimResponse/")[1].split("/")[0]
    claim = doctor.get(f"Claim/{sheet.json()['request']['reference'].split('/')[-1]}").json()
    assert claim["insurer"]["reference"].startswith("Organization/")  # the fund it was routed to
    assert decided(doctor, response_id)["outcome"] in ("complete", "partial")
    payment = paid(live, doctor, response_id)
    assert payment["date"] and payment["identifier"]["value"]
    assert doctor.get("PaymentReconciliation", params={"_count": 5}).status_code == 200

    # A patient the doctor has no relationship with does not exist for them.
    stranger = live.story["paper-agent"]["patient"]
    assert doctor.get(stranger).status_code == 404

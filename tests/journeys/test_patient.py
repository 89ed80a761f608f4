"""The patient's journey: her rich file, her care sheets and reimbursements, who looked at her
file (the demo doctor's visits, and a start of care she is told about), a Consent given and
withdrawn."""
from __future__ import annotations

from .conftest import CIN, entries, eventually, parameters

ME = "Patient/demo-patient"


def test_patient_reads_her_file_her_reimbursements_and_who_saw_it(live):
    patient, doctor = live.as_user("patient"), live.as_user("doctor")

    def mine(res_type: str, **params) -> list[dict]:
        answer = patient.get(res_type, params={"patient": ME, "_count": 100, **params})
        assert answer.status_code == 200, answer.text
        return entries(answer.json(), res_type)

    assert patient.get(ME).json()["birthDate"] == "1985-04-12"
    conditions = mine("Condition")
    assert any(c.get("code") == "ald" for cond in conditions for cat in cond["category"] for c in cat["coding"])
    hba1c = mine("Observation", code="http://loinc.org|4548-4", _sort="date")
    assert [o["valueQuantity"]["value"] for o in hba1c] == [8.4, 7.6, 7.1, 6.8]
    assert all(e.get("period", {}).get("start") for e in mine("Encounter"))
    assert mine("AllergyIntolerance") and mine("DocumentReference") and mine("MedicationRequest", status="active")

    sheets = mine("Claim")
    assert {f"Claim/{c['id']}" for c in sheets} >= set(live.story["patient"]["claims"])
    answers = mine("ClaimResponse")
    assert any(r.get("payment", {}).get("amount", {}).get("value", 0) > 0 for r in answers), "what was paid for her"
    assert mine("ExplanationOfBenefit")

    # The demo doctor starts care again today (the proof: her CIN and birth date): she is told.
    started = doctor.post(f"{ME}/$start-care", json=parameters(
        identifier={"system": CIN, "value": "BK123456"}, birthDate="1985-04-12", reason="Suivi du diabète"))
    assert started.status_code == 200, started.text
    trail = patient.get("AuditEvent", params={"patient": ME, "_count": 200})
    assert trail.status_code == 200, trail.text
    events = entries(trail.json(), "AuditEvent")
    who = {a.get("who", {}).get("reference", "") for e in events for a in e["agent"]}
    assert any(ref.endswith("Practitioner/demo-doctor") for ref in who)
    assert any(c.get("code") == "$start-care" for e in events for c in e.get("subtype", []))
    told = eventually(lambda: [c for c in mine("Communication") if "Benali" in str(c.get("payload"))],
                      "the Communication telling her care started", timeout=30)
    assert told[0]["subject"]["reference"] == ME

    consent = patient.post("Consent", json={
        "resourceType": "Consent", "status": "active", "patient": {"reference": ME},
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "provision": {"type": "permit", "actor": [{"role": {"text": "named"},
                                                   "reference": {"reference": "Practitioner/demo-pharmacist"}}]}})
    assert consent.status_code == 201, consent.text
    withdrawn = dict(consent.json(), status="inactive")
    assert patient.put(f"Consent/{withdrawn['id']}", json=withdrawn).status_code == 200

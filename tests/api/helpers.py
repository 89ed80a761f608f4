"""Small builders shared by the API specifications."""
from __future__ import annotations


def patient(family: str = "Alaoui", given: str = "Amina", cin: str | None = "BK123456", **extra) -> dict:
    res = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "gender": "female",
        "birthDate": "1984-03-02",
    }
    if cin:
        res["identifier"] = [{"system": "https://fhir.sijill.ma/sid/cin", "value": cin}]
    res.update(extra)
    return res


def observation(patient_ref: str, code: str = "8867-4", value: float = 72) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": patient_ref},
        "effectiveDateTime": "2025-05-01T10:00:00Z",
        "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
    }


def issues(resp) -> list[dict]:
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"]


def expressions(resp) -> list[str]:
    return [e for i in issues(resp) for e in i.get("expression", [])]

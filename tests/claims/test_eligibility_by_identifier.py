"""Rights check for the patient at the desk, named by the identifier they show (CIN, RNP,
insurance number) rather than by the server's id — which a doctor or a pharmacist cannot know.

The answer gives the patient's id only when it has a coverage to report: an identifier nobody
carries and a registered patient without any coverage get the same answer, so the check is no
way to learn who is registered.
"""
from __future__ import annotations

from tests.claims import builders as b

CIN = "https://fhir.sijill.ma/sid/cin"


def request(system: str, value: str) -> dict:
    return {
        "resourceType": "CoverageEligibilityRequest", "status": "active", "purpose": ["validation"],
        "patient": {"identifier": {"system": system, "value": value}}, "created": b.today().isoformat(),
        "servicedDate": b.today().isoformat(), "insurer": {"display": "Organisme du patient"},
    }


def _comparable(response: dict) -> dict:
    return {k: v for k, v in response.items() if k not in ("id", "meta", "created", "request")}


async def test_the_patient_is_found_by_their_identifier(client):
    fund = await b.fund(client, "CNSS")
    patient = await b.patient(client, cin="BK445566")
    cov = await b.coverage(client, patient["id"], fund["id"])
    resp = await client.post("/CoverageEligibilityRequest", json=request(CIN, "BK445566"))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["patient"] == {"reference": f"Patient/{patient['id']}", "identifier": {"system": CIN, "value": "BK445566"}}
    assert body["insurance"][0]["coverage"]["reference"] == f"Coverage/{cov['id']}" and body["insurance"][0]["inforce"] is True
    assert body["disposition"].startswith("Couvert(e) par CNSS")
    # the request is kept in the patient's file, with the id it was resolved to
    stored = (await client.get(body["request"]["reference"])).json()
    assert stored["patient"]["reference"] == f"Patient/{patient['id']}"


async def test_an_unknown_identifier_answers_as_a_patient_without_coverage(client):
    await b.patient(client, cin="BK000111")  # registered, but no fund covers them
    unknown = await client.post("/CoverageEligibilityRequest", json=request(CIN, "ZZ999999"))
    uncovered = await client.post("/CoverageEligibilityRequest", json=request(CIN, "BK000111"))
    assert unknown.status_code == uncovered.status_code == 201
    assert "Aucune couverture en vigueur" in unknown.json()["disposition"]
    assert _comparable(unknown.json())["patient"] == {"identifier": {"system": CIN, "value": "ZZ999999"}}
    assert _comparable(uncovered.json()) == {**_comparable(unknown.json()), "patient": {"identifier": {"system": CIN, "value": "BK000111"}}}


async def test_a_patient_named_neither_way_is_refused(client):
    req = request(CIN, "BK445566")
    req["patient"] = {"display": "Amina Alaoui"}
    resp = await client.post("/CoverageEligibilityRequest", json=req)
    assert resp.status_code == 422
    assert resp.json()["issue"][0]["expression"] == ["CoverageEligibilityRequest.patient"]

"""One validation, on every write (issue 12): create, update, patch and every transaction entry
are walked against the base definition before anything is stored -- required bindings, JSON
types, base invariants, the narrative's XHTML subset, no empty arrays or objects.  A refusal is
a 422 OperationOutcome naming the element (inside a Bundle: ``Bundle.entry[n].resource.…``),
and nothing of the request is stored."""
from __future__ import annotations

import orjson
import pytest

from tests.api.helpers import expressions, issues, patient

XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'
PATCH = {"Content-Type": "application/json-patch+json"}
URN = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"


def narrative(inner: str) -> dict:
    return {"text": {"status": "generated", "div": f"<div {XHTML}>{inner}</div>"}}


PATIENT = patient(cin=None)
OBSERVATION = {"resourceType": "Observation", "status": "final", "code": {"text": "Poids"}}
RISK = {"resourceType": "RiskAssessment", "status": "final", "subject": {"display": "Amina Alaoui"}}
QUESTIONNAIRE = {"resourceType": "Questionnaire", "status": "active",
                 "item": [{"linkId": "1", "type": "boolean", "text": "Fumeur ?"}]}
COLLECTION = {"resourceType": "Bundle", "type": "collection"}

# (name, a valid resource, what the bad write adds to it, the element refused)
CASES = [
    ("required binding", PATIENT, {"gender": "robot"}, "Patient.gender"),
    ("decimal sent as a string", OBSERVATION, {"valueQuantity": {"value": "5", "unit": "kg"}},
     "Observation.value.ofType(Quantity).value"),
    ("boolean sent as a string", PATIENT, {"active": "true"}, "Patient.active"),
    ("script in the narrative", PATIENT, narrative("Amina<script>alert(1)</script>"), "Patient.text.div"),
    ("event attribute in the narrative", PATIENT, narrative('<p onclick="steal()">Amina</p>'), "Patient.text.div"),
    ("javascript: link in the narrative", PATIENT, narrative('<a href="javascript:steal()">Amina</a>'), "Patient.text.div"),
    ("javascript: image in the narrative", PATIENT, narrative('Amina<img src=" javascript:steal()"/>'), "Patient.text.div"),
    ("per-1 period ending before it starts", PATIENT,
     {"name": [{"family": "Alaoui", "period": {"start": "2020-01-02", "end": "2020-01-01"}}]}, "Patient.name[0].period"),
    ("ras-2 probability above 100", RISK, {"prediction": [{"probabilityDecimal": 120}]}, "RiskAssessment.prediction[0]"),
    ("que-12 two enableWhen without enableBehavior", QUESTIONNAIRE, {"item": [
        QUESTIONNAIRE["item"][0],
        {"linkId": "2", "type": "integer", "text": "Paquets par jour ?", "enableWhen": [
            {"question": "1", "operator": "=", "answerBoolean": True},
            {"question": "1", "operator": "exists", "answerBoolean": True}]}]}, "Questionnaire.item[1]"),
    ("dom-3 contained resource referenced from nowhere", PATIENT,
     {"contained": [{"resourceType": "Organization", "id": "o1", "name": "CNSS"}]}, "Patient"),
    ("bdl-7 fullUrl twice", COLLECTION, {"entry": [{"fullUrl": URN, "resource": PATIENT}, {"fullUrl": URN, "resource": PATIENT}]},
     "Bundle"),
    ("bdl-11 document without a Composition first", COLLECTION, {
        "type": "document", "identifier": {"system": "urn:ietf:rfc:3986", "value": URN}, "timestamp": "2025-05-01T10:00:00Z",
        "entry": [{"fullUrl": URN, "resource": PATIENT}]}, "Bundle"),
    ("empty array", PATIENT, {"name": []}, "Patient.name"),
    ("empty object", PATIENT, {"maritalStatus": {}}, "Patient.maritalStatus"),
]
IDS = [c[0] for c in CASES]


def refused_at(resp, expression: str) -> None:
    assert resp.status_code == 422, resp.text
    assert expression in expressions(resp), issues(resp)
    assert all(i["severity"] == "error" for i in issues(resp))


async def count(client, res_type: str) -> int:
    return (await client.get(f"/{res_type}", params={"_summary": "count"})).json()["total"]


@pytest.mark.parametrize("name, valid, bad, where", CASES, ids=IDS)
async def test_a_create_breaking_the_base_definition_is_refused(client, name, valid, bad, where):
    before = await count(client, valid["resourceType"])
    refused_at(await client.post(f"/{valid['resourceType']}", json={**valid, **bad}), where)
    assert await count(client, valid["resourceType"]) == before


@pytest.mark.parametrize("name, valid, bad, where", CASES, ids=IDS)
async def test_an_update_breaking_the_base_definition_is_refused(client, name, valid, bad, where):
    url = f"/{valid['resourceType']}/w1"
    refused_at(await client.put(url, json={**valid, **bad, "id": "w1"}), where)
    assert (await client.get(url)).status_code == 404


@pytest.mark.parametrize("name, valid, bad, where", CASES, ids=IDS)
async def test_a_patch_breaking_the_base_definition_is_refused(client, name, valid, bad, where):
    created = await client.post(f"/{valid['resourceType']}", json=valid)  # the valid resource is stored
    assert created.status_code == 201, created.text
    url = f"/{valid['resourceType']}/{created.json()['id']}"
    ops = [{"op": "add", "path": f"/{key}", "value": value} for key, value in bad.items()]
    refused_at(await client.patch(url, content=orjson.dumps(ops), headers=PATCH), where)
    assert (await client.get(url)).json() == created.json()


@pytest.mark.parametrize("name, valid, bad, where", CASES, ids=IDS)
async def test_a_transaction_with_an_entry_breaking_the_base_definition_commits_nothing(client, name, valid, bad, where):
    before = await count(client, "Patient")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(family="Kept"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {**valid, **bad}, "request": {"method": "POST", "url": valid["resourceType"]}},
    ]}
    resp = await client.post("/", json=bundle)
    _, dot, rest = where.partition(".")
    refused_at(resp, "Bundle.entry[1].resource" + dot + rest)
    assert await count(client, "Patient") == before


async def test_a_batch_refuses_the_bad_entry_and_stores_the_good_one(client):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient(family="Kept"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {**PATIENT, "gender": "robot"}, "request": {"method": "POST", "url": "Patient"}},
    ]}
    kept, robot = (await client.post("/", json=bundle)).json()["entry"]
    assert kept["response"]["status"].startswith("201")
    assert robot["response"]["status"].startswith("422")
    assert robot["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[1].resource.gender"]
    assert (await client.get("/Patient", params={"gender": "robot"})).json().get("entry") is None


async def test_the_valid_resources_are_stored_as_sent(client):
    for valid in (PATIENT, OBSERVATION, RISK, QUESTIONNAIRE, COLLECTION,
                  {**PATIENT, **narrative('<p>Amina <b>Alaoui</b> <a href="https://sijill.ma/">dossier</a></p>')}):
        created = await client.post(f"/{valid['resourceType']}", json=valid)
        assert created.status_code == 201, created.text
        stored = created.json()
        assert {k: v for k, v in stored.items() if k not in ("id", "meta")} == valid


async def test_refusals_speak_the_callers_language(client):
    resp = await client.post("/Patient", json={**PATIENT, "gender": "robot"}, headers={"Accept-Language": "ar"})
    assert resp.status_code == 422
    assert any("\u0600" <= ch <= "\u06ff" for ch in issues(resp)[0]["diagnostics"])


async def test_a_care_sheet_is_walked_before_its_business_rules_read_it(client):
    resp = await client.post("/Claim", json={"resourceType": "Claim", "status": "active", "item": "acte C", "patient": 5})
    assert resp.status_code == 422
    assert {"Claim.item", "Claim.patient"} <= set(expressions(resp))


async def test_an_id_that_is_not_a_string_is_refused_before_anything_else(client):
    resp = await client.put("/Patient", params={"identifier": "x"}, json={**PATIENT, "id": 5})
    assert resp.status_code == 400
    assert expressions(resp) == ["Patient.id"]


@pytest.mark.parametrize("bad, where", [
    ({"maritalStatus": {"coding": 5}}, "Patient.maritalStatus.coding"),
    ({"maritalStatus": {"coding": [{"system": {"x": 1}, "code": "M"}]}}, "Patient.maritalStatus.coding[0].system"),
    ({"birthDate": "1984-03-02", "_birthDate": {}}, "Patient.birthDate"),
], ids=["coding not an array", "system not a string", "empty primitive extension"])
async def test_malformed_shapes_are_refused_at_their_element(client, bad, where):
    refused_at(await client.post("/Patient", json={**PATIENT, **bad}), where)


async def test_an_elements_id_is_a_string_not_a_resource_id(client):
    """Slice names and "n:1" are element ids (a Sijill profile's own ElementDefinition ids are)."""
    assert (await client.post("/Patient", json={**PATIENT, "name": [{"id": "n:1", "family": "Alaoui"}]})).status_code == 201
    refused = await client.put("/Patient/n:1", json={**PATIENT, "id": "n:1"})
    assert refused.status_code == 400

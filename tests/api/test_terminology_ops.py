"""$expand (autocomplete), $lookup, $validate-code and $translate over HTTP."""
from tests.api.helpers import issues

MED = "https://fhir.sijill.ma/ValueSet/medicament"
FUNDS = "https://fhir.sijill.ma/ValueSet/organisme"


async def test_expand_filters_pages_and_speaks_arabic_and_french(client):
    r = await client.get("/ValueSet/$expand", params={"url": MED, "filter": "amoxicilline", "count": 2})
    assert r.status_code == 200
    exp = r.json()["expansion"]
    assert exp["total"] >= 3 and len(exp["contains"]) == 2
    nxt = (await client.get("/ValueSet/$expand", params={"url": MED, "filter": "amoxicilline", "count": 2, "offset": 2})).json()
    assert {c["code"] for c in nxt["expansion"]["contains"]}.isdisjoint({c["code"] for c in exp["contains"]})
    # Typed in Arabic without hamza, the same medicines come back, displayed in Arabic.
    ar = (await client.get("/ValueSet/$expand", params={"url": MED, "filter": "اموكسيسيلين"}, headers={"Accept-Language": "ar"})).json()
    assert ar["expansion"]["total"] == exp["total"]
    assert any("أموكسيسيلين" in c["display"] for c in ar["expansion"]["contains"])


async def test_expand_errors(client):
    r = await client.get("/ValueSet/$expand")
    assert r.status_code == 400 and issues(r)[0]["code"] == "required"
    r = await client.get("/ValueSet/$expand", params={"url": "https://nowhere.example/vs"})
    assert r.status_code == 404
    r = await client.get("/ValueSet/$expand", params={"url": MED, "count": "many"})
    assert r.status_code == 400


async def test_expand_a_stored_value_set_by_id(client):
    vs = {
        "resourceType": "ValueSet", "url": "https://fhir.sijill.ma/ValueSet/test-caisses", "status": "active",
        "compose": {"include": [{"system": "https://fhir.sijill.ma/CodeSystem/organisme", "concept": [{"code": "CNSS"}, {"code": "CNOPS"}]}]},
    }
    vid = (await client.post("/ValueSet", json=vs)).json()["id"]
    r = await client.get(f"/ValueSet/{vid}/$expand")
    assert r.status_code == 200
    assert sorted(c["code"] for c in r.json()["expansion"]["contains"]) == ["CNOPS", "CNSS"]


async def test_lookup_and_validate_code(client):
    r = await client.get("/CodeSystem/$lookup", params={"system": "https://fhir.sijill.ma/CodeSystem/organisme", "code": "CNSS"})
    assert r.status_code == 200
    names = {p["name"] for p in r.json()["parameter"]}
    assert {"name", "display", "designation"} <= names
    r = await client.get("/CodeSystem/$lookup", params={"system": "https://fhir.sijill.ma/CodeSystem/organisme", "code": "NOPE"})
    assert r.status_code == 404
    ok = (await client.get("/ValueSet/$validate-code", params={"url": FUNDS, "system": "https://fhir.sijill.ma/CodeSystem/organisme", "code": "CNOPS"})).json()
    assert ok["parameter"][0] == {"name": "result", "valueBoolean": True}
    bad = (await client.get("/ValueSet/$validate-code", params={"url": FUNDS, "system": "https://fhir.sijill.ma/CodeSystem/organisme", "code": "XYZ"})).json()
    assert bad["parameter"][0] == {"name": "result", "valueBoolean": False}


async def test_in_modifier_uses_the_value_set(client):
    def coverage(fund_code):
        return {
            "resourceType": "Coverage", "status": "active", "beneficiary": {"reference": "Patient/p1"},
            "payor": [{"reference": "Organization/x"}],
            "type": {"coding": [{"system": "https://fhir.sijill.ma/CodeSystem/organisme", "code": fund_code}]},
        }
    await client.post("/Coverage", json=coverage("CNSS"))
    await client.post("/Coverage", json=coverage("NOT-A-FUND"))
    r = (await client.get("/Coverage", params={"type:in": FUNDS})).json()
    assert r["total"] == 1
    r = (await client.get("/Coverage", params={"type:not-in": FUNDS})).json()
    assert r["total"] == 1

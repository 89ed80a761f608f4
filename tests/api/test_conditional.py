"""Conditional create, update and delete: 0, 1 and many matches, as the spec sets them."""
from tests.api.helpers import issues, patient

CIN = "https://fhir.sijill.ma/sid/cin"


async def test_conditional_create(client):
    r = await client.post("/Patient", json=patient(cin="AB1"), headers={"If-None-Exist": f"identifier={CIN}|AB1"})
    assert r.status_code == 201
    first = r.json()["id"]
    r = await client.post("/Patient", json=patient(cin="AB1"), headers={"If-None-Exist": f"identifier={CIN}|AB1"})
    assert r.status_code == 200 and r.json()["id"] == first
    await client.post("/Patient", json=patient(family="Twin", cin="AB2"))
    await client.post("/Patient", json=patient(family="Twin", cin="AB3"))
    r = await client.post("/Patient", json=patient(family="Twin"), headers={"If-None-Exist": "family=Twin"})
    assert r.status_code == 412
    r = await client.post("/Patient", json=patient(), headers={"If-None-Exist": "unknown-param=1"})
    assert r.status_code == 400


async def test_conditional_update(client):
    r = await client.put(f"/Patient?identifier={CIN}|CU1", json=patient(cin="CU1"))
    assert r.status_code == 201
    pid = r.json()["id"]
    r = await client.put(f"/Patient?identifier={CIN}|CU1", json=patient(cin="CU1", gender="male"))
    assert r.status_code == 200 and r.json()["id"] == pid and r.json()["meta"]["versionId"] == "2"
    r = await client.put(f"/Patient?identifier={CIN}|CU1", json=patient(cin="CU1", id="other"))
    assert r.status_code == 400
    await client.post("/Patient", json=patient(family="Many"))
    await client.post("/Patient", json=patient(family="Many"))
    r = await client.put("/Patient?family=Many", json=patient(family="Many"))
    assert r.status_code == 412 and issues(r)[0]["code"] == "multiple-matches"
    r = await client.put("/Patient", json=patient())
    assert r.status_code == 400


async def test_conditional_delete(client):
    assert (await client.delete(f"/Patient?identifier={CIN}|none")).status_code == 204
    pid = (await client.post("/Patient", json=patient(cin="CD1"))).json()["id"]
    assert (await client.delete(f"/Patient?identifier={CIN}|CD1")).status_code == 204
    assert (await client.get(f"/Patient/{pid}")).status_code == 410
    await client.post("/Patient", json=patient(family="Dup"))
    await client.post("/Patient", json=patient(family="Dup"))
    assert (await client.delete("/Patient?family=Dup")).status_code == 412

"""$everything and $validate."""
from tests.api.helpers import issues, observation, patient


async def test_everything_returns_compartment_and_referenced_resources(client):
    org = (await client.post("/Organization", json={"resourceType": "Organization", "name": "CHU Ibn Rochd"})).json()
    pid = (await client.post("/Patient", json=patient(managingOrganization={"reference": f"Organization/{org['id']}"}))).json()["id"]
    other = (await client.post("/Patient", json=patient(family="Other"))).json()["id"]
    for code in ("8867-4", "8310-5", "29463-7"):
        await client.post("/Observation", json=observation(f"Patient/{pid}", code))
    await client.post("/Observation", json=observation(f"Patient/{other}"))
    body = (await client.get(f"/Patient/{pid}/$everything")).json()
    got = sorted(e["resource"]["resourceType"] for e in body["entry"])
    assert got == ["Observation", "Observation", "Observation", "Organization", "Patient"]
    assert body["total"] == 5
    only_obs = (await client.get(f"/Patient/{pid}/$everything?_type=Observation&_count=2")).json()
    assert len(only_obs["entry"]) == 2 and only_obs["total"] == 3
    nxt = next(l["url"] for l in only_obs["link"] if l["relation"] == "next")
    rest = (await client.get(nxt)).json()
    assert len(rest["entry"]) == 1
    assert (await client.get("/Patient/nobody/$everything")).status_code == 404
    assert (await client.get(f"/Patient/{pid}/$everything?_type=Unicorn")).status_code == 400


async def test_everything_restricts_care_by_its_date_and_always_returns_the_patient(client):
    """``start``/``end`` select by care date (an Observation's effective, an Encounter's period),
    not by when it was recorded; undated types stay; ``_since``, ``_type``, ``_count`` combine."""
    pid = (await client.post("/Patient", json=patient())).json()["id"]
    ref = f"Patient/{pid}"
    old = {**observation(ref, "8867-4"), "effectiveDateTime": "2019-03-01T10:00:00Z"}
    new = {**observation(ref, "8310-5"), "effectiveDateTime": "2025-05-01T10:00:00Z"}
    ids = {}
    for name, res in (("old", old), ("new", new)):
        ids[name] = (await client.post("/Observation", json=res)).json()["id"]
    enc = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "subject": {"reference": ref},
           "period": {"start": "2024-12-30T09:00:00Z", "end": "2025-01-02T09:00:00Z"}}
    ids["enc"] = (await client.post("/Encounter", json=enc)).json()["id"]
    cov = {"resourceType": "Coverage", "status": "active", "beneficiary": {"reference": ref},
           "payor": [{"display": "CNSS"}]}
    ids["cov"] = (await client.post("/Coverage", json=cov)).json()["id"]

    async def got(query: str) -> set[str]:
        r = await client.get(f"/Patient/{pid}/$everything?{query}")
        assert r.status_code == 200, r.text
        return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in r.json().get("entry", [])}

    everything = {ref, f"Observation/{ids['old']}", f"Observation/{ids['new']}", f"Encounter/{ids['enc']}", f"Coverage/{ids['cov']}"}
    assert await got("") == everything
    assert await got("start=2025-01-01") == everything - {f"Observation/{ids['old']}"}  # the Encounter overlaps
    assert await got("end=2020") == {ref, f"Observation/{ids['old']}", f"Coverage/{ids['cov']}"}
    assert await got("start=2021&end=2024-06") == {ref, f"Coverage/{ids['cov']}"}
    assert await got("start=2025-01-01&_type=Observation") == {f"Observation/{ids['new']}"}
    assert await got("start=2020&_since=2000-01-01T00:00:00Z") == everything - {f"Observation/{ids['old']}"}
    assert await got("_since=2999-01-01T00:00:00Z") == set()
    assert len(await got("start=2019&_count=2")) == 2
    bad = await client.get(f"/Patient/{pid}/$everything?start=yesterday")
    assert bad.status_code == 400 and issues(bad)[0]["expression"] == ["http.start"]


def errors(resp):
    return [i for i in issues(resp) if i["severity"] == "error"]


async def test_validate_stores_nothing(client):
    r = await client.post("/Patient/$validate", json=patient())
    assert r.status_code == 200 and errors(r) == [] and issues(r)[-1]["severity"] == "information"
    r = await client.post("/Patient/$validate", json=patient(birthDate="02/03/1984"))
    assert r.status_code == 200
    assert [i["expression"] for i in errors(r)] == [["Patient.birthDate"]]
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient(gender=3)}]}
    r = await client.post("/Patient/$validate", json=params)
    assert [i["expression"] for i in errors(r)] == [["Patient.gender"]]
    r = await client.post("/Patient/$validate", json=patient(gender="unknown-gender"))
    assert errors(r)[0]["code"] == "code-invalid"
    assert (await client.get("/Patient")).json()["total"] == 0
    assert (await client.post("/Patient/$validate", json={"resourceType": "Parameters"})).status_code == 400
    assert (await client.post("/Patient/$nonsense", json=patient())).status_code == 404


async def test_validate_against_a_moroccan_profile_in_french_and_arabic(client):
    sijill_patient = "https://fhir.sijill.ma/StructureDefinition/sijill-patient"
    bare = patient(cin=None)
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": bare}, {"name": "profile", "valueUri": sijill_patient}]}
    fr = await client.post("/Patient/$validate", json=params)
    assert errors(fr), "a patient without CIN or RNP does not meet the Sijill profile"
    ar = await client.post("/Patient/$validate", json=params, headers={"Accept-Language": "ar"})
    assert any("\u0600" <= ch <= "\u06ff" for ch in errors(ar)[0]["diagnostics"])


async def test_writes_claiming_a_moroccan_profile_are_validated(client):
    sijill_patient = "https://fhir.sijill.ma/StructureDefinition/sijill-patient"
    bad = patient(cin="not a cin", meta={"profile": [sijill_patient]})
    r = await client.post("/Patient", json=bad)
    assert r.status_code == 422
    assert any(e.startswith("Patient.identifier") for i in issues(r) for e in i.get("expression", []))
    assert (await client.get("/Patient")).json()["total"] == 0
    # Without the claim the same resource is plain FHIR and is stored.
    assert (await client.post("/Patient", json=patient(cin="not a cin"))).status_code == 201

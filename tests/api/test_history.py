"""history at instance, type and system level, with _since, _at and paging."""
import asyncio

from tests.api.helpers import observation, patient


async def test_type_and_system_history_newest_first_with_paging(client):
    ids = []
    for i in range(5):
        ids.append((await client.post("/Patient", json=patient(family=f"H{i}"))).json()["id"])
    await client.post("/Observation", json=observation(f"Patient/{ids[0]}"))
    page = (await client.get("/Patient/_history?_count=2")).json()
    assert page["type"] == "history"
    assert [e["resource"]["id"] for e in page["entry"]] == [ids[4], ids[3]]
    seen = [e["resource"]["id"] for e in page["entry"]]
    while (nxt := next((l["url"] for l in page["link"] if l["relation"] == "next"), None)):
        page = (await client.get(nxt)).json()
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
    assert seen == list(reversed(ids))
    system = (await client.get("/_history?_total=accurate")).json()
    assert system["total"] == 6
    assert system["entry"][0]["resource"]["resourceType"] == "Observation"


async def test_since_and_at(client):
    pid = (await client.post("/Patient", json=patient())).json()["id"]
    v1 = (await client.get(f"/Patient/{pid}")).json()["meta"]["lastUpdated"]
    await asyncio.sleep(0.01)
    v2 = (await client.put(f"/Patient/{pid}", json=patient(id=pid, gender="male"))).json()["meta"]["lastUpdated"]
    since = (await client.get(f"/Patient/{pid}/_history", params={"_since": v2})).json()
    assert [e["resource"]["meta"]["versionId"] for e in since["entry"]] == ["2"]
    at = (await client.get(f"/Patient/{pid}/_history", params={"_at": v1})).json()
    assert [e["resource"]["meta"]["versionId"] for e in at["entry"]] == ["1"]
    bad = await client.get(f"/Patient/{pid}/_history", params={"_since": "last tuesday"})
    assert bad.status_code == 400
    assert (await client.get("/Patient/nobody/_history")).status_code == 404
    assert (await client.get("/Patient/_history?foo=1")).status_code == 400

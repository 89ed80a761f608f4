"""Search over HTTP: GET and POST _search agree, paging links work, bad input is a 400."""
from tests.api.helpers import issues, observation, patient


async def _seed(client, n=5):
    ids = []
    for i in range(n):
        ids.append((await client.post("/Patient", json=patient(family=f"Idrissi{i}", cin=f"SR{i}"))).json()["id"])
    return ids


async def test_get_and_post_search_agree(client):
    await _seed(client)
    got = (await client.get("/Patient?family=idrissi&_sort=family")).json()
    posted = (
        await client.post("/Patient/_search", content=b"family=idrissi&_sort=family",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    ).json()
    assert got["total"] == posted["total"] == 5
    assert [e["resource"]["id"] for e in got["entry"]] == [e["resource"]["id"] for e in posted["entry"]]
    assert all(e["search"]["mode"] == "match" for e in got["entry"])


async def test_paging_follows_next_links_to_the_end(client):
    ids = await _seed(client, 7)
    page = (await client.get("/Patient?_count=3&_sort=_id")).json()
    seen = []
    while True:
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        nxt = next((l["url"] for l in page.get("link", []) if l["relation"] == "next"), None)
        if not nxt:
            break
        page = (await client.get(nxt)).json()
    assert seen == sorted(ids)


async def test_strict_handling_rejects_unknown_parameters(client):
    await _seed(client, 1)
    lenient = await client.get("/Patient?nonsense=1")
    assert lenient.status_code == 200
    strict = await client.get("/Patient?nonsense=1", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400


async def test_bad_values_are_400(client):
    assert (await client.get("/Patient?birthdate=notadate")).status_code == 400
    assert (await client.get("/Observation?value-quantity=abc")).status_code == 400
    r = await client.get("/Patient?_count=-1")
    assert r.status_code == 400 and issues(r)[0]["severity"] == "error"


async def test_include_and_revinclude(client):
    pid = (await client.post("/Patient", json=patient())).json()["id"]
    for code in ("8867-4", "8310-5"):
        await client.post("/Observation", json=observation(f"Patient/{pid}", code))
    inc = (await client.get("/Observation?_include=Observation:subject")).json()
    assert sorted(e["search"]["mode"] for e in inc["entry"]) == ["include", "match", "match"]
    assert inc["total"] == 2
    rev = (await client.get(f"/Patient?_id={pid}&_revinclude=Observation:subject")).json()
    assert sorted(e["resource"]["resourceType"] for e in rev["entry"]) == ["Observation", "Observation", "Patient"]


async def test_names_are_found_as_people_type_them(client):
    """A clerk typed "El Haddad" and "الحداد"; the doctor types "haddad" or "حداد"."""
    ids = {}
    for family, cin in (("El Haddad", "BK1"), ("الحداد", "BK2"), ("Benhaddad", "BK3")):
        ids[family] = (await client.post("/Patient", json=patient(family=family, cin=cin))).json()["id"]

    async def found(query: str) -> set[str]:
        r = await client.get(f"/Patient?{query}")
        assert r.status_code == 200, r.text
        return {e["resource"]["id"] for e in r.json().get("entry", [])}

    assert await found("name=haddad") == {ids["El Haddad"]}
    assert await found("family=حداد") == {ids["الحداد"]}
    assert await found("name:exact=Haddad") == set()
    assert await found("name:contains=haddad") == {ids["El Haddad"], ids["Benhaddad"]}
    assert await found("name=el-haddad amina") == {ids["El Haddad"]}  # "family given", as typed

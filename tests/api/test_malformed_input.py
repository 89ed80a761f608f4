"""No 500 on any input: what a fuzz run of malformed requests once answered with 500 (issue 12)
is refused with a 4xx OperationOutcome that says what is wrong, and writes nothing; the valid
extremes among them (a year-9999 date) are answered normally.  Both databases."""
from __future__ import annotations

import orjson
import pytest

from tests.api.helpers import issues, patient

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def refused(resp, status: int = 400, code: str = "invalid") -> list[dict]:
    assert resp.status_code == status, resp.text
    found = issues(resp)
    assert found[0]["code"] == code, found
    return found


async def count(client, res_type: str = "Patient") -> int:
    return (await client.get(f"/{res_type}", params={"_summary": "count"})).json()["total"]


# --- NUL and other control characters: refused, never stripped -------------------------------


@pytest.mark.parametrize("url, where", [
    ("/Patient?name=a%00b", "http.name"),
    ("/Patient?identifier=https://fhir.sijill.ma/sid/cin|a%00b", "http.identifier"),
    ("/Patient?_id=a%00b", "http._id"),
    ("/Observation?subject=Patient/%00", "http.subject"),
    ("/Patient?_has:Observation:subject:code=%00", "http._has:Observation:subject:code"),
    ("/Patient?name=a%01b", "http.name"),
])
async def test_a_control_character_in_a_search_value_is_refused(client, url, where):
    assert refused(await client.get(url))[0]["expression"] == [where]


async def test_a_nul_in_an_id_is_refused_on_every_interaction(client):
    assert refused(await client.get("/Patient/a%00b"))[0]["expression"] == ["Patient.id"]
    refused(await client.get("/Patient/a%00b/_history/1"))
    refused(await client.get("/Patient/a%00b/_history"))
    refused(await client.delete("/Patient/a%00b"))
    refused(await client.put("/Patient/a%00b", json={"resourceType": "Patient", "id": "a\u0000b"}))
    refused(await client.get("/Patient/a%00b/$everything"))
    assert await count(client) == 0


async def test_a_nul_in_a_resource_string_is_refused_with_its_path(client):
    sent = patient(family="Al\u0000aoui")
    r = await client.post("/Patient", json=sent)
    assert refused(r)[0]["expression"] == ["Patient.name[0].family"]
    assert await count(client) == 0
    # the text "\\u0000" (a backslash, then u0000) is no control character: stored as it is
    kept = await client.post("/Patient", json=patient(family="Al\\u0000aoui"))
    assert kept.status_code == 201 and kept.json()["name"][0]["family"] == "Al\\u0000aoui"


async def test_a_nul_in_a_transaction_entry_or_its_url_is_refused(client):
    entry = {"resource": patient(given="A\u0000"), "request": {"method": "POST", "url": "Patient"}}
    r = await client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]})
    assert refused(r)[0]["expression"] == ["Bundle.entry[0].resource.name[0].given[0]"]
    search = {"request": {"method": "GET", "url": "Patient?name=a%00b"}}
    r = await client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [search]})
    assert refused(r)[0]["expression"] == ["Bundle.entry[0].request.url"]
    refused(await client.post("/Patient", json=patient(), headers={"If-None-Exist": "name=a%00b"}))
    assert await count(client) == 0


# --- dates at the calendar's end: valid, answered normally --------------------------------


@pytest.mark.parametrize("value", ["9999-12-31", "ge9999-12-31T23:59:59Z", "ap9999-12-31", "9999-12",
                                   "sa9999-12-31T23:59:59.9999999Z", "0001-01-01T00:00:00Z"])
async def test_a_date_search_at_the_end_of_the_calendar_finds_what_it_should(client, value):
    assert (await client.post("/Patient", json=patient(birthDate="1984-03-02"))).status_code == 201
    r = await client.get("/Patient", params={"birthdate": value})
    assert r.status_code == 200 and r.json()["total"] == 0
    assert (await client.get("/Patient", params={"_lastUpdated": value})).status_code == 200


async def test_a_resource_dated_9999_12_31_is_stored_and_found(client):
    r = await client.post("/Patient", json=patient(birthDate="9999-12-31"))
    assert r.status_code == 201, r.text
    assert (await client.get("/Patient", params={"birthdate": "9999-12-31"})).json()["total"] == 1
    assert (await client.get("/Patient", params={"birthdate": "gt9999-12-30"})).json()["total"] == 1


@pytest.mark.parametrize("since", ["9999-12-31", "9999-12", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.9999999Z"])
async def test_history_since_the_year_9999_is_empty(client, since):
    await client.post("/Patient", json=patient())
    r = await client.get("/_history", params={"_since": since})
    assert r.status_code == 200 and r.json().get("entry", []) == []


async def test_the_sla_of_the_calendars_last_day_is_a_report_of_nothing(client):
    fund = {"resourceType": "Organization", "id": "cnss", "name": "CNSS",
            "identifier": [{"system": "https://fhir.sijill.ma/sid/fund", "value": "CNSS"}]}
    assert (await client.put("/Organization/cnss", json=fund)).status_code in (200, 201)
    r = await client.get("/Organization/cnss/$sla", params={"date": "9999-12-31"})
    assert r.status_code == 200, r.text
    assert r.json()["period"]["start"].startswith("9999-12-3")


# --- numbers past 64 bits ------------------------------------------------------------------


async def test_numbers_past_64_bits_are_refused_or_found_nowhere(client):
    pid = (await client.post("/Patient", json=patient())).json()["id"]
    for version in ("99999999999999999999", "9223372036854775808", "²"):
        assert (await client.get(f"/Patient/{pid}/_history/{version}")).status_code == 404
    refused(await client.get("/_history", params={"_cursor": "99999999999999999999"}))
    refused(await client.get("/_history", params={"_count": "99999999999999999999"}))
    refused(await client.get("/_history", params={"_count": "²"}))
    assert (await client.get("/Patient", params={"_count": "99999999999999999999"})).status_code == 200
    refused(await client.get(f"/Patient/{pid}/$everything", params={"_cursor": "99999999999999999999"}))


async def test_a_json_number_out_of_range_is_refused(client):
    body = b'{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e400}}'
    refused(await client.post("/Observation", content=body), code="structure")
    assert await count(client, "Observation") == 0
    assert (await client.get("/Observation", params={"value-quantity": "1e400"})).json()["total"] == 0


# --- structure ------------------------------------------------------------------------------


async def test_contained_resources_nested_300_deep_are_refused(client):
    res: dict = patient()
    inner = res
    for i in range(300):
        inner["contained"] = [{"resourceType": "Patient", "id": f"c{i}"}]
        inner = inner["contained"][0]
    refused(await client.post("/Patient", json=res), code="too-costly")
    one_level = {**patient(), "contained": [{"resourceType": "Patient", "id": "c", "contained": [{"resourceType": "Patient"}]}]}
    assert refused(await client.post("/Patient", json=one_level), 422, "invariant")[0]["expression"] == [
        "Patient.contained[0].contained"]
    assert await count(client) == 0


async def test_a_contained_resource_of_an_unknown_type_is_refused(client):
    res = {**patient(), "contained": [{"resourceType": "Nope", "id": "x"}]}
    r = await client.post("/Patient", json=res)
    assert refused(r, 422, "value")[0]["expression"] == ["Patient.contained[0].resourceType"]


async def test_elements_nested_past_the_depth_limit_are_refused(client):
    extension: dict = {"url": "https://x.ma/e", "valueString": "y"}
    for _ in range(300):
        extension = {"url": "https://x.ma/e", "extension": [extension]}
    r = await client.post("/Patient", json={**patient(), "extension": [extension]})
    assert refused(r, code="too-costly")[0]["expression"][0].startswith("Patient.extension[0].extension[0]")


async def test_a_search_form_that_is_not_utf8_is_refused(client):
    refused(await client.post("/Patient/_search", content=b"name=\xff\xfe", headers=FORM), code="structure")
    refused(await client.post("/Patient/_search", content=b"name=a%00", headers=FORM))
    ok = await client.post("/Patient/_search", content="name=Ḥaddad".encode(), headers=FORM)
    assert ok.status_code == 200


async def test_a_patch_in_a_bundle_is_checked_like_a_patch_body(client):
    import base64

    pid = (await client.post("/Patient", json=patient())).json()["id"]
    ops = orjson.dumps([{"op": "replace", "path": "/gender", "value": "fe\u0000male"}])
    entry = {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                          "data": base64.b64encode(ops).decode()}, "request": {"method": "PATCH", "url": f"Patient/{pid}"}}
    r = await client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]})
    assert r.status_code == 400 and issues(r)[0]["code"] == "invalid"
    assert (await client.get(f"/Patient/{pid}")).json()["gender"] == "female"

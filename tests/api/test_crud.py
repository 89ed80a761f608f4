"""create, read, vread, update, patch, delete — and the errors each one gives."""
import asyncio

import orjson

from tests.api.helpers import expressions, issues, observation, patient


async def test_create_assigns_id_version_and_headers(client):
    sent = patient(id="client-chosen", meta={"versionId": "99", "lastUpdated": "2000-01-01T00:00:00Z"})
    r = await client.post("/Patient", json=sent)
    assert r.status_code == 201
    body = r.json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"] != "2000-01-01T00:00:00Z"
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"] == f"http://test/fhir/Patient/{body['id']}/_history/1"
    assert "last-modified" in r.headers
    assert r.headers["content-type"].startswith("application/fhir+json")


async def test_read_returns_what_was_stored(client):
    created = (await client.post("/Patient", json=patient())).json()
    r = await client.get(f"/Patient/{created['id']}")
    assert r.status_code == 200
    assert r.json() == created
    assert r.headers["etag"] == 'W/"1"'


async def test_read_conditional_headers_answer_304(client):
    created = (await client.post("/Patient", json=patient())).json()
    url = f"/Patient/{created['id']}"
    assert (await client.get(url, headers={"If-None-Match": 'W/"1"'})).status_code == 304
    assert (await client.get(url, headers={"If-None-Match": 'W/"2"'})).status_code == 200
    last_modified = (await client.get(url)).headers["last-modified"]
    assert (await client.get(url, headers={"If-Modified-Since": last_modified})).status_code == 304
    assert (await client.get(url, headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})).status_code == 200


async def test_read_unknown_id_and_unknown_type_are_404(client):
    r = await client.get("/Patient/nope")
    assert r.status_code == 404
    assert issues(r)[0]["code"] == "not-found"
    r = await client.get("/Unicorn/1")
    assert r.status_code == 404
    assert issues(r)[0]["code"] == "not-supported"


async def test_update_makes_a_new_version_and_vread_keeps_the_old(client):
    created = (await client.post("/Patient", json=patient())).json()
    pid = created["id"]
    changed = dict(created, gender="male")
    r = await client.put(f"/Patient/{pid}", json=changed)
    assert r.status_code == 200
    assert r.json()["meta"]["versionId"] == "2"
    assert r.headers["etag"] == 'W/"2"'
    old = await client.get(f"/Patient/{pid}/_history/1")
    assert old.status_code == 200 and old.json()["gender"] == "female"
    assert (await client.get(f"/Patient/{pid}/_history/3")).status_code == 404
    assert (await client.get(f"/Patient/{pid}/_history/x")).status_code == 404


async def test_update_as_create_with_client_id(client):
    r = await client.put("/Patient/cin-BK1", json=patient(id="cin-BK1"))
    assert r.status_code == 201
    assert r.json()["id"] == "cin-BK1"
    assert r.headers["location"].endswith("/Patient/cin-BK1/_history/1")


async def test_update_rejects_mismatched_or_missing_id_and_type(client):
    r = await client.put("/Patient/a", json=patient(id="b"))
    assert r.status_code == 400 and expressions(r) == ["Patient.id"]
    r = await client.put("/Patient/a", json=patient())
    assert r.status_code == 400 and expressions(r) == ["Patient.id"]
    r = await client.put("/Patient/a", json=dict(observation("Patient/x"), id="a"))
    assert r.status_code == 400 and expressions(r) == ["Observation.resourceType"]
    r = await client.put("/Patient/a$b", json=patient(id="a$b"))
    assert r.status_code == 400


async def test_if_match_mismatch_is_412(client):
    created = (await client.post("/Patient", json=patient())).json()
    url = f"/Patient/{created['id']}"
    r = await client.put(url, json=created, headers={"If-Match": 'W/"7"'})
    assert r.status_code == 412
    assert issues(r)[0]["code"] == "conflict"
    r = await client.put(url, json=created, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200


async def test_concurrent_updates_with_same_if_match_one_wins(client):
    created = (await client.post("/Patient", json=patient())).json()
    url = f"/Patient/{created['id']}"

    async def attempt(gender):
        return await client.put(url, json=dict(created, gender=gender), headers={"If-Match": 'W/"1"'})

    a, b = await asyncio.gather(attempt("male"), attempt("other"))
    assert sorted([a.status_code, b.status_code]) == [200, 412]
    winner = a if a.status_code == 200 else b
    now = (await client.get(url)).json()
    assert now["meta"]["versionId"] == "2"
    assert now["gender"] == winner.json()["gender"]


async def test_invalid_resource_is_422_with_each_problem(client):
    bad = patient(birthDate="1984-13-45", foo="bar")
    bad["name"] = [{"given": "not-a-list"}]
    r = await client.post("/Patient", json=bad)
    assert r.status_code == 422
    assert set(expressions(r)) == {"Patient.birthDate", "Patient.name[0].given", "Patient.foo"}
    assert (await client.get("/Patient")).json().get("total") == 0


async def test_malformed_json_unsupported_media_and_too_large(client, settings):
    r = await client.post("/Patient", content=b"{not json")
    assert r.status_code == 400 and issues(r)[0]["code"] == "structure"
    r = await client.post("/Patient", content=orjson.dumps(patient()), headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    big = patient(text={"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">" + "x" * settings.max_body_bytes + "</div>"})
    r = await client.post("/Patient", json=big)
    assert r.status_code == 413
    r = await client.post("/Patient", json=["not", "a", "resource"])
    assert r.status_code == 400
    r = await client.post("/Patient", json={"resourceType": "Unicorn"})
    assert r.status_code == 400 and expressions(r) == ["resourceType"]


async def test_accept_and_format_negotiation(client):
    # FHIR XML is served too (tests/interop/test_fhir_xml_api.py); what no representation covers is 406
    assert (await client.get("/metadata", headers={"Accept": "text/turtle"})).status_code == 406
    assert (await client.get("/metadata?_format=ttl")).status_code == 406
    assert (await client.get("/metadata?_format=xml")).headers["content-type"] == "application/fhir+xml"
    assert (await client.get("/metadata?_format=json")).status_code == 200


async def test_delete_then_read_is_410_and_history_shows_it(client):
    pid = (await client.post("/Patient", json=patient())).json()["id"]
    assert (await client.delete(f"/Patient/{pid}")).status_code == 204
    r = await client.get(f"/Patient/{pid}")
    assert r.status_code == 410 and issues(r)[0]["code"] == "deleted"
    assert (await client.delete(f"/Patient/{pid}")).status_code == 204  # idempotent
    assert (await client.delete("/Patient/never-was")).status_code == 204
    hist = (await client.get(f"/Patient/{pid}/_history")).json()
    assert hist["total"] == 2
    assert [e["request"]["method"] for e in hist["entry"]] == ["DELETE", "POST"]
    assert "resource" not in hist["entry"][0]
    assert (await client.get(f"/Patient/{pid}/_history/2")).status_code == 410
    # Re-creating a deleted resource continues its version line.
    r = await client.put(f"/Patient/{pid}", json=patient(id=pid))
    assert r.status_code == 201 and r.json()["meta"]["versionId"] == "3"


async def test_json_patch(client):
    created = (await client.post("/Patient", json=patient())).json()
    url = f"/Patient/{created['id']}"
    ops = [{"op": "replace", "path": "/gender", "value": "male"}, {"op": "add", "path": "/active", "value": True}]
    r = await client.patch(url, content=orjson.dumps(ops), headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200
    assert r.json()["gender"] == "male" and r.json()["active"] is True
    assert r.json()["meta"]["versionId"] == "2"
    # A patch that breaks the resource is refused and changes nothing.
    bad = [{"op": "replace", "path": "/birthDate", "value": "yesterday"}]
    r = await client.patch(url, content=orjson.dumps(bad), headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 422 and expressions(r) == ["Patient.birthDate"]
    failed_test = [{"op": "test", "path": "/gender", "value": "female"}]
    r = await client.patch(url, content=orjson.dumps(failed_test), headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 409
    r = await client.patch(url, content=orjson.dumps([{"op": "remove", "path": "/nothing"}]), headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 400
    assert (await client.get(url)).json()["meta"]["versionId"] == "2"
    r = await client.patch("/Patient/missing", content=b"[]", headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 404


async def test_prefer_return(client):
    r = await client.post("/Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert r.status_code == 201 and r.content == b"" and r.headers["location"]
    r = await client.post("/Patient", json=patient(), headers={"Prefer": "return=OperationOutcome"})
    assert r.status_code == 201 and issues(r)[0]["severity"] == "information"


async def test_metadata_lists_types_interactions_and_operations(client):
    cs = (await client.get("/metadata")).json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"].startswith("4.")
    by_type = {r["type"]: r for r in cs["rest"][0]["resource"]}
    assert {"Patient", "Observation", "Claim", "Coverage"} <= set(by_type)
    patient_cs = by_type["Patient"]
    assert {"read", "vread", "update", "patch", "delete", "create", "search-type"} <= {i["code"] for i in patient_cs["interaction"]}
    assert {"name", "identifier", "birthdate"} <= {p["name"] for p in patient_cs["searchParam"]}
    name = next(p for p in patient_cs["searchParam"] if p["name"] == "name")
    assert "start of any word" in name["documentation"] and "الحداد" in name["documentation"]
    assert "everything" in {o["name"] for o in patient_cs["operation"]}
    assert {"transaction", "batch"} <= {i["code"] for i in cs["rest"][0]["interaction"]}


async def test_audit_events_are_append_only_even_for_the_unrestricted_caller(client):
    """An imported AuditEvent is created and read like any resource, then never rewritten: 405,
    and it stays (the in-process caller here has every right there is)."""
    event = {"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2025-01-01T00:00:00Z",
             "agent": [{"requestor": True}], "source": {"observer": {"display": "HIS d'Agadir"}}}
    created = await client.post("/AuditEvent", json=event)
    assert created.status_code == 201
    eid = created.json()["id"]
    refused = [
        await client.put(f"/AuditEvent/{eid}", json={**event, "id": eid}),
        await client.patch(f"/AuditEvent/{eid}", content=b'[{"op": "replace", "path": "/recorded", "value": "2025-01-02T00:00:00Z"}]',
                           headers={"Content-Type": "application/json-patch+json"}),
        await client.delete(f"/AuditEvent/{eid}"),
        await client.delete("/AuditEvent/123"),  # the server's own trail, whether the event exists or not
        await client.post("/", json={"resourceType": "Bundle", "type": "transaction",
                                     "entry": [{"request": {"method": "DELETE", "url": f"AuditEvent/{eid}"}}]}),
    ]
    for r in refused:
        assert r.status_code == 405, r.text
        assert issues(r)[0]["code"] == "not-supported"
    kept = await client.get(f"/AuditEvent/{eid}")
    assert kept.status_code == 200 and kept.json()["recorded"] == "2025-01-01T00:00:00Z"
    assert (await client.get(f"/AuditEvent/{eid}/_history")).json()["total"] == 1


async def test_element_ids_like_slice_names_are_stored_and_validated(client):
    """``Element.id`` is a string: "n:1" or a slice name is accepted on create and by $validate."""
    named = patient(name=[{"id": "n:1", "family": "El Idrissi", "given": ["Amina"]},
                          {"id": "Patient.name:arabe", "family": "الإدريسي"}])
    checked = (await client.post("/Patient/$validate", json=named)).json()
    assert [i for i in checked["issue"] if i["severity"] in ("error", "fatal")] == []
    created = await client.post("/Patient", json=named)
    assert created.status_code == 201, created.text
    assert [n["id"] for n in created.json()["name"]] == ["n:1", "Patient.name:arabe"]
    refused = await client.post("/Patient", json={**named, "id": "n:1"})  # a resource id is an id
    assert refused.status_code == 422 and expressions(refused) == ["Patient.id"]

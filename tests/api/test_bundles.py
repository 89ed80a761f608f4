"""transaction (all or nothing, spec order, reference rewriting) and batch Bundles."""
import base64

import orjson

from tests.api.helpers import expressions, observation, patient

CIN = "https://fhir.sijill.ma/sid/cin"


def tx(*entries, kind="transaction"):
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource, full_url=None, **request):
    e = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"], **request}}
    if full_url:
        e["fullUrl"] = full_url
    return e


async def test_transaction_rewrites_urn_uuid_references(client):
    pat = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
    r = await client.post("/", json=tx(post(observation(pat)), post(patient(), pat)))
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "transaction-response"
    obs_entry, pat_entry = body["entry"]
    assert obs_entry["response"]["status"].startswith("201")
    pid = pat_entry["response"]["location"].split("/")[1]
    obs_id = obs_entry["response"]["location"].split("/")[1]
    stored = (await client.get(f"/Observation/{obs_id}")).json()
    assert stored["subject"]["reference"] == f"Patient/{pid}"


async def test_transaction_is_all_or_nothing(client):
    good = post(patient(family="Kept"))
    bad = post(dict(patient(), birthDate="not-a-date"))
    r = await client.post("/", json=tx(good, bad))
    assert r.status_code == 422
    assert expressions(r) == ["Bundle.entry[1].resource.birthDate"]
    assert (await client.get("/Patient?family=Kept")).json()["total"] == 0
    # A failure found while writing (If-Match conflict) also rolls everything back.
    pid = (await client.post("/Patient", json=patient(family="Base"))).json()["id"]
    conflict = {"resource": patient(id=pid), "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"9"'}}
    r = await client.post("/", json=tx(post(patient(family="Kept")), conflict))
    assert r.status_code == 412
    assert (await client.get("/Patient?family=Kept")).json()["total"] == 0


async def test_transaction_processing_order_and_reads(client):
    pid = (await client.post("/Patient", json=patient(family="Old"))).json()["id"]
    entries = [
        {"request": {"method": "GET", "url": "Patient?family=New"}},
        post(patient(family="New")),
        {"request": {"method": "DELETE", "url": f"Patient/{pid}"}},
    ]
    body = (await client.post("/", json=tx(*entries))).json()
    search, created, deleted = body["entry"]
    # GET runs after the writes, whatever its place in the Bundle.
    assert search["resource"]["total"] == 1
    assert created["response"]["status"].startswith("201")
    assert deleted["response"]["status"].startswith("204")
    assert (await client.get(f"/Patient/{pid}")).status_code == 410


async def test_transaction_conditional_references_and_if_none_exist(client):
    pid = (await client.post("/Patient", json=patient(cin="TX1"))).json()["id"]
    obs = observation(f"Patient?identifier={CIN}|TX1")
    again = {
        "resource": patient(cin="TX1"), "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={CIN}|TX1"}
    }
    body = (await client.post("/", json=tx(post(obs), again))).json()
    obs_id = body["entry"][0]["response"]["location"].split("/")[1]
    assert body["entry"][1]["response"]["status"].startswith("200")
    assert (await client.get(f"/Observation/{obs_id}")).json()["subject"]["reference"] == f"Patient/{pid}"
    missing = observation(f"Patient?identifier={CIN}|NOPE")
    r = await client.post("/", json=tx(post(missing)))
    assert r.status_code == 404


async def test_transaction_patch_entry_and_conditional_update(client):
    pid = (await client.post("/Patient", json=patient(cin="TP1"))).json()["id"]
    ops = base64.b64encode(orjson.dumps([{"op": "replace", "path": "/gender", "value": "male"}])).decode()
    entries = [
        {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": ops},
         "request": {"method": "PATCH", "url": f"Patient/{pid}"}},
        {"resource": patient(cin="TP2"), "request": {"method": "PUT", "url": f"Patient?identifier={CIN}|TP2"}},
    ]
    body = (await client.post("/", json=tx(*entries), headers={"Prefer": "return=representation"})).json()
    assert body["entry"][0]["resource"]["gender"] == "male"
    assert body["entry"][1]["response"]["status"].startswith("201")


async def test_batch_entries_succeed_or_fail_independently(client):
    entries = [
        post(patient(family="BatchOk")),
        post(dict(patient(), gender=7)),
        {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
    ]
    body = (await client.post("/", json=tx(*entries, kind="batch"))).json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses[0].startswith("201") and statuses[1] == "422" and statuses[2] == "404"
    assert body["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    # each outcome names its entry: the element of its resource, or the entry itself
    assert body["entry"][1]["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[1].resource.gender"]
    assert body["entry"][2]["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[2]"]
    assert (await client.get("/Patient?family=BatchOk")).json()["total"] == 1


async def test_bad_bundles(client, settings):
    assert (await client.post("/", json=patient())).status_code == 400
    assert (await client.post("/", json={"resourceType": "Bundle", "type": "collection"})).status_code == 400
    r = await client.post("/", json=tx({"request": {"method": "BREW", "url": "Patient"}}))
    assert r.status_code == 400 and expressions(r) == ["Bundle.entry[0].request.method"]
    r = await client.post("/", json=tx({"request": {"method": "POST", "url": "Patient"}}))
    assert r.status_code == 400 and expressions(r) == ["Bundle.entry[0].resource"]
    too_many = tx(*[post(patient()) for _ in range(settings.max_bundle_entries + 1)])
    assert (await client.post("/", json=too_many)).status_code == 413

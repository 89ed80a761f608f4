"""FHIR Bulk Data export: kick-off, status polling, manifest, NDJSON files in object storage,
cancellation — and who may export what (the admin and insurers' system clients, each limited to
what their searches return).  Both object stores, both databases.
"""
from __future__ import annotations

import asyncio
import base64

import httpx
import orjson

from ehr.security.demo import SystemClient
from ehr.security.roles import Role
from ehr.security.scopes import ScopeSet
from interop.storage import open_store
from tests.conftest import BASE
from tests.interop.test_binary_storage import audit_events, s3_endpoint, secure_extra, settings, storage  # noqa: F401  (shared fixtures)
from tests.security.world import seed_world

ASYNC = {"Prefer": "respond-async"}


async def _put(client, *resources: dict) -> None:
    for res in resources:
        resp = await client.put(f"/{res['resourceType']}/{res['id']}", json=res)
        assert resp.status_code in (200, 201), resp.text


async def finished(client: httpx.AsyncClient, status_url: str) -> httpx.Response:
    """Poll as a Bulk Data client does: 202 with X-Progress until the manifest (or an error)."""
    for _ in range(200):
        resp = await client.get(status_url)
        if resp.status_code != 202:
            return resp
        assert resp.headers["x-progress"]
        await asyncio.sleep(0.02)
    raise AssertionError("the export never finished")


async def ndjson(client, url: str) -> list[dict]:
    resp = await client.get(url)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/fhir+ndjson")
    return [orjson.loads(line) for line in resp.content.splitlines()]


async def test_system_export_of_chosen_types_since_an_instant(client):
    await _put(client, *({"resourceType": "Patient", "id": f"p{i}", "gender": "female"} for i in range(7)),
               {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "tension"}, "subject": {"reference": "Patient/p1"}},
               {"resourceType": "Organization", "id": "cnss", "name": "CNSS"})
    assert (await client.get("/$export")).status_code == 400  # synchronous export is not offered

    kick = await client.get("/$export", params={"_type": "Patient,Observation"}, headers=ASYNC)
    assert kick.status_code == 202, kick.text
    status_url = kick.headers["content-location"]
    assert status_url.startswith(f"{BASE}/_export/")
    done = await finished(client, status_url)
    assert done.status_code == 200, done.text
    manifest = done.json()
    assert manifest["requiresAccessToken"] is True and manifest["request"].endswith("_type=Patient%2CObservation")
    counts = {o["type"]: o["count"] for o in manifest["output"]}
    assert counts == {"Observation": 1, "Patient": 7}
    files = {o["type"]: o["url"] for o in manifest["output"]}
    patients = await ndjson(client, files["Patient"])
    assert sorted(p["id"] for p in patients) == [f"p{i}" for i in range(7)]
    assert (await ndjson(client, files["Observation"]))[0]["subject"] == {"reference": "Patient/p1"}

    later = await client.get("/$export", params={"_since": "2999-01-01T00:00:00Z"}, headers=ASYNC)
    assert (await finished(client, later.headers["content-location"])).json()["output"] == []


async def test_patient_export_holds_the_patient_compartments_only(client):
    await _put(client, {"resourceType": "Patient", "id": "pa"}, {"resourceType": "Organization", "id": "cnss", "name": "CNSS"},
               {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/pa"}})
    kick = await client.get("/Patient/$export", headers=ASYNC)
    manifest = (await finished(client, kick.headers["content-location"])).json()
    assert {o["type"] for o in manifest["output"]} == {"Patient", "Condition"}


async def test_a_cancelled_export_is_gone_with_its_files(client, settings):
    await _put(client, *({"resourceType": "Patient", "id": f"p{i}"} for i in range(3)))
    status_url = (await client.get("/$export", headers=ASYNC)).headers["content-location"]
    await finished(client, status_url)
    assert (await client.delete(status_url)).status_code == 202
    assert (await client.get(status_url)).status_code == 404
    job = status_url.rsplit("/", 1)[1]
    assert [o.key for o in open_store(settings).list(f"export/{job}/")] == [f"export/{job}/cancelled"]


async def test_cancelling_a_running_export_stops_it_and_deletes_its_files(client, settings, monkeypatch):
    from interop.bulk import exporter

    monkeypatch.setattr(exporter, "PAGE", 1)  # one row per page: the export is still running below
    await _put(client, *({"resourceType": "Patient", "id": f"p{i}"} for i in range(40)))
    status_url = (await client.get("/$export", params={"_type": "Patient"}, headers=ASYNC)).headers["content-location"]
    assert (await client.get(status_url)).status_code == 202
    assert (await client.delete(status_url)).status_code == 202
    assert (await client.get(status_url)).status_code == 404
    job = status_url.rsplit("/", 1)[1]
    for _ in range(500):  # the exporter notices at its next page, then removes what it wrote (≤ 10 s)
        await asyncio.sleep(0.02)
        if not exporter._running:
            break
    assert not exporter._running
    assert [o.key for o in open_store(settings).list(f"export/{job}/")] == [f"export/{job}/cancelled"]


async def test_bad_parameters_are_refused(client):
    for params, where in (({"_type": "Nope"}, "http._type"), ({"_since": "hier"}, "http._since"),
                          ({"_outputFormat": "text/csv"}, "http._outputFormat")):
        resp = await client.get("/$export", params=params, headers=ASYNC)
        assert resp.status_code == 400 and resp.json()["issue"][0]["expression"] == [where], params
    assert (await client.get(f"{BASE}/_export/0123abcd")).status_code == 404


# --- with tokens ---------------------------------------------------------------------------


def _system_client(world, client_id: str, fund: str) -> httpx.AsyncClient:
    client = SystemClient(client_id, Role.INSURER, ScopeSet.parse("system/*.rs"), fund=fund)
    token = world.issuer.issue_client_token(client).access_token
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app), base_url=BASE,
                             headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"})


async def test_an_insurer_system_exports_its_fund_data_only(secure_app):
    world = await seed_world(secure_app)  # claim-a is CNSS's, claim-b CNOPS's
    async with _system_client(world, "cnss-system", "Organization/cnss") as cnss:
        kick = await cnss.get("/$export", params={"_type": "Claim"}, headers=ASYNC)
        assert kick.status_code == 202, kick.text
        status_url = kick.headers["content-location"]
        manifest = (await finished(cnss, status_url)).json()
        claims = await ndjson(cnss, manifest["output"][0]["url"])
        assert [c["id"] for c in claims] == ["claim-a"]
        assert (await cnss.get("/$export", params={"_type": "AuditEvent"}, headers=ASYNC)).status_code == 403

    job = status_url.rsplit("/", 1)[1]
    queries = {base64.b64decode(x["query"]).decode() for e in await audit_events(secure_app) for x in e.get("entity", [])
               if x.get("what") == {"display": "$export"} and "query" in x}
    assert {f"_export/{job}", f"_export/{job}/Claim.ndjson"} <= queries  # polls and downloads are audited
    events = await audit_events(secure_app)
    file_reads = [e for e in events if any(base64.b64decode(x.get("query", "")) == f"_export/{job}/Claim.ndjson".encode()
                                           for x in e.get("entity", []))]
    downloaded = {x["what"].get("reference") for e in file_reads for x in e["entity"]
                  if x.get("what", {}).get("reference", "").startswith("Patient/")}
    assert downloaded == {"Patient/pa"}  # the download names the patients the file holds: they see it in their trail

    async with _system_client(world, "cnops-system", "Organization/cnops") as cnops:  # not their job
        assert (await cnops.get(status_url)).status_code == 404
        assert (await cnops.get(manifest["output"][0]["url"])).status_code == 404
        assert (await cnops.delete(status_url)).status_code == 404
    for person in ("AG", "D1", "pa"):  # people, even a fund's agent, do not export
        async with world.client(person, **ASYNC) as c:
            assert (await c.get("/$export")).status_code == 403, person
    async with world.client("AD", **ASYNC) as admin:  # the admin: reference data only
        manifest = (await finished(admin, (await admin.get("/$export")).headers["content-location"])).json()
        assert {"Organization", "Practitioner"} <= {o["type"] for o in manifest["output"]}
        assert not {"Patient", "Claim", "Binary"} & {o["type"] for o in manifest["output"]}

"""Documents (Binary) in object storage: raw and FHIR JSON uploads streamed to the store, raw
downloads streamed back, versions keeping their own bytes, the size limit, access rules, and the
garbage collection of objects no row refers to.

Every test runs on both object stores (a local directory and a real S3 API: moto's server on a
loopback port) and both databases.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import random
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import orjson
import pytest
from lxml import etree
from moto.server import ThreadedMotoServer
from pydantic import SecretStr

from sqlalchemy import select

from ehr.security.audit import seal_pending
from ehr.security.tables import audit_log
from ehr.settings import Settings
from ehr.store.db import read_connection
from interop.binary.gc import collect
from interop.binary.pointer import OBJECT_EXT, object_of
from interop.storage import open_store
from tests.conftest import BASE, TEST_LIMITS, running_app
from tests.security.world import seed_world


async def audit_events(app) -> list[dict]:
    await seal_pending(app.state.engine)
    async with read_connection(app.state.engine) as conn:
        return [orjson.loads(e) for e in (await conn.execute(select(audit_log.c.event))).scalars()]


def touching(events: list[dict], what: str) -> list[dict]:
    return [e for e in events if any(what in str(x.get("what")) or what in str(x.get("query", "")) for x in e.get("entity", []))]

MB = 1024 * 1024
PDF = "application/pdf"


@pytest.fixture(scope="session")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture(params=["local", "s3"])
def storage(request) -> dict:
    if request.param == "local":
        return {}  # the embedded default: <data_dir>/objects
    return {
        "storage_url": f"s3://sijill-{uuid.uuid4().hex[:12]}/documents", "s3_endpoint": request.getfixturevalue("s3_endpoint"),
        "s3_access_key": "testing", "s3_secret_key": SecretStr("testing"), "s3_secure": False,
    }


@pytest.fixture
def settings(database_url, tmp_path, storage) -> Settings:
    return Settings(
        _env_file=None, database_url=database_url, base_url=BASE, data_dir=tmp_path / "data", auth_required=False,
        **storage, **TEST_LIMITS,
    )


def scan(size: int, seed: int = 7, magic: bytes = b"%PDF-1.7\n") -> bytes:
    """A document of ``size`` bytes: the format's signature (a PDF's by default), then noise."""
    return magic + random.Random(seed).randbytes(size - len(magic))


async def chunked(data: bytes, size: int = 64 * 1024):
    """A body sent as it is produced (no Content-Length): the server must stream it."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(client, data: bytes, media: str = PDF, *, res_id: str | None = None, **headers) -> httpx.Response:
    url = f"/Binary/{res_id}" if res_id else "/Binary"
    method = client.put if res_id else client.post
    return await method(url, content=chunked(data), headers={"Content-Type": media, **headers})


async def download(client, res_id: str, accept: str = PDF, version: str | None = None) -> httpx.Response:
    url = f"/Binary/{res_id}" + (f"/_history/{version}" if version else "")
    return await client.get(url, headers={"Accept": accept})


async def test_a_multi_megabyte_scan_goes_up_and_comes_back_byte_for_byte(app, client, settings):
    body = scan(9 * MB + 123)  # more than one S3 part
    resp = await upload(client, body)
    assert resp.status_code == 201, resp.text
    stored = resp.json()
    assert stored["contentType"] == PDF and "data" not in stored
    ref = object_of(stored)
    assert ref.size == len(body) and ref.sha256 == sha(body)
    assert ref.key.startswith(f"Binary/{stored['id']}/")
    assert open_store(settings).exists(ref.key)

    got = await download(client, stored["id"])
    assert got.status_code == 200
    assert got.headers["content-type"] == PDF
    assert got.headers["content-length"] == str(len(body))
    assert got.headers["etag"] == 'W/"1"'
    assert sha(got.content) == sha(body)
    # a browser asks for anything: it gets the document itself
    assert (await download(client, stored["id"], accept="text/html,*/*;q=0.8")).content == body


async def test_the_fhir_json_form_round_trips_through_storage(client, settings):
    body = scan(300_000, seed=3, magic=b"\xff\xd8\xff\xe0")
    sent = {"resourceType": "Binary", "contentType": "image/jpeg", "securityContext": {"reference": "DocumentReference/d"},
            "data": base64.b64encode(body).decode()}
    resp = await client.post("/Binary", json=sent)
    assert resp.status_code == 201, resp.text
    res_id = resp.json()["id"]
    ref = object_of(resp.json())
    assert ref.sha256 == sha(body) and open_store(settings).exists(ref.key)

    as_json = (await download(client, res_id, accept="application/fhir+json")).json()
    assert base64.b64decode(as_json["data"]) == body
    assert "_data" not in as_json and as_json["securityContext"] == {"reference": "DocumentReference/d"}
    as_xml = etree.fromstring((await download(client, res_id, accept="application/fhir+xml")).content)
    assert base64.b64decode(as_xml.find("{http://hl7.org/fhir}data").get("value")) == body
    raw = await download(client, res_id, accept="image/*")
    assert raw.headers["content-type"] == "image/jpeg" and raw.content == body
    refused = await download(client, res_id, accept="text/plain")
    assert refused.status_code == 406


async def test_each_version_keeps_its_own_bytes(client, settings):
    first, second = scan(2 * MB, seed=1), scan(3 * MB, seed=2)
    res_id = (await upload(client, first, **{"X-Security-Context": "DocumentReference/d"})).json()["id"]
    resp = await upload(client, second, res_id=res_id)
    assert resp.status_code == 200, resp.text
    assert resp.json()["meta"]["versionId"] == "2"
    # new bytes keep the access rule of the version they replace
    assert resp.json()["securityContext"] == {"reference": "DocumentReference/d"}
    # a refused write keeps no object
    stale = await upload(client, scan(1000), res_id=res_id, **{"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert len(list(open_store(settings).list(f"Binary/{res_id}/"))) == 2

    assert (await download(client, res_id)).content == second
    old = await download(client, res_id, version="1")
    assert old.status_code == 200 and old.headers["etag"] == 'W/"1"' and old.content == first
    history = (await client.get(f"/Binary/{res_id}/_history")).json()
    keys = [object_of(e["resource"]).key for e in history["entry"]]
    assert len(keys) == 2 and len(set(keys)) == 2
    assert len((await client.get("/Binary/_history")).json()["entry"]) == 2  # the type's history, not a read of "_history"
    # deleted: gone for reads, while the versions (and their objects) stay readable
    assert (await client.delete(f"/Binary/{res_id}")).status_code == 204
    assert (await download(client, res_id)).status_code == 410
    assert (await download(client, res_id, version="2")).content == second


async def test_too_large_a_document_is_refused_and_nothing_is_kept(settings):
    small = settings.model_copy(update={"max_binary_bytes": 256 * 1024, "max_binary_inline_bytes": 100 * 1024})
    async with running_app(small) as app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        streamed = await upload(client, scan(300 * 1024))
        declared = await client.post("/Binary", content=scan(300 * 1024), headers={"Content-Type": PDF})
        encoded = await client.post("/Binary", json={"resourceType": "Binary", "contentType": PDF,
                                                     "data": base64.b64encode(scan(300 * 1024)).decode()})
        for resp in (streamed, declared, encoded):
            assert resp.status_code == 413, resp.text
            issue = resp.json()["issue"][0]
            assert issue["code"] == "too-costly" and issue["expression"] == ["Binary.data"]
        assert list(open_store(small).list("Binary/")) == []
        found = await client.get("/Binary", params={"_total": "accurate"}, headers={"Accept": "application/fhir+json"})
        assert found.json()["total"] == 0

        # within the limit, but too big to inline in JSON: fetch it raw instead
        res_id = (await upload(client, scan(200 * 1024))).json()["id"]
        inline = await download(client, res_id, accept="application/fhir+json")
        assert inline.status_code == 413 and PDF in inline.json()["issue"][0]["diagnostics"]
        assert len((await download(client, res_id)).content) == 200 * 1024


async def test_clients_cannot_point_a_binary_at_a_stored_object(client):
    victim = object_of((await upload(client, scan(1000))).json())
    forged = {"resourceType": "Binary", "contentType": PDF,
              "_data": {"extension": [{"url": OBJECT_EXT, "extension": [{"url": "key", "valueString": victim.key}]}]}}
    assert (await client.post("/Binary", json=forged)).status_code == 400
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": {**forged, "id": "forged"}, "request": {"method": "PUT", "url": "Binary/forged"}}]}
    resp = await client.post("", json=bundle)
    assert resp.status_code == 400 and resp.json()["issue"][0]["expression"][-1].endswith("_data.extension")
    assert (await client.get("/Binary/forged")).status_code == 404


async def test_garbage_collection_removes_orphans_and_keeps_what_rows_point_to(app, client, settings):
    store = open_store(settings)
    first = object_of((await upload(client, scan(5000, seed=1))).json())
    res_id = first.key.split("/")[1]
    second = object_of((await upload(client, scan(6000, seed=2), res_id=res_id)).json())
    # what a crash between the object write and the row commit leaves behind
    store.put("Binary/crashed/0123", io.BytesIO(b"orphan"), 6, PDF)

    recent = await collect(app.state.engine, store)
    assert recent.deleted == [] and recent.kept_recent == 3

    later = datetime.now(timezone.utc) + timedelta(hours=2)
    done = await collect(app.state.engine, store, now=later)
    assert done.deleted == ["Binary/crashed/0123"] and done.kept_referenced == 2
    assert not store.exists("Binary/crashed/0123")
    assert store.exists(first.key) and store.exists(second.key)  # the old version's bytes too
    assert (await download(client, res_id, version="1")).status_code == 200


def test_sijill_storage_gc_deletes_old_orphans_from_the_command_line(database_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ehr.cli import app as cli
    from ehr.settings import get_settings

    objects = tmp_path / "objects"
    monkeypatch.setenv("SIJILL_DATABASE_URL", database_url)
    monkeypatch.setenv("SIJILL_STORAGE_URL", f"file:{objects}")
    get_settings.cache_clear()
    try:
        store = open_store(get_settings())
        store.put("Binary/gone/1", io.BytesIO(b"old orphan"), -1, PDF)
        store.put("Binary/gone/2", io.BytesIO(b"new orphan"), -1, PDF)
        two_hours_ago = (datetime.now(timezone.utc) - timedelta(hours=2)).timestamp()
        os.utime(objects / "Binary" / "gone" / "1", (two_hours_ago, two_hours_ago))

        dry = CliRunner().invoke(cli, ["storage", "gc", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "Binary/gone/1" in dry.output and store.exists("Binary/gone/1")
        done = CliRunner().invoke(cli, ["storage", "gc"])
        assert done.exit_code == 0, done.output
        assert not store.exists("Binary/gone/1") and store.exists("Binary/gone/2")
    finally:
        get_settings.cache_clear()


def test_a_storage_url_that_names_no_store_is_refused_at_start_up():
    from pydantic import ValidationError

    for wrong in ({"storage_url": "ftp://docs"}, {"storage_url": "s3://"}, {"storage_url": "s3://documents"}):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, **wrong)
    assert Settings(_env_file=None, storage_url="s3://documents", s3_endpoint="minio:9000").s3_secure is True


# --- with tokens ---------------------------------------------------------------------------


@pytest.fixture
def secure_extra(storage) -> dict:
    return storage  # the secured server (tests/interop/conftest.py) stores documents here


async def test_a_document_is_read_by_exactly_those_who_may_read_its_security_context(secure_app):
    world = await seed_world(secure_app)  # doc-a: Amina's claim attachment for CNSS
    body = scan(MB + 5, seed=9)
    async with world.client("D1") as doctor:
        resp = await upload(doctor, body, **{"X-Security-Context": "DocumentReference/doc-a"})
    assert resp.status_code == 201, resp.text
    res_id = resp.json()["id"]
    assert resp.json()["securityContext"] == {"reference": "DocumentReference/doc-a"}

    for reader in ("pa", "AG", "D1"):
        async with world.client(reader) as c:
            got = await download(c, res_id)
            assert got.status_code == 200 and got.content == body, reader
    for stranger in ("pb", "AGO", "D4"):  # they do not learn the document exists
        async with world.client(stranger) as c:
            assert (await download(c, res_id)).status_code == 404, stranger
            assert (await download(c, res_id, accept="application/fhir+json")).status_code == 404, stranger
            assert (await download(c, res_id, version="1")).status_code == 404, stranger
    # every download is in the audit trail, with who read which version; refusals too
    events = touching(await audit_events(secure_app), f"Binary/{res_id}")
    readers = {e["agent"][0]["who"]["reference"] for e in events if e["action"] == "R" and e["outcome"] == "0"}
    assert readers == {"Patient/pa", "Practitioner/ag", "Practitioner/d1"}
    assert any(e["outcome"] != "0" and e["agent"][0]["who"]["reference"] == "Practitioner/d4" for e in events)
    async with world.client("PH") as pharmacist:  # their role reads no Binary at all
        assert (await download(pharmacist, res_id)).status_code == 403
    async with world.client(None) as anonymous:
        assert (await download(anonymous, res_id)).status_code == 401
    async with world.client("AG") as agent:  # insurers read documents, they do not write them
        assert (await upload(agent, b"x" * 10)).status_code == 403

"""A live server driven by real FHIR client libraries, as an integrator would use it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from fhirpy import AsyncFHIRClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(database_url):
    port = _free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    env = dict(os.environ, SIJILL_DATABASE_URL=database_url, SIJILL_BASE_URL=base, SIJILL_AUTH_REQUIRED="false")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ehr.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read().decode())
        else:
            raise RuntimeError("server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_fhirpy_create_search_update_delete(live_server):
    client = AsyncFHIRClient(live_server, extra_headers={"Accept": "application/fhir+json"})
    patient = client.resource(
        "Patient",
        name=[{"family": "Benjelloun", "given": ["Youssef"]}, {"family": "بنجلون", "given": ["يوسف"]}],
        identifier=[{"system": "https://fhir.sijill.ma/sid/cin", "value": "BE772211"}],
        birthDate="1979-11-02",
        gender="male",
    )
    await patient.save()
    assert patient["id"] and patient["meta"]["versionId"] == "1"
    await client.resource(
        "Observation", status="final", subject=patient.to_reference(),
        code={"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        valueQuantity={"value": 80, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
    ).save()
    found = await client.resources("Patient").search(name="بنجلون").fetch_all()
    assert [p["id"] for p in found] == [patient["id"]]
    found = await client.resources("Patient").search(identifier="https://fhir.sijill.ma/sid/cin|BE772211").fetch()
    assert [p["id"] for p in found] == [patient["id"]]
    obs = await client.resources("Observation").search(subject=f"Patient/{patient['id']}").include("Observation", "subject").fetch_raw()
    modes = sorted(e["search"]["mode"] for e in obs["entry"])
    assert modes == ["include", "match"]
    patient["gender"] = "other"
    await patient.save()
    again = await client.reference("Patient", patient["id"]).to_resource()
    assert again["gender"] == "other" and again["meta"]["versionId"] == "2"
    await again.delete()
    assert await client.resources("Patient").search(_id=patient["id"]).count() == 0


def test_smart_fhirclient_reads_capabilities_and_resources(live_server):
    from fhirclient import client as smart_client
    from fhirclient.models.patient import Patient

    created = httpx.post(
        f"{live_server}/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Tazi", "given": ["Salma"]}], "gender": "female"},
        headers={"Content-Type": "application/fhir+json"},
    ).json()
    smart = smart_client.FHIRClient(settings={"app_id": "sijill-tests", "api_base": live_server})
    smart.prepare()
    assert smart.server.capabilityStatement.fhirVersion.startswith("4.")
    patient = Patient.read(created["id"], smart.server)
    assert patient.name[0].family == "Tazi"
    bundle = Patient.where(struct={"family": "tazi"}).perform(smart.server)
    assert [e.resource.id for e in bundle.entry] == [created["id"]]

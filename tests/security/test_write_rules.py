"""Writes mirror reads: every way to write, for every role, against the world's records.

A write is checked on the new content and, for updates, patches and deletes, on what it
replaces: no role writes into, or moves data out of, a record it may not write to; funds write
only as themselves; coverages come only from a fund; patients write only about themselves; a
resource about a patient who does not exist is refused (422); and a PUT on an id the caller
cannot see answers exactly as a PUT on a missing id.  Plain requests, transactions, batches,
JSON Patch and the conditional forms alike (both databases).
"""
from __future__ import annotations

import base64

import orjson
import pytest

from .test_access_matrix import _read_in_process, ids, observation
from .world import RX, RX_A

PATCH = {"Content-Type": "application/json-patch+json"}


def move_to(patient: str) -> bytes:
    return orjson.dumps([{"op": "replace", "path": "/subject/reference", "value": f"Patient/{patient}"}])


def transaction(*entries: tuple[str, str, dict | None], kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": [
        {"request": {"method": method, "url": url}, **({"resource": res} if res is not None else {})} for method, url, res in entries
    ]}


def patch_entry(url: str, patch: bytes) -> tuple[str, str, dict]:
    return ("PATCH", url, {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": base64.b64encode(patch).decode()})


def statuses(bundle: dict) -> list[str]:
    return [e["response"]["status"].split()[0] for e in bundle["entry"]]


def forbidden(r) -> bool:
    return r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"


async def count(world, res_type: str, **params) -> int:
    """How many there are, whoever may see them."""
    from ehr.search.engine import search
    from ehr.store.db import read_connection

    async with read_connection(world.app.state.engine) as conn:
        found = await search(conn, res_type, list(params.items()), base_url="http://test/fhir", default_count=10, max_count=10)
    return len(found.rids)


# --- doctors: only in the records of patients in their care ------------------------------------------


@pytest.mark.parametrize(
    ("user", "patient", "status"),
    [
        ("D1", "pa", 201),  # in his care (Encounter ten days ago)
        ("D3", "pb", 201),  # Brahim's Consent permits him
        ("D4", "pa", 403),  # no relationship at all
        ("D1", "pb", 403),  # his Encounter with Brahim ended in 2020
        ("D2", "pb", 403),  # a current Encounter, but Brahim's Consent denies him
        ("D4", "nobody", 403),  # a missing patient answers as one he may not write to
    ],
)
async def test_doctor_writes_only_for_patients_in_care(world, user, patient, status):
    async with world.client(user) as c:
        r = await c.post("/Observation", json=observation(patient, valueString=f"{user}-{patient}"))
        assert r.status_code == status, r.text
        if status == 403:
            assert forbidden(r) and "nobody" not in r.text and "Patient/" not in r.text
    assert await count(world, "Observation", **{"value-string": f"{user}-{patient}"}) == (1 if status == 201 else 0)


async def test_naming_himself_opens_no_record(world):
    """Not through his own Practitioner compartment, nor a relationship he declares himself."""
    async with world.client("D4") as d4:
        performed = observation("pa", performer=[{"reference": "Practitioner/d4"}])
        assert forbidden(await d4.post("/Observation", json=performed))
        encounter = {"resourceType": "Encounter", "status": "in-progress", "class": {"code": "AMB"},
                     "subject": {"reference": "Patient/pa"}, "participant": [{"individual": {"reference": "Practitioner/d4"}}],
                     "period": {"start": "2025-01-01T08:00:00Z"}}
        assert forbidden(await d4.post("/Encounter", json=encounter))
        assert (await d4.get("/Patient/pa")).status_code == 404


async def test_doctor_cannot_move_a_record_to_another_patient(world):
    async with world.client("D1") as d1:
        obs = (await d1.get("/Observation/obs-a")).json()
        moved = {**obs, "subject": {"reference": "Patient/pb"}}
        assert forbidden(await d1.put("/Observation/obs-a", json=moved))
        assert forbidden(await d1.patch("/Observation/obs-a", content=move_to("pb"), headers=PATCH))
        assert forbidden(await d1.put("/Observation?_id=obs-a", json={k: v for k, v in moved.items() if k != "id"}))
        assert forbidden(await d1.patch("/Observation?_id=obs-a", content=move_to("pb"), headers=PATCH))
        # ...nor out of a record he no longer may write to: his 2020 prescription for Brahim
        mr = (await d1.get("/MedicationRequest/mr-b")).json()
        assert forbidden(await d1.put("/MedicationRequest/mr-b", json={**mr, "subject": {"reference": "Patient/pa"}}))
        assert forbidden(await d1.put("/MedicationRequest/mr-b", json={**mr, "status": "cancelled"}))
        # in the record: fine
        assert (await d1.put("/Observation/obs-a", json={**obs, "status": "amended"})).status_code == 200
    assert (await _read_in_process(world, "Observation/obs-a"))["subject"] == {"reference": "Patient/pa"}
    assert (await _read_in_process(world, "MedicationRequest/mr-b"))["meta"]["versionId"] == "1"


async def test_doctor_transactions_and_batches_are_checked_per_entry(world):
    tx = transaction(("POST", "Observation", observation("pa", valueString="tx")), ("POST", "Observation", observation("pb", valueString="tx")))
    moving = transaction(("PUT", "Observation/obs-a", {**observation("pb"), "id": "obs-a"}))
    patching = transaction(("POST", "Observation", observation("pa", valueString="tx")), patch_entry("Observation/obs-a", move_to("pb")))
    async with world.client("D1") as d1:
        r = await d1.post("/", json=tx)
        assert forbidden(r) and r.json()["issue"][0]["expression"] == ["Bundle.entry[1]"]
        r = await d1.post("/", json=moving)
        assert forbidden(r) and r.json()["issue"][0]["expression"] == ["Bundle.entry[0]"]
        r = await d1.post("/", json=patching)
        assert forbidden(r) and r.json()["issue"][0]["expression"] == ["Bundle.entry[1]"]
        assert await count(world, "Observation", **{"value-string": "tx"}) == 0  # nothing of them stayed
        r = await d1.post("/", json={**tx, "type": "batch"})
        assert statuses(r.json()) == ["201", "403"]
    assert await count(world, "Observation", **{"value-string": "tx"}) == 1
    assert (await _read_in_process(world, "Observation/obs-a"))["meta"]["versionId"] == "1"


async def test_doctor_writes_as_himself(world):
    async with world.client("D1") as d1:
        mr = {"resourceType": "MedicationRequest", "status": "active", "intent": "order", "medicationCodeableConcept": {"text": "x"},
              "subject": {"reference": "Patient/pa"}}
        assert forbidden(await d1.post("/MedicationRequest", json={**mr, "requester": {"reference": "Practitioner/d3"}}))
        assert (await d1.post("/MedicationRequest", json={**mr, "requester": {"reference": "Practitioner/d1"}})).status_code == 201


async def test_break_the_glass_lets_the_doctor_write(world):
    async with world.client("D4") as d4:
        assert forbidden(await d4.post("/Observation", json=observation("pa")))
        reason = {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "urgence"}]}
        assert (await d4.post("/Patient/pa/$break-glass", json=reason)).status_code == 200
        assert (await d4.post("/Observation", json=observation("pa"))).status_code == 201


# --- funds: as themselves, coverages only from a fund -------------------------------------------------


def claim_response(fund: str, claim: str, patient: str = "pa") -> dict:
    return {"resourceType": "ClaimResponse", "status": "active", "type": {"text": "pharmacy"}, "use": "claim",
            "patient": {"reference": f"Patient/{patient}"}, "created": "2025-02-01", "insurer": {"reference": f"Organization/{fund}"},
            "request": {"reference": f"Claim/{claim}"}, "outcome": "complete"}


def reconciliation(fund: str) -> dict:
    return {"resourceType": "PaymentReconciliation", "status": "active", "created": "2025-02-01", "paymentDate": "2025-02-01",
            "paymentIssuer": {"reference": f"Organization/{fund}"}, "paymentAmount": {"value": 10, "currency": "MAD"}}


def coverage(patient: str, fund: str) -> dict:
    return {"resourceType": "Coverage", "status": "active", "beneficiary": {"reference": f"Patient/{patient}"},
            "payor": [{"reference": f"Organization/{fund}"}]}


async def test_insurer_writes_decisions_and_payments_only_as_its_fund(world):
    async with world.client("AG") as cnss, world.client("AGO") as cnops:
        assert forbidden(await cnss.post("/ClaimResponse", json=claim_response("cnops", "claim-a")))  # as another fund
        assert forbidden(await cnss.post("/ClaimResponse", json=claim_response("cnss", "claim-b", "pb")))  # another fund's claim
        assert forbidden(await cnss.post("/ClaimResponse", json=claim_response("cnss", "claim-a", "pb")))  # into a stranger's record
        assert (await cnss.post("/ClaimResponse", json=claim_response("cnss", "claim-a"))).status_code == 201
        assert forbidden(await cnss.post("/PaymentReconciliation", json=reconciliation("cnops")))
        theirs = (await cnops.post("/PaymentReconciliation", json=reconciliation("cnops"))).json()["id"]
        notice = {"resourceType": "PaymentNotice", "status": "active", "created": "2025-02-01", "amount": {"value": 10, "currency": "MAD"},
                  "payment": {"reference": f"PaymentReconciliation/{theirs}"}, "recipient": {"reference": "Organization/ph-org"}}
        assert forbidden(await cnss.post("/PaymentNotice", json=notice))
        message = {"resourceType": "Communication", "status": "completed", "sender": {"reference": "Organization/cnops"},
                   "recipient": [{"reference": "Organization/ph-org"}], "payload": [{"contentString": "Pièce manquante"}]}
        assert forbidden(await cnss.post("/Communication", json=message))
        assert (await cnss.post("/Communication", json={**message, "sender": {"reference": "Organization/cnss"}})).status_code == 201
        # taking over another fund's decision through an update: it stays invisible
        cr = await _read_in_process(world, "ClaimResponse/cr-a")
        assert (await cnops.put("/ClaimResponse/cr-a", json={**cr, "insurer": {"reference": "Organization/cnops"}})).status_code == 405
        assert forbidden(await cnss.put("/ClaimResponse/cr-a", json={**cr, "insurer": {"reference": "Organization/cnops"}}))
        tx = transaction(("POST", "PaymentReconciliation", reconciliation("cnss")), ("POST", "PaymentReconciliation", reconciliation("cnops")))
        r = await cnss.post("/", json=tx)
        assert forbidden(r) and r.json()["issue"][0]["expression"] == ["Bundle.entry[1]"]
    assert (await _read_in_process(world, "ClaimResponse/cr-a"))["insurer"] == {"reference": "Organization/cnss"}


async def test_writing_a_coverage_opens_no_citizen_to_an_agent(world):
    async with world.client("AG") as cnss:
        assert (await cnss.get("/Patient/pb")).status_code == 404
        assert forbidden(await cnss.post("/Coverage", json=coverage("pb", "cnss")))
        assert forbidden(await cnss.post("/", json=transaction(("POST", "Coverage", coverage("pb", "cnss")), ("POST", "Coverage", coverage("pb", "cnss")))))
        cov = await _read_in_process(world, "Coverage/cov-a")
        assert forbidden(await cnss.put("/Coverage/cov-a", json={**cov, "beneficiary": {"reference": "Patient/pb"}}))  # moved
        assert forbidden(await cnss.post("/Coverage", json=coverage("pa", "cnops")))  # as another fund
        assert (await cnss.get("/Patient/pb")).status_code == 404
        # its own beneficiary: a second coverage, and updates of the first
        assert (await cnss.post("/Coverage", json=coverage("pa", "cnss"))).status_code == 201
        assert (await cnss.put("/Coverage/cov-a", json={**cov, "status": "cancelled"})).status_code == 200


async def test_the_funds_registry_feed_brings_new_beneficiaries(world):
    gateway = world.issuer.directory.clients["cnss-gateway"]
    token = world.issuer.issue_client_token(gateway).access_token
    async with world.client(None, Authorization=f"Bearer {token}") as feed:
        assert (await feed.get("/Patient/pb")).status_code == 404
        assert forbidden(await feed.post("/Coverage", json=coverage("pb", "cnops")))
        assert (await feed.post("/Coverage", json=coverage("pb", "cnss"))).status_code == 201
        assert (await feed.get("/Patient/pb")).status_code == 200


@pytest.mark.parametrize("user", ["PA", "D1", "pa", "PH", "AD"])
async def test_coverages_come_only_from_a_fund(world, user):
    async with world.client(user) as c:
        r = await c.post("/Coverage", json=coverage("pa", "amo-tadamon"))
        assert forbidden(r)
        assert r.json()["issue"][0]["diagnostics"].endswith("Coverage resources")  # the role, not the row
    assert await count(world, "Coverage", payor="Organization/amo-tadamon") == 0


# --- patients, pharmacists, counter agents -----------------------------------------------------------


def communication(subject: str, recipients: list[str], sender: str | None = "Patient/pa") -> dict:
    res = {"resourceType": "Communication", "status": "completed", "subject": {"reference": subject},
           "recipient": [{"reference": r} for r in recipients], "payload": [{"contentString": "Bonjour"}]}
    return {**res, "sender": {"reference": sender}} if sender else res


async def test_patient_writes_only_about_herself(world):
    async with world.client("pa") as amina:
        assert (await amina.post("/Communication", json=communication("Patient/pa", ["Practitioner/d1"]))).status_code == 201
        assert (await amina.post("/Communication", json=communication("Patient/pc", ["Practitioner/d1"]))).status_code == 201  # her daughter
        assert forbidden(await amina.post("/Communication", json=communication("Patient/pb", ["Practitioner/d1"])))
        assert forbidden(await amina.post("/Communication", json=communication("Patient/pa", ["Patient/pb"])))  # into a stranger's record
        assert forbidden(await amina.post("/Communication", json=communication("Patient/pa", ["Practitioner/d1"], "Practitioner/d3")))
        r = await amina.post("/", json=transaction(("POST", "Communication", communication("Patient/pa", ["Practitioner/d1"])),
                                                   ("POST", "Communication", communication("Patient/pa", ["Patient/pb"]))))
        assert forbidden(r) and r.json()["issue"][0]["expression"] == ["Bundle.entry[1]"]
        r = await amina.post("/", json=transaction(("POST", "Communication", communication("Patient/pb", ["Practitioner/d1"])), kind="batch"))
        assert statuses(r.json()) == ["403"]
    async with world.client("pb") as brahim:
        assert await count(world, "Communication", subject="Patient/pb") == 0
        assert (await brahim.get("/Communication")).json()["total"] == 0


async def test_pharmacist_writes_for_presented_prescriptions_as_the_pharmacy(world):
    dispense = {"resourceType": "MedicationDispense", "status": "completed", "medicationCodeableConcept": {"text": "Amoxicilline 1g"},
                "subject": {"reference": "Patient/pa"}, "authorizingPrescription": [{"reference": "MedicationRequest/mr-a"}],
                "performer": [{"actor": {"reference": "Organization/ph-org"}}], "quantity": {"value": 1}}
    async with world.client("PH") as ph:
        unseen = await ph.post("/MedicationDispense", json=dispense)  # nothing presented yet: the line is unknown to them
        missing = await ph.post("/MedicationDispense", json={**dispense, "authorizingPrescription": [{"reference": "MedicationRequest/mr-x"}]})
        assert unseen.status_code == missing.status_code == 422
        assert unseen.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"] == "not-found"
        await ph.get("/MedicationRequest", params={"group-identifier": f"{RX}|{RX_A}"})
        other = {**dispense, "performer": [{"actor": {"reference": "Organization/cnss"}}]}
        assert forbidden(await ph.post("/MedicationDispense", json=other))  # as another organisation
        elsewhere = await ph.post("/MedicationDispense", json={**dispense, "subject": {"reference": "Patient/pb"}})
        assert elsewhere.status_code == 422 and elsewhere.json()["issue"][0]["expression"] == ["MedicationDispense.subject"]
        assert (await ph.post("/MedicationDispense", json=dispense)).status_code == 201


async def test_references_to_missing_patients_are_refused(world):
    """A counter agent may write for anyone who exists; nobody is refused with the reference's path."""
    async with world.client("PA") as agent:
        r = await agent.post("/Observation", json=observation("nobody"))
        assert r.status_code == 422
        issue = r.json()["issue"][0]
        assert issue["code"] == "not-found" and issue["expression"] == ["Observation.subject"]
        note = communication("Patient/pb", ["Practitioner/d1", "Patient/ghost"], sender=None)
        r = await agent.post("/Communication", json=note)
        assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Communication.recipient[1]"]
        # inside a transaction, a Patient created by the same Bundle exists
        newborn = {"fullUrl": "urn:uuid:5b1f6c3e-0000-4000-8000-000000000001", "request": {"method": "POST", "url": "Patient"},
                   "resource": {"resourceType": "Patient", "name": [{"family": "Nouveau"}]}}
        obs = {"request": {"method": "POST", "url": "Observation"},
               "resource": {**observation("x"), "subject": {"reference": "urn:uuid:5b1f6c3e-0000-4000-8000-000000000001"}}}
        r = await agent.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [obs, newborn]})
        assert r.status_code == 200 and statuses(r.json()) == ["201", "201"]
        r = await agent.post("/", json=transaction(("POST", "Observation", observation("pb")), ("POST", "Observation", observation("nobody"))))
        assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Bundle.entry[1].resource.subject"]
        r = await agent.patch("/Observation/" + (await agent.post("/Observation", json=observation("pb"))).json()["id"],
                              content=move_to("nobody"), headers=PATCH)
        assert r.status_code == 422


# --- PUT reveals nothing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "invisible"),
    [("D1", "Observation/obs-b"), ("D4", "Observation/obs-a"), ("PH", "MedicationRequest/mr-a"), ("AGO", "ClaimResponse/cr-a"),
     ("PA", "Observation/obs-b"), ("pb", "Consent/con-a")],
)
async def test_put_on_an_invisible_id_answers_as_on_a_missing_one(world, user, invisible):
    res_type, res_id = invisible.split("/")
    current = await _read_in_process(world, invisible)
    async with world.client(user) as c:
        hidden = await c.put(f"/{invisible}", json=current)
        missing = await c.put(f"/{res_type}/no-such-id", json={**current, "id": "no-such-id"})
        assert hidden.status_code == missing.status_code == 405
        assert hidden.text.replace(res_id, "X") == missing.text.replace("no-such-id", "X")
        in_tx = [await c.post("/", json=transaction(("PUT", f"{res_type}/{i}", {**current, "id": i}))) for i in (res_id, "no-such-id")]
        assert in_tx[0].status_code == in_tx[1].status_code == 405
        assert in_tx[0].text.replace(res_id, "X") == in_tx[1].text.replace("no-such-id", "X")
    assert (await _read_in_process(world, invisible))["meta"]["versionId"] == "1"
    assert await _read_in_process(world, f"{res_type}/no-such-id") is None


async def test_admin_chooses_ids_of_reference_data(world):
    async with world.client("AD") as admin:
        r = await admin.put("/Organization/clinique-anfa", json={"resourceType": "Organization", "id": "clinique-anfa", "name": "Clinique Anfa"})
        assert r.status_code == 201
    async with world.client("D1") as d1:  # a conditional update that matches nothing creates under a server id
        r = await d1.put("/Observation?value-string=unique-42", json=observation("pa", valueString="unique-42"))
        assert r.status_code == 201 and ids({"entry": [{"resource": r.json()}]}) != set()

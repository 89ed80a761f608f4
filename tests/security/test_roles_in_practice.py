"""Pharmacist, insurer, paper-channel agent and admin at work, end to end (both databases)."""
from __future__ import annotations

from .test_access_matrix import ids, observation
from .world import RX, RX_A

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
             "display": "As requested, resource is not fully detailed."}


async def test_pharmacist_finds_a_prescription_by_its_number_only(world):
    async with world.client("PH") as ph:
        assert (await ph.get("/MedicationRequest/mr-a")).status_code == 404
        # anything but the exact number presents nothing (a partial or altered number is refused)
        for params in ({"identifier": RX_A}, {"subject": "Patient/pa"}, {"identifier:text": RX_A}):
            body = (await ph.get("/MedicationRequest", params=params)).json()
            assert body["total"] == 0, params
        for params in ({"identifier": f"{RX}|{RX_A[:-1]}"}, {"group-identifier:text": RX_A}):
            assert (await ph.get("/MedicationRequest", params=params)).status_code == 400, params
        assert (await ph.get("/MedicationRequest/mr-a")).status_code == 404

        found = await ph.get("/MedicationRequest", params={"identifier": f"{RX}|{RX_A}", "_include": "MedicationRequest:subject"})
        body = found.json()
        assert ids(body, "match") == {"MedicationRequest/mr-a"} and ids(body, "include") == {"Patient/pa"}
        patient = next(e["resource"] for e in body["entry"] if e["resource"]["resourceType"] == "Patient")
        assert set(patient) == {"resourceType", "id", "meta", "identifier", "name", "gender", "birthDate"}
        assert SUBSETTED in patient["meta"]["tag"]

        # presented: readable by id, with the patient (minimum) and the coverage to bill
        assert (await ph.get("/MedicationRequest/mr-a")).status_code == 200
        read = (await ph.get("/Patient/pa")).json()
        assert "telecom" not in read and "link" not in read and SUBSETTED in read["meta"]["tag"]
        assert ids((await ph.get("/Coverage")).json()) == {"Coverage/cov-a"}
        assert (await ph.get("/MedicationRequest/mr-b")).status_code == 404
        assert (await ph.get("/Patient/pb")).status_code == 404
        assert (await ph.get("/Patient", params={"name": "Alaoui"})).status_code == 403
        assert (await ph.get("/Observation/obs-a")).status_code == 403

        # dispensing the whole line records the dispense and completes the prescription
        dispense = {"resourceType": "MedicationDispense", "status": "completed", "medicationCodeableConcept": {"text": "Amoxicilline 1g"},
                    "subject": {"reference": "Patient/pa"}, "authorizingPrescription": [{"reference": "MedicationRequest/mr-a"}],
                    "performer": [{"actor": {"reference": "Organization/ph-org"}}], "quantity": {"value": 3}}
        created = await ph.post("/MedicationDispense", json=dispense)
        assert created.status_code == 201, created.text
        assert (await ph.get("/MedicationRequest/mr-a")).json()["status"] == "completed"
        assert ids((await ph.get("/MedicationDispense")).json()) == {f"MedicationDispense/{created.json()['id']}"}
        # the whole record is for the patient and their doctors, not for dispensing
        assert (await ph.get("/Patient/pa/$everything")).status_code == 403


async def test_pharmacy_software_acts_for_the_pharmacy(world):
    async with world.client("PH") as ph:
        await ph.get("/MedicationRequest", params={"group-identifier": f"{RX}|{RX_A}"})
    # the presentation was recorded for the pharmacy itself: its software sees the prescription too
    client = world.issuer.directory.clients["pharmacy-software"]
    from ehr.security.demo import SystemClient

    ours = SystemClient(client.client_id, client.role, client.allowed_scopes, "Organization/ph-org")
    token = world.issuer.issue_client_token(ours).access_token
    async with world.client(None, Authorization=f"Bearer {token}") as software:
        assert (await software.get("/MedicationRequest/mr-a")).status_code == 200
        assert (await software.get("/MedicationRequest/mr-b")).status_code == 404


async def test_insurer_sees_its_fund_only(world):
    async with world.client("AG") as cnss, world.client("AGO") as cnops:
        assert ids((await cnss.get("/Claim")).json()) == {"Claim/claim-a"}
        assert ids((await cnops.get("/Claim")).json()) == {"Claim/claim-b"}
        assert (await cnops.get("/Claim/claim-a")).status_code == 404
        assert (await cnss.get("/Binary/bin-a")).status_code == 200
        assert (await cnops.get("/Binary/bin-a")).status_code == 404
        assert ids((await cnss.get("/DocumentReference", params={"related": "Claim/claim-a"})).json()) == {"DocumentReference/doc-a"}
        # writes of the fund's business
        response = {"resourceType": "ClaimResponse", "status": "active", "type": {"text": "pharmacy"}, "use": "claim",
                    "patient": {"reference": "Patient/pa"}, "created": "2025-02-01", "insurer": {"reference": "Organization/cnss"},
                    "request": {"reference": "Claim/claim-a"}, "outcome": "complete"}
        created = await cnss.post("/ClaimResponse", json=response)
        assert created.status_code == 201
        assert (await cnops.get(f"/ClaimResponse/{created.json()['id']}")).status_code == 404
        eob = {"resourceType": "ExplanationOfBenefit", "status": "active", "type": {"text": "pharmacy"}, "use": "claim",
               "patient": {"reference": "Patient/pa"}, "created": "2025-02-01", "insurer": {"reference": "Organization/cnss"},
               "provider": {"reference": "Organization/ph-org"}, "outcome": "complete",
               "insurance": [{"focal": True, "coverage": {"reference": "Coverage/cov-a"}}]}
        eob_id = (await cnss.post("/ExplanationOfBenefit", json=eob)).json()["id"]
        assert ids((await cnss.get("/ExplanationOfBenefit")).json()) == {f"ExplanationOfBenefit/{eob_id}"}
        assert (await cnops.get("/ExplanationOfBenefit")).json()["total"] == 0


async def test_payments_follow_the_paying_fund(world):
    async with world.client("AG") as cnss, world.client("AGO") as cnops:
        rec = {"resourceType": "PaymentReconciliation", "status": "active", "created": "2025-02-01",
               "paymentIssuer": {"reference": "Organization/cnss"}, "paymentDate": "2025-02-01",
               "paymentAmount": {"value": 10, "currency": "MAD"}}
        rec_id = (await cnss.post("/PaymentReconciliation", json=rec)).json()["id"]
        notice = {"resourceType": "PaymentNotice", "status": "active", "created": "2025-02-01",
                  "payment": {"reference": f"PaymentReconciliation/{rec_id}"}, "recipient": {"reference": "Organization/ph-org"},
                  "amount": {"value": 10, "currency": "MAD"}}
        created = await cnss.post("/PaymentNotice", json=notice)
        assert created.status_code == 201
        notice_id = created.json()["id"]
        assert (await cnss.get(f"/PaymentNotice/{notice_id}")).status_code == 200
        assert (await cnops.get(f"/PaymentNotice/{notice_id}")).status_code == 404
        assert (await cnops.get(f"/PaymentReconciliation/{rec_id}")).status_code == 404


async def test_paper_agent_enters_on_behalf_and_sees_only_that(world):
    async with world.client("PA") as agent, world.client("pb") as brahim:
        created = await agent.post("/Observation", json=observation("pb", valueString="fiche papier"))
        assert created.status_code == 201
        obs_id = created.json()["id"]
        assert (await agent.get(f"/Observation/{obs_id}")).status_code == 200
        assert ids((await agent.get("/Observation")).json()) == {f"Observation/{obs_id}"}
        assert (await agent.get("/Observation/obs-b")).status_code == 404
        assert (await agent.get("/Patient/pb")).status_code == 404
        # recorded as such: a Provenance naming the agent as enterer on behalf of the patient
        prov = (await agent.get("/Provenance", params={"target": f"Observation/{obs_id}"})).json()
        assert prov["total"] == 1
        p = prov["entry"][0]["resource"]
        assert p["agent"][0]["who"] == {"reference": "Practitioner/pa-agent"}
        assert p["agent"][0]["onBehalfOf"] == {"reference": "Patient/pb"}
        assert p["agent"][0]["type"]["coding"][0]["code"] == "enterer"
        # the patient sees the entry in his record
        assert (await brahim.get(f"/Observation/{obs_id}")).status_code == 200
        # the agent corrects what they entered, not anything else
        fixed = {**created.json(), "valueString": "fiche papier (corrigée)"}
        assert (await agent.put(f"/Observation/{obs_id}", json=fixed)).status_code == 200
        assert (await agent.put("/Observation/obs-b", json=(await brahim.get("/Observation/obs-b")).json())).status_code == 405


async def test_admin_manages_reference_data_only(world):
    async with world.client("AD") as admin:
        org = await admin.post("/Organization", json={"resourceType": "Organization", "name": "Polyclinique CNSS Casablanca"})
        assert org.status_code == 201
        assert (await admin.get("/Organization", params={"name": "Polyclinique"})).json()["total"] == 1
        practitioner = {"resourceType": "Practitioner", "name": [{"family": "Naciri"}]}
        assert (await admin.post("/Practitioner", json=practitioner)).status_code == 201
        assert (await admin.get("/Patient/pa")).status_code == 403
        assert (await admin.get("/Observation")).status_code == 403
        assert (await admin.get("/Patient/pa/$everything")).status_code == 403
        assert (await admin.get("/AuditEvent")).status_code == 403

"""Doctor and pharmacist talk about a prescription (a ``Communication`` based on its line): the
pharmacy it was presented to and the prescriber read and write them; nobody else does, and no
one sends as somebody else."""
from __future__ import annotations

from ehr.security.demo import DemoUser
from ehr.security.roles import Role

from .test_prescription_numbers import _write
from .world import RX, RX_A

PH2 = DemoUser("PH2", Role.PHARMACIST, "Practitioner/ph2")


def _message(sender: str, recipient: str, line: str, text: str) -> dict:
    return {
        "resourceType": "Communication", "status": "completed", "subject": {"reference": "Patient/pa"},
        "basedOn": [{"reference": line}], "sender": {"reference": sender}, "recipient": [{"reference": recipient}],
        "payload": [{"contentString": text}],
    }


async def _second_pharmacy(world) -> None:
    await _write(world, [{"resourceType": "Practitioner", "id": "ph2"}, {"resourceType": "Organization", "id": "ph-org2", "name": "Pharmacie Rif"},
                         {"resourceType": "PractitionerRole", "id": "ph2-role", "practitioner": {"reference": "Practitioner/ph2"},
                          "organization": {"reference": "Organization/ph-org2"}}])


async def test_pharmacist_and_prescriber_exchange_messages_about_a_presented_prescription(world):
    await _second_pharmacy(world)
    async with world.client("PH") as ph:
        assert (await ph.get("/MedicationRequest", params={"group-identifier": f"{RX}|{RX_A}"})).json()["total"] >= 1
        question = await ph.post("/Communication", json=_message("Practitioner/ph", "Practitioner/d1", "MedicationRequest/mr-a",
                                                                  "Rupture de stock : accepteriez-vous le générique ?"))
        assert question.status_code == 201, question.text
        asked = question.json()["id"]
    async with world.client("D1") as d1:
        assert (await d1.get(f"/Communication/{asked}")).status_code == 200
        found = (await d1.get("/Communication", params={"recipient": "Practitioner/d1"})).json()
        assert asked in {e["resource"]["id"] for e in found.get("entry", [])}
        reply = await d1.post("/Communication", json=_message("Practitioner/d1", "Practitioner/ph", "MedicationRequest/mr-a",
                                                                "Oui, le générique convient."))
        assert reply.status_code == 201, reply.text
        answered = reply.json()["id"]
    async with world.client("PH") as ph:
        assert (await ph.get(f"/Communication/{answered}")).status_code == 200
    async with world.client(PH2) as other:  # another pharmacy: the messages do not exist for it
        assert (await other.get(f"/Communication/{asked}")).status_code == 404
        assert (await other.get(f"/Communication/{answered}")).status_code == 404


async def test_nobody_sends_as_somebody_else_or_about_a_prescription_not_presented(world):
    await _second_pharmacy(world)
    async with world.client("PH") as ph:
        await ph.get("/MedicationRequest", params={"group-identifier": f"{RX}|{RX_A}"})
        as_other = await ph.post("/Communication", json=_message("Practitioner/ph2", "Practitioner/d1", "MedicationRequest/mr-a", "x"))
        assert as_other.status_code == 403, as_other.text
        not_presented = await ph.post("/Communication", json=_message("Practitioner/ph", "Practitioner/d1", "MedicationRequest/mr-b", "x"))
        assert not_presented.status_code == 403, not_presented.text
    async with world.client(PH2) as other:
        assert (await other.post("/Communication", json=_message("Practitioner/ph2", "Practitioner/d1", "MedicationRequest/mr-a", "x"))).status_code == 403
    async with world.client("D1") as d1:
        forged = await d1.post("/Communication", json=_message("Practitioner/d3", "Practitioner/ph", "MedicationRequest/mr-a", "x"))
        assert forged.status_code == 403, forged.text

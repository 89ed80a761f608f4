"""Dispensing a prescription at the pharmacy, with the pharmacists' own tokens (two pharmacies).

Amina (pa, CNSS, diabetes ALD09) holds prescription RX1 from Dr D1: metformin by substance, 3
boxes over a fill and two renewals, substitution allowed; Diamicron 30 by brand, 1 box,
substitution refused — both for E11.  RX2 has a cancelled line and an expired one.  Pharmacies A
and B each present the prescription (the lookup by number) before dispensing.
"""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from claims.tables import dispense_line, message_outbox
from claims.uris import ALD, ATC, FUND, ICD10, INPE, MEDICINE, PRESCRIPTION_NUMBER
from claims.worker import Worker
from ehr.security.demo import DemoUser
from ehr.store import repository
from ehr.security.roles import Role
from tests.claims import builders as b
from tests.claims.test_appeals import BASE, DOCTOR, OTHER_PATIENT, PATIENT, secure_app, signing_key  # noqa: F401  (fixtures)
from tests.security.world import seed_world

RX1, RX2 = "VG8T-G2BE-PE1Z", "MXHK-ZR65-MPHW"
PHARMACIST_A = DemoUser("pha", Role.PHARMACIST, "Practitioner/pha")
PHARMACIST_B = DemoUser("phb", Role.PHARMACIST, "Practitioner/phb")
METFORMIN, GLUCOPHAGE_850, METFORMIN_COOPER_850, GLUCOMET_850 = "A10BA02", "6118001032938", "6118001034048", "6118001034789"
GLICLAZIDE, DIAMICRON_30, GLICLAZIDE_GENERIC = "A10BB09", "6118001035526", "6118001036264"


def _line(line_id: str, number: str, concept: dict, boxes: int, *, repeats: int = 0, substitution: bool, status: str = "active",
          valid_until: str | None = None) -> dict:
    request = {"quantity": {"value": boxes, "unit": "boîte"}, "numberOfRepeatsAllowed": repeats,
               "validityPeriod": {"start": b.days_ago(30).isoformat(), "end": valid_until or b.days_ago(-60).isoformat()}}
    return {"resourceType": "MedicationRequest", "id": line_id, "status": status, "intent": "order",
            "groupIdentifier": {"system": PRESCRIPTION_NUMBER, "value": number},
            "medicationCodeableConcept": concept, "subject": {"reference": "Patient/pa"},
            "requester": {"reference": "Practitioner/d1"}, "authoredOn": b.days_ago(2).isoformat(),
            "reasonCode": [{"coding": [{"system": ICD10, "code": "E11"}]}],
            "dispenseRequest": request, "substitution": {"allowedBoolean": substitution}}


def _scenario() -> list[dict]:
    pharmacies = []
    for key, inpe in (("a", "900000011"), ("b", "900000022")):
        pharmacies += [
            {"resourceType": "Organization", "id": f"ph-{key}", "active": True, "name": f"Pharmacie {key.upper()}",
             "identifier": [{"system": INPE, "value": inpe}]},
            {"resourceType": "Practitioner", "id": f"ph{key}", "active": True, "name": [{"family": f"PH{key.upper()}"}]},
            {"resourceType": "PractitionerRole", "id": f"ph{key}-role", "active": True, "practitioner": {"reference": f"Practitioner/ph{key}"},
             "organization": {"reference": f"Organization/ph-{key}"}},
        ]
    return [
        {"resourceType": "Organization", "id": "cnss", "identifier": [{"system": FUND, "value": "CNSS"}], "name": "CNSS"},
        {"resourceType": "Practitioner", "id": "d1", "active": True, "identifier": [{"system": INPE, "value": "101234567"}]},
        *pharmacies,
        {"resourceType": "Patient", "id": "pa", "name": [{"family": "Alaoui"}], "birthDate": "1980-02-03"},
        {"resourceType": "Patient", "id": "pb", "name": [{"family": "Bennani"}], "birthDate": "1975-06-07"},
        {"resourceType": "Coverage", "id": "cov-a", "status": "active", "beneficiary": {"reference": "Patient/pa"},
         "subscriber": {"reference": "Patient/pa"}, "payor": [{"reference": "Organization/cnss"}], "period": {"start": "2020-01-01"},
         "costToBeneficiary": [{"valueMoney": {"value": 0, "currency": "MAD"}, "exception": [
             {"type": {"coding": [{"system": ALD, "code": "ALD09"}]}, "period": {"start": "2020-01-01"}}]}]},
        _line("mr-1", RX1, {"coding": [{"system": ATC, "code": METFORMIN}]}, 1, repeats=2, substitution=True),
        _line("mr-2", RX1, {"coding": [{"system": MEDICINE, "code": DIAMICRON_30}, {"system": ATC, "code": GLICLAZIDE}]}, 1,
              substitution=False),
        _line("mr-c", RX2, {"coding": [{"system": ATC, "code": METFORMIN}]}, 1, substitution=True, status="cancelled"),
        _line("mr-e", RX2, {"coding": [{"system": ATC, "code": METFORMIN}]}, 1, substitution=True,
              valid_until=b.days_ago(10).isoformat()),
    ]


@pytest.fixture
async def world(secure_app):  # noqa: F811
    return await seed_world(secure_app, _scenario())


async def _present(world, who: DemoUser, number: str) -> None:
    async with world.client(who) as c:
        resp = await c.get("/MedicationRequest", params={"group-identifier": f"{PRESCRIPTION_NUMBER}|{number}"})
    assert resp.status_code == 200 and resp.json()["total"] >= 1, resp.text


def _dispense(line: str, pack: str, boxes: int, pharmacy: str, *, substituted: bool = False) -> dict:
    res = {"resourceType": "MedicationDispense", "status": "completed", "subject": {"reference": "Patient/pa"},
           "authorizingPrescription": [{"reference": f"MedicationRequest/{line}"}],
           "medicationCodeableConcept": {"coding": [{"system": MEDICINE, "code": pack}]},
           "quantity": {"value": boxes, "unit": "boîte"}, "whenHandedOver": b.days_ago(0).isoformat() + "T10:00:00Z",
           "performer": [{"actor": {"reference": f"Organization/ph-{pharmacy}"}}]}
    if substituted:
        res["substitution"] = {"wasSubstituted": True, "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                                                           "code": "G"}]},
                               "reason": [{"text": "générique disponible"}]}
    return res


async def _post(world, who: DemoUser, res: dict):
    async with world.client(who) as c:
        return await c.post("/MedicationDispense", json=res)


async def _remaining(world, who: DemoUser | None, line: str = "mr-1"):
    async with world.client(who) as c:
        return await c.get(f"/MedicationRequest/{line}/$remaining")


def _lines(params: dict) -> dict[str, dict]:
    out = {}
    for p in params["parameter"]:
        if p["name"] == "line":
            parts = {q["name"]: q for q in p["part"]}
            out[parts["prescription"]["valueReference"]["reference"]] = parts
    return out


def _issue(resp) -> dict:
    return resp.json()["issue"][0]


async def test_partial_dispenses_at_two_pharmacies_add_up_and_complete_the_prescription(world):
    await _present(world, PHARMACIST_A, RX1)
    assert (await _post(world, PHARMACIST_A, _dispense("mr-1", METFORMIN_COOPER_850, 2, "a"))).status_code == 201

    await _present(world, PHARMACIST_B, RX1)
    lines = _lines((await _remaining(world, PHARMACIST_B)).json())
    one = lines["MedicationRequest/mr-1"]
    assert (one["prescribed"]["valueQuantity"]["value"], one["dispensed"]["valueQuantity"]["value"],
            one["remaining"]["valueQuantity"]["value"]) == (3, 2, 1)
    assert lines["MedicationRequest/mr-2"]["remaining"]["valueQuantity"]["value"] == 1

    beyond = await _post(world, PHARMACIST_B, _dispense("mr-1", METFORMIN_COOPER_850, 2, "b"))
    assert beyond.status_code == 409
    assert _issue(beyond)["code"] == "business-rule" and _issue(beyond)["expression"] == ["MedicationDispense.quantity"]
    assert "il reste 1" in _issue(beyond)["diagnostics"]

    assert (await _post(world, PHARMACIST_B, _dispense("mr-1", METFORMIN_COOPER_850, 1, "b"))).status_code == 201
    async with world.client(DOCTOR) as c:
        assert (await c.get("/MedicationRequest/mr-1")).json()["status"] == "active"  # mr-2 remains
    assert (await _post(world, PHARMACIST_B, _dispense("mr-2", DIAMICRON_30, 1, "b"))).status_code == 201
    async with world.client(DOCTOR) as c:
        assert [(await c.get(f"/MedicationRequest/{i}")).json()["status"] for i in ("mr-1", "mr-2")] == ["completed", "completed"]
    again = await _post(world, PHARMACIST_A, _dispense("mr-1", METFORMIN_COOPER_850, 1, "a"))
    assert again.status_code == 409 and "il reste 0" in _issue(again)["diagnostics"]


async def test_a_dispense_handed_over_is_not_rewritten_in_place(world):
    await _present(world, PHARMACIST_A, RX1)
    made = await _post(world, PHARMACIST_A, _dispense("mr-1", METFORMIN_COOPER_850, 1, "a"))
    assert made.status_code == 201, made.text
    dispense_id = made.headers["Location"].split("/MedicationDispense/")[1].split("/")[0]
    async with world.client(PHARMACIST_A) as c:
        stored = (await c.get(f"/MedicationDispense/{dispense_id}")).json()
        rewrite = await c.put(f"/MedicationDispense/{dispense_id}", json={**stored, "quantity": {"value": 3}})
        removal = await c.delete(f"/MedicationDispense/{dispense_id}")
    assert rewrite.status_code == 405 and removal.status_code == 403  # a pharmacist deletes nothing at all
    assert "Communication" in _issue(rewrite)["diagnostics"] and "Claim" not in _issue(rewrite)["diagnostics"]
    lines = _lines((await _remaining(world, PHARMACIST_A)).json())
    assert lines["MedicationRequest/mr-1"]["dispensed"]["valueQuantity"]["value"] == 1


async def test_remaining_is_for_the_pharmacy_it_was_presented_to_the_prescriber_and_the_patient(world):
    assert (await _remaining(world, None)).status_code == 401
    assert (await _remaining(world, PHARMACIST_B)).status_code == 404  # not presented there
    assert (await _remaining(world, OTHER_PATIENT)).status_code == 404
    assert (await _remaining(world, DOCTOR, "mr-unknown")).status_code == 404
    for who in (DOCTOR, PATIENT):
        resp = await _remaining(world, who)
        assert resp.status_code == 200
        assert set(_lines(resp.json())) == {"MedicationRequest/mr-1", "MedicationRequest/mr-2"}
    assert (await _post(world, PHARMACIST_B, _dispense("mr-1", METFORMIN_COOPER_850, 1, "b"))).status_code == 422


async def test_cancelled_and_expired_lines_are_refused(world):
    await _present(world, PHARMACIST_A, RX2)
    for line, word in (("mr-c", "cancelled"), ("mr-e", "plus valable")):
        resp = await _post(world, PHARMACIST_A, _dispense(line, METFORMIN_COOPER_850, 1, "a"))
        assert resp.status_code == 422, resp.text
        assert _issue(resp)["expression"] == ["MedicationDispense.authorizingPrescription"] and word in _issue(resp)["diagnostics"]


async def test_substitution_only_where_the_line_allows_it_and_its_price_difference_recorded(world):
    await _present(world, PHARMACIST_A, RX1)
    refused = await _post(world, PHARMACIST_A, _dispense("mr-2", GLICLAZIDE_GENERIC, 1, "a", substituted=True))
    assert refused.status_code == 422 and _issue(refused)["expression"] == ["MedicationDispense.substitution.wasSubstituted"]
    undeclared = await _post(world, PHARMACIST_A, _dispense("mr-2", GLICLAZIDE_GENERIC, 1, "a"))
    assert undeclared.status_code == 422 and _issue(undeclared)["expression"] == ["MedicationDispense.medicationCodeableConcept"]
    other_substance = await _post(world, PHARMACIST_A, _dispense("mr-1", GLICLAZIDE_GENERIC, 1, "a", substituted=True))
    assert other_substance.status_code == 422

    allowed = await _post(world, PHARMACIST_A, _dispense("mr-1", GLUCOMET_850, 2, "a", substituted=True))
    assert allowed.status_code == 201, allowed.text
    difference = [e["valueMoney"] for e in allowed.json()["extension"] if e["url"].endswith("dispense-price-difference")]
    assert difference == [{"value": 2.8, "currency": "MAD"}]  # (15.60 public − 14.20 base) × 2


async def test_two_pharmacies_dispensing_the_whole_remainder_at_once_one_wins(world):
    await _present(world, PHARMACIST_A, RX1)
    await _present(world, PHARMACIST_B, RX1)
    assert (await _post(world, PHARMACIST_A, _dispense("mr-1", METFORMIN_COOPER_850, 1, "a"))).status_code == 201
    a, b_ = await asyncio.gather(_post(world, PHARMACIST_A, _dispense("mr-1", METFORMIN_COOPER_850, 2, "a")),
                                 _post(world, PHARMACIST_B, _dispense("mr-1", METFORMIN_COOPER_850, 2, "b")))
    assert sorted([a.status_code, b_.status_code]) == [201, 409], (a.text, b_.text)
    loser = a if a.status_code == 409 else b_
    assert "il reste 0" in _issue(loser)["diagnostics"]
    async with world.app.state.engine.connect() as conn:
        assert await conn.scalar(select(dispense_line.c.dispensed_milli).where(dispense_line.c.line_id == "mr-1")) == 3000
    one = _lines((await _remaining(world, DOCTOR)).json())["MedicationRequest/mr-1"]
    assert (one["dispensed"]["valueQuantity"]["value"], one["remaining"]["valueQuantity"]["value"]) == (3, 0)


async def test_the_pharmacy_sheet_shows_the_patients_share_first_and_is_paid_at_the_ald_rate(world):
    await _present(world, PHARMACIST_A, RX1)
    ids = []
    for line, pack, boxes in (("mr-1", GLUCOPHAGE_850, 3), ("mr-2", DIAMICRON_30, 1)):
        resp = await _post(world, PHARMACIST_A, _dispense(line, pack, boxes, "a"))
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    body = {"resourceType": "Parameters", "parameter": [{"name": "dispense", "valueReference": {"reference": f"MedicationDispense/{i}"}}
                                                        for i in ids]}
    async with world.client(PATIENT) as c:
        assert (await c.post("/MedicationDispense/$price", json=body)).status_code == 403
    async with world.client(PHARMACIST_B) as c:
        assert (await c.post("/MedicationDispense/$price", json=body)).status_code == 422  # not their dispenses
    async with world.client(PHARMACIST_A) as c:
        price = await c.post("/MedicationDispense/$price", json=body)
    assert price.status_code == 200, price.text
    top = {p["name"]: p for p in price.json()["parameter"] if p["name"] != "line"}
    # Glucophage 3 × 24.90 (base 14.20), Diamicron 58.30 (base 34.90): the fund pays the bases at 100 % (ALD09, E11)
    assert top["payee"]["valueCode"] == "provider"
    assert (top["total"]["valueMoney"]["value"], top["fundShare"]["valueMoney"]["value"], top["patientShare"]["valueMoney"]["value"]) == \
        (133.0, 77.5, 55.5)
    for line in (p for p in price.json()["parameter"] if p["name"] == "line"):
        parts = {q["name"]: q for q in line["part"]}
        assert parts["ald"]["valueBoolean"] is True and parts["rate"]["valueDecimal"] == 1.0
        assert parts["patientShare"]["valueMoney"] == parts["priceDifference"]["valueMoney"]

    async with world.client(PHARMACIST_A) as c:
        billed = await c.post("/MedicationDispense/$bill", json=body)
        assert billed.status_code == 201, billed.text
        assert (await c.post("/MedicationDispense/$bill", json=body)).status_code == 200  # the same sheet again
    await Worker(world.app.state.engine, base_url=BASE, name="test-worker").run_once()
    async with world.client(PHARMACIST_A) as c:
        decided = (await c.get(f"/ClaimResponse/{billed.json()['id']}")).json()
    assert decided["outcome"] == "complete"
    benefit = [a["amount"]["value"] for it in decided["item"] for a in it["adjudication"] if a["category"]["coding"][0]["code"] == "benefit"]
    assert sum(benefit) == pytest.approx(77.5)


async def test_each_dispense_tells_the_patient_once_without_clinical_detail(world):
    await _present(world, PHARMACIST_A, RX1)
    first = await _post(world, PHARMACIST_A, _dispense("mr-1", METFORMIN_COOPER_850, 1, "a"))
    second = await _post(world, PHARMACIST_A, _dispense("mr-1", METFORMIN_COOPER_850, 1, "a"))
    assert (first.status_code, second.status_code) == (201, 201)
    async with world.app.state.engine.connect() as conn:
        rows = (await conn.execute(select(message_outbox.c.patient_id, message_outbox.c.about, message_outbox.c.communication_id)
                                   .where(message_outbox.c.event == "prescription-dispensed"))).all()
        told = (await repository.current(conn, "Communication", rows[0].communication_id)).resource()
    assert sorted((r.patient_id, r.about) for r in rows) == sorted(
        ("pa", f"MedicationDispense/{x.json()['id']}") for x in (first, second))
    assert told["subject"]["reference"] == "Patient/pa" and told["category"][0]["coding"][0]["code"] == "prescription-dispensed"
    texts = " ".join(p["contentString"] for p in told["payload"])
    assert RX1 in texts and "Metformin" not in texts  # the whole number, nothing of the medicine and METFORMIN_COOPER_850 not in texts

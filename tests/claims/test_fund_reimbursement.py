"""A medicine one fund reimburses and another does not, at the pharmacy (issue 11, billing).

The SAMPLE list (profiles/reference/sample/medicines.csv) says Tahor 10 mg is reimbursed by CNSS
and not by CNOPS.  Amina (pa) is covered by CNSS, Chama (pc) by CNOPS; Dr D1 prescribed Tahor to
both; pharmacy A hands it over to each and asks ``$price`` what each party pays.
"""
from __future__ import annotations

import pytest

from claims.uris import FUND, MEDICINE
from ehr.security.prescription_number import seeded_number
from tests.claims.test_appeals import secure_app, signing_key  # noqa: F401  (fixtures)
from tests.claims.test_dispensing import PHARMACIST_A, _dispense, _line, _post, _present, _scenario
from tests.security.world import seed_world

TAHOR_10 = "6118001049950"  # 139.80 MAD, reimbursement base 59.40
RX_A, RX_C = seeded_number("tahor-amina"), seeded_number("tahor-chama")


def _tahor(line_id: str, number: str, patient: str) -> dict:
    line = _line(line_id, number, {"coding": [{"system": MEDICINE, "code": TAHOR_10}]}, 1, substitution=False)
    line = {k: v for k, v in line.items() if k != "reasonCode"}  # no diagnosis on the line
    return {**line, "subject": {"reference": f"Patient/{patient}"}}


@pytest.fixture
async def world(secure_app):  # noqa: F811
    return await seed_world(secure_app, [
        *_scenario(),
        {"resourceType": "Organization", "id": "cnops", "identifier": [{"system": FUND, "value": "CNOPS"}], "name": "CNOPS"},
        {"resourceType": "Patient", "id": "pc", "name": [{"family": "Chraibi"}], "birthDate": "1990-04-05"},
        {"resourceType": "Coverage", "id": "cov-c", "status": "active", "beneficiary": {"reference": "Patient/pc"},
         "subscriber": {"reference": "Patient/pc"}, "payor": [{"reference": "Organization/cnops"}], "period": {"start": "2020-01-01"}},
        _tahor("mr-ta", RX_A, "pa"), _tahor("mr-tc", RX_C, "pc"),
    ])


async def _price(world, patient: str, line: str, number: str) -> tuple[dict, dict]:
    await _present(world, PHARMACIST_A, number)
    dispensed = await _post(world, PHARMACIST_A, {**_dispense(line, TAHOR_10, 1, "a"), "subject": {"reference": f"Patient/{patient}"}})
    assert dispensed.status_code == 201, dispensed.text
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "dispense", "valueReference": {"reference": f"MedicationDispense/{dispensed.json()['id']}"}}]}
    async with world.client(PHARMACIST_A) as c:
        price = await c.post("/MedicationDispense/$price", json=body)
    assert price.status_code == 200, price.text
    params = price.json()["parameter"]
    line_parts = {q["name"]: q for p in params if p["name"] == "line" for q in p["part"]}
    return {p["name"]: p for p in params if p["name"] != "line"}, line_parts


def _mad(part: dict) -> float:
    return part["valueMoney"]["value"]


async def test_the_pharmacy_sheet_is_priced_by_what_the_patients_own_fund_reimburses(world):
    top, line = await _price(world, "pa", "mr-ta", RX_A)
    assert top["fund"]["valueReference"]["reference"] == "Organization/cnss"
    assert (_mad(line["base"]), _mad(top["fundShare"])) == (59.4, 41.58)  # 70 % of the base
    assert line.get("reason", {}).get("valueCode") != "not-in-basket"

    top, line = await _price(world, "pc", "mr-tc", RX_C)
    assert top["fund"]["valueReference"]["reference"] == "Organization/cnops"
    assert line["reason"]["valueCode"] == "not-in-basket"
    assert (_mad(top["total"]), _mad(top["fundShare"]), _mad(top["patientShare"])) == (139.8, 0, 139.8)

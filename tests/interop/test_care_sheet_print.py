"""The printed care sheet: ``GET Claim/{id}/$print``, with each role's own token, on both databases.

Dr D1 (Karim Bennani, INPE 101234567) billed Amina (pa, CIN AA111, her name also in Arabic) to
CNSS on sheet FS-2026-000123: a consultation and an ECG.  D2 is another doctor, PH a pharmacist
who is no party to the sheet.
"""
from __future__ import annotations

import pytest

from claims.messaging.status_code import code_for, shown
from claims.uris import CLAIM_NUMBER, INPE
from tests.interop.test_prescription_print import PDF, _pdf_text, _qr_of, _scan, _scenario
from tests.security.world import seed_world

NUMBER = "FS-2026-000123"


def _sheet() -> dict:
    return {"resourceType": "Claim", "id": "cs-d1", "status": "active", "type": {"text": "professional"}, "use": "claim",
            "identifier": [{"system": CLAIM_NUMBER, "value": NUMBER}], "patient": {"reference": "Patient/pa"},
            "created": "2026-03-02", "insurer": {"reference": "Organization/cnss"},
            "provider": {"reference": "Practitioner/d1", "identifier": {"system": INPE, "value": "101234567"}},
            "priority": {"text": "normal"}, "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/cov-a"}}],
            "item": [{"sequence": 1, "productOrService": {"coding": [{"system": "https://fhir.sijill.ma/CodeSystem/ngap", "code": "C"}],
                                                          "text": "Consultation"}, "quantity": {"value": 1}, "net": {"value": 150, "currency": "MAD"}},
                     {"sequence": 2, "productOrService": {"coding": [{"system": "https://fhir.sijill.ma/CodeSystem/ngap", "code": "ECG"}],
                                                          "text": "Électrocardiogramme"}, "quantity": {"value": 1}, "net": {"value": 100, "currency": "MAD"}}],
            "total": {"value": 250, "currency": "MAD"}}


@pytest.fixture
async def world(secure_app):
    world = await seed_world(secure_app, [*_scenario(), _sheet()])
    async with world.app.state.engine.begin() as conn:
        world.status_code = shown(await code_for(conn, "cs-d1"))
    return world


async def _print(world, who: str | None, claim: str = "cs-d1", **params):
    async with world.client(who, **PDF) as client:
        return await client.get(f"/Claim/{claim}/$print", params=params)


async def test_the_doctor_prints_his_care_sheet_as_pdf(world):
    printed = await _print(world, "D1")
    assert printed.status_code == 200, printed.text
    assert printed.headers["content-type"] == "application/pdf"
    words = _pdf_text(printed.content)
    for expected in (NUMBER, "Feuille de soins", "ورقة العلاج", "Amina Alaoui", "أمينة العلوي", "101234567", "CNSS",
                     "Consultation", "Électrocardiogramme", "250", world.status_code):
        assert expected in words, expected
    assert "AA111" not in words  # the CIN is masked, as on every letter
    code = _qr_of(printed.content)
    assert code.startswith(f"SJC1.{NUMBER}.")
    refused = await _scan(world, "PH", code)  # a care sheet's code is never a prescription's
    assert refused.status_code == 422 and refused.json()["issue"][0]["code"] == "security"


async def test_a4_on_request_and_a_bad_format_refused(world):
    assert _pdf_text((await _print(world, "D1", format="A4")).content)
    bad = await _print(world, "D1", format="A3")
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["http.format"]


async def test_the_patient_prints_their_own_sheet(world):
    printed = await _print(world, "pa")
    assert printed.status_code == 200, printed.text
    assert NUMBER in _pdf_text(printed.content)


async def test_another_doctor_and_a_pharmacist_not_party_find_nothing(world):
    for who in ("D2", "PH"):
        assert (await _print(world, who)).status_code == 404, who
    assert (await _print(world, "D1", claim="nope")).status_code == 404


async def test_anonymous_and_the_fund_agent_are_refused(world):
    assert (await _print(world, None)).status_code == 401
    assert (await _print(world, "AG")).status_code == 403

"""The counter agent serves the patient in front of them: ``Patient/{id}/$assist`` (both databases).

Amina (pa, CIN BK123456, born 1980-02-03) was never registered at the counter: her doctor sent
her care sheet.  She walks up to the counter with her identity card; the agent opens an assisted
session with her identifier and birth date, prints her decision letter, her payment notice and
her access report — and nothing of her clinical file.  Her report then says the printing was
done at the counter, with her present.  The scene is the paper channel's (test_paper_letters).
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from claims.caresheet import today
from claims.payment import pay_day
from tests.interop.test_paper_letters import (  # noqa: F401  (scene: the fixture)
    ADMIN, AMINA, BRAHIM, CIN, CNSS_AGENT, COUNTER, DOCTOR, _reconciliation, _sections, scene, text,
)

ASSIST = "/Patient/pa/$assist"


def proof(value: str = "BK123456", birth: str = "1980-02-03") -> dict:
    return {"resourceType": "Parameters", "parameter": [
        {"name": "identifier", "valueIdentifier": {"system": CIN, "value": value}}, {"name": "birthDate", "valueDate": birth}]}


async def assist(scene, body: dict | None = None):
    async with scene.client(COUNTER) as counter:
        return await counter.post(ASSIST, json=body or proof())


@pytest.mark.parametrize("who", [None, AMINA, DOCTOR, CNSS_AGENT, ADMIN])
async def test_only_the_counter_agent_assists(scene, who):
    async with scene.client(who) as c:
        resp = await c.post(ASSIST, json=proof())
    assert resp.status_code == (401 if who is None else 403)


async def test_a_wrong_proof_opens_nothing(scene):
    wrong = await assist(scene, proof(birth="1980-02-04"))
    async with scene.client(COUNTER) as counter:
        unknown = await counter.post("/Patient/nobody/$assist", json=proof())
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json()["issue"][0]["code"] == unknown.json()["issue"][0]["code"] == "not-found"
    assert (await scene.get(COUNTER, f"/ExplanationOfBenefit/{scene.amina.eob_id}/$letter")).status_code == 404


async def test_the_counter_agent_prints_for_the_patient_in_front_of_them(scene, server_clock):
    s = scene.app.state.security.settings
    await pay_day(scene.app.state.engine, today(), base_url=s.base_url, tz="Africa/Casablanca")
    decision = f"/ExplanationOfBenefit/{scene.amina.eob_id}/$letter"
    payment = f"/PaymentReconciliation/{await _reconciliation(scene, scene.amina)}/$letter"
    report = "/Patient/pa/$access-report"
    async with scene.client(COUNTER, Accept="text/html") as counter, scene.client(AMINA, Accept="text/html") as amina:
        # not registered here: nothing to print for her
        for path in (decision, payment, report):
            assert (await counter.get(path)).status_code == 404, path

        opened = await counter.post(ASSIST, json=proof(), headers={"Accept": "application/fhir+json"})
        assert opened.status_code == 200, opened.text
        period = {p["name"]: p for p in opened.json()["parameter"]}["period"]["valuePeriod"]
        assert datetime.fromisoformat(period["end"]) - datetime.fromisoformat(period["start"]) == timedelta(minutes=60)

        _sections(await counter.get(decision))
        assert "56,00 DH" in text(_sections(await counter.get(payment))["fr"], "summary")
        _sections(await counter.get(report))
        # the letters only: her clinical file and the fund's records stay closed to the counter
        for path in ("/Patient/pa", f"/Claim/{scene.amina_claim}", f"/ExplanationOfBenefit/{scene.amina.eob_id}"):
            assert (await counter.get(path, headers={"Accept": "application/fhir+json"})).status_code in (403, 404), path
        # and only hers: Brahim, who is not at the counter, stays closed
        assert (await counter.get("/Patient/pb/$access-report")).status_code == 404

        # her own report: the session and the printings, at the counter, with her present
        fr = _sections(await amina.get(report))["fr"]
        rows = [[text(r, c) for c in ("who", "what", "why")] for r in fr.xpath(".//tr[contains(@class, 'access')]")]
        by_counter = [r for r in rows if r[0] == "Samira Idrissi, agent d'accueil (guichet)"]
        assert ["Samira Idrissi, agent d'accueil (guichet)", "Accueil du patient au guichet", "Au guichet, en présence du patient"] in by_counter
        assert ["Samira Idrissi, agent d'accueil (guichet)", "Lettre imprimée au guichet — décision de prise en charge",
                "Au guichet, en présence du patient"] in by_counter
        trail = (await amina.get("/AuditEvent", params={"patient": "Patient/pa"}, headers={"Accept": "application/fhir+json"})).json()
        assisted = [e["resource"] for e in trail["entry"] if e["resource"]["subtype"][-1]["code"] == "$assist"]
        assert assisted[0]["purposeOfEvent"][0]["coding"][0]["code"] == "PATADMIN"

        # the session ends: the counter is back to what they entered
        server_clock.advance(minutes=61)
        for path in (decision, payment, report):
            assert (await counter.get(path)).status_code == 404, path

"""After the payment run, with each user's own token: providers read what they were paid (their
PaymentReconciliations and PaymentNotices, ``ClaimResponse.payment``), patients what was paid for
them (their EOBs and answers, the notices reimbursing them) — and nobody another's payments."""
from __future__ import annotations

from sqlalchemy import select

from claims.caresheet import today
from claims.payment import pay_day
from claims.tables import claim_ledger, claim_payment
from claims.uris import ALD, INPE, PAYMENT_NUMBER
from claims.worker import Worker
from ehr.parsing import check_structure
from ehr.security.demo import DemoUser
from ehr.security.roles import Role
from tests.claims import builders as b
from tests.claims.test_appeals import (  # noqa: F401  (fixtures)
    CNOPS_AGENT, CNSS_AGENT, DOCTOR, OTHER_DOCTOR, OTHER_PATIENT, PATIENT, _resources, secure_app, signing_key,
)
from tests.security.world import seed_world

CLINIC_DOCTOR = DemoUser("d3", Role.DOCTOR, "Practitioner/d3")  # works at the clinic
CLINIC_INPE = "301000001"


def _scenario() -> list[dict]:
    """Brahim (pb) is a CNSS insured with a diabetes ALD (tiers payant: his providers are paid);
    Amina (pa) is reimbursed herself.  Dr D3 works at a clinic paid for the care given there."""
    recent = {"start": b.days_ago(5).isoformat() + "T08:00:00Z"}
    return [
        *_resources(),
        {"resourceType": "Organization", "id": "clin", "active": True, "name": "Clinique Atlas",
         "identifier": [{"system": INPE, "value": CLINIC_INPE}]},
        {"resourceType": "Practitioner", "id": "d3", "active": True, "name": [{"family": "D3"}]},
        {"resourceType": "PractitionerRole", "id": "d3-clin", "active": True,
         "practitioner": {"reference": "Practitioner/d3"}, "organization": {"reference": "Organization/clin"}},
        {"resourceType": "Coverage", "id": "cov-b", "status": "active", "beneficiary": {"reference": "Patient/pb"},
         "subscriber": {"reference": "Patient/pb"}, "payor": [{"reference": "Organization/cnss"}], "period": {"start": "2020-01-01"},
         "costToBeneficiary": [{"valueMoney": {"value": 0, "currency": "MAD"}, "exception": [
             {"type": {"coding": [{"system": ALD, "code": "ALD09"}]}, "period": {"start": "2020-01-01"}}]}]},
        {"resourceType": "Encounter", "id": "enc-pb", "status": "finished", "class": {"code": "AMB"},
         "subject": {"reference": "Patient/pb"}, "period": recent,
         "participant": [{"individual": {"reference": "Practitioner/d1"}}, {"individual": {"reference": "Practitioner/d3"}}]},
    ]


def _ald_visit(days: int, provider: dict) -> dict:
    return b.claim("pb", "cov-b", [b.act("CS", 150, b.days_ago(days), diagnosis=[1])], provider=provider, diagnoses=["E11"])


async def _submit(callers, who: DemoUser, sheet: dict) -> dict:
    async with callers.client(who) as c:
        resp = await c.post("/Claim", json=sheet)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def _ids(client, url: str, **query) -> list[str]:
    resp = await client.get(url, params=query)
    assert resp.status_code == 200, resp.text
    return sorted(e["resource"]["id"] for e in resp.json().get("entry", []) if e.get("search", {}).get("mode") != "outcome")


async def test_providers_read_their_payments_and_patients_what_was_paid_for_them(secure_app):
    callers = await seed_world(secure_app, _scenario())
    d1 = {"reference": "Practitioner/d1", "identifier": {"system": INPE, "value": "101234567"}}
    to_d1 = await _submit(callers, DOCTOR, _ald_visit(2, d1))
    to_clinic = await _submit(callers, CLINIC_DOCTOR, _ald_visit(3, {"reference": "Organization/clin"}))
    to_amina = await _submit(callers, DOCTOR, b.claim("pa", "cov-a", [b.act("C", 80, b.days_ago(1))], provider=d1))
    worker = Worker(secure_app.state.engine, base_url=secure_app.state.security.settings.base_url, name="test-worker")
    while await worker.run_once():
        pass
    summary = await pay_day(secure_app.state.engine, today(), base_url=secure_app.state.security.settings.base_url,
                            tz="Africa/Casablanca")
    recs = {payee: rec_id for rec_id, _, payee, _, _ in summary.reconciliations}
    assert set(recs) == {"Practitioner/d1", "Organization/clin", "Patient/pa"}
    async with secure_app.state.engine.connect() as conn:
        notices = dict((await conn.execute(select(claim_payment.c.reconciliation_id, claim_payment.c.notice_id))).all())
        eobs = dict((await conn.execute(select(claim_ledger.c.response_id, claim_ledger.c.eob_id))).all())
    d1_rec, clinic_rec, amina_rec = recs["Practitioner/d1"], recs["Organization/clin"], recs["Patient/pa"]

    async with callers.client(DOCTOR) as doctor:
        assert await _ids(doctor, "/PaymentReconciliation") == [d1_rec]
        assert await _ids(doctor, "/PaymentReconciliation", payee="Practitioner/d1") == [d1_rec]
        rec = (await doctor.get(f"/PaymentReconciliation/{d1_rec}")).json()
        check_structure(rec, "PaymentReconciliation")
        assert rec["identifier"] == [{"system": PAYMENT_NUMBER, "value": d1_rec}]
        assert [d["payee"] for d in rec["detail"]] == [{"reference": "Practitioner/d1"}]
        assert await _ids(doctor, "/PaymentNotice") == [notices[d1_rec]]
        answer = (await doctor.get(f"/ClaimResponse/{to_d1['id']}")).json()
        check_structure(answer, "ClaimResponse")
        assert answer["payment"]["amount"] == {"value": 150, "currency": "MAD"}
        assert answer["payment"]["identifier"] == rec["identifier"][0] and answer["payment"]["date"] == today().isoformat()
        assert answer["meta"]["versionId"] == "3"  # queued, decided, paid: a version the server wrote
        for other in (f"/PaymentReconciliation/{clinic_rec}", f"/PaymentReconciliation/{amina_rec}",
                      f"/PaymentNotice/{notices[clinic_rec]}", f"/PaymentNotice/{notices[amina_rec]}"):
            assert (await doctor.get(other)).status_code == 404, other

    async with callers.client(CLINIC_DOCTOR) as clinic:  # paid through the organisation he works for
        assert await _ids(clinic, "/PaymentReconciliation") == [clinic_rec]
        assert await _ids(clinic, "/PaymentNotice") == [notices[clinic_rec]]
        assert (await clinic.get(f"/ClaimResponse/{to_clinic['id']}")).json()["payment"]["amount"]["value"] == 150
        assert (await clinic.get(f"/PaymentReconciliation/{d1_rec}")).status_code == 404

    async with callers.client(OTHER_DOCTOR) as stranger:
        assert await _ids(stranger, "/PaymentReconciliation") == []
        assert await _ids(stranger, "/PaymentReconciliation", payee="Practitioner/d1") == []
        assert (await stranger.get(f"/PaymentReconciliation/{d1_rec}")).status_code == 404
        assert (await stranger.get(f"/PaymentNotice/{notices[d1_rec]}")).status_code == 404

    async with callers.client(PATIENT) as amina:  # reimbursed herself: her notice, her EOB and answer say so
        assert await _ids(amina, "/PaymentNotice") == [notices[amina_rec]]
        assert await _ids(amina, "/PaymentNotice", payee="Patient/pa") == [notices[amina_rec]]
        eob = (await amina.get(f"/ExplanationOfBenefit/{eobs[to_amina['id']]}")).json()
        check_structure(eob, "ExplanationOfBenefit")
        assert eob["payment"]["amount"]["value"] == 56 and eob["payment"]["identifier"]["value"] == amina_rec
        assert (await amina.get(f"/ClaimResponse/{to_amina['id']}")).json()["payment"]["amount"]["value"] == 56
        for other in (f"/PaymentReconciliation/{d1_rec}", f"/PaymentNotice/{notices[d1_rec]}"):
            assert (await amina.get(other)).status_code == 404, other
    async with callers.client(OTHER_PATIENT) as brahim:  # tiers payant: what the fund paid his doctors for him
        assert (await brahim.get(f"/PaymentNotice/{notices[amina_rec]}")).status_code == 404
        assert await _ids(brahim, "/PaymentNotice") == []
        eob = (await brahim.get(f"/ExplanationOfBenefit/{eobs[to_d1['id']]}")).json()
        assert eob["payment"]["amount"]["value"] == 150

    async with callers.client(CNOPS_AGENT) as other_fund:
        assert (await other_fund.get(f"/PaymentReconciliation/{d1_rec}")).status_code == 404
    async with callers.client(CNSS_AGENT) as fund:
        assert await _ids(fund, "/PaymentReconciliation") == sorted(recs.values())

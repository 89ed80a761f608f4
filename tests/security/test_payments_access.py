"""Who reads which payment: a provider the reconciliations paying them or the organisation they act
for (``requestor``, a line's ``payee``) and those payments' notices; a patient the notices
reimbursing them or their dependants; a fund its own; nobody else (404, neither listed nor counted)."""
from __future__ import annotations

from tests.security.world import seed_world

PAYEE_PERSON = "https://fhir.sijill.ma/StructureDefinition/payment-payee-person"


def _rec(rec_id: str, fund: str = "cnss", requestor: str | None = None, payee: str | None = None) -> dict:
    rec = {"resourceType": "PaymentReconciliation", "id": rec_id, "status": "active", "created": "2025-03-01T10:00:00Z",
           "paymentIssuer": {"reference": f"Organization/{fund}"}, "paymentDate": "2025-03-01",
           "paymentAmount": {"value": 100, "currency": "MAD"},
           "detail": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/payment-type", "code": "payment"}]},
                       "amount": {"value": 100, "currency": "MAD"}}]}
    if requestor:
        rec["requestor"] = {"reference": requestor}
    if payee:
        rec["detail"][0]["payee"] = {"reference": payee}
    return rec


def _notice(notice_id: str, rec_id: str, payee: str | None = None, person: str | None = None) -> dict:
    notice = {"resourceType": "PaymentNotice", "id": notice_id, "status": "active", "created": "2025-03-01T10:00:00Z",
              "payment": {"reference": f"PaymentReconciliation/{rec_id}"}, "recipient": {"display": "Assuré"},
              "amount": {"value": 100, "currency": "MAD"}}
    if payee:
        notice["payee"] = {"reference": payee}
    if person:
        notice["extension"] = [{"url": PAYEE_PERSON, "valueReference": {"reference": person}}]
    return notice


PAYMENTS = [
    _rec("rec-ph", requestor="Organization/ph-org", payee="Organization/ph-org"),  # the pharmacy, paid directly
    _rec("rec-role", payee="PractitionerRole/ph-role"),  # a line paid to the pharmacist's role
    _rec("rec-d1", requestor="Practitioner/d1"),
    _rec("rec-cnops", fund="cnops", requestor="Practitioner/d1"),
    _rec("rec-pa"),  # a reimbursement to Amina: the person is on the notice
    _notice("pn-ph", "rec-ph", payee="Organization/ph-org"),
    _notice("pn-d1", "rec-d1"),  # no payee: found through its payment
    _notice("pn-pa", "rec-pa", person="Patient/pa"),
    _notice("pn-pc", "rec-pa", person="Patient/pc"),  # Chama, Amina's minor daughter
    _notice("pn-pb", "rec-pa", person="Patient/pb"),
]


async def _ids(client, res_type: str, **query) -> list[str]:
    resp = await client.get(f"/{res_type}", params=query)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body.get("total", len(body.get("entry", []))) == len(body.get("entry", []))
    return sorted(e["resource"]["id"] for e in body.get("entry", []))


async def _status(world, user, url: str) -> int:
    async with world.client(user) as c:
        return (await c.get(url)).status_code


async def test_providers_read_the_payments_made_to_them_or_their_organisation(world):
    await seed_world(world.app, PAYMENTS)
    async with world.client("PH") as pharmacist:
        assert await _ids(pharmacist, "PaymentReconciliation") == ["rec-ph", "rec-role"]
        assert await _ids(pharmacist, "PaymentReconciliation", payee="PractitionerRole/ph-role") == ["rec-role"]
        assert await _ids(pharmacist, "PaymentNotice") == ["pn-ph"]
        assert await _ids(pharmacist, "PaymentNotice", payment="PaymentReconciliation/rec-d1") == []
    async with world.client("D1") as doctor:
        assert await _ids(doctor, "PaymentReconciliation") == ["rec-cnops", "rec-d1"]
        assert await _ids(doctor, "PaymentNotice") == ["pn-d1"]
        assert (await doctor.post("/PaymentReconciliation", json={k: v for k, v in PAYMENTS[2].items() if k != "id"})).status_code == 403
    for user, url in (("PH", "/PaymentReconciliation/rec-d1"), ("PH", "/PaymentNotice/pn-d1"), ("D1", "/PaymentReconciliation/rec-ph"),
                      ("D1", "/PaymentReconciliation/rec-pa"), ("D4", "/PaymentReconciliation/rec-d1"), ("D4", "/PaymentNotice/pn-ph")):
        assert await _status(world, user, url) == 404, (user, url)
    async with world.client("D4") as stranger:
        assert await _ids(stranger, "PaymentReconciliation", requestor="Practitioner/d1") == []


async def test_patients_read_the_notices_reimbursing_them_and_their_dependants(world):
    await seed_world(world.app, PAYMENTS)
    async with world.client("pa") as amina:
        assert await _ids(amina, "PaymentNotice") == ["pn-pa", "pn-pc"]
        assert await _ids(amina, "PaymentNotice", payee="Patient/pa") == ["pn-pa"]
        assert await _ids(amina, "PaymentReconciliation") == []  # the fund's record itself stays the fund's
    async with world.client("pb") as brahim:
        assert await _ids(brahim, "PaymentNotice") == ["pn-pb"]
    assert await _status(world, "pb", "/PaymentNotice/pn-pa") == 404


async def test_payments_of_a_fund_and_roles_without_payments(world):
    await seed_world(world.app, PAYMENTS)
    async with world.client("AGO") as cnops:
        assert await _ids(cnops, "PaymentReconciliation") == ["rec-cnops"]
    assert await _status(world, "AG", "/PaymentReconciliation/rec-cnops") == 404
    for user in ("PA", "AD"):  # counter agents and admins have no business with payments
        assert await _status(world, user, "/PaymentReconciliation") == 403, user
        assert await _status(world, user, "/PaymentNotice") == 403, user
    assert await _status(world, None, "/PaymentReconciliation") == 401

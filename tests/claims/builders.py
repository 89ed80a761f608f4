"""Building the world a care sheet lives in, through the API as a provider's software would."""
from __future__ import annotations

import itertools
from datetime import date, timedelta

from claims.caresheet import today
from claims.uris import ACTS, ALD, CLAIM_NUMBER, CLAIM_TYPE, FUND, ICD10, INPE, MEDICINE, SUBSCRIBER_RELATIONSHIP

_numbers = itertools.count(1)


def days_ago(n: int) -> date:
    return today() - timedelta(days=n)


async def create(client, res: dict) -> dict:
    resp = await client.post(f"/{res['resourceType']}", json=res)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def fund(client, code: str = "CNSS", org_id: str | None = None) -> dict:
    org = {
        "resourceType": "Organization",
        "identifier": [{"system": FUND, "value": code}],
        "active": True,
        "name": f"Organisme {code}",
    }
    if org_id:
        org["id"] = org_id
        resp = await client.put(f"/Organization/{org_id}", json=org)
        assert resp.status_code in (200, 201), resp.text
        return resp.json()
    return await create(client, org)


async def practitioner(client, inpe: str = "101234567", active: bool = True) -> dict:
    return await create(client, {
        "resourceType": "Practitioner",
        "identifier": [{"system": INPE, "value": inpe}],
        "active": active,
        "name": [{"family": "Bennani", "given": ["Karim"], "prefix": ["Dr"]}],
    })


async def facility(client, inpe: str, kind: str = "clinique") -> dict:
    return await create(client, {
        "resourceType": "Organization",
        "identifier": [{"system": INPE, "value": inpe}],
        "active": True,
        "type": [{"coding": [{"system": "https://fhir.sijill.ma/CodeSystem/organization-kind", "code": kind}]}],
        "name": f"Établissement {inpe}",
    })


async def patient(client, cin: str = "BK123456", birth: str = "1980-04-02") -> dict:
    return await create(client, {
        "resourceType": "Patient",
        "identifier": [{"system": "https://fhir.sijill.ma/sid/cin", "value": cin}],
        "name": [{"family": "Alaoui", "given": ["Amina"]}],
        "gender": "female",
        "birthDate": birth,
    })


async def coverage(
    client, patient_id: str, fund_id: str, *, start: date | None = None, end: date | None = None,
    subscriber_id: str | None = None, relationship: str = "self", regime: str = "salaries",
    ald: list[str] = (), order: int | None = None, status: str = "active",
) -> dict:
    cov = {
        "resourceType": "Coverage",
        "status": status,
        "subscriber": {"reference": f"Patient/{subscriber_id or patient_id}"},
        "beneficiary": {"reference": f"Patient/{patient_id}"},
        "relationship": {"coding": [{"system": SUBSCRIBER_RELATIONSHIP, "code": relationship}]},
        "period": {"start": (start or date(2020, 1, 1)).isoformat()},
        "payor": [{"reference": f"Organization/{fund_id}"}],
        "class": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]},
            "value": regime,
            "name": regime,
        }],
    }
    if end:
        cov["period"]["end"] = end.isoformat()
    if order:
        cov["order"] = order
    if ald:
        cov["costToBeneficiary"] = [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-copay-type", "code": "copaypct"}]},
            "valueMoney": {"value": 0, "currency": "MAD"},
            "exception": [
                {"type": {"coding": [{"system": ALD, "code": code}]}, "period": {"start": "2020-01-01"}}
                for code in ald
            ],
        }]
    return await create(client, cov)


def act(code: str, amount: float, when: date, *, quantity: float = 1, diagnosis: list[int] | None = None) -> dict:
    item = {
        "productOrService": {"coding": [{"system": ACTS, "code": code}]},
        "servicedDate": when.isoformat(),
        "quantity": {"value": quantity},
        "unitPrice": {"value": amount, "currency": "MAD"},
        "net": {"value": round(amount * quantity, 2), "currency": "MAD"},
    }
    if diagnosis:
        item["diagnosisSequence"] = diagnosis
    return item


def medicine(ean: str, price: float, when: date, boxes: int = 1) -> dict:
    item = act(ean, price, when, quantity=boxes)
    item["productOrService"] = {"coding": [{"system": MEDICINE, "code": ean}]}
    return item


def claim(
    patient_id: str, coverage_id: str, items: list[dict], *, provider: dict | None = None, number: str | None = None,
    kind: str = "professional", use: str = "claim", diagnoses: list[str] = (), preauth: list[str] = (),
    prescription: str | None = None, documents: list[str] = (),
) -> dict:
    for i, item in enumerate(items, 1):
        item.setdefault("sequence", i)
    res = {
        "resourceType": "Claim",
        "identifier": [{"system": CLAIM_NUMBER, "value": number or f"FSE-TEST-{next(_numbers):06d}"}],
        "status": "active",
        "type": {"coding": [{"system": CLAIM_TYPE, "code": kind}]},
        "use": use,
        "patient": {"reference": f"Patient/{patient_id}"},
        "created": today().isoformat(),
        "provider": provider,
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/{coverage_id}"}}],
        "item": items,
        "total": {"value": round(sum(i["net"]["value"] for i in items), 2), "currency": "MAD"},
    }
    if preauth:
        res["insurance"][0]["preAuthRef"] = list(preauth)
    if diagnoses:
        res["diagnosis"] = [
            {"sequence": n, "diagnosisCodeableConcept": {"coding": [{"system": ICD10, "code": code}]}}
            for n, code in enumerate(diagnoses, 1)
        ]
    if prescription:
        res["prescription"] = {"reference": f"MedicationRequest/{prescription}"}
    if documents:
        res["supportingInfo"] = [
            {"sequence": n, "category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claiminformationcategory", "code": c}]}}
            for n, c in enumerate(documents, 1)
        ]
    return res


def provider_ref(prac: dict) -> dict:
    inpe = next(i["value"] for i in prac["identifier"] if i["system"] == INPE)
    return {"reference": f"{prac['resourceType']}/{prac['id']}", "identifier": {"system": INPE, "value": inpe}}


def adjudication(item: dict, category: str) -> dict:
    return next(a for a in item["adjudication"] if a["category"]["coding"][0]["code"] == category)


def amount(item: dict, category: str) -> float:
    return adjudication(item, category)["amount"]["value"]

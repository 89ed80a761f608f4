"""The pharmacy's operations: what remains on a prescription, what a sheet costs whom, billing it.

* ``GET MedicationRequest/{id}/$remaining`` — whoever may read the line (the pharmacist it was
  presented to, the prescribing doctor, the patient): one ``line`` part per line of the same
  prescription they may read — ``prescription``, ``prescribed``, ``dispensed``, ``remaining``
  (Quantity), ``status``, ``validUntil``, ``substitutionAllowed``.
* ``POST MedicationDispense/$price`` (``dispense`` references) — the pharmacy care sheet those
  dispenses make, decided by the adjudication engine as the worker will: per line the public
  price, the reimbursement base, the rate (ALD or not), the fund's share and the patient's
  share, and who the fund pays (``payee``: ``provider`` in tiers payant).  Nothing is written:
  the pharmacist tells the patient what to pay before they pay.
* ``POST MedicationDispense/$bill`` (the same ``dispense`` references) — submits that sheet as
  ``POST Claim`` does (the caller's rules, the exchange's checks, idempotent by its number):
  ``201`` + the queued ClaimResponse, ``200`` when billed already.
"""
from __future__ import annotations

from decimal import Decimal

import orjson

from claims.dispensing import EXT_PRICE_DIFFERENCE
from claims.money import money
from claims.operations import as_caller
from claims.pharmacy_sheet import preview, sheet_for
from claims.prescription_lines import dispensed, read_line, sibling_lines
from ehr.interactions.transaction import transaction
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError
from ehr.rest.http import fhir_response
from ehr.security.roles import Role
from ehr.store import repository
from ehr.store.db import read_connection


def _quantity(value: Decimal, unit: dict) -> dict:
    return {"value": int(value) if value == value.to_integral_value() else float(value), **unit}


@operation("remaining", levels={"instance"}, types={"MedicationRequest"},
           callers={Role.DOCTOR, Role.PHARMACIST, Role.PATIENT}, definition="https://fhir.sijill.ma/OperationDefinition/MedicationRequest-remaining")
async def remaining(inv: Invocation):
    async with read_connection(inv.engine) as conn:
        stored = await repository.current(conn, "MedicationRequest", inv.res_id, access=inv.access)
        lines = await sibling_lines(conn, read_line(stored.resource()), inv.access)
        done = await dispensed(conn, [x.id for x in lines])
    parts = []
    for x in lines:
        given = done.get(x.id, Decimal(0))
        part = [{"name": "prescription", "valueReference": {"reference": f"MedicationRequest/{x.id}"}},
                {"name": "status", "valueCode": x.status},
                {"name": "dispensed", "valueQuantity": _quantity(given, x.unit)},
                {"name": "substitutionAllowed", "valueBoolean": x.substitution_allowed}]
        if x.prescribed is not None:
            part += [{"name": "prescribed", "valueQuantity": _quantity(x.prescribed, x.unit)},
                     {"name": "remaining", "valueQuantity": _quantity(max(x.prescribed - given, Decimal(0)), x.unit)}]
        if x.valid_until is not None:
            part.append({"name": "validUntil", "valueDate": x.valid_until.isoformat()})
        parts.append({"name": "line", "part": part})
    out: dict = {"resourceType": "Parameters", "parameter": parts}
    if lines and lines[0].number:
        out["parameter"].insert(0, {"name": "number", "valueString": lines[0].number})
    return fhir_response(orjson.dumps(out))


def _dispense_ids(inv: Invocation) -> list[str]:
    ids = []
    for value in inv.all("dispense"):
        ref = value.get("reference") if isinstance(value, dict) else value
        if not isinstance(ref, str) or not ref.startswith("MedicationDispense/"):
            raise FHIRError.of(400, "invalid", "dispense est une référence MedicationDispense/<id>", "Parameters.parameter")
        ids.append(ref.split("/", 1)[1])
    return ids


@operation("price", levels={"type"}, types={"MedicationDispense"},
           callers={Role.PHARMACIST}, definition="https://fhir.sijill.ma/OperationDefinition/MedicationDispense-price")
async def price(inv: Invocation):
    inv.request.state.security.guard.require("Claim", "c")
    async with read_connection(inv.engine) as conn:
        sheet = await sheet_for(conn, _dispense_ids(inv), inv.access)
        decision, facts = await preview(conn, sheet)
    parts = []
    for d, disp, item in zip(decision.lines, sheet.dispenses, sheet.claim["item"]):
        extra = next((e["valueMoney"] for e in disp.get("extension") or [] if e.get("url") == EXT_PRICE_DIFFERENCE), None)
        part = [{"name": "dispense", "valueReference": {"reference": f"MedicationDispense/{disp['id']}"}},
                {"name": "medication", "valueCodeableConcept": item["productOrService"]},
                {"name": "quantity", "valueQuantity": {"value": item["quantity"]["value"]}},
                {"name": "submitted", "valueMoney": money(d.submitted)},
                {"name": "base", "valueMoney": money(d.eligible)},
                {"name": "rate", "valueDecimal": float(d.rate)},
                {"name": "ald", "valueBoolean": d.ald},
                {"name": "fundShare", "valueMoney": money(d.benefit)},
                {"name": "patientShare", "valueMoney": money(d.patient_share)}]
        if extra is not None:
            part.append({"name": "priceDifference", "valueMoney": extra})
        part += [{"name": "reason", "valueCode": r} for r in d.reasons]
        parts.append({"name": "line", "part": part})
    out = {"resourceType": "Parameters", "parameter": [
        {"name": "fund", "valueReference": {"reference": facts.coverage.fund_ref}},
        {"name": "payee", "valueCode": decision.payee},
        {"name": "total", "valueMoney": money(decision.submitted)},
        {"name": "fundShare", "valueMoney": money(decision.benefit)},
        {"name": "patientShare", "valueMoney": money(decision.patient_share)},
        *parts,
    ]}
    return fhir_response(orjson.dumps(out))


@operation("bill", levels={"type"}, types={"MedicationDispense"}, affects_state=True,
           callers={Role.PHARMACIST}, definition="https://fhir.sijill.ma/OperationDefinition/MedicationDispense-bill")
async def bill(inv: Invocation):
    async with read_connection(inv.engine) as conn:
        sheet = await sheet_for(conn, _dispense_ids(inv), inv.access)
    s = inv.settings
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": sheet.claim, "request": {"method": "POST", "url": "Claim"}}]}
    entry = orjson.loads(await transaction(inv.engine, tx, as_caller(inv)))["entry"][0]  # as POST Claim, as the caller
    headers = {"Location": f"{s.base_url}/{entry['response']['location']}"} if entry["response"].get("location") else {}
    return fhir_response(orjson.dumps(entry["resource"]), int(entry["response"]["status"].split()[0]), headers)

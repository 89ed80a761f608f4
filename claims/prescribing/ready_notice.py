"""The patient is told when a prescriber issues their e-prescription (``prescription-ready``).

A line written ``active`` by a prescriber (the doctor, or the counter agent entering a paper
prescription) carries its prescription number (``groupIdentifier``, assigned by
``ehr.security.prescribing`` just before the write checks): the patient gets the whole number, to
give at any pharmacy, and nothing of the medicines — once per prescription, whose lines share the
number (a line added or changed later tells nothing new).  Registered after the checks at
prescribing, in the line's transaction: a line refused tells nothing.
"""
from __future__ import annotations

from claims.messaging.notices import notify
from ehr.hooks import validator
from ehr.interactions.context import Context
from ehr.search.values import parse_reference
from ehr.security.prescription_number import SYSTEM
from ehr.security.roles import Role

_PRESCRIBERS = {Role.DOCTOR, Role.PAPER_AGENT}


@validator
async def tell_prescription_ready(ctx: Context, res: dict) -> None:
    if res.get("resourceType") != "MedicationRequest" or ctx.guard is None or res.get("status") != "active":
        return
    group = res.get("groupIdentifier") or {}
    subject = (res.get("subject") or {}).get("reference")
    if ctx.guard.principal.role not in _PRESCRIBERS or group.get("system") != SYSTEM or not isinstance(subject, str):
        return
    res_type, patient_id, _ = parse_reference(subject, ctx.base_url.rstrip("/"))
    if res_type != "Patient" or not patient_id or not group.get("value"):
        return
    number = group["value"]
    await notify(ctx.conn, patient_id, "prescription-ready",
                 {"type": "MedicationRequest", "identifier": {"system": SYSTEM, "value": number}}, {"number": number})

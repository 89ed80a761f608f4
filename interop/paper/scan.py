"""The QR code of a printed prescription, scanned at the pharmacy: ``POST MedicationRequest/$scan``.

The pharmacist's scanner reads the code (``SJL1.<number>.<signature>``) and posts it as the
Parameters ``code`` (valueString).  The server checks its signature
(``ehr.security.prescription_signature``) and then answers exactly what the lookup by number
answers — ``GET MedicationRequest?group-identifier=<system>|<number>``, through the same search
(``ehr.rest.routes.search_interaction``): every line, the presentation recorded for the pharmacy,
an unknown number counted as a miss.

A code that is not one the server signed (malformed, another format, a number changed by hand, a
signature from another key) answers 422 ``security``; it is audited as a failed attempt and
counted against the pharmacy by the lookup's miss throttle, so a scanner cannot be used to guess
numbers faster than typing them.  Only pharmacists scan (403 otherwise).
"""
from __future__ import annotations

from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError
from ehr.rest.http import preferences
from ehr.rest.routes import search_interaction
from ehr.security.audit import append
from ehr.security.dispensing import miss_keys
from ehr.security.prescription_lookup import miss_throttle
from ehr.security.prescription_number import SYSTEM
from ehr.security.prescription_signature import ForgedCode, verify
from ehr.security.roles import Role
from ehr.store.db import write_transaction
from interop.paper.access import request_security


@operation("scan", levels={"type"}, types={"MedicationRequest"},
           callers={Role.PHARMACIST}, definition="https://fhir.sijill.ma/OperationDefinition/MedicationRequest-scan")
async def scan(inv: Invocation):
    security = request_security(inv)
    if security.role is not Role.PHARMACIST:
        raise FHIRError.of(403, "forbidden", "Seul un pharmacien scanne une ordonnance ($scan)")
    scanned = inv.first("code")
    if not isinstance(scanned, str) or not scanned.strip():
        raise FHIRError.of(400, "required", "Paramètre code (valueString) : le texte lu dans le code QR de l'ordonnance",
                           "Parameters.parameter.where(name = 'code')")
    throttle, keys = miss_throttle(inv.request), miss_keys(security)
    for key in keys:
        await throttle.check(key)
    try:
        number = verify(inv.settings, scanned)
    except ForgedCode as refused:
        await _refused(security, keys, throttle, str(refused))
        raise FHIRError.of(422, "security", f"Code d'ordonnance refusé : {refused}",
                           "Parameters.parameter.where(name = 'code').value") from None
    return await search_interaction(inv.engine, inv.settings, await preferences(inv.request), security, "MedicationRequest",
                                    [("group-identifier", f"{SYSTEM}|{number}")], throttle)


async def _refused(security, keys: list[str], throttle, why: str) -> None:
    """A forged or altered code: one more miss for the pharmacy, and a failed attempt in the trail."""
    for key in keys:
        await throttle.missed(key)
    audit = security.audit
    if audit.engine is not None:
        async with write_transaction(audit.engine) as conn:
            await append(conn, await audit.build(conn, status=422, description=f"Code d'ordonnance refusé : {why}"))
        audit.recorded = True

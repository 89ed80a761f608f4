"""Break-the-glass: a doctor without a care relationship gets time-limited access in an emergency.

``POST /fhir/Patient/{id}/$break-glass`` with a Parameters ``reason`` (valueString), by a doctor.
In one transaction it stores the grant (``break_glass_grant``, ``break_glass_minutes`` long),
tells the patient (``ehr.hooks.notify_patient``: a Communication in their record, then SMS or e-mail), and appends the
grant's AuditEvent (purposeOfUse BTG).  While the grant lasts, the policy opens the patient's
whole record to that doctor (overriding denies and hidden categories) and every access is
flagged BTG in the trail.  A doctor who already has access (a care relationship, a Consent,
or a grant still running) is told so and nothing is granted.
"""
from __future__ import annotations

import uuid

import orjson
from fastapi import Request

from ehr.hooks import notify_patient
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError
from ehr.rest.http import fhir_response
from ehr.security.audit import append, break_glass_event
from ehr.security.care import doctor_label
from ehr.security.principal import BreakGlassGrant, Principal
from ehr.security.roles import Role
from ehr.security.tables import break_glass_grant
from ehr.store import repository
from ehr.store.clock import now_us, to_instant
from ehr.store.db import write_transaction

DEFINITION = "https://fhir.sijill.ma/OperationDefinition/Patient-break-glass"
_REASON_WHERE = "Parameters.parameter.where(name='reason')"
MAX_REASON = 1000


def _reason(inv: Invocation) -> str:
    reason = inv.first("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise FHIRError.of(400, "required", "State why the record must be opened (parameter reason)", _REASON_WHERE)
    if len(reason) > MAX_REASON:
        raise FHIRError.of(400, "too-long", f"The reason is limited to {MAX_REASON} characters", _REASON_WHERE)
    return reason.strip()


def _security(request: Request):
    security = getattr(request.state, "security", None)
    if security is None:
        raise FHIRError.of(500, "exception", "The request has no security context")
    return security


@operation("break-glass", levels={"instance"}, types={"Patient"}, affects_state=True, callers={Role.DOCTOR}, definition=DEFINITION)
async def break_glass(inv: Invocation):
    security = _security(inv.request)
    principal: Principal = security.principal
    if principal.role is not Role.DOCTOR or not principal.fhir_user:
        raise FHIRError.of(403, "forbidden", "Only a doctor may break the glass")
    reason = _reason(inv)
    minutes = inv.settings.break_glass_minutes
    async with write_transaction(inv.engine) as conn:
        patient = await repository.current(conn, "Patient", inv.res_id)
        if patient is None or patient.deleted:
            raise FHIRError.of(404, "not-found", f"Patient/{inv.res_id} is not known")
        if await repository.current(conn, "Patient", inv.res_id, access=security.policy) is not None:
            raise FHIRError.of(422, "business-rule", f"You already have access to Patient/{inv.res_id}; break-the-glass is not needed")
        now = now_us()
        grant_id = str(uuid.uuid4())
        grant = BreakGlassGrant(f"Patient/{inv.res_id}", reason, now, now + minutes * 60_000_000)
        await conn.execute(
            break_glass_grant.insert().values(
                id=grant_id, actor=principal.fhir_user, subject=principal.subject, patient_id=inv.res_id,
                reason=reason, granted_at=grant.granted_at, expires_at=grant.expires_at,
            )
        )
        await notify_patient(conn, inv.res_id, "break-glass", principal.fhir_user, {
            "doctor": await doctor_label(conn, principal.fhir_user), "date": to_instant(now)[:10],
            "sender": principal.fhir_user, "occurrence": grant_id})
        audit = security.audit
        await append(conn, [break_glass_event(principal.with_break_glass(grant), grant, address=audit.address, site=audit.site)])
        audit.recorded = True
    if security.guard.identities is not None:
        security.guard.identities.forget(principal)  # the grant applies to the very next request
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueReference": {"reference": grant.patient}},
            {"name": "expires", "valueInstant": to_instant(grant.expires_at)},
            {"name": "reason", "valueString": reason},
        ],
    }
    return fhir_response(orjson.dumps(body))

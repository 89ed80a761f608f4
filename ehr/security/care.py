"""A doctor identifies a walk-in patient and starts care: explicit, bounded, visible.

* ``POST /fhir/Patient/$match`` (doctor, counter agent): a Parameters ``resource`` = a Patient
  with exactly one national identifier and the birth date (``ehr.security.presence``).  The
  answer is a searchset with at most one Patient cut to its identity (``id``, ``identifier``,
  ``name``, ``gender``, ``birthDate``, tagged SUBSETTED), ``search.mode=match``, score 1; no
  match and a wrong birth date give the same empty Bundle.  Audited with the patient found.
* ``POST /fhir/Patient/{id}/$start-care`` (doctor): the same proof again (``identifier``,
  ``birthDate``) and an optional ``reason``.  It opens a care relationship of
  ``care_start_days`` — the doctor's read rule then includes the patient — records it in the
  patient's trail (subtype ``$start-care``) and tells them by a ``Communication`` in their
  record, in French and Arabic, and by SMS or e-mail (``ehr.hooks.notify_patient``: once per doctor).  404 for an unknown id and a wrong proof alike.
"""
from __future__ import annotations

import orjson

from ehr.hooks import notify_patient
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError
from ehr.rest.http import fhir_response
from ehr.security.presence import Grant, grant_parameters, identify, open_grant, proof_from_patient, require_caller
from ehr.security.redaction import minimum_patient
from ehr.security.roles import Role
from ehr.security.tables import PRESENCE_CARE
from ehr.store import repository
from ehr.store.clock import to_instant
from ehr.store.db import read_connection

MATCH_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-match"
START_DEFINITION = "https://fhir.sijill.ma/OperationDefinition/Patient-start-care"
MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
MAX_REASON = 1000


@operation("match", levels={"type"}, types={"Patient"}, callers={Role.DOCTOR, Role.PAPER_AGENT}, definition=MATCH_DEFINITION)
async def match(inv: Invocation):
    require_caller(inv, Role.DOCTOR, Role.PAPER_AGENT)
    proof = proof_from_patient(inv.first("resource"))
    found = await identify(inv, proof)
    entries = []
    if found is not None:
        async with read_connection(inv.engine) as conn:
            patient = await repository.current(conn, "Patient", found)
        entries.append({
            "fullUrl": f"{inv.settings.base_url.rstrip('/')}/Patient/{found}",
            "resource": minimum_patient(patient.resource()),
            "search": {"mode": "match", "score": 1,
                       "extension": [{"url": MATCH_GRADE, "valueCode": "certain"}]},
        })
    security = inv.request.state.security
    await security.audit.record_read(patients=[f"Patient/{found}"] if found else [])
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
    if not entries:
        del bundle["entry"]
    return fhir_response(orjson.dumps(bundle))


def _reason(inv: Invocation) -> str | None:
    reason = inv.first("reason")
    if reason is None:
        return None
    where = "Parameters.parameter.where(name='reason')"
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise FHIRError.of(400, "value", f"The reason is a text of at most {MAX_REASON} characters", where)
    return reason.strip() or None


def doctor_name(practitioner: dict | None, fallback: str) -> str:
    """How the patient is told who opened their file: "Dr Amina Benali"."""
    for name in (practitioner or {}).get("name") or []:
        if name.get("text"):
            return name["text"]
        words = [*name.get("prefix", []), *name.get("given", []), name.get("family")]
        if any(words):
            return " ".join(w for w in words if w)
    return fallback


async def doctor_label(conn, doctor_ref: str) -> str:
    """The name a patient is told for the doctor ``Practitioner/<id>`` (the reference if none)."""
    practitioner = await repository.current(conn, *doctor_ref.split("/", 1))
    return doctor_name(practitioner.resource() if practitioner and not practitioner.deleted else None, doctor_ref)


@operation("start-care", levels={"instance"}, types={"Patient"}, affects_state=True, checks_target=True,
           callers={Role.DOCTOR}, definition=START_DEFINITION)
async def start_care(inv: Invocation):
    principal = require_caller(inv, Role.DOCTOR)
    reason = _reason(inv)

    async def tell_patient(conn, grant: Grant) -> None:
        name = await doctor_label(conn, principal.fhir_user)
        # The first time this doctor opens the file: the same doctor again is not news.
        await notify_patient(conn, grant.patient_id, "care-started", principal.fhir_user, {
            "doctor": name, "date": to_instant(grant.granted_at)[:10], "until": to_instant(grant.expires_at)[:10],
            "sender": principal.fhir_user})

    grant = await open_grant(inv, PRESENCE_CARE, inv.settings.care_start_days * 24 * 60, reason, also=tell_patient)
    return fhir_response(orjson.dumps(grant_parameters(grant)))

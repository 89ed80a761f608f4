"""The minimum a pharmacist sees of a patient: who they are, nothing clinical.

Rows are filtered by the policy; this trims what is returned of the Patient resources a
pharmacist may read (the patients of prescriptions presented to them) to the elements needed to
dispense and to bill: identifiers, name, gender, birth date.  The result carries the SUBSETTED
tag, like ``_elements``, so nobody mistakes it for the whole record.  Applied to every response
body a pharmacist gets (reads, searches, history, Bundles, operations).
"""
from __future__ import annotations

from typing import Any

import orjson

from ehr.search.subset import SUBSETTED
from ehr.security.principal import Principal
from ehr.security.roles import Role

PHARMACIST_PATIENT_ELEMENTS = ("identifier", "name", "gender", "birthDate")
_ALWAYS = ("resourceType", "id", "meta")


def minimum_patient(patient: dict) -> dict:
    out = {k: patient[k] for k in _ALWAYS if k in patient}
    out.update((k, patient[k]) for k in PHARMACIST_PATIENT_ELEMENTS if k in patient)
    meta = dict(out.get("meta") or {})
    tags = [t for t in meta.get("tag") or [] if not (t.get("system") == SUBSETTED["system"] and t.get("code") == "SUBSETTED")]
    meta["tag"] = [*tags, SUBSETTED]
    out["meta"] = meta
    return out


def _walk(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("resourceType") == "Patient":
            return minimum_patient(value)
        return {k: _walk(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v) for v in value]
    return value


def needs_redaction(principal: Principal | None) -> bool:
    return principal is not None and principal.role is Role.PHARMACIST


def redact(principal: Principal | None, body: bytes | None) -> bytes | None:
    """``body`` with every Patient in it cut to the minimum, for a pharmacist; unchanged otherwise."""
    if not body or not needs_redaction(principal) or b'"Patient"' not in body:
        return body
    return orjson.dumps(_walk(orjson.loads(body)))

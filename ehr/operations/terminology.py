"""Terminology operations over the terminology service: $expand, $lookup, $validate-code, $translate.

``$expand`` feeds autocomplete in the portals: it answers from the in-memory service (prebuilt
folded keys), never from the database.  A ValueSet/CodeSystem stored in the server and not yet
known to this process is loaded into the service on first use (validated on the way in).
"""
from __future__ import annotations

from ehr.operations.registry import EVERY_ROLE, Invocation, operation
from ehr.outcome import FHIRError
from ehr.rest.http import fhir_response
from ehr.store import repository
from ehr.store.db import read_connection
from profiles.terminology import get_terminology

import orjson


def _language(inv: Invocation) -> str | None:
    lang = inv.first("displayLanguage")
    if lang:
        return str(lang)
    header = inv.request.headers.get("accept-language", "")
    first = header.split(",")[0].split(";")[0].strip()
    return first.split("-")[0] or None if first else None


def _int(inv: Invocation, name: str, default: int) -> int:
    value = inv.first(name)
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FHIRError.of(400, "invalid", f"{name} must be an integer", f"Parameters.parameter.where(name='{name}')") from None


def _required(inv: Invocation, name: str) -> str:
    value = inv.first(name)
    if value in (None, ""):
        raise FHIRError.of(400, "required", f"The parameter {name} is required", f"Parameters.parameter.where(name='{name}')")
    return str(value)


async def _stored_url(inv: Invocation) -> str | None:
    """Instance-level calls: the canonical url of the stored resource, loaded into the service."""
    if inv.res_id is None:
        return None
    async with read_connection(inv.engine) as conn:
        stored = await repository.current(conn, inv.res_type, inv.res_id, access=inv.access)
    if stored is None or stored.deleted:
        raise FHIRError.of(404, "not-found", f"{inv.res_type}/{inv.res_id} is not known")
    res = orjson.loads(stored.content)
    service = get_terminology()
    known = service.valueset(res.get("url", "")) if inv.res_type == "ValueSet" else service.codesystem(res.get("url", ""))
    if known is None:
        problems = service.add(res)
        if problems:
            raise FHIRError(422, problems)
    return res.get("url")


def _posted_valueset(inv: Invocation) -> str | None:
    vs = inv.first("valueSet")
    if isinstance(vs, dict):
        problems = get_terminology().add(vs)
        if problems:
            raise FHIRError(422, problems)
        return vs.get("url")
    return None


@operation("expand", levels={"type", "instance"}, types={"ValueSet"}, callers=EVERY_ROLE, definition="http://hl7.org/fhir/OperationDefinition/ValueSet-expand")
async def expand(inv: Invocation):
    url = await _stored_url(inv) or _posted_valueset(inv) or _required(inv, "url")
    filter_ = inv.first("filter")
    body = get_terminology().expand(
        url,
        filter=str(filter_) if filter_ is not None else None,
        offset=_int(inv, "offset", 0),
        count=_int(inv, "count", 50),
        display_language=_language(inv),
        include_designations=str(inv.first("includeDesignations")).lower() == "true",
        active_only=str(inv.first("activeOnly")).lower() == "true",
    )
    return fhir_response(orjson.dumps(body))


@operation("lookup", levels={"type", "instance"}, types={"CodeSystem"}, callers=EVERY_ROLE, definition="http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup")
async def lookup(inv: Invocation):
    coding = inv.first("coding")
    system, code = (coding.get("system"), coding.get("code")) if isinstance(coding, dict) else (None, None)
    system = system or await _stored_url(inv) or _required(inv, "system")
    code = code or _required(inv, "code")
    body = get_terminology().require_lookup(system, code, display_language=_language(inv))
    return fhir_response(orjson.dumps(body))


@operation("validate-code", levels={"type", "instance"}, types={"ValueSet"}, callers=EVERY_ROLE, definition="http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code")
async def validate_code(inv: Invocation):
    url = await _stored_url(inv) or _posted_valueset(inv) or _required(inv, "url")
    coding = inv.first("coding")
    concept = inv.first("codeableConcept")
    if isinstance(concept, dict) and concept.get("coding"):
        coding = concept["coding"][0]
    if isinstance(coding, dict):
        system, code, display = coding.get("system"), coding.get("code"), coding.get("display")
    else:
        system, code, display = inv.first("system"), _required(inv, "code"), inv.first("display")
    body = get_terminology().validate(
        url, str(system) if system else None, str(code), display=str(display) if display else None,
        display_language=_language(inv),
    )
    return fhir_response(orjson.dumps(body))


@operation("translate", levels={"type", "instance"}, types={"ConceptMap"}, callers=EVERY_ROLE, definition="http://hl7.org/fhir/OperationDefinition/ConceptMap-translate")
async def translate(inv: Invocation):
    system, code = _required(inv, "system"), _required(inv, "code")
    target = inv.first("targetsystem") or inv.first("target")
    conceptmap_url = await _stored_url(inv) or inv.first("url")
    matches = get_terminology().translate(system, code, target_system=target, conceptmap_url=conceptmap_url)
    params = [{"name": "result", "valueBoolean": bool(matches)}]
    for m in matches:
        concept = {k: m[k] for k in ("system", "code", "display") if m.get(k)}
        params.append({"name": "match", "part": [
            {"name": "equivalence", "valueCode": m.get("equivalence") or "equivalent"},
            {"name": "concept", "valueCoding": concept},
        ]})
    return fhir_response(orjson.dumps({"resourceType": "Parameters", "parameter": params}))

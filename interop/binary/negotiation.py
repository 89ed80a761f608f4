"""Which form a Binary read answers in: the raw bytes or the FHIR resource (JSON or XML)."""
from __future__ import annotations

from fastapi import Request

from ehr.outcome import FHIRError

_FHIR_JSON = {"application/fhir+json", "application/json", "application/json+fhir", "text/json"}
# The resource form in FHIR XML (converted at the edge, ehr.rest.negotiation); a plain
# application/xml asks for the bytes of a stored XML document.
_FHIR_XML = {"application/fhir+xml", "application/xml+fhir"}
_FORMATS = _FHIR_JSON | _FHIR_XML | {"json", "xml"}


def _media(accept: str) -> list[str]:
    return [part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()]


def wants_resource(request: Request, content_type: str | None) -> bool:
    """True for the FHIR JSON form, False for the raw bytes; 406 when neither is acceptable.

    The exact stored type (or its ``type/*``) asks for the bytes, a FHIR JSON type for the
    resource, ``*/*`` or no Accept (a browser, a download) for the bytes."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        if fmt.split(";")[0].strip().lower().replace(" ", "+") in _FORMATS:
            return True
        raise FHIRError.of(406, "not-supported", f"_format {fmt!r} is not supported; use json or xml", "http._format")
    accepted = _media(request.headers.get("accept", ""))
    stored = (content_type or "").split(";")[0].strip().lower()
    if not accepted:
        return False
    if stored and (stored in accepted or f"{stored.split('/')[0]}/*" in accepted):
        return False
    if any(m in _FHIR_JSON or m in _FHIR_XML or m.endswith("+json") for m in accepted):
        return True
    if "*/*" in accepted:
        return False
    raise FHIRError.of(
        406, "not-supported",
        f"Ce Binary est de type {stored or 'inconnu'} : demandez Accept: {stored or '*/*'} ou application/fhir+json (ou +xml)",
    )

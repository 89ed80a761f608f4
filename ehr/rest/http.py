"""HTTP concerns of the FHIR REST API: media types, Prefer, conditional headers, responses."""
from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from ehr import hooks
from ehr.interactions.context import Result
from ehr.outcome import FHIRError, Issue, outcome_bytes
from ehr.rest.negotiation import FHIR_JSON, JSON_TYPES, chosen, for_content_type
from ehr.settings import Settings
from ehr.store.clock import from_datetime, to_http_date

JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Preferences:
    return_: str = "representation"  # minimal | representation | OperationOutcome
    strict: bool = False  # handling=strict: unknown search parameters are errors


async def preferences(request: Request) -> Preferences:
    header = request.headers.get("prefer", "")
    ret, strict = "representation", False
    for token in header.replace(";", ",").split(","):
        name, _, value = token.strip().partition("=")
        value = value.strip().strip('"')
        if name == "return" and value in ("minimal", "representation", "OperationOutcome"):
            ret = value
        elif name == "handling":
            strict = value == "strict"
    return Preferences(ret, strict)


async def app_settings(request: Request) -> Settings:
    """The settings the app was created with (not a dependency override: FastAPI re-analyses
    every endpoint's dependencies on each request when overrides are set)."""
    return request.app.state.settings


# Dependencies are coroutines: FastAPI runs plain functions in a thread pool, one hop each.
Prefer = Annotated[Preferences, Depends(preferences)]
AppSettings = Annotated[Settings, Depends(app_settings)]


async def check_accept(request: Request) -> None:
    """406 unless the request asks for a representation served here (FHIR JSON, or a package's)."""
    chosen(request.query_params.get("_format"), request.headers.get("accept"))


async def read_body(request: Request, settings: Settings, allowed: frozenset[str] | set[str] = JSON_TYPES) -> bytes:
    """The body, at most ``max_body_bytes``.  Where a FHIR resource is expected (``allowed`` left
    as the JSON types), a body in another representation (XML) comes back as FHIR JSON, so that
    what lies behind the edge only ever sees JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    representation = for_content_type(content_type) if allowed is JSON_TYPES else None
    if content_type not in allowed and representation is None:
        spoken = [FHIR_JSON] + [r.media_type for r in hooks.representations] if allowed is JSON_TYPES else sorted(allowed)
        raise FHIRError.of(415, "not-supported", f"Unsupported Content-Type {content_type or 'none'!r}; send {' or '.join(spoken)}")
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise too_large(settings)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.max_body_bytes:
            raise too_large(settings)
    return representation.to_json(bytes(body)) if representation is not None else bytes(body)


def too_large(settings: Settings) -> FHIRError:
    return FHIRError.of(413, "too-costly", f"The request body exceeds {settings.max_body_bytes} bytes")


def fhir_response(body: bytes | None, status: int = 200, headers: dict | None = None) -> Response:
    return Response(content=body or b"", status_code=status, media_type=FHIR_JSON if body else None, headers=headers)


def version_headers(result: Result, base_url: str) -> dict[str, str]:
    s = result.stored
    if s is None or s.deleted:
        return {}
    headers = {"ETag": s.etag, "Last-Modified": to_http_date(s.last_updated)}
    if result.status == 201:
        headers["Location"] = f"{base_url}/{s.res_type}/{s.res_id}/_history/{s.version_id}"
    return headers


def write_response(result: Result, prefer: Preferences, base_url: str) -> Response:
    headers = version_headers(result, base_url)
    if result.body is not None:  # a business answer (e.g. the ClaimResponse of a submitted care sheet)
        return fhir_response(result.body, result.status, headers)
    if result.status == 204 or result.stored is None or result.stored.deleted:
        return Response(status_code=204 if result.status in (200, 204) else result.status, headers=headers)
    if prefer.return_ == "minimal":
        return Response(status_code=result.status, headers=headers)
    if prefer.return_ == "OperationOutcome":
        s = result.stored
        note = Issue("informational", f"{s.res_type}/{s.res_id} is now at version {s.version_id}", severity="information")
        return fhir_response(outcome_bytes([note]), result.status, headers)
    return fhir_response(result.content, result.status, headers)


def not_modified(request: Request, result: Result) -> bool:
    """If-None-Match / If-Modified-Since on a read: does the client already have this version?"""
    s = result.stored
    inm = request.headers.get("if-none-match")
    if inm is not None:
        return any(tag.strip() in (s.etag, f'"{s.version_id}"', "*") for tag in inm.split(","))
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            since = from_datetime(parsedate_to_datetime(ims))
        except (TypeError, ValueError):
            return False
        return s.last_updated // 1_000_000 <= since // 1_000_000
    return False

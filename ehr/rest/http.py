"""HTTP concerns of the FHIR REST API: media types, Prefer, conditional headers, responses."""
from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from ehr.interactions.context import Result
from ehr.outcome import FHIRError, Issue, outcome_bytes
from ehr.settings import Settings
from ehr.store.clock import from_datetime, to_http_date

FHIR_JSON = "application/fhir+json"
_JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir", "text/json"}
_FORMAT_JSON = {"json", "application/fhir+json", "application/json", "application/json+fhir"}
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
    """Only JSON is produced here; a client that accepts nothing JSON-like gets 406."""
    fmt = request.query_params.get("_format")
    if fmt is not None and fmt.split(";")[0].strip() not in _FORMAT_JSON:
        raise FHIRError.of(406, "not-supported", f"_format {fmt!r} is not supported; use json", "http._format")
    accept = request.headers.get("accept")
    if not accept or fmt is not None:
        return
    for part in accept.split(","):
        media = part.split(";")[0].strip()
        if media in _JSON_TYPES or media in ("*/*", "application/*", "") or media.endswith("+json"):
            return
    raise FHIRError.of(406, "not-supported", f"Cannot produce any of {accept!r}; this server speaks application/fhir+json")


async def read_body(request: Request, settings: Settings, allowed: set[str] = _JSON_TYPES) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in allowed:
        raise FHIRError.of(
            415, "not-supported", f"Unsupported Content-Type {content_type or 'none'!r}; send {sorted(allowed)[0]}"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise too_large(settings)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.max_body_bytes:
            raise too_large(settings)
    return bytes(body)


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

"""The FHIR REST API: thin endpoints that parse HTTP and call ``ehr.interactions``.

Every endpoint runs as the authenticated caller (``Security``): reads and searches go through
the caller's access policy, writes through their guard, and each interaction is recorded in the
audit trail — writes inside their own transaction, reads right after the read and before the
response leaves (a failure to record fails the request).  Failures are recorded by the error
handlers in ``ehr.app``.
"""
from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ehr.interactions import create, delete, history, patch, read, update
from ehr.interactions.context import Result
from ehr.interactions.transaction import Options, batch, search_types, transaction
from ehr.outcome import FHIRError
from ehr.parsing import form_params, parse_json, parse_resource, query_params
from ehr.rest.deps import Engine, ResourceType, Security
from ehr.rest.http import (
    JSON_PATCH,
    AppSettings,
    Prefer,
    fhir_response,
    not_modified,
    read_body,
    version_headers,
    write_response,
)
from ehr.search.engine import search as run_search
from ehr.search.limits import SearchLimits, check_search
from ehr.security.dispensing import Presentation
from ehr.security.prescription_lookup import Misses, MissThrottle, parse_lookup
from ehr.security.redaction import redact
from ehr.security.request import RequestSecurity
from ehr.security.roles import Role
from ehr.security.trail import BundleTrail, Scope
from ehr.store.db import read_connection
from ehr.store.faults import each_attempt, retrying_write

router = APIRouter()


def _query(request: Request) -> list[tuple[str, str]]:
    return query_params(request.url.query)


def _condition(request: Request) -> str:
    # The conditional criteria are the query minus the parameters about the response format.
    return "&".join(f"{k}={v}" for k, v in _query(request) if k not in ("_format", "_pretty"))


def _version(result: Result) -> str | None:
    s = result.stored
    return f"{s.res_type}/{s.res_id}/_history/{s.version_id}" if s is not None else None


async def _record_write(security: RequestSecurity, conn, ctx, result: Result, interaction: str) -> None:
    """The write's events, in its transaction: every resource version it made, per patient."""
    rids = sorted({s.rid for s in ctx.written if not s.deleted} | set(result.touched))
    scope = Scope(interaction, what=_version(result) or (security.audit.scope.what if security.audit.scope else None))
    await security.audit.record(conn, status=result.status, rids=rids, patients=result.patients, scope=scope)


async def _write(engine, settings, security: RequestSecurity, interaction: str, act) -> Result:
    """``act(ctx)`` and its audit events in one transaction, run again if it loses a deadlock."""
    async def attempt(conn) -> Result:
        ctx = security.context(conn, settings.base_url)
        result = await act(ctx)
        await _record_write(security, conn, ctx, result, interaction)
        return result

    return await retrying_write(engine, attempt, settings.db_retry_attempts)


# --- whole-system interactions -----------------------------------------------------------


@router.post("/fhir")
@router.post("/fhir/", include_in_schema=False)
async def bundle_endpoint(request: Request, engine: Engine, settings: AppSettings, prefer: Prefer, security: Security):
    body = parse_json(await read_body(request, settings))
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise FHIRError.of(400, "invalid", "POST to the base takes a batch or transaction Bundle", "Bundle")
    kind = body.get("type")
    if kind not in ("batch", "transaction"):
        raise FHIRError.of(400, "invalid", f"Bundle.type must be batch or transaction, not {kind!r}", "Bundle.type")
    security.audit.begin(kind)
    opts = Options(
        settings.base_url, settings.default_page_size, settings.max_page_size, settings.max_bundle_entries,
        prefer.return_ == "representation", security.access, security.guard, BundleTrail(security.audit),
        attempts=settings.db_retry_attempts, limits=SearchLimits.of(settings), max_searches=settings.max_bundle_searches,
    )
    out = await (transaction if kind == "transaction" else batch)(engine, body, opts)
    return fhir_response(redact(security.principal, out))


@router.get("/fhir/_history")
async def system_history(request: Request, engine: Engine, settings: AppSettings, security: Security):
    return await _history(request, engine, settings, security, None, None)


@router.get("/fhir")
@router.get("/fhir/", include_in_schema=False)
async def system_search(request: Request, engine: Engine, settings: AppSettings, prefer: Prefer, security: Security):
    return await search_interaction(engine, settings, prefer, security, None, _query(request))


# --- type level --------------------------------------------------------------------------


@router.get("/fhir/{res_type}/_history")
async def type_history(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, security: Security):
    return await _history(request, engine, settings, security, res_type, None)


@router.post("/fhir/{res_type}/_search")
async def search_post(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, prefer: Prefer, security: Security,
                      misses: Misses):
    form = await read_body(request, settings, {"application/x-www-form-urlencoded"})
    params = _query(request) + form_params(form)
    return await search_interaction(engine, settings, prefer, security, res_type, params, misses)


@router.get("/fhir/{res_type}")
async def search_get(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, prefer: Prefer, security: Security,
                     misses: Misses):
    return await search_interaction(engine, settings, prefer, security, res_type, _query(request), misses)


@router.post("/fhir/{res_type}")
async def create_endpoint(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, prefer: Prefer, security: Security):
    res = each_attempt(parse_resource(await read_body(request, settings), expected_type=res_type))
    security.audit.begin("create", what=res_type)
    condition = request.headers.get("if-none-exist")
    result = await _write(engine, settings, security, "create",
                          lambda ctx: create.submit_or_create(ctx, res_type, res(), if_none_exist=condition))
    return write_response(result, prefer, settings.base_url)


@router.put("/fhir/{res_type}")
async def conditional_update_endpoint(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, prefer: Prefer, security: Security):
    res = each_attempt(parse_resource(await read_body(request, settings), expected_type=res_type))
    security.audit.begin("update", what=res_type, query=_condition(request))
    condition, if_match = _require_condition(request), request.headers.get("if-match")
    result = await _write(engine, settings, security, "update",
                          lambda ctx: update.conditional_update(ctx, res_type, condition, res(), if_match=if_match))
    return write_response(result, prefer, settings.base_url)


@router.patch("/fhir/{res_type}")
async def conditional_patch_endpoint(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, prefer: Prefer, security: Security):
    ops = parse_json(await read_body(request, settings, {JSON_PATCH}))
    security.audit.begin("patch", what=res_type, query=_condition(request))
    condition, if_match = _require_condition(request), request.headers.get("if-match")
    result = await _write(engine, settings, security, "patch",
                          lambda ctx: patch.conditional_patch(ctx, res_type, condition, ops, if_match=if_match))
    return write_response(result, prefer, settings.base_url)


@router.delete("/fhir/{res_type}")
async def conditional_delete_endpoint(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, security: Security):
    security.audit.begin("delete", what=res_type, query=_condition(request))
    condition, if_match = _require_condition(request), request.headers.get("if-match")
    await _write(engine, settings, security, "delete",
                 lambda ctx: delete.conditional_delete(ctx, res_type, condition, if_match=if_match))
    return Response(status_code=204)


def _require_condition(request: Request) -> str:
    condition = _condition(request)
    if not condition:
        raise FHIRError.of(400, "required", "A conditional interaction needs search criteria in the URL")
    return condition


# --- instance level ----------------------------------------------------------------------


@router.get("/fhir/{res_type}/{res_id}/_history/{version_id}")
async def vread_endpoint(request: Request, res_type: ResourceType, res_id: str, version_id: str, engine: Engine, settings: AppSettings, security: Security):
    security.audit.begin("vread", what=f"{res_type}/{res_id}/_history/{version_id}", target=(res_type, res_id))
    security = security.for_request(res_type)
    async with read_connection(engine) as conn:
        result = await read.vread(security.context(conn, settings.base_url), res_type, res_id, version_id)
    await security.audit.record_read(rids=result.touched)
    return fhir_response(redact(security.principal, result.content), headers=version_headers(result, settings.base_url))


@router.get("/fhir/{res_type}/{res_id}/_history")
async def instance_history(request: Request, res_type: ResourceType, res_id: str, engine: Engine, settings: AppSettings, security: Security):
    return await _history(request, engine, settings, security, res_type, res_id)


@router.get("/fhir/{res_type}/{res_id}")
async def read_endpoint(request: Request, res_type: ResourceType, res_id: str, engine: Engine, settings: AppSettings, security: Security):
    return await read_resource(request, engine, settings, security, res_type, res_id)


async def read_resource(request: Request, engine, settings, security: RequestSecurity, res_type: str, res_id: str) -> Response:
    security.audit.begin("read", what=f"{res_type}/{res_id}", target=(res_type, res_id))
    security = security.for_request(res_type)
    async with read_connection(engine) as conn:
        result = await read.read(security.context(conn, settings.base_url), res_type, res_id)
    security.audit.scope.what = _version(result)
    await security.audit.record_read(rids=result.touched)
    headers = version_headers(result, settings.base_url)
    if not_modified(request, result):
        return Response(status_code=304, headers=headers)
    return fhir_response(redact(security.principal, result.content), headers=headers)


@router.put("/fhir/{res_type}/{res_id}")
async def update_endpoint(request: Request, res_type: ResourceType, res_id: str, engine: Engine, settings: AppSettings, prefer: Prefer, security: Security):
    res = each_attempt(parse_resource(await read_body(request, settings), expected_type=res_type, url_id=res_id))
    security.audit.begin("update", what=f"{res_type}/{res_id}", target=(res_type, res_id))
    if_match = request.headers.get("if-match")
    result = await _write(engine, settings, security, "update", lambda ctx: update.update(ctx, res_type, res_id, res(), if_match=if_match))
    return write_response(result, prefer, settings.base_url)


@router.patch("/fhir/{res_type}/{res_id}")
async def patch_endpoint(request: Request, res_type: ResourceType, res_id: str, engine: Engine, settings: AppSettings, prefer: Prefer, security: Security):
    ops = parse_json(await read_body(request, settings, {JSON_PATCH}))
    security.audit.begin("patch", what=f"{res_type}/{res_id}", target=(res_type, res_id))
    if_match = request.headers.get("if-match")
    result = await _write(engine, settings, security, "patch", lambda ctx: patch.patch(ctx, res_type, res_id, ops, if_match=if_match))
    return write_response(result, prefer, settings.base_url)


@router.delete("/fhir/{res_type}/{res_id}")
async def delete_endpoint(request: Request, res_type: ResourceType, res_id: str, engine: Engine, settings: AppSettings, security: Security):
    security.audit.begin("delete", what=f"{res_type}/{res_id}", target=(res_type, res_id))
    if_match = request.headers.get("if-match")
    await _write(engine, settings, security, "delete", lambda ctx: delete.delete(ctx, res_type, res_id, if_match=if_match))
    return Response(status_code=204)


# --- shared ------------------------------------------------------------------------------


async def search_interaction(engine, settings, prefer, security: RequestSecurity, res_type, params, misses: MissThrottle | None = None):
    """A search as the caller runs it (``GET /fhir/{type}?…``), answered and audited; a pharmacist's
    lookup by prescription number presents the prescription (``$scan`` answers through it too)."""
    for listed in search_types(res_type, params):
        security.guard.require(listed, "s")
    check_search(params, SearchLimits.of(settings))
    if security.access is not None:
        # A planner's estimate is computed from statistics of every row, visible or not.
        params = [(k, "accurate" if k == "_total" and v == "estimate" else v) for k, v in params]
    security.audit.begin(
        "search-type" if res_type else "search-system", what=res_type, query=urlencode(params) if params else None
    )
    security = security.for_request(res_type, params)
    lookup = parse_lookup(res_type, params)  # a prescription number: exactly one, well formed (else 400)
    presentation = None
    if lookup is not None:
        params = lookup.params
        if security.role is Role.PHARMACIST and misses is not None:  # the prescription handed over at the counter
            presentation = await Presentation(security, lookup.number, misses).admit()
            security = presentation.security
    async with read_connection(engine) as conn:
        found = await run_search(
            conn, res_type, params, base_url=settings.base_url, handling="strict" if prefer.strict else "lenient",
            access=security.access, default_count=settings.default_page_size, max_count=settings.max_page_size,
        )
        if presentation is not None:
            await presentation.examine(conn, found.rids)
    patients = [f"Patient/{p}" for p in found.patient_ids]
    if presentation is not None:
        await presentation.record(patients, settings.prescription_presentation_hours)
    else:
        await security.audit.record_read(patients=patients)
    return fhir_response(redact(security.principal, found.bundle))


async def _history(request, engine, settings, security: RequestSecurity, res_type, res_id):
    interaction = "history-instance" if res_id else "history-type" if res_type else "history-system"
    what = "/".join(x for x in (res_type, res_id) if x) or None
    security.audit.begin(interaction, what=what, target=(res_type, res_id) if res_id else None)
    security = security.for_request(res_type)
    async with read_connection(engine) as conn:
        result = await history.history(
            security.context(conn, settings.base_url), res_type, res_id, _query(request),
            default_count=settings.default_page_size, max_count=settings.max_page_size,
        )
    await security.audit.record_read(rids=result.rids)
    return fhir_response(redact(security.principal, result.body))

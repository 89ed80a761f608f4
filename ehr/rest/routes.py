"""The FHIR REST API: thin endpoints that parse HTTP and call ``ehr.interactions``."""
from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ehr.interactions import create, delete, history, patch, read, update
from ehr.interactions.context import Context
from ehr.interactions.transaction import Options, batch, transaction
from ehr.outcome import FHIRError
from ehr.parsing import check_resource, parse_json, parse_resource
from ehr.rest.deps import Access, Engine, ResourceType
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
from ehr.store.db import read_connection, write_transaction

router = APIRouter()


def _query(request: Request) -> list[tuple[str, str]]:
    return parse_qsl(request.url.query, keep_blank_values=True)


def _condition(request: Request) -> str:
    # The conditional criteria are the query minus the parameters about the response format.
    return "&".join(f"{k}={v}" for k, v in _query(request) if k not in ("_format", "_pretty"))


# --- whole-system interactions -----------------------------------------------------------


@router.post("/fhir")
@router.post("/fhir/", include_in_schema=False)
async def bundle_endpoint(request: Request, engine: Engine, settings: AppSettings, prefer: Prefer, access: Access):
    body = parse_json(await read_body(request, settings))
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise FHIRError.of(400, "invalid", "POST to the base takes a batch or transaction Bundle", "Bundle")
    kind = body.get("type")
    if kind not in ("batch", "transaction"):
        raise FHIRError.of(400, "invalid", f"Bundle.type must be batch or transaction, not {kind!r}", "Bundle.type")
    opts = Options(
        settings.base_url, settings.default_page_size, settings.max_page_size, settings.max_bundle_entries,
        prefer.return_ == "representation", access,
    )
    out = await (transaction if kind == "transaction" else batch)(engine, body, opts)
    return fhir_response(out)


@router.get("/fhir/_history")
async def system_history(request: Request, engine: Engine, settings: AppSettings, access: Access):
    return await _history(request, engine, settings, access, None, None)


@router.get("/fhir")
@router.get("/fhir/", include_in_schema=False)
async def system_search(request: Request, engine: Engine, settings: AppSettings, prefer: Prefer, access: Access):
    return await _search(engine, settings, prefer, access, None, _query(request))


# --- type level --------------------------------------------------------------------------


@router.get("/fhir/{res_type}/_history")
async def type_history(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, access: Access):
    return await _history(request, engine, settings, access, res_type, None)


@router.post("/fhir/{res_type}/_search")
async def search_post(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, prefer: Prefer, access: Access):
    form = await read_body(request, settings, {"application/x-www-form-urlencoded"})
    params = _query(request) + parse_qsl(form.decode(), keep_blank_values=True)
    return await _search(engine, settings, prefer, access, res_type, params)


@router.get("/fhir/{res_type}")
async def search_get(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, prefer: Prefer, access: Access):
    return await _search(engine, settings, prefer, access, res_type, _query(request))


@router.post("/fhir/{res_type}")
async def create_endpoint(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, prefer: Prefer, access: Access):
    res = parse_resource(await read_body(request, settings), expected_type=res_type)
    async with write_transaction(engine) as conn:
        result = await create.submit_or_create(
            Context(conn, settings.base_url, access), res_type, res, if_none_exist=request.headers.get("if-none-exist")
        )
    return write_response(result, prefer, settings.base_url)


@router.put("/fhir/{res_type}")
async def conditional_update_endpoint(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, prefer: Prefer, access: Access):
    res = parse_resource(await read_body(request, settings), expected_type=res_type)
    async with write_transaction(engine) as conn:
        result = await update.conditional_update(
            Context(conn, settings.base_url, access), res_type, _require_condition(request), res,
            if_match=request.headers.get("if-match"),
        )
    return write_response(result, prefer, settings.base_url)


@router.patch("/fhir/{res_type}")
async def conditional_patch_endpoint(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, prefer: Prefer, access: Access):
    ops = parse_json(await read_body(request, settings, {JSON_PATCH}))
    async with write_transaction(engine) as conn:
        result = await patch.conditional_patch(
            Context(conn, settings.base_url, access), res_type, _require_condition(request), ops,
            if_match=request.headers.get("if-match"),
        )
    return write_response(result, prefer, settings.base_url)


@router.delete("/fhir/{res_type}")
async def conditional_delete_endpoint(request: Request, res_type: ResourceType, engine: Engine, settings: AppSettings, access: Access):
    async with write_transaction(engine) as conn:
        await delete.conditional_delete(
            Context(conn, settings.base_url, access), res_type, _require_condition(request),
            if_match=request.headers.get("if-match"),
        )
    return Response(status_code=204)


def _require_condition(request: Request) -> str:
    condition = _condition(request)
    if not condition:
        raise FHIRError.of(400, "required", "A conditional interaction needs search criteria in the URL")
    return condition


# --- instance level ----------------------------------------------------------------------


@router.get("/fhir/{res_type}/{res_id}/_history/{version_id}")
async def vread_endpoint(request: Request, res_type: ResourceType, res_id: str, version_id: str, engine: Engine, settings: AppSettings, access: Access):
    async with read_connection(engine) as conn:
        result = await read.vread(Context(conn, settings.base_url, access), res_type, res_id, version_id)
    return fhir_response(result.content, headers=version_headers(result, settings.base_url))


@router.get("/fhir/{res_type}/{res_id}/_history")
async def instance_history(request: Request, res_type: ResourceType, res_id: str, engine: Engine, settings: AppSettings, access: Access):
    return await _history(request, engine, settings, access, res_type, res_id)


@router.get("/fhir/{res_type}/{res_id}")
async def read_endpoint(request: Request, res_type: ResourceType, res_id: str, engine: Engine, settings: AppSettings, access: Access):
    async with read_connection(engine) as conn:
        result = await read.read(Context(conn, settings.base_url, access), res_type, res_id)
    headers = version_headers(result, settings.base_url)
    if not_modified(request, result):
        return Response(status_code=304, headers=headers)
    return fhir_response(result.content, headers=headers)


@router.put("/fhir/{res_type}/{res_id}")
async def update_endpoint(request: Request, res_type: ResourceType, res_id: str, engine: Engine, settings: AppSettings, prefer: Prefer, access: Access):
    res = parse_resource(await read_body(request, settings), expected_type=res_type, url_id=res_id)
    async with write_transaction(engine) as conn:
        result = await update.update(
            Context(conn, settings.base_url, access), res_type, res_id, res, if_match=request.headers.get("if-match")
        )
    return write_response(result, prefer, settings.base_url)


@router.patch("/fhir/{res_type}/{res_id}")
async def patch_endpoint(request: Request, res_type: ResourceType, res_id: str, engine: Engine, settings: AppSettings, prefer: Prefer, access: Access):
    ops = parse_json(await read_body(request, settings, {JSON_PATCH}))
    async with write_transaction(engine) as conn:
        result = await patch.patch(
            Context(conn, settings.base_url, access), res_type, res_id, ops, if_match=request.headers.get("if-match")
        )
    return write_response(result, prefer, settings.base_url)


@router.delete("/fhir/{res_type}/{res_id}")
async def delete_endpoint(request: Request, res_type: ResourceType, res_id: str, engine: Engine, settings: AppSettings, access: Access):
    async with write_transaction(engine) as conn:
        await delete.delete(Context(conn, settings.base_url, access), res_type, res_id, if_match=request.headers.get("if-match"))
    return Response(status_code=204)


# --- shared ------------------------------------------------------------------------------


async def _search(engine, settings, prefer, access, res_type, params):
    async with read_connection(engine) as conn:
        found = await run_search(
            conn, res_type, params, base_url=settings.base_url, handling="strict" if prefer.strict else "lenient",
            access=access, default_count=settings.default_page_size, max_count=settings.max_page_size,
        )
    return fhir_response(found.bundle)


async def _history(request, engine, settings, access, res_type, res_id):
    async with read_connection(engine) as conn:
        result = await history.history(
            Context(conn, settings.base_url, access), res_type, res_id, _query(request),
            default_count=settings.default_page_size, max_count=settings.max_page_size,
        )
    return fhir_response(result.body)

"""``/fhir/Binary``: uploads streamed to object storage, downloads streamed back.

Served ahead of the generic routes (``ehr.hooks.routers``) because a Binary speaks any media
type, not only FHIR JSON.  Writes store the object first and commit the row after: a crash in
between leaves at most an orphan object (``sijill storage gc``), never a row pointing to
nothing.  Reads go through ``ehr.interactions.read`` with the caller's access policy (the
securityContext rule) and are audited exactly like the generic read.
"""
from __future__ import annotations

import base64
import binascii
import logging
import uuid

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from ehr.interactions import create, read, update
from ehr.interactions.context import Result
from ehr.interactions.preconditions import check_id, new_id
from ehr.outcome import FHIRError
from ehr.parsing import parse_resource
from ehr.rest.deps import Engine, Security
from ehr.rest.http import AppSettings, Prefer, check_accept, fhir_response, not_modified, read_body, version_headers, write_response
from ehr.rest.routes import _record_write, type_history
from ehr.security.request import RequestSecurity
from ehr.settings import Settings
from ehr.store import repository
from ehr.store.db import read_connection
from ehr.store.faults import each_attempt, retrying_write
from interop.binary.content import HEAD_BYTES, check_document, peek
from interop.binary.negotiation import _FHIR_JSON, wants_resource
from interop.binary.pointer import ObjectRef, data_element, object_of, server_writes, without_pointer
from interop.storage import ObjectMissing, ObjectStore, ObjectTooLarge, app_store
from interop.storage import aio

log = logging.getLogger("sijill")
router = APIRouter()


def object_store(request: Request) -> ObjectStore:
    return app_store(request.app.state)


def _too_large(limit: int) -> FHIRError:
    return FHIRError.of(413, "too-costly", f"Le document dépasse la taille maximale de {limit} octets", "Binary.data")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _security_context(request: Request) -> dict | None:
    """``X-Security-Context: <Type>/<id>`` on a raw upload (FHIR's header for it)."""
    value = request.headers.get("x-security-context")
    if value is None:
        return None
    res_type, _, res_id = value.strip().partition("/")
    if not res_type or not res_id or "/" in res_id:
        raise FHIRError.of(400, "invalid", f"X-Security-Context {value!r} must be <Type>/<id>", "Binary.securityContext")
    check_id(res_type, res_id)
    return {"reference": f"{res_type}/{res_id}"}


async def _received(request: Request, settings: Settings, store: ObjectStore, key: str, res_id: str | None) -> tuple[dict, ObjectRef | None]:
    """The Binary as sent (raw body or FHIR JSON) and the object its bytes went to, if any."""
    limit = settings.max_binary_bytes
    media = _media_type(request)
    if media in _FHIR_JSON:
        res = parse_resource(await read_body(request, settings), expected_type="Binary", url_id=res_id)
        if object_of(res) is not None:  # refused before anything is stored (the validator would too)
            raise FHIRError.of(400, "invalid", "L'extension de stockage est réservée au serveur", "Binary._data.extension")
        encoded = res.pop("data", None)
        if encoded is None:
            return res, None
        try:
            # base64Binary may carry whitespace (line breaks every 76 characters, as in HL7's examples)
            data = base64.b64decode("".join(encoded.split()), validate=True) if isinstance(encoded, str) else None
        except (binascii.Error, ValueError):
            data = None
        if data is None:
            raise FHIRError.of(400, "invalid", "Binary.data n'est pas du base64 valide", "Binary.data")
        if len(data) > limit:
            raise _too_large(limit)
        check_document(res.get("contentType"), data[:HEAD_BYTES])
        size, sha = await aio.put_bytes(store, key, data, res.get("contentType") or "application/octet-stream")
        return res, ObjectRef(key, size, sha)
    if not media:
        raise FHIRError.of(415, "not-supported", "Indiquez le Content-Type du document (ex. application/pdf)")
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    res = {"resourceType": "Binary", **({"id": res_id} if res_id else {}), "contentType": media}
    if (context := _security_context(request)) is not None:
        res["securityContext"] = context
    head, body = await peek(request.stream())
    check_document(media, head)  # before anything is stored
    try:
        size, sha = await aio.put_chunks(store, key, body, media, limit)
    except ObjectTooLarge:
        raise _too_large(limit) from None
    return res, ObjectRef(key, size, sha)


async def _write(request: Request, engine, settings: Settings, prefer, security: RequestSecurity, res_id: str | None) -> Response:
    interaction = "update" if res_id else "create"
    security.audit.begin(interaction, what=f"Binary/{res_id}" if res_id else "Binary", **({"target": ("Binary", res_id)} if res_id else {}))
    if res_id:
        check_id("Binary", res_id)
    # Refused before megabytes are uploaded; the interaction checks again with the resource.
    security.guard.require("Binary", "u" if res_id else "c")
    target_id = res_id or new_id()
    store = object_store(request)
    key = f"Binary/{target_id}/{uuid.uuid4().hex}"
    raw = _media_type(request) not in _FHIR_JSON
    res, ref = await _received(request, settings, store, key, res_id)
    if ref is not None:
        res["_data"] = data_element(ref)
    fresh, if_match = each_attempt(res), request.headers.get("if-match")

    async def attempt(conn) -> Result:  # run again if the database picks it as a deadlock victim
        ctx, res = security.context(conn, settings.base_url), fresh()
        if res_id:
            if raw and "securityContext" not in res:
                await _keep_security_context(ctx, res_id, res)
            result = await update.update(ctx, "Binary", res_id, res, if_match=if_match)
        else:
            result = await create.create(ctx, "Binary", res, res_id=target_id)
        await _record_write(security, conn, ctx, result, interaction)
        return result

    try:
        with server_writes(key):
            result = await retrying_write(engine, attempt, settings.db_retry_attempts)
    except BaseException:
        if ref is not None:
            await _forget(store, key)
        raise
    return write_response(result, prefer, settings.base_url)


async def _keep_security_context(ctx, res_id: str, res: dict) -> None:
    """New bytes sent raw without X-Security-Context keep the access rule of the version they
    replace (a raw body cannot carry it; dropping it would silently change who may read)."""
    prior = await repository.current(ctx.conn, "Binary", res_id)
    if prior is not None and not prior.deleted and (context := prior.resource().get("securityContext")):
        res["securityContext"] = context


async def _forget(store: ObjectStore, key: str) -> None:
    """The row was not written: its object goes too (gc would find it otherwise)."""
    try:
        await aio.delete(store, key)
    except Exception:  # noqa: BLE001 - the write's own error is what the client must get
        log.exception("could not delete the orphan object %s", key)


@router.post("/fhir/Binary")
async def create_binary(request: Request, engine: Engine, settings: AppSettings, prefer: Prefer, security: Security):
    return await _write(request, engine, settings, prefer, security, None)


@router.put("/fhir/Binary/{res_id}")
async def update_binary(request: Request, res_id: str, engine: Engine, settings: AppSettings, prefer: Prefer, security: Security):
    return await _write(request, engine, settings, prefer, security, res_id)


# The generic type history, which /fhir/Binary/{res_id} below would otherwise take.
@router.get("/fhir/Binary/_history", dependencies=[Depends(check_accept)])
async def binary_type_history(request: Request, engine: Engine, settings: AppSettings, security: Security):
    return await type_history(request, "Binary", engine, settings, security)


@router.get("/fhir/Binary/{res_id}")
async def read_binary(request: Request, res_id: str, engine: Engine, settings: AppSettings, security: Security):
    return await _read(request, engine, settings, security, res_id, None)


@router.get("/fhir/Binary/{res_id}/_history/{version_id}")
async def vread_binary(request: Request, res_id: str, version_id: str, engine: Engine, settings: AppSettings, security: Security):
    return await _read(request, engine, settings, security, res_id, version_id)


async def _read(request: Request, engine, settings: Settings, security: RequestSecurity, res_id: str, version_id: str | None) -> Response:
    what = f"Binary/{res_id}" + (f"/_history/{version_id}" if version_id else "")
    security.audit.begin("vread" if version_id else "read", what=what, target=("Binary", res_id))
    security = security.for_request("Binary")
    async with read_connection(engine) as conn:
        ctx = security.context(conn, settings.base_url)
        result = await (read.vread(ctx, "Binary", res_id, version_id) if version_id else read.read(ctx, "Binary", res_id))
    s = result.stored
    security.audit.scope.what = f"Binary/{res_id}/_history/{s.version_id}"
    await security.audit.record_read(rids=result.touched)
    headers = version_headers(result, settings.base_url)
    if version_id is None and not_modified(request, result):
        return Response(status_code=304, headers=headers)
    res = s.resource()
    store = object_store(request)
    if wants_resource(request, res.get("contentType")):
        return fhir_response(await _inline(store, res, settings.max_binary_inline_bytes), headers=headers)
    return await _raw(store, res, headers)


async def _inline(store: ObjectStore, res: dict, limit: int) -> bytes:
    """The FHIR JSON form: ``data`` base64 again, up to ``limit`` bytes."""
    ref = object_of(res)
    if ref is None:
        return orjson.dumps(res)
    if ref.size > limit:
        raise FHIRError.of(
            413, "too-costly",
            f"Le document fait {ref.size} octets, plus que les {limit} servis en JSON : "
            f"demandez-le brut (Accept: {res.get('contentType') or '*/*'})",
            "Binary.data",
        )
    data = await _guarded(aio.read_all(store, ref.key), res)
    out = without_pointer(res)
    out["data"] = base64.b64encode(data).decode()
    return orjson.dumps(out)


async def _raw(store: ObjectStore, res: dict, headers: dict) -> Response:
    media = res.get("contentType") or "application/octet-stream"
    ref = object_of(res)
    if ref is None:  # a Binary written before object storage, or through a Bundle: bytes inline
        return Response(base64.b64decode(res.get("data") or ""), media_type=media, headers=headers)
    chunks = await _guarded(aio.open_chunks(store, ref.key), res)
    headers = {**headers, "Content-Length": str(ref.size)}
    return StreamingResponse(chunks, media_type=media, headers=headers)


async def _guarded(opening, res: dict):
    try:
        return await opening
    except ObjectMissing:
        log.error("Binary/%s points to a missing object", res.get("id"))
        raise FHIRError.of(
            500, "exception", f"Le contenu de Binary/{res.get('id')} est introuvable dans le stockage", "Binary.data"
        ) from None

"""Bulk Data kick-off (``$export``), status polling and cancellation, file download.

Only the admin and insurers' system clients (client-credentials tokens) may export; each gets
what their searches would return (an admin: reference data; an insurer: its fund's data).  A
job is visible to the one who started it only: anyone else gets 404.
"""
from __future__ import annotations

from datetime import datetime, timezone

import orjson

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select

from ehr.definitions import load as load_definitions
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError, Issue, outcome_bytes
from ehr.parsing import is_resource_type
from ehr.rest.deps import Security
from ehr.rest.http import FHIR_JSON, AppSettings, check_accept
from ehr.security.principal import Principal
from ehr.security.request import RequestSecurity
from ehr.security.roles import Role
from ehr.store.clock import parse_instant_bounds
from ehr.store.db import read_connection
from ehr.store.schema import resource
from interop.bulk import exporter
from interop.bulk.jobs import ExportJob, cancel, load, save
from interop.storage import ObjectMissing, app_store
from interop.storage import aio

NDJSON = "application/fhir+ndjson"
_FORMATS = {NDJSON, "application/ndjson", "ndjson"}
router = APIRouter()


def _fund_system(principal: Principal, _inv: Invocation | None = None) -> bool:
    """A fund's own system (client-credentials token), not one of its agents."""
    return principal.role is Role.INSURER and principal.is_system


def _may_export(security: RequestSecurity) -> None:
    p = security.principal
    if security.policy.unrestricted or p.role is Role.ADMIN or _fund_system(p):
        return
    raise FHIRError.of(403, "forbidden", "L'export en masse est réservé à l'administrateur et aux systèmes des caisses")


def _status_url(settings, job: ExportJob) -> str:
    return f"{settings.base_url}/_export/{job.id}"


async def _types(inv: Invocation, security: RequestSecurity, patient_level: bool) -> list[str]:
    asked = [t.strip() for v in inv.all("_type") for t in str(v).split(",") if t.strip()]
    for t in asked:
        if not is_resource_type(t):
            raise FHIRError.of(400, "invalid", f"_type: {t!r} n'est pas un type de ressource", "http._type")
        security.guard.require(t, "s")  # 403, as a search of that type would
    if asked:
        types = sorted(set(asked))
    else:  # every type present that the caller may search
        async with read_connection(inv.engine) as conn:
            present = sorted((await conn.execute(select(resource.c.res_type).distinct())).scalars())
        types = [t for t in present if security.policy.unrestricted or security.principal.allows(t, "s")]
    if patient_level:
        compartment = set(load_definitions("compartments")["Patient"]) | {"Patient"}
        types = [t for t in types if t in compartment]
    return types


async def _kick_off(inv: Invocation) -> Response:
    request, settings = inv.request, inv.settings
    security: RequestSecurity = request.state.security
    _may_export(security)
    if "respond-async" not in request.headers.get("prefer", ""):
        raise FHIRError.of(400, "invalid", "$export est asynchrone : envoyez Prefer: respond-async", "http.Prefer")
    fmt = inv.first("_outputFormat")
    if fmt is not None and str(fmt) not in _FORMATS:
        raise FHIRError.of(400, "not-supported", f"_outputFormat {fmt!r} : seul {NDJSON} est produit", "http._outputFormat")
    since = None
    if (value := inv.first("_since")) is not None:
        try:
            since = parse_instant_bounds(str(value))[0]
        except ValueError as exc:
            raise FHIRError.of(400, "invalid", f"_since: {exc}", "http._since") from None
    patient_level = inv.res_type == "Patient"
    job = ExportJob.new(
        subject=security.principal.subject, client_id=security.principal.client_id, request=str(request.url),
        transaction_time=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        types=await _types(inv, security, patient_level), since=since, patient_level=patient_level,
    )
    store = app_store(request.app.state)
    await save(store, job)
    exporter.start(inv.engine, store, security, job)
    return Response(status_code=202, headers={"Content-Location": _status_url(settings, job)})


EXPORTERS = {Role.ADMIN, _fund_system}
operation("export", levels={"system"}, callers=EXPORTERS,
          definition="http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export")(_kick_off)
operation("export", levels={"type"}, types={"Patient"}, callers=EXPORTERS,
          definition="http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export")(_kick_off)


async def _own_job(request: Request, security: RequestSecurity, job_id: str, what: str) -> ExportJob:
    # Not a resource: the event names the export by its URL path (entity.query), "$export" as display.
    security.audit.begin("operation", operation="$export", what="$export", query=what)
    _may_export(security)
    job = await load(app_store(request.app.state), job_id)
    p = security.principal
    if job is None or (not security.policy.unrestricted and (job.subject, job.client_id) != (p.subject, p.client_id)):
        raise FHIRError.of(404, "not-found", f"Aucun export {job_id}")
    return job


@router.get("/fhir/_export/{job_id}", dependencies=[Depends(check_accept)])
async def export_status(request: Request, job_id: str, settings: AppSettings, security: Security):
    job = await _own_job(request, security, job_id, f"_export/{job_id}")
    await security.audit.record_read()
    if job.stale():
        job.state, job.error = "failed", "interrupted"
    if job.state == "in-progress":
        progress = f"{job.done_types}/{len(job.types)} types"
        return Response(status_code=202, headers={"X-Progress": progress, "Retry-After": "2"})
    if job.state == "failed":
        issue = Issue("exception", f"L'export a échoué ({job.error}) ; relancez-le", severity="fatal")
        return Response(outcome_bytes([issue]), status_code=500, media_type=FHIR_JSON)
    manifest = {
        "transactionTime": job.transaction_time,
        "request": job.request,
        "requiresAccessToken": True,
        "output": [{"type": o["type"], "url": f"{settings.base_url}/_export/{job.id}/{o['type']}.ndjson", "count": o["count"]}
                   for o in job.output],
        "error": [],
    }
    return Response(orjson.dumps(manifest), media_type="application/json")


@router.delete("/fhir/_export/{job_id}")
async def export_cancel(request: Request, job_id: str, security: Security):
    job = await _own_job(request, security, job_id, f"_export/{job_id}")
    await cancel(app_store(request.app.state), job)
    await security.audit.record_read(status=202)
    return Response(status_code=202)


@router.get("/fhir/_export/{job_id}/{file_name}")
async def export_file(request: Request, job_id: str, file_name: str, security: Security):
    job = await _own_job(request, security, job_id, f"_export/{job_id}/{file_name}")
    out = next((o for o in job.output if f"{o['type']}.ndjson" == file_name), None) if job.state == "complete" else None
    if out is None:
        raise FHIRError.of(404, "not-found", f"Aucun fichier {file_name} dans l'export {job_id}")
    store = app_store(request.app.state)
    try:
        chunks = await aio.open_chunks(store, out["key"])
    except ObjectMissing:
        raise FHIRError.of(404, "not-found", f"Le fichier {file_name} n'existe plus") from None
    try:
        held = (await aio.read_all(store, job.patients_key(out["type"]))).decode().split()
    except ObjectMissing:  # an export written before the patients were kept beside its files
        held = []
    await security.audit.record_read(patients=held)
    return StreamingResponse(chunks, media_type=NDJSON)

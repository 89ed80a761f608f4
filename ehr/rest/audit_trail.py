"""``AuditEvent`` reads and searches, served from the append-only audit log.

Mounted before the generic routes: ``GET /fhir/AuditEvent?patient=…&date=…`` and
``GET /fhir/AuditEvent/<seq>`` answer from ``audit_log`` (see ``ehr.security.audit_api``).  A
patient sees the events about themselves and their dependants; only the unrestricted
in-process caller sees every event.  Reading the trail is itself recorded.

A search first seals the audit inbox (its own short transaction), so it shows every event
committed before it, each with its final id (= its place in the chain).  A read by id needs no
seal: an event has no id before it is sealed.
"""
from __future__ import annotations

from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request

from ehr.outcome import not_found
from ehr.parsing import bigint, form_params, query_params
from ehr.rest.deps import Engine, Security
from ehr.rest.http import AppSettings, fhir_response, read_body
from ehr.rest.routes import read_resource
from ehr.security.audit_api import read_event, search_events
from ehr.security.audit_events import event_patient
from ehr.security.audit_sealer import seal_pending
from ehr.security.request import RequestSecurity
from ehr.security.roles import Role
from ehr.store.db import read_connection

router = APIRouter()


async def _allowed(conn, security: RequestSecurity) -> set[str] | None:
    """Patient ids whose events the caller may see; None = all (unrestricted)."""
    if security.role is Role.UNRESTRICTED:
        return None
    return await security.policy.acting_for(conn) if security.role is Role.PATIENT else set()


async def _search(engine, settings, security: RequestSecurity, params: list[tuple[str, str]]):
    security.guard.require("AuditEvent", "s")
    security.audit.begin("search-type", what="AuditEvent", query=urlencode(params) if params else None)
    await seal_pending(engine)
    async with read_connection(engine) as conn:
        page = await search_events(
            conn, params, base_url=settings.base_url, allowed=await _allowed(conn, security),
            default_count=settings.default_page_size, max_count=settings.max_page_size,
        )
    await security.audit.record_read(patients=page.patients)
    return fhir_response(page.body)


@router.get("/fhir/AuditEvent")
async def search_trail(request: Request, engine: Engine, settings: AppSettings, security: Security):
    return await _search(engine, settings, security, query_params(request.url.query))


@router.post("/fhir/AuditEvent/_search")
async def search_trail_post(request: Request, engine: Engine, settings: AppSettings, security: Security):
    form = await read_body(request, settings, {"application/x-www-form-urlencoded"})
    params = query_params(request.url.query) + form_params(form)
    return await _search(engine, settings, security, params)


@router.get("/fhir/AuditEvent/{event_id}")
async def read_trail(request: Request, event_id: str, engine: Engine, settings: AppSettings, security: Security):
    number = bigint(event_id)
    if number is None:  # an imported AuditEvent, stored like any resource
        return await read_resource(request, engine, settings, security, "AuditEvent", event_id)
    security.guard.require("AuditEvent", "r")
    security.audit.begin("read", what=f"AuditEvent/{event_id}")
    async with read_connection(engine) as conn:
        event = await read_event(conn, number, await _allowed(conn, security))
    if event is None:
        raise not_found("AuditEvent", event_id)
    patient = event_patient(orjson.loads(event))
    await security.audit.record_read(patients=[patient] if patient else [])
    return fhir_response(event)

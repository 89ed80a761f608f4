"""Dispatch of ``$operation`` URLs to the handlers in ``ehr.operations``.

Operations run as the authenticated caller: first the operation must admit them (its declared
``callers``, 403 otherwise — before anything is looked up, so the answer depends on who calls,
never on what exists), then an instance-level operation needs the target to be readable by them
(404 otherwise, like any read); handlers receive the caller's access filter
(``Invocation.access``; the whole security context is on ``request.state.security``), and each
call is recorded in the audit trail unless the handler did so itself: one event per patient of
the target and of the records the answer carries (``Invocation.returning``).  A pharmacist's answers carry only the minimum of any Patient in them.  Operations answer
FHIR JSON (406 otherwise, like every endpoint) unless they declare other media types
(``Operation.produces``: the paper channel's printable letters), which they negotiate themselves.
"""
from __future__ import annotations


from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ehr.operations.registry import Invocation, Operation, resolve
from ehr.outcome import FHIRError, not_found
from ehr.parsing import parse_json, query_params
from ehr.rest.deps import Engine, ResourceType, Security
from ehr.rest.http import AppSettings, check_accept, read_body
from ehr.security.redaction import needs_redaction, redact
from ehr.security.request import RequestSecurity
from ehr.security.trail import target_patients
from ehr.store import repository
from ehr.store.db import read_connection

# Operations that decide themselves whether the caller may act on a target they cannot read yet.
OWN_TARGET_CHECK = frozenset({"break-glass"})


async def negotiate(request: Request) -> None:
    """FHIR JSON, as everywhere, unless the operation serves other media types (it negotiates them)."""
    params = request.path_params
    level = "instance" if "res_id" in params else "type" if "res_type" in params else "system"
    try:
        op = resolve(params.get("name", ""), level, params.get("res_type"))
    except FHIRError:
        op = None  # unknown: the endpoint answers 404
    if op is None or not op.produces:
        await check_accept(request)


router = APIRouter(dependencies=[Depends(negotiate)])


def _parameter_value(p: dict) -> object:
    if "resource" in p:
        return p["resource"]
    if "part" in p:
        return p
    return next((v for k, v in p.items() if k.startswith("value")), None)


async def _invocation(request: Request, engine, settings, security: RequestSecurity, res_type, res_id,
                      op: Operation | None = None) -> Invocation:
    inv = Invocation(request, engine, settings, security.access, res_type, res_id)
    inv.params = list(query_params(request.url.query))
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method == "POST" and op is not None and media in op.consumes:  # e.g. a registry feed's CSV
        inv.params.append(("body", await read_body(request, settings, set(op.consumes))))
    elif request.method == "POST":
        body = parse_json(await read_body(request, settings))
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise FHIRError.of(400, "structure", "An operation takes a Parameters resource or a resource as its body")
        # The body is not validated here: $validate must see invalid resources; handlers check what they use.
        if body["resourceType"] == "Parameters":
            inv.params += [(p.get("name"), _parameter_value(p)) for p in body.get("parameter") or []]
        else:
            inv.resource = body
    return inv


async def _run(op: Operation, inv: Invocation, security: RequestSecurity) -> Response:
    res_type, res_id = inv.res_type, inv.res_id
    security.audit.begin(
        "operation", operation=f"${op.name}", what="/".join(x for x in (res_type, res_id) if x) or None,
        target=(res_type, res_id) if res_id else None,
    )
    if not op.admits(security.principal, inv):
        raise FHIRError.of(403, "forbidden", f"${op.name} is not open to this caller (role {security.role.value})"
                           + ("" if op.callers else " (it declares no callers)"))
    if res_id is not None and op.name not in OWN_TARGET_CHECK and not op.checks_target:
        security.guard.require(res_type, "r")
        async with read_connection(inv.engine) as conn:
            target = await repository.current(conn, res_type, res_id, access=security.access)
        if target is None or target.deleted:
            raise not_found(res_type, res_id)
    response = await op.handler(inv)
    if not security.audit.recorded:
        patients: list[str] = []
        if res_id is not None:
            if res_type == "Patient":
                patients = [f"Patient/{res_id}"]
            elif security.audit.engine is not None:
                async with read_connection(inv.engine) as conn:
                    patients = await target_patients(conn, res_type, res_id)
        await security.audit.record_read(
            status=response.status_code, rids=inv.returned_rids, patients=patients + inv.returned_patients,
        )
    if needs_redaction(security.principal) and getattr(response, "body", None):
        body = redact(security.principal, bytes(response.body))
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return Response(body, response.status_code, headers, media_type=response.media_type)
    return response


@router.api_route("/fhir/${name}", methods=["GET", "POST"])
async def system_operation(request: Request, name: str, engine: Engine, settings: AppSettings, security: Security):
    op = resolve(name, "system", None)
    return await _run(op, await _invocation(request, engine, settings, security, None, None, op), security)


@router.api_route("/fhir/{res_type}/${name}", methods=["GET", "POST"])
async def type_operation(request: Request, res_type: ResourceType, name: str, engine: Engine, settings: AppSettings, security: Security):
    op = resolve(name, "type", res_type)
    return await _run(op, await _invocation(request, engine, settings, security, res_type, None, op), security)


@router.api_route("/fhir/{res_type}/{res_id}/${name}", methods=["GET", "POST"])
async def instance_operation(request: Request, res_type: ResourceType, res_id: str, name: str, engine: Engine, settings: AppSettings, security: Security):
    op = resolve(name, "instance", res_type)
    return await _run(op, await _invocation(request, engine, settings, security, res_type, res_id, op), security)

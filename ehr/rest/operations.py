"""Dispatch of ``$operation`` URLs to the handlers in ``ehr.operations``."""
from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request

from ehr.operations.registry import Invocation, resolve
from ehr.outcome import FHIRError
from ehr.parsing import parse_json
from ehr.rest.deps import Access, Engine, ResourceType
from ehr.rest.http import AppSettings, read_body

router = APIRouter()


def _parameter_value(p: dict) -> object:
    if "resource" in p:
        return p["resource"]
    if "part" in p:
        return p
    return next((v for k, v in p.items() if k.startswith("value")), None)


async def _invocation(request: Request, engine, settings, access, res_type, res_id) -> Invocation:
    inv = Invocation(request, engine, settings, access, res_type, res_id)
    inv.params = list(parse_qsl(request.url.query, keep_blank_values=True))
    if request.method == "POST":
        body = parse_json(await read_body(request, settings))
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise FHIRError.of(400, "structure", "An operation takes a Parameters resource or a resource as its body")
        # The body is not validated here: $validate must see invalid resources; handlers check what they use.
        if body["resourceType"] == "Parameters":
            inv.params += [(p.get("name"), _parameter_value(p)) for p in body.get("parameter") or []]
        else:
            inv.resource = body
    return inv


@router.api_route("/fhir/${name}", methods=["GET", "POST"])
async def system_operation(request: Request, name: str, engine: Engine, settings: AppSettings, access: Access):
    op = resolve(name, "system", None)
    return await op.handler(await _invocation(request, engine, settings, access, None, None))


@router.api_route("/fhir/{res_type}/${name}", methods=["GET", "POST"])
async def type_operation(request: Request, res_type: ResourceType, name: str, engine: Engine, settings: AppSettings, access: Access):
    op = resolve(name, "type", res_type)
    return await op.handler(await _invocation(request, engine, settings, access, res_type, None))


@router.api_route("/fhir/{res_type}/{res_id}/${name}", methods=["GET", "POST"])
async def instance_operation(request: Request, res_type: ResourceType, res_id: str, name: str, engine: Engine, settings: AppSettings, access: Access):
    op = resolve(name, "instance", res_type)
    return await op.handler(await _invocation(request, engine, settings, access, res_type, res_id))

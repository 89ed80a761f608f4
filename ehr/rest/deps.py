"""FastAPI dependencies shared by the FHIR endpoints."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from ehr.outcome import FHIRError
from ehr.parsing import check_text, is_resource_type, query_params
from ehr.search.access import AccessFilter
from ehr.security.dependencies import CurrentPrincipal, security_services
from ehr.security.request import RequestSecurity


async def engine(request: Request) -> AsyncEngine:
    return request.app.state.engine


async def resource_type(res_type: str) -> str:
    if not is_resource_type(res_type):
        raise FHIRError.of(404, "not-supported", f"Unknown resource type {res_type!r}")
    return res_type


async def request_security(request: Request, principal: CurrentPrincipal) -> RequestSecurity:
    """Authenticate (401/403 here), then build the caller's policy, guard and audit, once per request."""
    security = await security_services(request).request_security(request, principal)
    request.state.security = security  # the error handlers record failures through it
    request.state.access = security.access
    _check_address(request, security)
    return security


_METHOD_INTERACTION = {"GET": "read", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _check_address(request: Request, security: RequestSecurity) -> None:
    """Ids, names and query values of the URL hold no control character (NUL first of all: the
    database cannot store it). Checked once the caller is known, so that the refusal is in the
    audit trail, naming the request as it came (percent-encoded)."""
    try:
        res_type = request.path_params.get("res_type", "")
        for name, value in request.path_params.items():
            check_text(value, f"{res_type}.id" if name == "res_id" and res_type else f"http.{name}")
        query_params(request.url.query)
    except FHIRError:
        interaction = "operation" if "$" in request.url.path else _METHOD_INTERACTION.get(request.method, "read")
        raw = request.scope.get("raw_path", b"").decode("latin-1")
        security.audit.begin(interaction, what=raw.removeprefix("/fhir/") or None)
        raise


Security = Annotated[RequestSecurity, Depends(request_security)]


async def access(security: Security) -> AccessFilter | None:
    # None means unrestricted (the in-process caller when SIJILL_AUTH_REQUIRED=false).
    return security.access


Engine = Annotated[AsyncEngine, Depends(engine)]
ResourceType = Annotated[str, Depends(resource_type)]
Access = Annotated[AccessFilter | None, Depends(access)]

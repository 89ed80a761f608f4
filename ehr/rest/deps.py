"""FastAPI dependencies shared by the FHIR endpoints."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from ehr.outcome import FHIRError
from ehr.parsing import is_resource_type
from ehr.search.access import AccessFilter


def engine(request: Request) -> AsyncEngine:
    return request.app.state.engine


def resource_type(res_type: str) -> str:
    if not is_resource_type(res_type):
        raise FHIRError.of(404, "not-supported", f"Unknown resource type {res_type!r}")
    return res_type


def access(request: Request) -> AccessFilter | None:
    # The security layer installs the caller's filter on request.state; none means unrestricted.
    return getattr(request.state, "access", None)


Engine = Annotated[AsyncEngine, Depends(engine)]
ResourceType = Annotated[str, Depends(resource_type)]
Access = Annotated[AccessFilter | None, Depends(access)]

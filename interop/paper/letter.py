"""What every letter carries at its foot, and how one is handed over: rendered, recorded as an
access in the patient's audit trail, then sent."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from claims.settings import get_claims_settings
from ehr.operations.registry import Invocation
from ehr.security.roles import Role
from ehr.store.clock import now_us
from interop.paper.access import record_printing, request_security
from interop.paper.directory import Actor, actor
from interop.paper.formatting import local
from interop.paper.pdf import render_pdf
from interop.paper.rendering import PDF, document_response, render


@dataclass(frozen=True)
class Printed:
    at: datetime  # Moroccan local time
    by: Actor | None  # None: the server itself (in-process caller)
    reference: str  # what the counter looks the letter up by
    version: str | None = None

    @property
    def time(self) -> str:
        return self.at.strftime("%H:%M")


def timezone() -> str:
    return get_claims_settings().timezone


async def printed(conn: AsyncConnection, inv: Invocation, patient_id: str | None, version: str | None = None) -> Printed:
    principal = request_security(inv).principal
    by = None
    if principal.role is not Role.UNRESTRICTED:
        by = await actor(conn, principal.fhir_user, principal.role, patient_id)
    return Printed(local(now_us(), timezone()), by, f"{inv.res_type}/{inv.res_id}", version)


async def deliver(inv: Invocation, media: str, template: str, *, patients: list[str], **context: object) -> Response:
    """Render (as HTML or PDF: ``media``), record the printing for each patient shown, then answer."""
    body = render(template, **context)
    if media == PDF:
        body = await render_pdf(body)
    await record_printing(inv, patients)
    return document_response(body, media, f"{inv.res_type}-{inv.res_id}-{inv.request.url.path.rsplit('$', 1)[-1]}")

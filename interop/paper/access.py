"""Who may print a letter, and the printing itself recorded in the audit trail.

A letter shows what its resources show, so printing one follows the rules of reading them
(``ehr.security``): the caller must read the resource — the patient (or a guardian) their own
decisions, a fund's agent its fund's — and what they cannot read does not exist (404).  The
paper-channel agent's access is what they entered (``entered_by``): at the counter, they print
the decision on a care sheet they entered for the patient, as they appeal it for them
(``claims.appeals``), although their role never reads the fund's answers as FHIR resources;
and, while they serve a patient in person (``$assist``, ``interop.paper.assist``), that
patient's letters and access report — printings recorded as assisted access.

Every letter printed is an access to the patient's record: it is recorded as the operation's
AuditEvent (one per patient), with the user's role in ``agent.role`` so that the patient's
access report can say "printed at the counter by …".
"""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.operations.registry import Invocation
from ehr.outcome import not_found
from ehr.security.audit import USER_ROLE, append, assisted_access, event_patient
from ehr.security.request import RequestSecurity
from ehr.security.roles import Role
from ehr.store import repository
from ehr.store.db import write_transaction

# Callers who print for the patient (rather than read the fund's resources themselves).
PATIENT_SIDE = frozenset({Role.PATIENT, Role.PAPER_AGENT})


def request_security(inv: Invocation) -> RequestSecurity:
    return inv.request.state.security


def role(inv: Invocation) -> Role:
    return request_security(inv).role


async def readable(conn: AsyncConnection, inv: Invocation, res_type: str, res_id: str, *, as_caller: bool = True):
    """The current version as the caller reads it (``as_caller=False``: whoever may), or None."""
    found = await repository.current(conn, res_type, res_id, access=inv.access if as_caller else None)
    return None if found is None or found.deleted else found


async def require_readable(conn: AsyncConnection, inv: Invocation, res_type: str, res_id: str):
    """The read rule: the type's permission (403), then the row rules (404 when out of scope)."""
    request_security(inv).guard.require(res_type, "r")
    found = await readable(conn, inv, res_type, res_id)
    if found is None:
        raise not_found(res_type, res_id)
    return found


def assisted(inv: Invocation, patient_id: str | None) -> bool:
    """A counter agent serving this patient in person (a running ``$assist`` session)."""
    security = request_security(inv)
    return security.role is Role.PAPER_AGENT and patient_id in security.policy.identity.assisted


async def require_patient(conn: AsyncConnection, inv: Invocation, patient_id: str) -> None:
    """Printing about a patient: the counter agent serving them in person, or whoever reads the Patient."""
    if not assisted(inv, patient_id):
        await require_readable(conn, inv, "Patient", patient_id)


def role_coding(value: Role) -> dict:
    return {"coding": [{"system": USER_ROLE, "code": value.value}]}


async def record_printing(inv: Invocation, patients: list[str]) -> None:
    """The printing, in the audit trail of each patient it shows, before the letter leaves."""
    security = request_security(inv)
    audit = security.audit
    if audit.engine is None:
        return
    async with write_transaction(audit.engine) as conn:
        events = await audit.build(conn, patients=sorted(set(patients)))
        if security.role is not Role.UNRESTRICTED:
            for event in events:
                event["agent"][0]["role"] = [role_coding(security.role)]
                if assisted(inv, (event_patient(event) or "/").split("/", 1)[1]):
                    assisted_access(event)
        await append(conn, events)
    audit.recorded = True

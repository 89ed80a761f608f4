"""Proof of presence: identifying the patient in front of a doctor or a counter agent.

A walk-in patient shows an identity document or their fund's card; the caller types its exact
national identifier (CIN, RNP/ICS, or a fund's insurance number) and the patient's birth date.
Both must match one current Patient, looked up unfiltered (the caller reads nothing of the file
yet).  A wrong identifier and a wrong birth date are the same miss.  Misses are counted per
caller in a moving window (``presence_miss_limit``, with ``limits``, in the rate limiter's
storage): past the limit every attempt answers 429 until the window moves, so identifiers
cannot be tried in bulk.  A proof that matches opens a ``presence_grant`` — a doctor's care
relationship (``$start-care``) or a counter agent's assisted session (``$assist``) — in the
transaction that records it in the patient's trail.
"""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable

import orjson
from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.operations.registry import Invocation
from ehr.outcome import FHIRError, not_found
from ehr.search.registry import param_hash
from ehr.security.audit import append, assisted_access
from ehr.security.principal import Principal
from ehr.security.roles import Role
from ehr.security.tables import PRESENCE_ASSIST, presence_grant
from ehr.store.clock import now_us, to_instant
from ehr.store.db import read_connection, write_transaction
from ehr.store.schema import idx_token, resource

SID = "https://fhir.sijill.ma/sid/"
# The identifiers a patient carries on them: national identity card, civil registry (RNP/ICS),
# and the funds' insurance numbers.
IDENTITY_SYSTEMS = frozenset(SID + n for n in ("cin", "rnp", "cnss", "cnops", "amo-tadamon"))
_PATIENT_IDENTIFIER = param_hash("Patient", "identifier")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_VALUE = 64


@dataclass(frozen=True)
class Proof:
    system: str
    value: str
    birth_date: str


def _proof(identifiers: object, birth_date: object, where: str, birth_where: str) -> Proof:
    """Exactly one identifier of a known system, and a full birth date; 400 otherwise."""
    if not isinstance(identifiers, list) or len(identifiers) != 1 or not isinstance(identifiers[0], dict):
        raise FHIRError.of(400, "required", "Give exactly one identifier of the patient (CIN, RNP/ICS or insurance number)", where)
    system, value = identifiers[0].get("system"), identifiers[0].get("value")
    if system not in IDENTITY_SYSTEMS:
        known = ", ".join(sorted(IDENTITY_SYSTEMS))
        raise FHIRError.of(400, "value", f"The identifier's system must be one of {known}", f"{where}.system")
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_VALUE:
        raise FHIRError.of(400, "value", "The identifier's value is missing or too long", f"{where}.value")
    if not isinstance(birth_date, str) or not _DATE.match(birth_date):
        raise FHIRError.of(400, "required", "Give the patient's birth date (YYYY-MM-DD) as the proof of presence", birth_where)
    return Proof(system, value.strip(), birth_date)


def proof_from_patient(patient: object) -> Proof:
    """``Patient/$match``: the ``resource`` parameter, a Patient with the identifier and birth date."""
    where = "Parameters.parameter.where(name='resource').resource"
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise FHIRError.of(400, "required", "Patient/$match takes a Patient in the parameter resource", where)
    return _proof(patient.get("identifier"), patient.get("birthDate"), f"{where}.identifier", f"{where}.birthDate")


def proof_from_parameters(inv: Invocation) -> Proof:
    """``$start-care`` / ``$assist``: the parameters ``identifier`` and ``birthDate``."""
    identifiers = inv.all("identifier")
    return _proof(identifiers, inv.first("birthDate"), "Parameters.parameter.where(name='identifier').valueIdentifier",
                  "Parameters.parameter.where(name='birthDate').valueDate")


async def find_patient(conn: AsyncConnection, proof: Proof) -> str | None:
    """The one current Patient carrying the identifier and born on that day (None: no such one,
    or several — not a certain match)."""
    t, r = idx_token, resource
    rows = await conn.execute(
        select(r.c.res_id, r.c.content).join(t, t.c.rid == r.c.rid).where(
            t.c.param == _PATIENT_IDENTIFIER, t.c.system == proof.system, t.c.code == proof.value,
            r.c.res_type == "Patient", r.c.deleted.is_(False),
        )
    )
    found = {res_id for res_id, content in rows if content and orjson.loads(content).get("birthDate") == proof.birth_date}
    return found.pop() if len(found) == 1 else None


class MissThrottle:
    """Misses per key in a moving window: 429 once ``limit`` misses are used up (failed proofs of
    presence here; unknown prescription numbers at a pharmacy, ``ehr.security.dispensing``)."""

    def __init__(self, limit: str, storage_uri: str, what: str = "failed identifications"):
        self.item: RateLimitItem = parse(limit)
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self.what = what

    async def check(self, key: str) -> None:
        if not await self.limiter.test(self.item, key):
            stats = await self.limiter.get_window_stats(self.item, key)
            retry = max(1, int(stats.reset_time - time.time() + 0.999))
            raise FHIRError.of(429, "throttled", f"Too many {self.what} (limit {self.item}); retry in {retry} s",
                               headers={"Retry-After": str(retry)})

    async def missed(self, key: str) -> None:
        await self.limiter.hit(self.item, key)


def require_caller(inv: Invocation, *roles: Role) -> Principal:
    """The caller, who must hold one of ``roles``, a FHIR identity and the right to read Patients
    under their token's scopes (403 otherwise)."""
    security = inv.request.state.security
    principal: Principal = security.principal
    if principal.role not in roles or not principal.fhir_user:
        allowed = " or ".join(r.value for r in roles)
        raise FHIRError.of(403, "forbidden", f"Only a {allowed} (with a fhirUser) may call ${inv.request.path_params.get('name')}")
    security.guard.require("Patient", "r")
    return principal


async def identify(inv: Invocation, proof: Proof) -> str | None:
    """The patient the proof designates, counting a miss against the caller (429 past the limit)."""
    principal: Principal = inv.request.state.security.principal
    throttle: MissThrottle = inv.request.app.state.security.presence_misses
    key = f"presence:{principal.issuer}|{principal.subject}"
    await throttle.check(key)
    async with read_connection(inv.engine) as conn:
        found = await find_patient(conn, proof)
    if found is None:
        await throttle.missed(key)
    return found


@dataclass(frozen=True)
class Grant:
    patient_id: str
    purpose: str
    granted_at: int
    expires_at: int
    reason: str | None

    def period(self) -> dict:
        return {"start": to_instant(self.granted_at), "end": to_instant(self.expires_at)}


async def open_grant(
    inv: Invocation, purpose: str, minutes: int, reason: str | None = None,
    also: Callable[[AsyncConnection, Grant], Awaitable[None]] | None = None,
) -> Grant:
    """Check the proof against ``Patient/{id}`` (404 for an unknown id and a wrong proof alike),
    then, in one transaction: the grant, ``also`` (the patient's notification), and the
    operation's AuditEvent with the patient.  The caller's cached identity is dropped, so the
    grant counts from their next request."""
    security = inv.request.state.security
    proof = proof_from_parameters(inv)
    if await identify(inv, proof) != inv.res_id:
        raise not_found("Patient", inv.res_id)
    principal: Principal = security.principal
    now = now_us()
    grant = Grant(inv.res_id, purpose, now, now + minutes * 60_000_000, reason)
    async with write_transaction(inv.engine) as conn:
        await conn.execute(presence_grant.insert().values(
            id=str(uuid.uuid4()), purpose=purpose, actor=principal.fhir_user, subject=principal.subject,
            patient_id=grant.patient_id, reason=reason, granted_at=grant.granted_at, expires_at=grant.expires_at,
        ))
        if also is not None:
            await also(conn, grant)
        events = await security.audit.build(conn, patients=[f"Patient/{grant.patient_id}"])
        if purpose == PRESENCE_ASSIST:
            events = [assisted_access(e) for e in events]
        await append(conn, events)
        security.audit.recorded = True
    if security.guard.identities is not None:
        security.guard.identities.forget(principal)
    return grant


def grant_parameters(grant: Grant) -> dict:
    parameters = [
        {"name": "patient", "valueReference": {"reference": f"Patient/{grant.patient_id}"}},
        {"name": "period", "valuePeriod": grant.period()},
    ]
    if grant.reason:
        parameters.append({"name": "reason", "valueString": grant.reason})
    return {"resourceType": "Parameters", "parameter": parameters}

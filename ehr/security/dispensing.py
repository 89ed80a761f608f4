"""Prescriptions presented at a pharmacy.

A patient hands over their prescription number (printed, or in the QR code of the
e-prescription).  The pharmacist searches ``MedicationRequest?group-identifier=
https://fhir.sijill.ma/sid/prescription|<number>`` — one exact number, nothing broader
(``ehr.security.prescription_lookup``) — and the policy lets the lines carrying that number in
``groupIdentifier`` through for that one search.  What was found is recorded
(``prescription_presentation``), for the pharmacy (its Organization, from the pharmacist's
PractitionerRole) and the pharmacist, for ``prescription_presentation_hours``: until then they
may read those lines by id, update their status, and read the minimum of the patient and the
patient's coverage needed to dispense and bill.  A number no prescription carries is a miss:
audited, and counted against the pharmacy (``MissThrottle``).
"""
from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.search.registry import param_hash
from ehr.security.audit import append
from ehr.security.identity import Identity
from ehr.security.policy import agent_key, ref_text
from ehr.security.presence import MissThrottle
from ehr.security.prescription_number import SYSTEM
from ehr.security.principal import Principal
from ehr.security.request import RequestSecurity
from ehr.security.tables import prescription_presentation
from ehr.store.clock import now_us
from ehr.store.db import write_transaction
from ehr.store.schema import idx_token

_MR_GROUP = param_hash("MedicationRequest", "group-identifier")


def presentation_actors(principal: Principal, identity: Identity) -> list[str]:
    """Who a prescription is presented to: the pharmacist and the pharmacies they work for."""
    actors = {ref_text(r) for r in identity.organizations}
    if principal.fhir_user:
        actors.add(principal.fhir_user)
    return sorted(actors)


def miss_keys(security: RequestSecurity) -> list[str]:
    """What a pharmacy's misses are counted against: the pharmacist and each of their pharmacies."""
    actors = presentation_actors(security.principal, security.policy.identity)
    return [f"prescription-miss:{a}" for a in actors or [agent_key(security.principal)]]


def _numbered(number: str):
    t = idx_token
    return (t.c.param == _MR_GROUP, t.c.system == SYSTEM, t.c.code == number)


async def record_presentation(conn: AsyncConnection, actors: list[str], rids: list[int], hours: int) -> None:
    """These lines are presented to these actors for ``hours``."""
    if not rids or not actors:
        return
    now = now_us()
    expires = now + hours * 3_600_000_000
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = dialect_insert(prescription_presentation)
    stmt = stmt.on_conflict_do_update(
        index_elements=["actor", "rid"], set_={"presented_at": stmt.excluded.presented_at, "expires_at": stmt.excluded.expires_at}
    )
    await conn.execute(stmt, [{"actor": a, "rid": rid, "presented_at": now, "expires_at": expires} for a in actors for rid in rids])


class Presentation:
    """One pharmacist's lookup by number: presents it, then records it — or counts the miss."""

    def __init__(self, security: RequestSecurity, number: str, throttle: MissThrottle):
        self.number = number
        self.throttle = throttle
        self.actors = presentation_actors(security.principal, security.policy.identity)
        self.security = security.presenting((number,))
        self.rids: list[int] = []
        self.known = True

    @property
    def _keys(self) -> list[str]:
        return miss_keys(self.security)

    async def admit(self) -> "Presentation":
        """429 while the pharmacist or their pharmacy has used up their misses."""
        for key in self._keys:
            await self.throttle.check(key)
        return self

    async def examine(self, conn: AsyncConnection, returned: list[int]) -> None:
        """Which returned rows are lines of the prescription; if none, whether it exists at all."""
        if returned:
            self.rids = sorted(set((await conn.execute(
                select(idx_token.c.rid).where(*_numbered(self.number), idx_token.c.rid.in_(returned))
            )).scalars()))
        if not self.rids:
            self.known = bool(await conn.scalar(select(exists().where(*_numbered(self.number)))))

    async def record(self, patients: list[str], hours: int) -> None:
        """The audit of the lookup, with the presentation in the same transaction; for a miss, an
        event with outcome 4 naming the number tried, and one more miss for the pharmacy."""
        security, audit = self.security, self.security.audit
        if not self.known:
            for key in self._keys:
                await self.throttle.missed(key)
            if audit.engine is not None:
                async with write_transaction(audit.engine) as conn:
                    await append(conn, await audit.build(conn, status=404, description=f"Numéro d'ordonnance inconnu : {self.number}"))
                audit.recorded = True
            return

        async def also(conn: AsyncConnection) -> None:
            await record_presentation(conn, self.actors, self.rids, hours)
            if self.rids and security.guard.identities is not None:
                security.guard.identities.forget(security.principal)

        await audit.record_read(patients=patients, also=also)

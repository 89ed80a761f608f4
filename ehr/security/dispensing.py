"""Prescriptions presented at a pharmacy.

A patient hands over their prescription number (printed, or in the QR code of the
e-prescription).  The pharmacist searches ``MedicationRequest?identifier=
https://fhir.sijill.ma/sid/prescription|<number>`` — an exact token, nothing broader — and the
policy lets the prescriptions carrying that number through for that one search.  What was found
is recorded (``prescription_presentation``), for the pharmacy (its Organization, from the
pharmacist's PractitionerRole) and the pharmacist, for ``prescription_presentation_hours``:
until then they may read those prescriptions by id, update their status, and read the minimum
of the patient and the patient's coverage needed to dispense and bill.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.search.registry import param_hash
from ehr.security.identity import Identity
from ehr.security.policy import PRESCRIPTION_SYSTEM, ref_text
from ehr.security.principal import Principal
from ehr.security.tables import prescription_presentation
from ehr.store.clock import now_us
from ehr.store.schema import idx_token

_MR_IDENTIFIER = param_hash("MedicationRequest", "identifier")


def presentation_actors(principal: Principal, identity: Identity) -> list[str]:
    """Who a prescription is presented to: the pharmacist and the pharmacies they work for."""
    actors = {ref_text(r) for r in identity.organizations}
    if principal.fhir_user:
        actors.add(principal.fhir_user)
    return sorted(actors)


async def record_presentation(
    conn: AsyncConnection, actors: list[str], numbers: tuple[str, ...], returned_rids: list[int], hours: int
) -> list[int]:
    """Record the prescriptions with these numbers that the search returned; their rids."""
    if not numbers or not returned_rids or not actors:
        return []
    t = idx_token
    found = sorted(set((await conn.execute(
        select(t.c.rid).where(
            t.c.param == _MR_IDENTIFIER, t.c.system == PRESCRIPTION_SYSTEM, t.c.code.in_(numbers), t.c.rid.in_(returned_rids)
        )
    )).scalars()))
    if not found:
        return []
    now = now_us()
    expires = now + hours * 3_600_000_000
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = dialect_insert(prescription_presentation)
    stmt = stmt.on_conflict_do_update(
        index_elements=["actor", "rid"], set_={"presented_at": stmt.excluded.presented_at, "expires_at": stmt.excluded.expires_at}
    )
    await conn.execute(stmt, [{"actor": a, "rid": rid, "presented_at": now, "expires_at": expires} for a in actors for rid in found])
    return found

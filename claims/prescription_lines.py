"""A prescription's lines as the pharmacy sees them: what was prescribed, dispensed, what remains.

A prescription is one number (``MedicationRequest.groupIdentifier``, system
``https://fhir.sijill.ma/sid/prescription``) over one or more ``MedicationRequest`` lines.  What
a line allows is ``dispenseRequest.quantity`` × (1 + ``numberOfRepeatsAllowed``) until
``dispenseRequest.validityPeriod.end``; what was handed over is counted in ``dispense_line``
(one row per line, all pharmacies together), the row a dispense locks.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import orjson
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from claims.caresheet import local_reference_id
from claims.clock import now_us
from claims.money import to_decimal
from claims.tables import dispense_line
from claims.uris import ATC, ICD10, MEDICINE, PRESCRIPTION_NUMBER
from ehr.search.access import AccessFilter, access_clause
from ehr.store.schema import idx_compartment, resource

# A line in one of these states is not dispensed (a completed line has nothing left).
CLOSED = frozenset({"cancelled", "stopped", "entered-in-error", "draft", "on-hold", "unknown"})
_MILLI = Decimal(1000)


@dataclass(frozen=True)
class RxLine:
    id: str
    res: dict
    number: str | None
    patient_id: str | None
    status: str
    prescribed: Decimal | None  # None: the line gives no quantity
    unit: dict  # the Quantity's unit/system/code, repeated in the answers
    valid_until: date | None
    substitution_allowed: bool
    atc: frozenset[str]
    packs: frozenset[str]
    diagnoses: tuple[str, ...]  # ICD-10 codes of reasonCode: the ALD context of the line

    def expired(self, on: date) -> bool:
        return self.valid_until is not None and on > self.valid_until


def codes_of(concept: object, system: str) -> frozenset[str]:
    if not isinstance(concept, dict):
        return frozenset()
    return frozenset(c["code"] for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("system") == system and c.get("code"))


def _substitution_allowed(res: dict) -> bool:
    """Only an explicit permission lets the pharmacist substitute (``allowedBoolean`` true, or an
    ``allowedCodeableConcept`` other than ``N``, none)."""
    sub = res.get("substitution")
    if not isinstance(sub, dict):
        return False
    if "allowedBoolean" in sub:
        return sub["allowedBoolean"] is True
    concept = sub.get("allowedCodeableConcept")
    codes = {c.get("code") for c in (concept or {}).get("coding") or [] if isinstance(c, dict)}
    return bool(codes) and "N" not in codes


def read_line(res: dict) -> RxLine:
    group = res.get("groupIdentifier")
    number = group.get("value") if isinstance(group, dict) and group.get("system") == PRESCRIPTION_NUMBER else None
    request = res.get("dispenseRequest") if isinstance(res.get("dispenseRequest"), dict) else {}
    qty = request.get("quantity") if isinstance(request.get("quantity"), dict) else {}
    per_fill = to_decimal(qty.get("value"))
    repeats = request.get("numberOfRepeatsAllowed")
    fills = 1 + (repeats if isinstance(repeats, int) and repeats > 0 else 0)
    end = (request.get("validityPeriod") or {}).get("end")
    try:
        valid_until = date.fromisoformat(end[:10]) if isinstance(end, str) else None
    except ValueError:
        valid_until = None
    medication = res.get("medicationCodeableConcept")
    return RxLine(
        id=res["id"], res=res, number=number,
        patient_id=local_reference_id(res.get("subject"), "Patient"),
        status=res.get("status", "unknown"),
        prescribed=per_fill * fills if per_fill is not None and per_fill > 0 else None,
        unit={k: qty[k] for k in ("unit", "system", "code") if k in qty},
        valid_until=valid_until,
        substitution_allowed=_substitution_allowed(res),
        atc=codes_of(medication, ATC), packs=codes_of(medication, MEDICINE),
        diagnoses=tuple(c for r in res.get("reasonCode") or [] for c in sorted(codes_of(r, ICD10))),
    )


async def sibling_lines(conn: AsyncConnection, line: RxLine, access: AccessFilter | None = None) -> list[RxLine]:
    """Every line of the same prescription (the same number, the same patient) the caller may
    read, in id order; a line without a number is its own prescription."""
    if line.number is None or line.patient_id is None:
        return [line]
    rows = await conn.execute(
        select(resource.c.content)
        .select_from(idx_compartment.join(resource, resource.c.rid == idx_compartment.c.rid))
        .where(idx_compartment.c.comp_type == "Patient", idx_compartment.c.comp_id == line.patient_id,
               resource.c.res_type == "MedicationRequest", resource.c.deleted.is_(False), *access_clause(access, resource))
    )
    lines = [read_line(orjson.loads(c)) for (c,) in rows if c]
    return sorted((x for x in lines if x.number == line.number), key=lambda x: x.id)


async def dispensed(conn: AsyncConnection, line_ids: list[str]) -> dict[str, Decimal]:
    """What was handed over on each line so far (absent lines: nothing)."""
    rows = await conn.execute(select(dispense_line.c.line_id, dispense_line.c.dispensed_milli).where(dispense_line.c.line_id.in_(line_ids)))
    return {lid: Decimal(milli) / _MILLI for lid, milli in rows}


async def lock_line(conn: AsyncConnection, line: RxLine) -> Decimal:
    """Lock the line's ledger row for this transaction (created at the first dispense) and return
    what was dispensed on it.  PostgreSQL: ``FOR UPDATE`` — a second pharmacy waits here until the
    first commits, then reads its quantity; SQLite: the write transaction (``BEGIN IMMEDIATE``)
    already holds the database's one write lock."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    await conn.execute(insert(dispense_line).values(
        line_id=line.id, prescription=line.number or line.id, dispensed_milli=0, dispenses=0, updated_at=now_us()
    ).on_conflict_do_nothing(index_elements=["line_id"]))
    stmt = select(dispense_line.c.dispensed_milli).where(dispense_line.c.line_id == line.id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return Decimal(await conn.scalar(stmt)) / _MILLI


async def add_dispensed(conn: AsyncConnection, line_id: str, quantity: Decimal) -> None:
    t = dispense_line.c
    await conn.execute(update(dispense_line).where(t.line_id == line_id).values(
        dispensed_milli=t.dispensed_milli + int(quantity * _MILLI), dispenses=t.dispenses + 1, updated_at=now_us()
    ))

"""Prices and lists in force on a date: what claims adjudication asks the reference tables.

Each lookup is one query: the version in force is a scalar subquery (latest
``effective_from`` on or before the date, not past its ``effective_to``), and the batch
forms take every code of a claim at once so pricing a claim never costs a query per line.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Iterable

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from profiles.reference.cells import icd10_in_range
from profiles.reference.kinds import money
from profiles.reference.tables import (
    act, act_tariff, ald, ald_icd10, medicine, medicine_fund, reference_table_version, rsu_threshold,
)


@dataclass(frozen=True)
class Tariff:
    act_code: str
    fund: str
    amount: Decimal  # MAD
    label: str
    letter_key: str
    coefficient: Decimal
    category: str
    version: str


@dataclass(frozen=True)
class Medicine:
    code: str
    name: str
    dci: str
    strength: str
    form: str
    presentation: str | None
    ppv: Decimal  # public sale price, MAD
    reimbursement_base: Decimal | None  # price of the closest generic, MAD
    generic_group: str | None
    reimbursable: bool
    originator: bool
    atc: str | None
    version: str


@dataclass(frozen=True)
class Ald:
    code: str
    label: str
    category: str  # ALD | ALC
    version: str


def version_in_force(kind: str, on_date: date):
    """Scalar subquery: id of the version of ``kind`` in force on ``on_date``."""
    v = reference_table_version
    return (
        select(v.c.id)
        .where(v.c.kind == kind, v.c.effective_from <= on_date,
               or_(v.c.effective_to.is_(None), v.c.effective_to >= on_date))
        .order_by(v.c.effective_from.desc())
        .limit(1)
        .scalar_subquery()
    )


async def versions_on(conn: AsyncConnection, kind: str, dates: Iterable[date]) -> dict[date, int]:
    """The version of ``kind`` in force on each date (dates with none are absent), in one query:
    a batch of claims spread over many dates of care is then priced with one query per version."""
    v = reference_table_version
    rows = (await conn.execute(
        select(v.c.id, v.c.effective_from, v.c.effective_to).where(v.c.kind == kind).order_by(v.c.effective_from.desc())
    )).all()
    out = {}
    for on in set(dates):
        found = next((r.id for r in rows if r.effective_from <= on and (r.effective_to is None or r.effective_to >= on)), None)
        if found is not None:
            out[on] = found
    return out


async def tariffs_for(conn: AsyncConnection, act_codes: Iterable[str], fund: str, on_date: date | None = None, *,
                      version_id: int | None = None) -> dict[str, Tariff]:
    """The TNR of each act for ``fund`` on ``on_date`` (or in a given version); acts without a tariff are absent."""
    codes = sorted(set(act_codes))
    if not codes:
        return {}
    v = reference_table_version
    stmt = (
        select(act_tariff.c.act_code, act_tariff.c.amount_centimes, act.c.label_fr, act.c.letter_key,
               act.c.coefficient, act.c.category, v.c.version)
        .join(act, and_(act.c.version_id == act_tariff.c.version_id, act.c.code == act_tariff.c.act_code))
        .join(v, v.c.id == act_tariff.c.version_id)
        .where(act_tariff.c.version_id == (version_id if version_id is not None else version_in_force("tariffs", on_date)),
               act_tariff.c.fund == fund, act_tariff.c.act_code.in_(codes))
    )
    return {
        r.act_code: Tariff(r.act_code, fund, money(r.amount_centimes), r.label_fr, r.letter_key,
                           Decimal(r.coefficient), r.category, r.version)
        for r in (await conn.execute(stmt)).all()
    }


async def tariff_for(conn: AsyncConnection, act_code: str, fund: str, on_date: date) -> Tariff | None:
    return (await tariffs_for(conn, [act_code], fund, on_date)).get(act_code)


async def medicines_for(conn: AsyncConnection, codes: Iterable[str], on_date: date | None = None, *,
                        version_id: int | None = None, fund: str | None = None) -> dict[str, Medicine]:
    """The packs of the list; ``reimbursable`` is ``fund``'s where the list has a column for it
    (else, and without ``fund``, the national column)."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    v, by_fund = reference_table_version, medicine_fund
    stmt = (
        select(medicine, v.c.version, by_fund.c.reimbursable.label("fund_reimbursable"))
        .join(v, v.c.id == medicine.c.version_id)
        .outerjoin(by_fund, and_(by_fund.c.version_id == medicine.c.version_id, by_fund.c.code == medicine.c.code,
                                 by_fund.c.fund == (fund or "")))
        .where(medicine.c.version_id == (version_id if version_id is not None else version_in_force("medicines", on_date)),
               medicine.c.code.in_(wanted))
    )
    return {
        r.code: Medicine(r.code, r.name, r.dci, r.strength, r.form, r.presentation, money(r.ppv_centimes),
                         money(r.base_centimes), r.generic_group,
                         r.reimbursable if r.fund_reimbursable is None else r.fund_reimbursable,
                         r.originator, r.atc, r.version)
        for r in (await conn.execute(stmt)).all()
    }


async def medicine_for(conn: AsyncConnection, code: str, on_date: date, fund: str | None = None) -> Medicine | None:
    return (await medicines_for(conn, [code], on_date, fund=fund)).get(code)


async def funds_reimbursing(conn: AsyncConnection, codes: Iterable[str], on_date: date) -> dict[str, dict[str, bool]]:
    """Per pack, the funds the list names with whether each reimburses it (packs without any absent)."""
    t = medicine_fund
    rows = await conn.execute(select(t.c.code, t.c.fund, t.c.reimbursable).where(
        t.c.version_id == version_in_force("medicines", on_date), t.c.code.in_(sorted(set(codes)))))
    out: dict[str, dict[str, bool]] = {}
    for code, fund, yes in rows:
        out.setdefault(code, {})[fund] = bool(yes)
    return out


async def ald_for(conn: AsyncConnection, icd10: str, on_date: date) -> list[Ald]:
    """The ALD/ALC whose ICD-10 codes or ranges cover diagnosis ``icd10`` on ``on_date``
    (an exemption applies only to care for the condition it was granted for)."""
    v = reference_table_version
    stmt = (
        select(ald.c.code, ald.c.label_fr, ald.c.category, ald_icd10.c.icd_from, ald_icd10.c.icd_to, v.c.version)
        .join(ald_icd10, and_(ald_icd10.c.version_id == ald.c.version_id, ald_icd10.c.ald_code == ald.c.code))
        .join(v, v.c.id == ald.c.version_id)
        # The list is short (a few dozen ranges): ranges are compared here, not with SQL
        # string order, which depends on the database collation.
        .where(ald.c.version_id == version_in_force("ald", on_date))
        .order_by(ald.c.code)
    )
    out: dict[str, Ald] = {}
    for r in (await conn.execute(stmt)).all():
        if r.code not in out and icd10_in_range(icd10, r.icd_from, r.icd_to):
            out[r.code] = Ald(r.code, r.label_fr, r.category, r.version)
    return list(out.values())


async def rsu_thresholds_on(conn: AsyncConnection, on_date: date) -> dict[str, Decimal]:
    """The RSU index threshold of each programme (regime code) in force on ``on_date``."""
    t = rsu_threshold
    rows = await conn.execute(select(t.c.programme, t.c.threshold).where(t.c.version_id == version_in_force("rsu-thresholds", on_date)))
    return {p: Decimal(str(v)) for p, v in rows}

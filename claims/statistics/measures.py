"""The aggregates, one SQL statement each: care sheets of a period (date of care) grouped by up
to two dimensions, computed by the database (GROUP BY, window functions for the percentiles) on
SQLite and PostgreSQL alike — no row of the ledger is read into Python.

The population is the AMO decision of each care sheet: ledger rows of payer rank 1, use
``claim``, not replaced by a correction (``superseded``).  Every cell also counts its distinct
patients (``people``), which the disclosure rule (``disclosure``) needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import case, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from claims.clock import HOUR_US
from claims.reasons import REASONS
from claims.tables import claim_decision_line, claim_ledger
from claims.statistics.territory import UNPLACED, placed

DIMENSIONS = ("region", "province", "provider-region", "fund", "month", "setting", "reason")
DEADLINE_US = 48 * HOUR_US


@dataclass(frozen=True)
class Figure:
    code: str
    fr: str
    unit: str | None  # UCUM; None for counts


@dataclass(frozen=True)
class Measure:
    name: str
    fr: str
    figures: tuple[Figure, ...]


_SHEETS = Figure("care-sheets", "Feuilles de soins", None)
MEASURES = {m.name: m for m in (
    Measure("care-sheets", "Feuilles de soins reçues", (_SHEETS,)),
    Measure("decision-delay", "Délai de décision (48 heures)", (
        Figure("decided", "Feuilles décidées", None),
        Figure("within-48h", "Part décidée en 48 heures", "%"),
        Figure("delay-median", "Délai médian", "h"),
        Figure("delay-p90", "Délai, 90e centile", "h"))),
    Measure("amounts", "Montants", (
        Figure("submitted", "Montant présenté", "MAD"),
        Figure("paid", "Montant pris en charge", "MAD"),
        Figure("left-to-patient", "Reste à charge", "MAD"),
        Figure("out-of-pocket-share", "Part du reste à charge", "%"))),
    Measure("refusals", "Lignes refusées par motif", (Figure("refused-lines", "Lignes refusées", None),)),
)}


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive


def _sheets(period: Period, by: tuple[str, ...]):
    """The period's care sheets, with the places the dimensions ask for: the relation every
    measure groups (placing people costs a join over their addresses: only when grouped by it)."""
    led = claim_ledger.c
    columns = [led.id, led.patient_id, led.fund_code, led.care_setting, led.received_at, led.decided_at,
               led.submitted_cents, led.benefit_cents, led.patient_share_cents,
               func.substr(led.service_date, 1, 7).label("month")]
    source = claim_ledger
    if {"region", "province"} & set(by):
        patient = placed("patient_place", "Patient")
        source = source.outerjoin(patient, patient.c.ref == literal("Patient/") + led.patient_id)
        columns += [func.coalesce(patient.c.region, UNPLACED).label("region"),
                    func.coalesce(patient.c.province, UNPLACED).label("province")]
    if "provider-region" in by:
        provider = placed("provider_place", "Practitioner", "Organization")
        source = source.outerjoin(provider, provider.c.ref == led.provider_ref)
        columns.append(func.coalesce(provider.c.region, UNPLACED).label("provider_region"))
    return (
        select(*columns).select_from(source)
        .where(led.payer_rank == 1, led.use == "claim", led.status != "superseded",
               led.service_date >= period.start.isoformat(), led.service_date <= period.end.isoformat())
        .subquery("sheet")
    )


def _reasons():
    rows = [select(literal(code).label("reason")) for code in sorted(REASONS)]
    return union_all(*rows).subquery("reason_code")


_COLUMNS = {"fund": "fund_code", "setting": "care_setting", "provider-region": "provider_region"}


def _column(rel, dim: str):
    return rel.c[_COLUMNS.get(dim, dim)]


async def aggregate(conn: AsyncConnection, measure: str, by: tuple[str, ...], period: Period) -> list[dict]:
    """One dict per cell: ``key`` (tuple of the dimensions' values; ``()`` for the whole), ``people``
    and the measure's figures (money in MAD, delays in hours, shares in %)."""
    s = _sheets(period, by)
    if measure == "refusals":
        reasons, line = _reasons(), claim_decision_line.c
        rel = (select(s, reasons.c.reason, line.id.label("line_id"))
               .select_from(s.join(claim_decision_line, line.ledger_id == s.c.id)
                            .join(reasons, (literal(" ") + line.reasons + literal(" ")).like(
                                literal("% ") + reasons.c.reason + literal(" %"))))
               .where(line.benefit_cents == 0).subquery("refusal"))
        keys = [_column(rel, d) for d in by]
        q = select(*keys, func.count(func.distinct(rel.c.patient_id)).label("people"),
                   func.count(rel.c.line_id).label("refused-lines")).group_by(*keys)
    elif measure == "decision-delay":
        keys_s = [_column(s, d) for d in by]
        delay = (s.c.decided_at - s.c.received_at).label("delay")
        part = {"partition_by": keys_s} if keys_s else {}
        ranked = (select(*[k.label(f"k{i}") for i, k in enumerate(keys_s)], s.c.patient_id, delay,
                         func.row_number().over(order_by=delay, **part).label("rn"),
                         func.count().over(**part).label("n"))
                  .where(s.c.decided_at.is_not(None)).subquery("ranked"))
        keys = [ranked.c[f"k{i}"] for i in range(len(by))]
        r = ranked.c

        def nearest_rank(p: int):  # ceil(p·n/100) in integers, on both databases
            return func.max(case((r.rn == (r.n * p + 99) // 100, r.delay))) / float(HOUR_US)

        q = select(*keys, func.count(func.distinct(r.patient_id)).label("people"), func.count().label("decided"),
                   (100.0 * func.sum(case((r.delay <= DEADLINE_US, 1), else_=0)) / func.count()).label("within-48h"),
                   nearest_rank(50).label("delay-median"), nearest_rank(90).label("delay-p90")).group_by(*keys)
    else:
        keys = [_column(s, d) for d in by]
        figures = [func.count().label("care-sheets")]
        if measure == "amounts":
            decided = s.c.benefit_cents.is_not(None)
            paid, left = func.sum(s.c.benefit_cents), func.sum(s.c.patient_share_cents)
            figures = [func.sum(case((decided, s.c.submitted_cents))) / 100.0, paid / 100.0, left / 100.0,
                       100.0 * left / func.nullif(paid + left, 0)]
            figures = [f.label(fig.code) for f, fig in zip(figures, MEASURES["amounts"].figures)]
        q = select(*keys, func.count(func.distinct(s.c.patient_id)).label("people"), *figures).group_by(*keys)
    cells = []
    for row in (await conn.execute(q)).mappings():
        values = dict(row)
        key = tuple(values.pop(k.name) for k in keys)
        cells.append({"key": key, "people": values.pop("people"),
                      **{k: (round(float(v), 2) if isinstance(v, float) else v) for k, v in values.items()}})
    return cells

"""The aggregates, one SQL statement each, computed by the database (GROUP BY; the percentiles by
PostgreSQL's ordered-set aggregate, by a window on SQLite, ``percentiles``) — no row is read
into Python.

Care-sheet measures: the AMO decision of each care sheet of the period (date of care): ledger
rows of payer rank 1, ``use`` claim, not replaced by a correction (``superseded``).  Coverage
measures (``coverage``): the cliff's transitions ending in the period, the AMO coverages
starting in it.  Patients are placed by ``patient_place`` (kept on every Patient write,
``placement``): one join on the patient's id, no address read at query time.  Every cell also
counts its distinct patients (``people``), which the disclosure rule (``disclosure``) needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import String, case, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from claims.clock import HOUR_US
from claims.reasons import REASONS
from claims.tables import claim_decision_line, claim_ledger, patient_place
from claims.statistics.territory import UNPLACED, placed

SHEET_DIMENSIONS = ("region", "province", "provider-region", "fund", "month", "setting", "ald")
DIMENSIONS = (*SHEET_DIMENSIONS, "reason")
PLACES = ("region", "province")
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
    dimensions: tuple[str, ...] = SHEET_DIMENSIONS  # what ``by`` may name


_SHEETS = Figure("care-sheets", "Feuilles de soins", None)
_COVERAGE_DIMENSIONS = ("region", "province", "fund", "month")
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
    Measure("refusals", "Lignes refusées par motif", (Figure("refused-lines", "Lignes refusées", None),), DIMENSIONS),
    Measure("coverage-transitions", "Sorties de couverture au seuil RSU", (
        Figure("transitions", "Couvertures terminées au seuil", None),
        Figure("ald-transitions", "Dont transition ALD", None),
        Figure("restored", "Couverture rétablie depuis", None)), (*_COVERAGE_DIMENSIONS, "ald")),
    Measure("time-to-first-care", "Délai du premier soin après l'ouverture des droits", (
        Figure("coverages", "Couvertures ouvertes", None),
        Figure("with-care", "Dont avec une feuille de soins", None),
        Figure("days-median", "Délai médian du premier soin", "d"),
        Figure("days-p90", "Délai du premier soin, 90e centile", "d")), _COVERAGE_DIMENSIONS),
)}


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive


def ald_code(flag):
    """The ``ald`` stratum of a 1/0 flag (None: the sheet is not decided yet)."""
    return case((flag == 1, "ald"), (flag == 0, "non-ald"), else_="undecided")


def with_places(source, columns: list, patient_id, by: tuple[str, ...]):
    """``source`` outer-joined to the patients' placement when ``by`` names a place."""
    if not set(PLACES) & set(by):
        return source
    columns += [func.coalesce(patient_place.c.region, UNPLACED).label("region"),
                func.coalesce(patient_place.c.province, UNPLACED).label("province")]
    return source.outerjoin(patient_place, patient_place.c.patient_id == patient_id)


def _sheets(period: Period, by: tuple[str, ...]):
    """The period's care sheets with every dimension as a column: the relation the measures group."""
    led = claim_ledger.c
    columns = [led.id, led.patient_id, led.received_at, led.decided_at, led.submitted_cents, led.benefit_cents,
               led.patient_share_cents, led.fund_code.label("fund"), func.substr(led.service_date, 1, 7).label("month"),
               func.coalesce(led.care_kind, led.care_setting).label("setting"), ald_code(led.ald).label("ald")]
    source = with_places(claim_ledger, columns, led.patient_id, by)
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


class bytewise(FunctionElement):
    """A text compared byte by byte: grouping and counting distinct values need equality only, and
    PostgreSQL sorts under the database's collation (``strcoll``, no abbreviated keys) several
    times slower than under "C".  SQLite's default collation is bytewise already."""

    type = String()
    inherit_cache = True


@compiles(bytewise)
def _bytewise_sqlite(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(bytewise, "postgresql")
def _bytewise_postgresql(element, compiler, **kw):
    return f'({compiler.process(element.clauses, **kw)}) COLLATE "C"'


def column(rel, dim: str):
    return bytewise(rel.c[dim.replace("-", "_")])


def people(patient_id):
    return func.count(func.distinct(bytewise(patient_id))).label("people")


def percentiles(rel, by: tuple[str, ...], value, *where, ordered_sets: bool):
    """``rel``'s rows (``where``) with their dimensions (``k0``, ``k1``), patient and ``value``, and
    ``percentile(p, scale)``: the p-th percentile by nearest rank (rank ceil(p·n/100) of the cell's
    n values, none for no value) over ``scale``, an aggregate to group the rows by.

    With ``ordered_sets`` (PostgreSQL), ``percentile_disc``: the first value whose rank reaches
    p/100·n, i.e. the nearest rank (exact in floating point for p = 50 and 90); it sorts each
    cell's values inside the aggregate, the percentiles of one cell sharing that sort.  Otherwise
    (SQLite) a window ranks the values first (``ranked``): a sort of all the rows."""
    if not ordered_sets:
        r = ranked(rel, by, value, *where)
        return r, lambda p, scale=1.0: func.max(case((r.c.rn == (r.c.n * p + 99) // 100, r.c.value))) / scale
    r = (select(*[column(rel, d).label(f"k{i}") for i, d in enumerate(by)], rel.c.patient_id, value.label("value"))
         .where(*where).subquery("valued"))
    return r, lambda p, scale=1.0: func.percentile_disc(p / 100).within_group(r.c.value) / scale


def ranked(rel, by: tuple[str, ...], value, *where):
    """``rel``'s rows with their dimensions (``k0``, ``k1``), patient, ``value``, its rank in the
    cell (``rn``, the rows without a value last) and the cell's count of values (``n``)."""
    keys = [column(rel, d) for d in by]
    part = {"partition_by": keys} if keys else {}
    return (select(*[k.label(f"k{i}") for i, k in enumerate(keys)], rel.c.patient_id, value.label("value"),
                   func.row_number().over(order_by=[case((value.is_(None), 1), else_=0), value], **part).label("rn"),
                   func.count(value).over(**part).label("n"))
            .where(*where).subquery("ranked"))


async def aggregate(conn: AsyncConnection, measure: str, by: tuple[str, ...], period: Period) -> list[dict]:
    """One dict per cell: ``key`` (tuple of the dimensions' values; ``()`` for the whole), ``people``
    and the measure's figures (money in MAD, delays in hours or days, shares in %)."""
    from claims.statistics.coverage import coverage_query

    ordered_sets = conn.dialect.name == "postgresql"
    q = coverage_query(measure, by, period, ordered_sets) if measure in ("coverage-transitions", "time-to-first-care") \
        else _sheet_query(measure, by, period, ordered_sets)
    cells = []
    for row in (await conn.execute(q)).mappings():
        values = dict(row)
        key = tuple(values.pop(f"k{i}") for i in range(len(by)))
        cells.append({"key": key, "people": values.pop("people"),
                      **{k: (round(float(v), 2) if isinstance(v, float) else v) for k, v in values.items()}})
    return cells


def _sheet_query(measure: str, by: tuple[str, ...], period: Period, ordered_sets: bool):
    s = _sheets(period, by)
    if measure == "decision-delay":
        rel, percentile = percentiles(s, by, s.c.decided_at - s.c.received_at, s.c.decided_at.is_not(None),
                                      ordered_sets=ordered_sets)
        r = rel.c
        keys = [r[f"k{i}"] for i in range(len(by))]
        return select(*keys, people(r.patient_id), func.count().label("decided"),
                      (100.0 * func.sum(case((r.value <= DEADLINE_US, 1), else_=0)) / func.count()).label("within-48h"),
                      percentile(50, float(HOUR_US)).label("delay-median"),
                      percentile(90, float(HOUR_US)).label("delay-p90")).group_by(*keys)
    if measure == "refusals":
        reasons, line = _reasons(), claim_decision_line.c
        rel = (select(s, reasons.c.reason, line.id.label("line_id"))
               .select_from(s.join(claim_decision_line, line.ledger_id == s.c.id)
                            .join(reasons, (literal(" ") + line.reasons + literal(" ")).like(
                                literal("% ") + reasons.c.reason + literal(" %"))))
               .where(line.benefit_cents == 0).subquery("refusal"))
        keys = [column(rel, d).label(f"k{i}") for i, d in enumerate(by)]
        return select(*keys, people(rel.c.patient_id),
                      func.count(rel.c.line_id).label("refused-lines")).group_by(*keys)
    keys = [column(s, d).label(f"k{i}") for i, d in enumerate(by)]
    figures = [func.count().label("care-sheets")]
    if measure == "amounts":
        decided = s.c.benefit_cents.is_not(None)
        paid, left = func.sum(s.c.benefit_cents), func.sum(s.c.patient_share_cents)
        figures = [func.sum(case((decided, s.c.submitted_cents))) / 100.0, paid / 100.0, left / 100.0,
                   100.0 * left / func.nullif(paid + left, 0)]
        figures = [f.label(fig.code) for f, fig in zip(figures, MEASURES["amounts"].figures)]
    return select(*keys, people(s.c.patient_id), *figures).group_by(*keys)

"""The coverage measures, over the cliff's and the coverages' own tables:

- ``coverage-transitions``: AMO coverages a registry feed ended because the household's RSU
  index crossed its threshold (``coverage_transition``, ``claims.registry_feed``) whose last day
  of cover falls in the period: how many, how many opened an ALD transition, how many a later
  feed has restored since.  ``month`` is the month of the last day of cover, ``fund`` the
  coverage's fund (``coverage_start``), ``ald`` whether the patient kept an ALD transition.
- ``time-to-first-care``: AMO coverages starting in the period (``coverage_start``): how many,
  how many were followed by a care sheet (date of care on or after the start), and the days
  from the start to the first one (median and 90th centile, nearest rank).  ``month`` is the
  month of the start.
"""
from __future__ import annotations

from sqlalchemy import Integer, and_, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from claims.statistics.measures import Period, ald_code, column, people, percentiles, with_places
from claims.tables import claim_ledger, coverage_start, coverage_transition
from claims.statistics.territory import UNPLACED


class days_between(FunctionElement):
    """Whole days from one ISO date (text) to another, later one."""

    type = Integer()
    inherit_cache = True


@compiles(days_between)
def _days_sqlite(element, compiler, **kw):
    later, earlier = (compiler.process(a, **kw) for a in element.clauses)
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


@compiles(days_between, "postgresql")
def _days_postgresql(element, compiler, **kw):
    later, earlier = (compiler.process(a, **kw) for a in element.clauses)
    return f"(CAST({later} AS DATE) - CAST({earlier} AS DATE))"


def _transitions(period: Period, by: tuple[str, ...]):
    t, cs = coverage_transition.c, coverage_start.c
    columns = [t.patient_id, t.ald.label("ald_flag"), t.closed_at, func.coalesce(cs.fund_code, UNPLACED).label("fund"),
               func.substr(t.ends_on, 1, 7).label("month"), ald_code(t.ald).label("ald")]
    source = coverage_transition.outerjoin(coverage_start, cs.coverage_id == t.coverage_id)
    source = with_places(source, columns, t.patient_id, by)
    return (select(*columns).select_from(source)
            .where(t.ends_on >= period.start.isoformat(), t.ends_on <= period.end.isoformat()).subquery("transition"))


def _starts(period: Period, by: tuple[str, ...]):
    cs, led = coverage_start.c, claim_ledger.c
    opened = and_(cs.starts_on >= period.start.isoformat(), cs.starts_on <= period.end.isoformat())
    # one join and GROUP BY, not a lookup per coverage: the planner hashes either side
    first = (select(cs.coverage_id, func.min(led.service_date).label("first_care"))
             .select_from(coverage_start.join(claim_ledger, and_(led.patient_id == cs.patient_id, led.service_date >= cs.starts_on)))
             .where(opened, led.payer_rank == 1, led.use == "claim", led.status != "superseded")
             .group_by(cs.coverage_id).subquery("first_care"))
    columns = [cs.patient_id, cs.fund_code.label("fund"), func.substr(cs.starts_on, 1, 7).label("month"),
               days_between(first.c.first_care, cs.starts_on).label("days")]
    source = with_places(coverage_start.outerjoin(first, first.c.coverage_id == cs.coverage_id), columns, cs.patient_id, by)
    return select(*columns).select_from(source).where(opened).subquery("start")


def coverage_query(measure: str, by: tuple[str, ...], period: Period, ordered_sets: bool):
    if measure == "coverage-transitions":
        s = _transitions(period, by)
        keys = [column(s, d).label(f"k{i}") for i, d in enumerate(by)]
        return select(*keys, people(s.c.patient_id),
                      func.count().label("transitions"), func.sum(s.c.ald_flag).label("ald-transitions"),
                      func.sum(case((s.c.closed_at.is_not(None), 1), else_=0)).label("restored")).group_by(*keys)
    s = _starts(period, by)
    rel, percentile = percentiles(s, by, s.c.days, ordered_sets=ordered_sets)
    r = rel.c
    keys = [r[f"k{i}"] for i in range(len(by))]
    return select(*keys, people(r.patient_id), func.count().label("coverages"),
                  func.count(r.value).label("with-care"), percentile(50).label("days-median"),
                  percentile(90).label("days-p90")).group_by(*keys)

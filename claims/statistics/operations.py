"""``MeasureReport/$aggregate`` and ``MeasureReport/$fairness``: the statistics, for the
statistics role only (403 for every other role, before anything is read), small cells
suppressed, each extraction audited (the query, no patient: none is exposed).

    GET /fhir/MeasureReport/$aggregate?measure=care-sheets|decision-delay|amounts|refusals
            |coverage-transitions|time-to-first-care
        &by=region|province|provider-region|fund|month|setting|ald|reason[,second]&period=YYYY[-MM[-DD]][/YYYY[-MM[-DD]]]
    (the dimensions each measure takes: ``Measure.dimensions``)
    GET /fhir/MeasureReport/$fairness?period=…   (regions side by side with the national value)

``Accept: text/csv`` (or ``_format=csv``) answers CSV instead of the MeasureReport.
"""
from __future__ import annotations

import calendar
import re
from datetime import date

import orjson
from fastapi.responses import Response

from claims.statistics.disclosure import THRESHOLD, hidden_cells
from claims.statistics.fairness import fairness_report
from claims.statistics.measures import MEASURES, Period, aggregate
from claims.statistics.report import csv_text, measure_report
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError
from ehr.rest.http import check_accept, fhir_response
from ehr.security.roles import Role
from ehr.store.db import read_connection

CSV = "text/csv"
_BOUND = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def _bound(text: str, last: bool) -> date:
    m = _BOUND.match(text)
    if not m:
        raise ValueError(text)
    year, month, day = int(m[1]), int(m[2] or (12 if last else 1)), m[3]
    if day is None:
        return date(year, month, calendar.monthrange(year, month)[1] if last else 1)
    return date(year, month, int(day))


def parse_period(raw: object) -> Period:
    """``2025``, ``2025-03``, ``2025-03-15`` or ``start/end`` of those: the dates of care covered."""
    if not isinstance(raw, str) or not raw:
        raise FHIRError.of(400, "required", "period est requis : AAAA, AAAA-MM, AAAA-MM-JJ ou début/fin", "period")
    first, _, last = raw.partition("/")
    try:
        period = Period(_bound(first, False), _bound(last or first, True))
    except ValueError:
        raise FHIRError.of(400, "value", "period : AAAA, AAAA-MM, AAAA-MM-JJ ou début/fin", "period") from None
    if period.end < period.start:
        raise FHIRError.of(400, "value", "period : la fin précède le début", "period")
    return period


def _dimensions(raw: object, measure: str) -> tuple[str, ...]:
    by = tuple(d.strip() for d in str(raw or "").split(",") if d.strip())
    allowed = MEASURES[measure].dimensions
    if len(by) > 2 or len(set(by)) != len(by) or any(d not in allowed for d in by):
        raise FHIRError.of(400, "value", f"by : une ou deux dimensions distinctes parmi {', '.join(allowed)}", "by")
    return by


def require_statistician(inv: Invocation) -> None:
    """Only the statistics role (or an in-process caller); the extraction's query goes to the trail."""
    security = inv.request.state.security
    if security.principal.role not in (Role.STATISTICS, Role.UNRESTRICTED):
        raise FHIRError.of(403, "forbidden", f"${inv.request.path_params.get('name')} est réservée au rôle statistics")
    if security.audit.scope is not None:
        security.audit.scope.query = inv.request.url.query


def wants_csv(inv: Invocation) -> bool:
    fmt = inv.request.query_params.get("_format")
    return fmt in ("csv", CSV) or (fmt is None and CSV in (inv.request.headers.get("accept") or ""))


@operation("aggregate", levels={"type"}, types={"MeasureReport"}, produces={CSV},
           callers={Role.STATISTICS}, definition="https://fhir.sijill.ma/OperationDefinition/MeasureReport-aggregate")
async def aggregate_operation(inv: Invocation):
    require_statistician(inv)
    name = inv.first("measure")
    if name not in MEASURES:
        raise FHIRError.of(400, "value", f"measure : une mesure parmi {', '.join(MEASURES)}", "measure")
    measure, by, period = MEASURES[name], _dimensions(inv.first("by"), str(name)), parse_period(inv.first("period"))
    csv = wants_csv(inv)
    if not csv:
        await check_accept(inv.request)
    async with read_connection(inv.engine) as conn:
        whole = await aggregate(conn, measure.name, (), period)
        cells = await aggregate(conn, measure.name, by, period) if by else []
    whole_cell = whole[0] if whole else None
    hidden = hidden_cells({c["key"]: c["people"] for c in cells})
    whole_hidden = whole_cell is not None and whole_cell["people"] < THRESHOLD
    if csv:
        return Response(csv_text(measure, by, whole_cell, whole_hidden, cells, hidden), media_type=f"{CSV}; charset=utf-8")
    return fhir_response(orjson.dumps(measure_report(measure, by, period, whole_cell, whole_hidden, cells, hidden)))


@operation("fairness", levels={"type"}, types={"MeasureReport"}, produces={CSV},
           callers={Role.STATISTICS}, definition="https://fhir.sijill.ma/OperationDefinition/MeasureReport-fairness")
async def fairness_operation(inv: Invocation):
    require_statistician(inv)
    period = parse_period(inv.first("period"))
    csv = wants_csv(inv)
    if not csv:
        await check_accept(inv.request)
    async with read_connection(inv.engine) as conn:
        body = await fairness_report(conn, period, csv=csv)
    if csv:
        return Response(body, media_type=f"{CSV}; charset=utf-8")
    return fhir_response(orjson.dumps(body))

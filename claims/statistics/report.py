"""Cells to answers: a ``MeasureReport`` (``type=summary``: one group per figure, its whole
population and measure score, one stratifier per ``by`` with a stratum per cell) or CSV rows.
A suppressed cell keeps its place, says ``<10`` and carries no figure.
"""
from __future__ import annotations

import csv
import io

from claims.clock import now_us, to_instant
from claims.reasons import REASONS
from claims.statistics.measures import Measure, Period
from claims.statistics.territory import display

STATS_CS = "https://fhir.sijill.ma/CodeSystem/statistics"
DIMENSION_CS = "https://fhir.sijill.ma/CodeSystem/statistics-dimension"
SUPPRESSED = "https://fhir.sijill.ma/StructureDefinition/suppressed-cell"
MEASURE_URL = "https://fhir.sijill.ma/Measure/"
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
UCUM = "http://unitsofmeasure.org"
SMALL = "<10"
_NAMES = {
    "setting": {"gp": "Médecin généraliste", "specialist": "Médecin spécialiste", "lab": "Laboratoire",
                "ambulatory": "Autres soins ambulatoires", "pharmacy": "Pharmacie", "hospital": "Hospitalisation"},
    "ald": {"ald": "En ALD/ALC", "non-ald": "Hors ALD/ALC", "undecided": "Non décidée"},
}


def label(dim: str, value: str) -> str:
    """What a stratum's value is called (French): an area's name, a reason's text, a setting's… else the value."""
    if dim in ("region", "province", "provider-region"):
        return display(value)[0]
    if dim == "reason" and value in REASONS:
        return REASONS[value].fr
    return _NAMES.get(dim, {}).get(value, value)


def _score(value, unit: str | None) -> dict:
    if unit is None:
        return {}
    return {"measureScore": {"value": value, "unit": unit, "system": UCUM, "code": "[MAD]" if unit == "MAD" else unit}} \
        if value is not None else {}


def _figures(cell: dict, code: str, unit: str | None, hidden: bool) -> dict:
    if hidden:
        return {"extension": [{"url": SUPPRESSED, "valueString": SMALL}]}
    count = cell[code] if unit is None else cell["people"]
    return {"population": [{"code": {"coding": [{"system": POPULATION, "code": "initial-population"}]}, "count": count}],
            **_score(cell.get(code), unit)}


def measure_report(measure: Measure, by: tuple[str, ...], period: Period, whole: dict | None, whole_hidden: bool,
                   cells: list[dict], hidden: set[tuple]) -> dict:
    groups = []
    for fig in measure.figures:
        group = {"code": {"coding": [{"system": STATS_CS, "code": fig.code, "display": fig.fr}]}}
        if whole is not None:
            group.update(_figures(whole, fig.code, fig.unit, whole_hidden))
        if by:
            group["stratifier"] = [{
                "code": [{"coding": [{"system": DIMENSION_CS, "code": d}]} for d in by],
                "stratum": [_stratum(by, c, fig, c["key"] in hidden) for c in cells],
            }]
        groups.append(group)
    return {
        "resourceType": "MeasureReport", "status": "complete", "type": "summary",
        "measure": MEASURE_URL + measure.name, "date": to_instant(now_us()),
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "group": groups,
    }


def _stratum(by: tuple[str, ...], cell: dict, fig, hidden: bool) -> dict:
    values = [{"coding": [{"system": DIMENSION_CS + "/" + d, "code": str(v)}], "text": label(d, str(v))}
              for d, v in zip(by, cell["key"])]
    head = {"value": values[0]} if len(values) == 1 else {
        "component": [{"code": {"coding": [{"system": DIMENSION_CS, "code": d}]}, "value": v} for d, v in zip(by, values)]}
    return {**head, **_figures(cell, fig.code, fig.unit, hidden)}


def csv_text(measure: Measure, by: tuple[str, ...], whole: dict | None, whole_hidden: bool, cells: list[dict],
             hidden: set[tuple]) -> str:
    """One line per cell (the whole first, its dimensions empty): codes, names, people, figures."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([*by, *(f"{d}_libelle" for d in by), "personnes", *(f.code for f in measure.figures)])
    rows = ([((), whole, whole_hidden)] if whole is not None else []) + [(c["key"], c, c["key"] in hidden) for c in cells]
    for key, cell, is_hidden in rows:
        codes = list(key) or [""] * len(by)
        names = [label(d, str(v)) for d, v in zip(by, key)] or [""] * len(by)
        figures = [""] * len(measure.figures) if is_hidden else [cell.get(f.code) for f in measure.figures]
        w.writerow([*codes, *names, SMALL if is_hidden else cell["people"], *("" if v is None else v for v in figures)])
    return out.getvalue()

"""The territorial-fairness view: per region, side by side with the national value, how long
care sheets wait for their decision and how much is left to the patients — and a flag where a
region is notably worse.

The rule (docs/statistics.md): a region is flagged ``wait`` when its share decided within 48
hours is more than ``WAIT_POINTS`` (10) percentage points below the national share, or its
median delay is more than ``WAIT_RATIO`` (1.5) times the national median; ``out-of-pocket`` when
the share of the decided amounts left to patients is more than ``POCKET_POINTS`` (5) points
above the national share.  Suppressed regions (fewer than 10 people, or hidden to protect one)
show no figure and carry no flag.
"""
from __future__ import annotations

import csv
import io

from sqlalchemy.ext.asyncio import AsyncConnection

from claims.statistics.disclosure import THRESHOLD, hidden_cells
from claims.statistics.measures import MEASURES, Measure, Period, aggregate
from claims.statistics.report import SMALL, label, measure_report

FLAG = "https://fhir.sijill.ma/StructureDefinition/fairness-flag"
WAIT_POINTS, WAIT_RATIO, POCKET_POINTS = 10.0, 1.5, 5.0
_FIGURES = ("within-48h", "delay-median", "out-of-pocket-share")


def flags(region: dict, nation: dict) -> list[str]:
    out = []
    share, n_share = region.get("within-48h"), nation.get("within-48h")
    median, n_median = region.get("delay-median"), nation.get("delay-median")
    if (share is not None and n_share is not None and share < n_share - WAIT_POINTS) or (
            median is not None and n_median and median > WAIT_RATIO * n_median):
        out.append("wait")
    pocket, n_pocket = region.get("out-of-pocket-share"), nation.get("out-of-pocket-share")
    if pocket is not None and n_pocket is not None and pocket > n_pocket + POCKET_POINTS:
        out.append("out-of-pocket")
    return out


async def fairness_report(conn: AsyncConnection, period: Period, *, csv: bool) -> dict | str:
    """The MeasureReport (groups: the national value; strata: the regions, flagged) or its CSV."""
    nation: dict = {"people": 0}
    regions: dict[tuple, dict] = {}
    for name in ("decision-delay", "amounts"):
        for whole in await aggregate(conn, name, (), period):
            nation = {**nation, **whole, "people": max(nation["people"], whole["people"])}
        for cell in await aggregate(conn, name, ("region",), period):
            merged = regions.setdefault(cell["key"], {"key": cell["key"], "people": 0})
            merged.update({**cell, "people": max(merged["people"], cell["people"])})
    hidden = hidden_cells({k: c["people"] for k, c in regions.items()})
    cells = sorted(regions.values(), key=lambda c: c["key"])
    nation_hidden = nation["people"] < THRESHOLD
    for c in cells:
        c["flags"] = [] if c["key"] in hidden or nation_hidden else flags(c, nation)
    figures = tuple(f for m in ("decision-delay", "amounts") for f in MEASURES[m].figures if f.code in _FIGURES)
    if csv:
        return _csv(cells, hidden, nation, nation_hidden)
    view = Measure("fairness", "Équité territoriale", figures)
    report = measure_report(view, ("region",), period, nation if nation["people"] else None, nation_hidden, cells, hidden)
    for group in report["group"]:
        for stratum, cell in zip(group.get("stratifier", [{}])[0].get("stratum", []), cells):
            stratum.setdefault("extension", []).extend({"url": FLAG, "valueCode": f} for f in cell["flags"])
    return report


def _csv(cells: list[dict], hidden: set, nation: dict, nation_hidden: bool) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["region", "region_libelle", "personnes", *(x for f in _FIGURES for x in (f, f"{f}_national")), "alertes"])
    for c in cells:
        shown = c["key"] not in hidden
        values = [x for f in _FIGURES for x in (c.get(f) if shown else "", "" if nation_hidden else nation.get(f))]
        w.writerow([c["key"][0], label("region", c["key"][0]), c["people"] if shown else SMALL,
                    *("" if v is None else v for v in values), " ".join(c["flags"])])
    return out.getvalue()

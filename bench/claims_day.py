"""Spools of care sheets for the claims benchmark: a realistic day, or a week, as JSON lines.

The sheets come from the demo's one generator (``claims.demo.SheetGenerator``) over a loaded
demo population (``claims.demo.claims_world``); this module adds *when* they arrive:

* a day's arrivals follow hourly weights — low at night (pharmacies on duty, hospitals), a
  morning peak (9–12 h), a lunch dip, an afternoon peak (15–18 h); Saturday is a morning, Sunday
  a trickle — and the days of a week have their own weights (Monday heaviest);
* ``NATIONAL_DAY`` is the 2022 national CNSS load, ~28,000 care-sheet files a day on average
  over the week;
* a share of visits is preceded by a rights check (``CoverageEligibilityRequest``) a few minutes
  before the sheet.

One record per line, sorted by ``at`` (seconds from the start of the spool's first day, local
time), ``kind`` one of the generator's kinds or ``eligibility``::

    {"at": 35102.4, "kind": "pharmacy", "claim": {...}, "first": [MedicationRequest, MedicationDispense]}
    {"at": 35950.0, "kind": "hospital", "claim": {pre-authorisation}, "stay": {...}, "stay_after": 129600.0}
    {"at": 36001.7, "kind": "eligibility", "request": {...}}

``first`` holds what the provider records before the sheet (with ids: written with PUT); a
hospital record's ``stay`` is the stay's sheet, sent ``stay_after`` seconds after the request
once the fund has granted it (its ``preAuthRef`` comes from that decision).  Deterministic for
(population, seed, day).
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

import orjson

from claims.demo import KINDS, SheetGenerator, World

NATIONAL_DAY = 28_000
# Relative arrivals per local hour (0 h … 23 h).
WEEKDAY_HOURS = (0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.4, 1.2, 3.5, 7.5, 9.5, 10.0,
                 8.0, 4.5, 5.5, 7.5, 8.0, 7.5, 6.0, 4.5, 3.0, 2.0, 1.2, 0.6)
SATURDAY_HOURS = (0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.4, 1.0, 3.0, 8.0, 10.0, 10.0,
                  7.0, 3.0, 2.0, 2.5, 2.5, 2.0, 1.5, 1.2, 1.0, 0.8, 0.6, 0.4)
SUNDAY_HOURS = (0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 1.0, 1.5, 1.8, 1.8,
                1.5, 1.2, 1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
# Monday … Sunday: share of the week's sheets (mean 1: NATIONAL_DAY × weight is that day's load).
DAY_WEIGHTS = (1.25, 1.2, 1.15, 1.15, 1.1, 0.75, 0.4)
ELIGIBILITY_SHARE = 0.3  # visits preceded by a rights check
ELIGIBILITY_LEAD_S = (60.0, 1800.0)  # how long before the sheet (uniform)
STAY_AFTER_S = (86_400.0, 3 * 86_400.0)  # a stay's sheet follows its pre-authorisation by 1–3 days


def hours_of(day: date) -> tuple[float, ...]:
    return {5: SATURDAY_HOURS, 6: SUNDAY_HOURS}.get(day.weekday(), WEEKDAY_HOURS)


def day_volume(day: date, per_day: float) -> int:
    """Sheets arriving on ``day`` when ``per_day`` is the mean over the week."""
    return round(per_day * DAY_WEIGHTS[day.weekday()])


def peak_hour_share(day: date) -> float:
    weights = hours_of(day)
    return max(weights) / sum(weights)


def peak_rate_per_s(per_day: float) -> float:
    """The week's highest arrival rate (sheets per second, in its busiest hour)."""
    return max(round(per_day * w) * peak_hour_share(_weekday(i)) for i, w in enumerate(DAY_WEIGHTS)) / 3600


def _weekday(index: int) -> date:
    return date(2024, 1, 1) + timedelta(days=index)  # 2024-01-01 is a Monday


@dataclass
class SpoolSummary:
    path: Path
    sheets: int = 0  # care sheets (stays that follow a pre-authorisation included)
    eligibility: int = 0
    first_resources: int = 0  # prescriptions and dispenses written before their sheets
    by_kind: Counter = field(default_factory=Counter)
    by_hour: Counter = field(default_factory=Counter)  # hour of arrival (0–23) -> sheets
    by_day: dict[str, int] = field(default_factory=dict)
    pended: int = 0  # sheets made to need an agent: "review" ones, stays without their discharge summary

    @property
    def review_share(self) -> float:
        return self.pended / self.sheets if self.sheets else 0.0

    def to_json(self) -> dict:
        return {"sheets": self.sheets, "eligibility": self.eligibility, "first_resources": self.first_resources,
                "by_kind": dict(self.by_kind), "by_day": self.by_day, "expected_review_share": round(self.review_share, 4)}


def _day_records(world: World, day: date, count: int, seed: int, label: str, care_days: int,
                 offset_s: float, eligibility_share: float, summary: SpoolSummary) -> list[tuple[float, bytes]]:
    """The ``count`` sheets arriving on ``day`` (plus their rights checks) as (at, JSON line)."""
    gen = SheetGenerator(world, day, seed, label=label, care_days=care_days)
    timing = random.Random(f"claims-arrivals:{seed}:{label}{day.isoformat()}")
    weights = hours_of(day)
    hours = timing.choices(range(24), weights=weights, k=count)
    out: list[tuple[float, bytes]] = []
    for hour in hours:
        at = offset_s + hour * 3600 + timing.random() * 3600
        sheet = gen.sheet(gen.pick_kind())
        record: dict = {"at": round(at, 3), "kind": sheet.kind, "claim": sheet.claim}
        if sheet.first:
            record["first"] = sheet.first
        n_sheets = 1
        if sheet.stay is not None:
            record["stay"] = sheet.stay
            record["stay_after"] = round(timing.uniform(*STAY_AFTER_S), 1)
            n_sheets = 2
            summary.pended += "supportingInfo" not in sheet.stay
        summary.pended += sheet.kind == "review"
        summary.sheets += n_sheets
        summary.first_resources += len(sheet.first)
        summary.by_kind[sheet.kind] += 1
        summary.by_hour[hour] += 1
        out.append((at, orjson.dumps(record)))
        if timing.random() < eligibility_share:
            before = max(offset_s, at - timing.uniform(*ELIGIBILITY_LEAD_S))
            out.append((before, orjson.dumps({"at": round(before, 3), "kind": "eligibility",
                                               "request": gen.eligibility(sheet)})))
            summary.eligibility += 1
    summary.by_day[day.isoformat()] = count
    return out


def _write(path: Path, records: list[tuple[float, bytes]]) -> None:
    records.sort(key=lambda r: r[0])
    with path.open("wb") as f:
        for _, line in records:
            f.write(line + b"\n")


def spool_day(world: World, path: Path, day: date, sheets: int, *, seed: int = 1, label: str = "",
              care_days: int = 21, eligibility_share: float = ELIGIBILITY_SHARE) -> SpoolSummary:
    """``sheets`` care-sheet records arriving over ``day`` (stays not counted: they follow)."""
    summary = SpoolSummary(path)
    _write(path, _day_records(world, day, sheets, seed, label, care_days, 0.0, eligibility_share, summary))
    return summary


def spool_week(world: World, path: Path, monday: date, per_day: float, *, seed: int = 1, label: str = "W",
               care_days: int = 21, eligibility_share: float = ELIGIBILITY_SHARE) -> SpoolSummary:
    """A week from ``monday``: ``per_day`` sheets a day on average, spread by ``DAY_WEIGHTS``."""
    if monday.weekday() != 0:
        raise ValueError(f"{monday} is not a Monday")
    summary = SpoolSummary(path)
    records: list[tuple[float, bytes]] = []
    for i in range(7):
        day = monday + timedelta(days=i)
        records += _day_records(world, day, day_volume(day, per_day), seed, label, care_days, i * 86_400.0,
                                eligibility_share, summary)
    _write(path, records)
    return summary


def read_spool(path: Path) -> Iterator[dict]:
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)


def expected_mix() -> dict[str, float]:
    """The generator's kinds and their expected shares (the stays excluded)."""
    total = sum(w for _, w in KINDS)
    return {k: w / total for k, w in KINDS}

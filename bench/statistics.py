"""Benchmark of the statistics (``claims.statistics``) on PostgreSQL: a year of a national-size
sample, scaled down, each aggregate timed, extrapolated to the national size.

The year's care sheets follow the day generator's arrival model (``bench.claims_day``:
``NATIONAL_DAY`` sheets a day on average, weighted by weekday) at ``--scale`` (default 1/1000),
spread over the 75 provinces by a fixed population weight, three funds, the care settings and
kinds, with decision delays, amounts, ALD flags and refused lines drawn as the demo's
adjudication produces them.  The insured (their Patients, with an address) and the coverages
opened in the year (``NEW_COVERAGES`` of them, their Coverages) are written through the
server's write path (``store_many``, as a transaction Bundle's plain entries are), so the write
hook fills ``patient_place`` and ``coverage_start`` as in production; the ledger rows, decided
lines and cliff transitions go straight into their tables: this measures the aggregates, not
the submission path (``bench/claims_*.py`` measure that).  Each aggregate is timed at two
scales; the time per ledger row of the larger run, times the national year's rows, is the
extrapolation (the plans are a hash join, hash aggregates and sorts: linear to n·log n, so the
larger run's slope, which already includes the log factor of its size, is scaled by
log(N)/log(n) too).  Each scale gets a fresh database.

    python -m bench.statistics --database-url postgresql+psycopg://postgres@127.0.0.1/sijill_bench_stats
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import insert

import claims.statistics.placement  # noqa: F401  (the write hook that places patients)
from bench.claims_day import NATIONAL_DAY, day_volume
from bench.pg import recreate_database
from claims.clock import HOUR_US
from claims.statistics.measures import Period, aggregate
from claims.statistics.territory import areas
from claims.tables import claim_decision_line, claim_ledger, coverage_transition
from claims.uris import FUND
from ehr.interactions.context import Context, store_many
from ehr.store.db import create_engine
from ehr.store.repository import NewVersion
from ehr.store.schema import metadata

YEAR = 2025
INSURED = 30_000_000  # people covered by the AMO (order of magnitude, for the patient table)
NEW_COVERAGES = 0.08  # share of the insured whose AMO rights open in the year
CLIFF = 0.01  # share of the insured whose cover a registry feed ends at the threshold in the year
SETTINGS = (("gp", 0.3), ("specialist", 0.15), ("lab", 0.1), ("ambulatory", 0.05), ("pharmacy", 0.3), ("hospital", 0.1))
FUNDS = (("CNSS", 0.55), ("AMO-TADAMON", 0.3), ("CNOPS", 0.15))
QUERIES = ([(m, by) for m in ("care-sheets", "decision-delay", "amounts", "refusals")
            for by in ((), ("region",), ("province",), ("fund", "month")) if not (m == "refusals" and by == ("fund", "month"))]
           + [("refusals", ("reason",)), ("care-sheets", ("setting",)), ("amounts", ("ald",))]
           + [(m, by) for m in ("coverage-transitions", "time-to-first-care") for by in ((), ("region",), ("fund", "month"))])


def _pick(rnd: random.Random, weighted) -> str:
    return rnd.choices([k for k, _ in weighted], [w for _, w in weighted])[0]


async def _write(ctx: Context, versions: list[NewVersion]) -> None:
    for chunk in range(0, len(versions), 5000):
        await store_many(ctx, versions[chunk:chunk + 5000])


async def _people(ctx: Context, rnd: random.Random, n_patients: int) -> None:
    """The insured and the coverages opened in the year, through the write path (the hook places them)."""
    provinces = [a for a in areas().values() if a.code != a.region]
    weights = [1 + (i * 7919) % 13 for i in range(len(provinces))]  # a fixed, uneven spread
    await _write(ctx, [NewVersion("Organization", code.lower(), {
        "resourceType": "Organization", "identifier": [{"system": FUND, "value": code}], "name": code}, "POST", None)
        for code, _ in FUNDS])
    await _write(ctx, [NewVersion("Patient", f"p{i}", {
        "resourceType": "Patient", "address": [{"district": rnd.choices(provinces, weights)[0].fr}]}, "POST", None)
        for i in range(1, n_patients + 1)])
    await _write(ctx, [NewVersion("Coverage", f"cov{i}", {
        "resourceType": "Coverage", "status": "active", "beneficiary": {"reference": f"Patient/p{i}"},
        "payor": [{"reference": f"Organization/{_pick(rnd, FUNDS).lower()}"}],
        "period": {"start": (date(YEAR, 1, 1) + timedelta(days=rnd.randrange(365))).isoformat()}}, "POST", None)
        for i in rnd.sample(range(1, n_patients + 1), int(n_patients * NEW_COVERAGES))])


async def load(engine, scale: float, seed: int = 1) -> int:
    rnd = random.Random(seed)
    n_patients = max(100, int(INSURED * scale))
    async with engine.begin() as conn:
        await _people(Context(conn, "http://bench/fhir"), rnd, n_patients)
        rows, lines, lid = [], [], 0
        day = date(YEAR, 1, 1)
        while day.year == YEAR:
            for _ in range(day_volume(day, NATIONAL_DAY * scale * rnd.uniform(0.8, 1.2))):
                lid += 1
                received = (day - date(1970, 1, 1)).days * 86_400_000_000 + rnd.randint(7, 20) * HOUR_US
                decided = received + int(rnd.lognormvariate(2.5, 0.8) * HOUR_US)
                refused = rnd.random() < 0.06
                benefit = 0 if refused else rnd.randint(50, 2000) * 100
                kind = _pick(rnd, SETTINGS)
                setting = kind if kind in ("pharmacy", "hospital") else "ambulatory"
                rows.append(dict(id=lid, provider_inpe="1", claim_identifier=f"s{lid}", payer_rank=1, claim_id=f"c{lid}",
                                 response_id=f"r{lid}", patient_id=f"p{rnd.randint(1, n_patients)}", fund_ref="Organization/x",
                                 fund_code=_pick(rnd, FUNDS), use="claim", care_setting=setting,
                                 care_kind=kind if setting == "ambulatory" and kind != "ambulatory" else None,
                                 service_date=day.isoformat(), fingerprint="f", received_at=received,
                                 due_at=received + 48 * HOUR_US, status="decided", decided_at=decided,
                                 ald=int(rnd.random() < 0.15), submitted_cents=benefit + 3000, benefit_cents=benefit,
                                 patient_share_cents=rnd.randint(0, 600) * 100))
                if refused:
                    lines.append(dict(ledger_id=lid, sequence=1, patient_id=rows[-1]["patient_id"], provider_inpe="1",
                                      fund_code=rows[-1]["fund_code"], service_date=day.isoformat(), submitted_cents=3000,
                                      eligible_cents=0, benefit_cents=0, patient_share_cents=0, rate_permille=0,
                                      reasons=rnd.choice(("not-covered", "no-tariff", "duplicate late-penalty")),
                                      decided_by="system"))
            day += timedelta(days=1)
        for chunk in range(0, len(rows), 5000):
            await conn.execute(insert(claim_ledger), rows[chunk:chunk + 5000])
        for chunk in range(0, len(lines), 5000):
            await conn.execute(insert(claim_decision_line), lines[chunk:chunk + 5000])
        ends = [dict(patient_id=f"p{i}", coverage_id=f"cov{i}", fund_ref="Organization/amo-tadamon", regime="AMO-TADAMON",
                     next_regime="AMO-ACHAMIL", ends_on=(date(YEAR, 1, 1) + timedelta(days=rnd.randrange(365))).isoformat(),
                     ald=int(rnd.random() < 0.2), feed_id=1, created_at=0, closed_at=None if rnd.random() < 0.9 else 1)
                for i in rnd.sample(range(1, n_patients + 1), int(n_patients * CLIFF))]
        await conn.execute(insert(coverage_transition), ends)
        await conn.exec_driver_sql("ANALYZE")
    return lid


async def time_all(engine, repeats: int) -> dict[str, float]:
    """Each query's best of ``repeats`` runs: on a shared machine the best run is the one least
    slowed by the neighbours."""
    period = Period(date(YEAR, 1, 1), date(YEAR, 12, 31))
    out: dict[str, float] = {}
    async with engine.connect() as conn:
        for _ in range(repeats):
            for measure, by in QUERIES:
                t0 = time.perf_counter()
                await aggregate(conn, measure, by, period)
                name = f"{measure} by {','.join(by) or 'total'}"
                out[name] = min(out.get(name, math.inf), time.perf_counter() - t0)
    return out


async def run(url: str, scales: list[float], repeats: int) -> tuple[list[tuple[float, int, dict]], list[str]]:
    """Each scale's (scale, sheets, best times) and its load averages (the machine may be shared)."""
    results, loads = [], []
    for scale in scales:
        before = os.getloadavg()[0]
        recreate_database(url)
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
            t0 = time.perf_counter()
            n = await load(engine, scale)
            print(f"1/{round(1 / scale)}: {n:,} sheets loaded in {time.perf_counter() - t0:.0f} s", flush=True)
            await time_all(engine, 1)  # warm the cache once, as a server would be
            results.append((scale, n, await time_all(engine, repeats)))
            loads.append(f"1/{round(1 / scale)}: {before:.1f} before loading, {os.getloadavg()[0]:.1f} after timing")
        finally:
            await engine.dispose()
    return results, loads


def _national(results: list[tuple[float, int, dict]], q: str, national: int) -> tuple[float, float]:
    """(proportional, slope) estimates: the largest run's time per sheet × the national sheets; and
    its time plus the extra time per extra sheet between the last two runs (fixed costs — planning,
    JIT, a first scan of small tables — not multiplied) for the sheets up to the national year.  Both
    × log(N)/log(n) for the sorts."""
    _, n, big = results[-1]
    grow = math.log(national) / math.log(max(n, 2))
    proportional = big[q] / n * national * grow
    if len(results) < 2:
        return proportional, proportional
    _, n1, small = results[-2]
    slope = max(0.0, (big[q] - small[q]) / (n - n1))
    return proportional, big[q] + slope * (national - n) * grow


def report(results: list[tuple[float, int, dict]], loads: list[str]) -> str:
    national = round(NATIONAL_DAY * 365)
    scale, n, big = results[-1]
    lines = [f"# Statistics benchmark ({date.today().isoformat()})", "",
             f"PostgreSQL, one year of care sheets; national year ≈ {national:,} sheets ({NATIONAL_DAY:,}/day), "
             f"{INSURED:,} insured, {NEW_COVERAGES:.0%} of them opening rights in the year, {CLIFF:.0%} at the cliff.", "",
             "| query | " + " | ".join(f"1/{round(1 / s)} ({k:,} sheets) s" for s, k, _ in results)
             + " | national ∝ s | national, slope s |",
             "|---|" + "---|" * (len(results) + 2)]
    totals = [0.0, 0.0]
    for q in big:
        est = _national(results, q, national)
        totals = [t + e for t, e in zip(totals, est)]
        lines.append(f"| {q} | " + " | ".join(f"{r[2][q]:.3f}" for r in results) + f" | {est[0]:.1f} | {est[1]:.1f} |")
    worst = max(big, key=lambda q: _national(results, q, national)[1])
    lines += ["", f"Extrapolation (`_national`): ∝ = time per sheet of the 1/{round(1 / scale)} run × the national year's "
              f"sheets × log(N)/log(n); slope = that run's time + the extra time per extra sheet between the last two "
              f"runs × the sheets still to come × log(N)/log(n).  Slowest query by the slope: {worst} "
              f"({_national(results, worst, national)[1]:.1f} s); all {len(big)} queries together ≈ {totals[0]:.0f} s (∝), "
              f"{totals[1]:.0f} s (slope).", "", "Load average (1 min) of the machine: " + "; ".join(loads) + ".", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/sijill_bench_stats")
    ap.add_argument("--scales", default="0.001,0.004", help="fractions of the national size, smallest first")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each query; the best is kept")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    text = report(*asyncio.run(run(args.database_url, [float(s) for s in args.scales.split(",")], args.repeats)))
    out = args.out or Path(__file__).parent / "results" / f"{date.today().isoformat()}-statistics.md"
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

"""Benchmark of the statistics (``claims.statistics``) on PostgreSQL: a year of a national-size
sample, scaled down, each aggregate timed, extrapolated to the national size.

The year's care sheets follow the day generator's arrival model (``bench.claims_day``:
``NATIONAL_DAY`` sheets a day on average, weighted by weekday) at ``--scale`` (default 1/1000),
spread over the 75 provinces by a fixed population weight, three funds, the three care settings,
with decision delays, amounts and refused lines drawn as the demo's adjudication produces them.
They are written straight into the ledger, ``resource`` and ``idx_string`` (the rows a submitted
sheet and a registered patient leave there): this measures the aggregates, not the submission
path (``bench/claims_*.py`` measure that).  Each aggregate is timed at two scales; the time per
ledger row of the larger run, times the national year's rows, is the extrapolation (the plans
are hash aggregates and one sort per window: linear to n·log n, so the larger run's slope, which
already includes the log factor of its size, is scaled by log(N)/log(n) too).

    python -m bench.statistics --database-url postgresql+psycopg://postgres@127.0.0.1/sijill_bench_stats
"""
from __future__ import annotations

import argparse
import asyncio
import math
import random
import time
from datetime import date, timedelta
from pathlib import Path

import orjson
from sqlalchemy import delete, insert

from bench.claims_day import NATIONAL_DAY, day_volume
from bench.pg import recreate_database
from claims.clock import HOUR_US
from claims.statistics.measures import MEASURES, Period, aggregate
from claims.statistics.territory import areas
from claims.tables import claim_decision_line, claim_ledger
from ehr.search.normalize import normalize
from ehr.search.registry import param_hash
from ehr.store.db import create_engine
from ehr.store.schema import idx_string, metadata, resource

YEAR = 2025
INSURED = 30_000_000  # people covered by the AMO (order of magnitude, for the patient table)
SETTINGS = (("ambulatory", 0.6), ("pharmacy", 0.3), ("hospital", 0.1))
FUNDS = (("CNSS", 0.55), ("AMO-TADAMON", 0.3), ("CNOPS", 0.15))
QUERIES = [(m, by) for m in MEASURES for by in ((), ("region",), ("province",), ("fund", "month"))
           if not (m == "refusals" and by == ("fund", "month"))] + [("refusals", ("reason",))]


def _pick(rnd: random.Random, weighted) -> str:
    return rnd.choices([k for k, _ in weighted], [w for _, w in weighted])[0]


async def load(engine, scale: float, seed: int = 1) -> int:
    rnd = random.Random(seed)
    provinces = [a for a in areas().values() if a.code != a.region]
    weights = [1 + (i * 7919) % 13 for i in range(len(provinces))]  # a fixed, uneven spread
    n_patients = max(100, int(INSURED * scale))
    param = param_hash("Patient", "address")
    async with engine.begin() as conn:
        for t in (claim_decision_line, claim_ledger, idx_string, resource):
            await conn.execute(delete(t))
        res, idx = [], []
        for i in range(1, n_patients + 1):
            prov = rnd.choices(provinces, weights)[0]
            res.append(dict(rid=i, res_type="Patient", res_id=f"p{i}", version_id=1, last_updated=0, deleted=False,
                            content=orjson.dumps({"resourceType": "Patient", "address": [{"district": prov.fr}]})))
            idx.append(dict(rid=i, param=param, grp=0, norm=normalize(prov.fr), exact=prov.fr))
        for chunk in range(0, len(res), 5000):
            await conn.execute(insert(resource), res[chunk:chunk + 5000])
            await conn.execute(insert(idx_string), idx[chunk:chunk + 5000])
        rows, lines, lid = [], [], 0
        day = date(YEAR, 1, 1)
        while day.year == YEAR:
            for _ in range(day_volume(day, NATIONAL_DAY * scale * rnd.uniform(0.8, 1.2))):
                lid += 1
                received = (day - date(1970, 1, 1)).days * 86_400_000_000 + rnd.randint(7, 20) * HOUR_US
                decided = received + int(rnd.lognormvariate(2.5, 0.8) * HOUR_US)
                refused = rnd.random() < 0.06
                benefit = 0 if refused else rnd.randint(50, 2000) * 100
                rows.append(dict(id=lid, provider_inpe="1", claim_identifier=f"s{lid}", payer_rank=1, claim_id=f"c{lid}",
                                 response_id=f"r{lid}", patient_id=f"p{rnd.randint(1, n_patients)}", fund_ref="Organization/x",
                                 fund_code=_pick(rnd, FUNDS), use="claim", care_setting=_pick(rnd, SETTINGS),
                                 service_date=day.isoformat(), fingerprint="f", received_at=received,
                                 due_at=received + 48 * HOUR_US, status="decided", decided_at=decided,
                                 submitted_cents=benefit + 3000, benefit_cents=benefit,
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
        await conn.exec_driver_sql("ANALYZE")
    return lid


async def time_all(engine) -> dict[str, float]:
    period = Period(date(YEAR, 1, 1), date(YEAR, 12, 31))
    out = {}
    async with engine.connect() as conn:
        for measure, by in QUERIES:
            t0 = time.perf_counter()
            await aggregate(conn, measure, by, period)
            out[f"{measure} by {','.join(by) or 'total'}"] = time.perf_counter() - t0
    return out


async def run(url: str, scales: list[float]) -> list[tuple[float, int, dict]]:
    recreate_database(url)
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        results = []
        for scale in scales:
            n = await load(engine, scale)
            await time_all(engine)  # warm the cache once, as a server would be
            results.append((scale, n, await time_all(engine)))
        return results
    finally:
        await engine.dispose()


def report(results: list[tuple[float, int, dict]]) -> str:
    national = round(NATIONAL_DAY * 365)
    scale, n, big = results[-1]
    lines = [f"# Statistics benchmark ({date.today().isoformat()})", "",
             f"PostgreSQL, one year of care sheets; national year ≈ {national:,} sheets ({NATIONAL_DAY:,}/day), "
             f"{INSURED:,} insured.", "",
             "| query | " + " | ".join(f"1/{round(1 / s)} ({k:,} sheets) s" for s, k, _ in results) + " | national (extrapolated) s |",
             "|---|" + "---|" * (len(results) + 1)]
    total = 0.0
    for q in big:
        est = big[q] / n * national * math.log(national) / math.log(max(n, 2))
        total += est
        lines.append(f"| {q} | " + " | ".join(f"{r[2][q]:.3f}" for r in results) + f" | {est:.1f} |")
    lines += ["", f"Extrapolation: time per sheet of the 1/{round(1 / scale)} run × the national year's sheets × "
              f"log(N)/log(n) (sorts of the percentiles). Largest single query: {max(big.values()) / n * national:.1f} s "
              f"linear; all {len(big)} queries together ≈ {total:.0f} s.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/sijill_bench_stats")
    ap.add_argument("--scales", default="0.001,0.004", help="fractions of the national size, smallest first")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    text = report(asyncio.run(run(args.database_url, [float(s) for s in args.scales.split(",")])))
    out = args.out or Path(__file__).parent / "results" / f"{date.today().isoformat()}-statistics.md"
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

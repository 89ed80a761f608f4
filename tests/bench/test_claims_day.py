"""The claims benchmark's day generator: its mix, determinism, arrival profile, and sheets the
real submission path accepts (SQLite, a small demo population); the week's capacity model and
the virtual clock it runs on."""
from __future__ import annotations

import shutil
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import orjson
import pytest
from sqlalchemy import func, select

from bench.claims_agents import DEFAULT_SHIFTS, parse_shifts
from bench.claims_day import (
    DAY_WEIGHTS, SATURDAY_HOURS, WEEKDAY_HOURS, expected_mix, peak_rate_per_s, read_spool, spool_day, spool_week,
)
from bench.claims_load import batch_of, transaction_of
from bench.claims_week import fluid_week, plan_week, required_agents
from claims.caresheet import today
from claims.clock import virtual_clock
from claims.demo import claims_world, granted
from claims.tables import claim_ledger, claim_review_task
from claims.worker import Worker
from ehr.demo.generator import patient_bundles
from ehr.interactions.transaction import Options, transaction
from ehr.store.clock import now_us as real_now_us
from tests.claims.test_demo import _some_providers

TZ = "Africa/Casablanca"

MONDAY = date(2026, 11, 2)


@pytest.fixture
def database_url(sqlite_template, tmp_path) -> str:
    """SQLite only: the generator is the same on every backend (the driver's run is on PostgreSQL)."""
    path = tmp_path / "sijill.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def world(app, settings):
    engine = app.state.engine
    opts = Options(settings.base_url, 20, 1000, 1_000_000, False)
    await transaction(engine, _some_providers(1), opts)
    for bundle in patient_bundles(12, 1, per_patient=8):
        await transaction(engine, bundle, opts)
    return await claims_world(engine, settings.base_url, today(TZ))


async def test_the_day_has_the_mix_of_care_and_about_five_percent_for_review(world, tmp_path):
    summary = spool_day(world, tmp_path / "day.ndjson", MONDAY, 3000, seed=4)
    records = list(read_spool(summary.path))
    kinds = Counter(r["kind"] for r in records if r["kind"] != "eligibility")
    assert sum(kinds.values()) == 3000
    for kind, share in expected_mix().items():
        assert abs(kinds[kind] / 3000 - share) < 0.03, (kind, kinds)
    assert 0.035 < summary.review_share < 0.065
    # pharmacy sheets carry their prescription and dispense; pre-authorisations their stay
    pharmacy = next(r for r in records if r["kind"] == "pharmacy")
    assert [x["resourceType"] for x in pharmacy["first"]][:2] == ["MedicationRequest", "MedicationDispense"]
    assert pharmacy["first"][1]["authorizingPrescription"][0]["reference"] == f"MedicationRequest/{pharmacy['first'][0]['id']}"
    hospital = next(r for r in records if r["kind"] == "hospital")
    assert hospital["claim"]["use"] == "preauthorization" and hospital["stay"]["use"] == "claim"
    assert "preAuthRef" not in hospital["stay"]["insurance"][0]
    assert 86_400 <= hospital["stay_after"] <= 3 * 86_400
    # a rights check precedes about 30 % of the visits, for that visit's patient
    checks = [r for r in records if r["kind"] == "eligibility"]
    assert 0.25 < len(checks) / 3000 < 0.35
    assert all(r["request"]["resourceType"] == "CoverageEligibilityRequest" for r in checks)
    numbers = [r["claim"]["identifier"][0]["value"] for r in records if "claim" in r]
    assert len(set(numbers)) == len(numbers)


async def test_the_same_seed_gives_the_same_bytes(world, tmp_path):
    a = spool_day(world, tmp_path / "a.ndjson", MONDAY, 300, seed=7)
    b = spool_day(world, tmp_path / "b.ndjson", MONDAY, 300, seed=7)
    c = spool_day(world, tmp_path / "c.ndjson", MONDAY, 300, seed=8)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.path.read_bytes() != c.path.read_bytes()


async def test_visits_do_not_repeat_a_patient_and_date_while_pairs_remain(world, tmp_path):
    insured = sum(1 for p in world.population.patients if p in world.population.coverage)
    summary = spool_day(world, tmp_path / "day.ndjson", MONDAY, insured * 5, seed=2, care_days=5, eligibility_share=0)
    pairs = [(r["claim"]["patient"]["reference"], r["claim"]["item"][0]["servicedDate"]) for r in read_spool(summary.path)]
    assert len(set(pairs)) == len(pairs)
    assert {d for _, d in pairs} == {(MONDAY - timedelta(days=n)).isoformat() for n in range(5)}


async def test_arrivals_follow_the_hours_of_the_day_and_the_days_of_the_week(world, tmp_path):
    weekday = spool_day(world, tmp_path / "mon.ndjson", MONDAY, 4000, seed=3, eligibility_share=0)
    by_hour = weekday.by_hour
    night = sum(by_hour[h] for h in range(0, 6))
    morning = sum(by_hour[h] for h in range(9, 12))
    assert night / 4000 < 0.03 and morning / 4000 > 0.2
    assert max(by_hour, key=by_hour.get) in (9, 10, 11, 12)
    assert by_hour[13] < by_hour[11] and by_hour[16] > by_hour[13]  # the lunch dip, then the afternoon
    saturday = spool_day(world, tmp_path / "sat.ndjson", MONDAY + timedelta(days=5), 4000, seed=3, eligibility_share=0)
    afternoon = lambda hours: sum(hours[h] for h in range(14, 19))  # noqa: E731
    assert afternoon(saturday.by_hour) < afternoon(by_hour) / 2
    times = [r["at"] for r in read_spool(weekday.path)]
    assert times == sorted(times) and 0 <= times[0] and times[-1] < 86_400

    week = spool_week(world, tmp_path / "week.ndjson", MONDAY, 700, seed=3)
    days = list(week.by_day.values())
    assert days == [round(700 * w) for w in DAY_WEIGHTS] and days[0] == max(days) and days[6] == min(days)
    times = [r["at"] for r in read_spool(week.path)]
    assert times == sorted(times) and times[-1] < 7 * 86_400
    with pytest.raises(ValueError):
        spool_week(world, tmp_path / "x.ndjson", MONDAY + timedelta(days=1), 10)


async def test_the_spooled_sheets_go_through_the_real_submission_path(world, client, app, settings, tmp_path):
    summary = spool_day(world, tmp_path / "day.ndjson", today(TZ), 60, seed=5, care_days=10, eligibility_share=0.5)
    records = list(read_spool(summary.path))
    sheets = [r for r in records if r["kind"] != "eligibility"]
    first = [x for r in sheets for x in r.get("first") or ()]
    resp = await client.post("", content=transaction_of(first))
    assert resp.status_code == 200, resp.text
    resp = await client.post("", content=batch_of([r["claim"] for r in sheets]))
    assert resp.status_code == 200, resp.text
    statuses = [e["response"]["status"] for e in resp.json()["entry"]]
    assert statuses == ["201 Created"] * len(sheets), [e for e in resp.json()["entry"] if not e["response"]["status"].startswith("201")][:2]
    for check in (r for r in records if r["kind"] == "eligibility"):
        answer = await client.post("/CoverageEligibilityRequest", content=orjson.dumps(check["request"]))
        assert answer.status_code == 201 and answer.json()["insurance"][0]["inforce"] is True, answer.text
    worker = Worker(app.state.engine, base_url=settings.base_url, name="test")
    while await worker.run_once():
        pass
    async with app.state.engine.connect() as conn:
        refs = dict((await conn.execute(select(claim_ledger.c.claim_identifier, claim_ledger.c.preauth_ref).where(
            claim_ledger.c.use == "preauthorization"))).all())
    stays = [granted(r["stay"], refs[r["claim"]["identifier"][0]["value"]]) for r in sheets if r.get("stay")]
    assert all(s["insurance"][0]["preAuthRef"][0] for s in stays)
    for stay in stays:
        assert (await client.post("/Claim", json=stay)).status_code == 201
    while await worker.run_once():
        pass
    async with app.state.engine.connect() as conn:
        rows = dict((await conn.execute(select(claim_ledger.c.status, func.count()).where(claim_ledger.c.payer_rank == 1)
                                        .group_by(claim_ledger.c.status))).all())
    assert sum(rows.values()) == len(sheets) + len(stays) == summary.sheets
    assert rows.get("queued", 0) == 0
    async with app.state.engine.connect() as conn:
        reasons = (await conn.execute(select(claim_review_task.c.reason_code, claim_ledger.c.claim_identifier).join(
            claim_ledger, claim_ledger.c.id == claim_review_task.c.ledger_id))).all()
    assert rows.get("in-review", 0) == summary.pended, reasons  # exactly the sheets made to need an agent
    async with app.state.engine.connect() as conn:
        stay_outcomes = set((await conn.execute(select(claim_ledger.c.outcome).where(
            claim_ledger.c.use == "claim", claim_ledger.c.care_setting.like("hospital%"), claim_ledger.c.payer_rank == 1,
            claim_ledger.c.status == "decided"))).scalars())
    assert stay_outcomes <= {"approved"}  # within their authorisation's validity


def test_the_virtual_clock_runs_faster_from_its_origin():
    origin = datetime.now(timezone.utc)
    start = datetime(2026, 11, 2, tzinfo=timezone.utc)
    clock = virtual_clock(1000.0, start, origin)
    real_before, virtual = real_now_us(), clock()
    elapsed_real = real_before - int(origin.timestamp() * 1e6)
    assert abs(virtual - (int(start.timestamp() * 1e6) + elapsed_real * 1000)) < 50_000_000  # within 50 virtual s
    assert virtual_clock(1.0, None, None) is real_now_us
    with pytest.raises(ValueError):
        virtual_clock(10.0, start, None)


def test_the_week_plan_samples_so_the_busiest_hour_fits_the_capacity():
    plan = plan_week(MONDAY, 280_000, capacity_per_s=60, week_seconds=480, deadline_hours=48, agents=450,
                     review_minutes=10, tz=TZ)
    assert plan.speedup == pytest.approx((7 * 86_400 + 49 * 3600) / 480)
    assert peak_rate_per_s(280_000) * plan.sample * plan.speedup == pytest.approx(30.0)
    assert plan.week_total_full == sum(round(280_000 * w) for w in DAY_WEIGHTS)
    # the simulated agents have, together, the review capacity of 450 × f agents
    assert plan.agents / plan.review_minutes == pytest.approx(450 * plan.sample / 10)
    assert max(WEEKDAY_HOURS) == 10.0 and max(SATURDAY_HOURS) == 10.0


def test_the_queue_model_finds_where_the_48_hours_break():
    shifts = parse_shifts(DEFAULT_SHIFTS)
    staffed = fluid_week(280_000, 60, 450, 10, shifts, 0.05, 48, MONDAY)
    assert staffed["within_deadline"] and staffed["auto_worst_hours"] < 0.1 and staffed["undecided_at_end"] == 0
    short = fluid_week(280_000, 60, 150, 10, shifts, 0.05, 48, MONDAY)
    assert not short["within_deadline"] and short["review_worst_hours"] > 48
    weekdays_only = fluid_week(280_000, 60, 450, 10, parse_shifts("mon-fri 08:30-16:30"), 0.05, 48, MONDAY)
    assert not weekdays_only["within_deadline"]  # Friday evening's reviews are due on Sunday
    slow = fluid_week(280_000, 5, 450, 10, shifts, 0.05, 48, MONDAY)
    assert slow["auto_peak_backlog"] > 10_000
    assert required_agents(280_000, 0.05, 10, shifts) == pytest.approx(280_000 * 7 * 0.05 * 10 / 60 / 44, abs=1)
    with pytest.raises(ValueError):
        parse_shifts("weekdays 9-5")

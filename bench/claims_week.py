"""The replayed week: a time-compressed replay on the real system, and its capacity model.

A week at 10× the national volume (~1.96 M sheets) cannot be submitted in minutes, so the
replay is honest about what it compresses:

* **time**: the server and the claims workers run on the benchmark clock of
  ``claims/clock.py`` (``SIJILL_CLAIMS_CLOCK_SPEEDUP``), the virtual week plus the 48 hours of
  its last deadlines squeezed into ``--week-seconds``;
* **volume**: the real rate of sheets is the week's arrival profile × speedup, which no 2-core
  machine takes; the replay submits a uniform *sample* of the week (fraction ``f``, chosen so that
  the busiest hour needs at most half of the decision capacity measured in the throughput
  phase), and scales the simulated agents by the same ``f`` (their review minutes adjusted so
  that review capacity is exactly ``agents × f``).  Each queue then sees the loads and service
  rates of the full week relative to each other, at ``f`` of their size.

Everything else is real: HTTP submissions (batches at each tick), real workers, agents deciding
through ``$decide``, and the verdict read from ``claim_ledger`` (``decided_at ≤ due_at``).
``fluid_week`` — a deterministic queue model at full volume fed with the *measured* decision
capacity and the configured agents — is reported as a clearly labelled extrapolation beside it.
"""
from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable
from zoneinfo import ZoneInfo

import httpx

from bench.claims_agents import Agents, Shift
from bench.claims_day import DAY_WEIGHTS, day_volume, hours_of, peak_rate_per_s
from bench.claims_load import LedgerWatch, Sender
from bench.latency import percentile
from claims.clock import HOUR_US, virtual_clock
from claims.demo import granted
from ehr.store.clock import from_datetime

WEEK_S = 7 * 86_400
UTILISATION = 0.5  # the sample's busiest hour asks at most this share of the measured capacity


@dataclass
class WeekPlan:
    monday: date
    per_day_full: float  # mean sheets a day at the replayed scale (10 × national)
    sample: float  # f: share of the week's sheets submitted
    speedup: float
    week_seconds: float  # real seconds for the virtual week + its last deadlines
    deadline_hours: int
    agents_full: int
    review_minutes_full: float
    tz: str

    @property
    def start(self) -> datetime:
        return datetime(self.monday.year, self.monday.month, self.monday.day, tzinfo=ZoneInfo(self.tz))

    @property
    def span_s(self) -> int:
        """The virtual span replayed: the week, its last deadlines, an hour to spare."""
        return WEEK_S + self.deadline_hours * 3600 + 3600

    @property
    def week_total_full(self) -> int:
        return sum(day_volume(self.monday + timedelta(days=i), self.per_day_full) for i in range(7))

    @property
    def agents(self) -> int:
        return max(1, round(self.agents_full * self.sample))

    @property
    def review_minutes(self) -> float:
        """Per simulated agent: the same review capacity as agents_full × f agents."""
        return self.review_minutes_full * self.agents / (self.agents_full * self.sample)

    def to_json(self) -> dict:
        return {"monday": self.monday.isoformat(), "per_day_full": self.per_day_full,
                "week_total_full": self.week_total_full, "sample": round(self.sample, 6),
                "speedup": round(self.speedup, 1), "week_seconds": self.week_seconds,
                "agents_full": self.agents_full, "review_minutes_full": self.review_minutes_full,
                "agents_simulated": self.agents, "review_minutes_simulated": round(self.review_minutes, 2),
                "peak_rate_full_per_s": round(peak_rate_per_s(self.per_day_full), 2)}


def plan_week(monday: date, per_day_full: float, capacity_per_s: float, week_seconds: float, *, deadline_hours: int,
              agents: int, review_minutes: float, tz: str, sample: float | None = None) -> WeekPlan:
    speedup = (WEEK_S + deadline_hours * 3600 + 3600) / week_seconds  # the week, its last deadlines, an hour to spare
    if sample is None:
        sample = min(1.0, UTILISATION * capacity_per_s / (peak_rate_per_s(per_day_full) * speedup))
    return WeekPlan(monday, per_day_full, sample, speedup, week_seconds, deadline_hours, agents, review_minutes, tz)


@dataclass
class Replay:
    sent: int = 0
    eligibility: int = 0
    stays_sent: int = 0
    stays_beyond_week: int = 0
    stays_refused: int = 0
    lag_s: list[float] = field(default_factory=list)  # virtual seconds from arrival to the answer
    real_seconds: float = 0.0
    stopped: str = ""


async def replay_week(client: httpx.AsyncClient, dsn: str, records: list[dict], plan: WeekPlan, origin: datetime,
                      agents: Agents, *, tick_s: float = 0.5, batch_cap: int = 500, in_flight: int = 4,
                      hard_limit_s: float | None = None) -> tuple[Replay, LedgerWatch, Sender]:
    """Submit ``records`` (sorted by ``at``) when the virtual clock reaches them; run the agents;
    stop when everything sent is decided, when the last deadline has passed, or at ``hard_limit_s``."""
    clock = virtual_clock(plan.speedup, plan.start, origin)
    week0 = from_datetime(plan.start)
    end_vt = plan.span_s
    hard_limit_s = hard_limit_s or plan.week_seconds * 1.25
    sender, out = Sender(client), Replay()
    waiting: dict[tuple[str, str], tuple[float, dict]] = {}  # pre-authorisation key -> (stay time, stay)
    ready: list[tuple[float, int, dict]] = []  # heap of granted stays by time
    sends: set[asyncio.Task] = set()
    gate = asyncio.Semaphore(in_flight)

    async def send(chunk: list[tuple[float, dict]]) -> None:
        try:
            first = [r for _, rec in chunk for r in rec.get("first") or ()]
            await sender.prerequisites(first)
            await sender.batch([rec["claim"] if "claim" in rec else rec["request"] for _, rec in chunk])
            now_vt = (clock() - week0) / 1e6
            out.lag_s.extend(now_vt - at for at, _ in chunk)
        finally:
            gate.release()

    delay = origin.timestamp() - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    started = time.monotonic()
    stop_agents = asyncio.Event()
    agents_task = asyncio.create_task(agents.run(stop_agents))
    i, last_poll = 0, 0.0
    async with LedgerWatch(dsn, week0, week0 + int(end_vt * 1e6)) as watch:
        while True:
            vt = (clock() - week0) / 1e6
            due: list[tuple[float, dict]] = []
            while i < len(records) and records[i]["at"] <= vt:
                rec = records[i]
                due.append((rec["at"], rec))
                i += 1
                if rec.get("stay") is not None:
                    when = rec["at"] + rec["stay_after"]
                    if when >= WEEK_S:
                        out.stays_beyond_week += 1
                    else:
                        key = (rec["claim"]["provider"]["identifier"]["value"], rec["claim"]["identifier"][0]["value"])
                        waiting[key] = (when, rec["stay"])
            while ready and ready[0][0] <= vt:
                when, _, stay = heapq.heappop(ready)
                due.append((when, {"claim": stay}))
                out.stays_sent += 1
            for n in range(0, len(due), batch_cap):
                await gate.acquire()
                task = asyncio.create_task(send(due[n:n + batch_cap]))
                sends.add(task)
                task.add_done_callback(sends.discard)
            out.sent += sum(1 for _, r in due if "claim" in r)
            out.eligibility += sum(1 for _, r in due if "request" in r)
            if time.monotonic() - last_poll >= 1.0:
                last_poll = time.monotonic()
                sample = await watch.poll(clock())
                if waiting:
                    for key, ref in (await watch.decided_preauths()).items():
                        if key in waiting:
                            when, stay = waiting.pop(key)
                            if ref:
                                heapq.heappush(ready, (when, len(ready) + out.stays_sent, granted(stay, ref)))
                            else:
                                out.stays_refused += 1
                all_sent = i == len(records) and not waiting and not ready and not sends
                if all_sent and vt >= WEEK_S and sample.open == 0:
                    out.stopped = "every claim decided"
                    break
                if vt >= end_vt:
                    out.stopped = "the last deadline passed"
                    break
                if time.monotonic() - started >= hard_limit_s:
                    out.stopped = f"real-time limit ({hard_limit_s:.0f} s)"
                    break
            await asyncio.sleep(tick_s)
        stop_agents.set()
        if sends:
            await asyncio.gather(*sends)
        await agents_task
        await watch.poll(clock())
        out.real_seconds = time.monotonic() - started
    return out, watch, sender


def _pcts(values: list[float]) -> dict:
    s = sorted(values)
    if not s:
        return {"n": 0}
    return {"n": len(s), "p50": round(percentile(s, 50), 2), "p95": round(percentile(s, 95), 2),
            "p99": round(percentile(s, 99), 2), "max": round(s[-1], 2)}


async def verdict(watch: LedgerWatch, records: list[dict], plan: WeekPlan, end_us: int) -> dict:
    """The 48-hour promise over every ledger row of the week, from the ledger itself."""
    week0 = from_datetime(plan.start)
    arrival = {rec["claim"]["identifier"][0]["value"]: week0 + int(rec["at"] * 1e6) for rec in records if "claim" in rec}
    rows = await watch.rows(
        "SELECT claim_identifier, payer_rank, status, received_at, due_at, decided_at, decided_by FROM claim_ledger "
        "WHERE {window}")
    auto_h, agent_h, from_arrival_h = [], [], []
    within = decided = late_open = open_in_time = 0
    worst: tuple[float, str] = (0.0, "")
    for ident, rank, status, received, due, decided_at, by in rows:
        if decided_at is None:
            if end_us > due:
                late_open += 1
            else:
                open_in_time += 1
            continue
        decided += 1
        within += decided_at <= due
        hours = (decided_at - received) / HOUR_US
        (auto_h if by == "system" else agent_h).append(hours)
        if hours > worst[0]:
            worst = (hours, ident)
        if rank == 1 and ident in arrival:
            from_arrival_h.append((decided_at - arrival[ident]) / HOUR_US)
    total = len(rows)
    settled = total - open_in_time
    peak_open = max(watch.samples, key=lambda s: s.open, default=None)
    return {
        "rows": total, "sheets": sum(1 for r in rows if r[1] == 1), "complementary": sum(1 for r in rows if r[1] > 1),
        "decided": decided, "within_deadline": within, "late_undecided": late_open, "open_in_time": open_in_time,
        "share_within": round(within / settled, 6) if settled else None,
        "worst_decision_hours": round(worst[0], 2), "worst_claim": worst[1],
        "decision_hours_auto": _pcts(auto_h), "decision_hours_agents": _pcts(agent_h),
        "hours_from_arrival": _pcts(from_arrival_h),
        "peak_queued": watch.peak("queued"), "peak_in_review": watch.peak("in-review"),
        "peak_open": peak_open.open if peak_open else 0,
        "peak_open_at": _local(peak_open.virtual_us, plan.tz) if peak_open and peak_open.virtual_us else None,
    }


def _local(us: int, tz: str) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=ZoneInfo(tz)).strftime("%a %d %b %H:%M")


def fluid_week(per_day: float, capacity_per_s: float, agents: int, review_minutes: float, shifts: tuple[Shift, ...],
               review_share: float, deadline_hours: int, monday: date) -> dict:
    """EXTRAPOLATION, not a measurement: the full week in one-minute steps, FIFO by arrival (so
    by deadline), the automatic stage at ``capacity_per_s`` and the review stage at ``agents /
    review_minutes`` during shifts.  Deterministic expected arrivals from the same profile."""
    minutes = (7 * 24 + deadline_hours + 24) * 60
    arrivals = [0.0] * minutes
    for d in range(7):
        day = monday + timedelta(days=d)
        weights = hours_of(day)
        volume = day_volume(day, per_day)
        for h in range(24):
            per_min = volume * weights[h] / sum(weights) / 60
            for m in range(60):
                arrivals[d * 1440 + h * 60 + m] = per_min
    on_duty = [any(s.covers(datetime(2024, 1, 1 + (m // 1440) % 7, (m % 1440) // 60, m % 60)) for s in shifts)
               for m in range(minutes)]  # 2024-01-01 is a Monday, as the replayed week starts

    Inflow = Callable[[int], list[tuple[int, float]]]

    def serve(inflow_at: Inflow, capacity: list[float]) -> tuple[list[list[tuple[int, float]]], float, float, float]:
        """FIFO of cohorts (origin minute, amount): what leaves each minute (by origin), the peak
        backlog, the worst wait (minutes from the cohort's origin) and what is left at the end."""
        queue: deque = deque()
        out: list[list[tuple[int, float]]] = [[] for _ in range(minutes)]
        peak = worst = backlog = 0.0
        for m in range(minutes):
            for origin, amount in inflow_at(m):
                queue.append([origin, amount])
                backlog += amount
            cap = capacity[m]
            while queue and cap > 1e-9:
                take = min(queue[0][1], cap)
                queue[0][1] -= take
                cap -= take
                backlog -= take
                out[m].append((queue[0][0], take))
                worst = max(worst, m + 1 - queue[0][0])
                if queue[0][1] <= 1e-9:
                    queue.popleft()
            peak = max(peak, backlog)
        return out, peak, worst, backlog

    decided, auto_peak, auto_worst, auto_left = serve(lambda m: [(m, arrivals[m])] if arrivals[m] else [],
                                                      [capacity_per_s * 60] * minutes)
    # Pended sheets keep the age of their arrival: their deadline runs from it.
    review_cap = [agents / review_minutes if on_duty[m] else 0.0 for m in range(minutes)]
    _, review_peak, review_worst, review_left = serve(lambda m: [(o, a * review_share) for o, a in decided[m]], review_cap)
    return {
        "label": "EXTRAPOLATION (queue model from measured capacity, not a measurement)",
        "sheets": round(sum(arrivals)), "capacity_per_s": round(capacity_per_s, 1),
        "agents": agents, "review_minutes": review_minutes, "review_share": review_share,
        "auto_peak_backlog": round(auto_peak), "auto_worst_hours": round(auto_worst / 60, 2),
        "review_peak_backlog": round(review_peak), "review_worst_hours": round(review_worst / 60, 2),
        "undecided_at_end": round(auto_left + review_left),
        "within_deadline": max(auto_worst, review_worst) / 60 <= deadline_hours and auto_left + review_left < 1,
    }


def required_agents(per_day: float, review_share: float, review_minutes: float, shifts: tuple[Shift, ...]) -> int:
    """Agents whose weekly review time covers the week's reviews (a floor: ignores the timing)."""
    week_reviews = sum(per_day * w for w in DAY_WEIGHTS) * review_share
    hours = sum(s.hours_per_week() for s in shifts)
    return math.ceil(week_reviews * review_minutes / 60 / hours) if hours else 0

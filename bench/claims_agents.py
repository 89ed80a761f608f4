"""Simulated fund agents for the replayed week: they work the review queue through the API.

Agents only take work during their shifts, read on the virtual claims clock in Moroccan time
(default: Monday–Friday 08:30–16:30, the administrations' hours, and a Saturday-morning duty —
without it every review arriving after Friday's shift is due on Sunday and breaches).  A
dispatcher reads ``GET Claim/$review-queue?fund=…&status=open`` for every fund (concurrently,
at most once a second), most urgent first (escalated, then by
deadline, as the server orders it), and hands tasks to idle agents; an agent "reads the file"
for its review time (virtual minutes, so ``minutes × 60 / speedup`` real seconds), then
``POST Claim/{id}/$decide`` with a note, keeping the automatic proposal.  The ``$decide`` round
trip is taken out of the reading time (its running mean): at a speedup of 1,600 a 100 ms
request is almost three virtual minutes, which would otherwise be counted as the agent's work.
"""
from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timezone
from typing import Callable
from zoneinfo import ZoneInfo

import httpx
import orjson

from bench.claims_load import MAX_KEPT_ERRORS

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_SHIFTS = "mon-fri 08:30-16:30, sat 09:00-13:00"
_SHIFT = re.compile(r"^\s*(\w{3})(?:-(\w{3}))?\s+(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class Shift:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time

    def covers(self, local: datetime) -> bool:
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def hours_per_week(self) -> float:
        return len(self.days) * (self.end.hour * 60 + self.end.minute - self.start.hour * 60 - self.start.minute) / 60


def parse_shifts(text: str) -> tuple[Shift, ...]:
    """``"mon-fri 08:30-16:30, sat 09:00-13:00"`` -> shifts (ValueError on anything else)."""
    shifts = []
    for part in text.split(","):
        m = _SHIFT.match(part)
        if not m or m.group(1) not in DAYS or (m.group(2) and m.group(2) not in DAYS):
            raise ValueError(f"not a shift: {part.strip()!r} (expected e.g. 'mon-fri 08:30-16:30')")
        first = DAYS.index(m.group(1))
        last = DAYS.index(m.group(2)) if m.group(2) else first
        start, end = time(int(m.group(3)), int(m.group(4))), time(int(m.group(5)), int(m.group(6)))
        if last < first or end <= start:
            raise ValueError(f"empty shift: {part.strip()!r}")
        shifts.append(Shift(frozenset(range(first, last + 1)), start, end))
    return tuple(shifts)


@dataclass
class AgentStats:
    agents: int
    review_minutes: float
    decided: int = 0
    conflicts: int = 0  # 409: decided meanwhile (by another agent)
    queue_polls: int = 0
    busy_s: float = 0.0  # real seconds spent reviewing, all agents
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"agents": self.agents, "review_minutes": round(self.review_minutes, 2), "decided": self.decided,
                "conflicts": self.conflicts, "queue_polls": self.queue_polls, "busy_s": round(self.busy_s, 1),
                "statuses": dict(self.statuses), "failures": self.failures}


class Agents:
    def __init__(self, client: httpx.AsyncClient, funds: list[str], *, count: int, review_minutes: float,
                 speedup: float, clock_us: Callable[[], int], shifts: tuple[Shift, ...], tz: str,
                 due_before: str | None = None, poll_s: float = 0.1, refresh_s: float = 1.0) -> None:
        self.client, self.funds = client, funds
        self.count, self.review_s = count, review_minutes * 60 / speedup
        self.clock_us, self.shifts, self.zone = clock_us, shifts, ZoneInfo(tz)
        self.poll_s, self.refresh_s = poll_s, refresh_s
        self.due_before = due_before  # FHIR instant: tasks due later belong to other work, not this replay
        self.stats = AgentStats(count, review_minutes)
        self._working: set[str] = set()  # Claim ids being reviewed
        self._done: set[str] = set()
        self._candidates: list[tuple[int, str, str]] = []
        self._refreshed = float("-inf")
        self._decide_s = 0.0  # running mean of the $decide round trip
        self._idle = count

    def on_duty(self) -> bool:
        local = datetime.fromtimestamp(self.clock_us() / 1e6, tz=timezone.utc).astimezone(self.zone)
        return any(s.covers(local) for s in self.shifts)

    async def _fund_queue(self, fund: str, count: int) -> list[tuple[int, str, str]]:
        """(0 if escalated else 1, deadline, Claim id) of the fund's open review tasks."""
        resp = await self.client.get("/fhir/Claim/$review-queue", params={"fund": fund, "status": "open", "_count": str(count)})
        self.stats.queue_polls += 1
        if resp.status_code != 200:
            self._failed(f"GET Claim/$review-queue?fund={fund} -> {resp.status_code}: {resp.text}")
            return []
        out = []
        for entry in orjson.loads(resp.content).get("entry") or []:
            task = entry.get("resource") or {}
            if task.get("resourceType") != "Task":
                continue
            due = task.get("restriction", {}).get("period", {}).get("end", "")
            if self.due_before is None or due < self.due_before:
                out.append((0 if task.get("priority") == "urgent" else 1, due, task["focus"]["reference"].split("/", 1)[1]))
        return out

    async def _refresh(self) -> None:
        count = 2 * self.count + len(self._working)
        try:
            queues = await asyncio.gather(*(self._fund_queue(f, count) for f in self.funds))
        except httpx.HTTPError as exc:
            self._failed(f"GET Claim/$review-queue: {type(exc).__name__}: {exc}")
            queues = []
        self._candidates = sorted(t for q in queues for t in q if t[2] not in self._working and t[2] not in self._done)
        self._refreshed = asyncio.get_running_loop().time()

    async def _review(self, agent: int, claim_id: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(max(0.0, self.review_s - self._decide_s))
            self.stats.busy_s += self.review_s
            body = {"resourceType": "Parameters", "parameter": [
                {"name": "note", "valueString": "Dossier examiné : proposition de la liquidation confirmée"},
                {"name": "agent", "valueString": f"bench-agent-{agent}"}]}
            sent = loop.time()
            resp = await self.client.post(f"/fhir/Claim/{claim_id}/$decide", content=orjson.dumps(body))
            self._decide_s = 0.8 * self._decide_s + 0.2 * (loop.time() - sent) if self._decide_s else loop.time() - sent
            self.stats.statuses[str(resp.status_code)] += 1
            if resp.status_code == 200:
                self.stats.decided += 1
            elif resp.status_code == 409:
                self.stats.conflicts += 1
            else:
                self._failed(f"POST Claim/{claim_id}/$decide -> {resp.status_code}: {resp.text}")
        except httpx.HTTPError as exc:
            self._failed(f"POST Claim/{claim_id}/$decide: {type(exc).__name__}: {exc}")
        finally:
            self._working.discard(claim_id)
            self._done.add(claim_id)
            self._idle += 1

    def _failed(self, what: str) -> None:
        if len(self.stats.failures) < MAX_KEPT_ERRORS:
            self.stats.failures.append(what[:600])

    async def run(self, stop: asyncio.Event) -> AgentStats:
        """Dispatch reviews until ``stop``; reviews under way are finished first."""
        loop = asyncio.get_running_loop()
        reviews: set[asyncio.Task] = set()
        next_agent = 0
        while not stop.is_set():
            if self._idle and self.on_duty():
                if loop.time() - self._refreshed >= self.refresh_s:  # an empty queue is not polled harder
                    await self._refresh()
                while self._idle and self._candidates:
                    _, _, claim_id = self._candidates.pop(0)
                    if claim_id in self._working or claim_id in self._done:
                        continue
                    self._idle -= 1
                    self._working.add(claim_id)
                    next_agent = next_agent % self.count + 1
                    task = asyncio.create_task(self._review(next_agent, claim_id))
                    reviews.add(task)
                    task.add_done_callback(reviews.discard)
            try:
                await asyncio.wait_for(stop.wait(), self.poll_s)
            except asyncio.TimeoutError:
                pass
        if reviews:
            await asyncio.gather(*reviews)
        return self.stats

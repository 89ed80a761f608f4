"""HTTP load of the claims benchmark, and the ledger it is checked against.

* ``Sender``: the provider side — prerequisites (prescription, dispense) as a ``transaction`` of
  ``PUT`` entries, care sheets and rights checks as a ``batch`` of ``POST`` entries — counting
  every entry's status and keeping the first failures (request, status, body) for the report;
* ``open_loop``: single POSTs on a fixed arrival schedule (open loop: a slow answer does not
  delay the next request, so latency includes queueing), nearest-rank percentiles;
* ``LedgerWatch``: the ``claim_ledger`` table polled directly (a benchmark may): status counts
  over time, the queue depth, decided pre-authorisations.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import orjson
import psycopg

from bench.latency import Latency, percentile

FHIR_HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
MAX_KEPT_ERRORS = 5


def _entry_put(res: dict) -> dict:
    return {"resource": res, "request": {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}}


def _entry_post(res: dict) -> dict:
    return {"resource": res, "request": {"method": "POST", "url": res["resourceType"]}}


def transaction_of(resources: list[dict]) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [_entry_put(r) for r in resources]})


def batch_of(resources: list[dict]) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": [_entry_post(r) for r in resources]})


@dataclass
class SendStats:
    """What the server answered, entry by entry."""

    requests: int = 0
    entries: Counter = field(default_factory=Counter)  # "Claim 201" -> n
    failures: list[str] = field(default_factory=list)  # the first few, verbatim enough to report
    seconds: list[float] = field(default_factory=list)  # per HTTP request

    def failed(self, what: str) -> None:
        if len(self.failures) < MAX_KEPT_ERRORS:
            self.failures.append(what[:600])

    def ok(self, res_type: str) -> int:
        return sum(n for k, n in self.entries.items() if k.startswith(res_type + " 2"))

    def bad(self) -> int:
        return sum(n for k, n in self.entries.items() if not k.split(" ")[1].startswith("2"))

    def to_json(self) -> dict:
        s = sorted(self.seconds)
        return {"requests": self.requests, "entries": dict(self.entries), "failures": self.failures,
                "request_p50_ms": round(percentile(s, 50) * 1000, 1) if s else None,
                "request_p99_ms": round(percentile(s, 99) * 1000, 1) if s else None}


class Sender:
    def __init__(self, client: httpx.AsyncClient, stats: SendStats | None = None) -> None:
        self.client, self.stats = client, stats or SendStats()

    async def _post(self, path: str, body: bytes) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            resp = await self.client.post(path, content=body)
        except httpx.HTTPError as exc:
            self.stats.failed(f"POST {path}: {type(exc).__name__}: {exc}")
            self.stats.entries[f"{path} {type(exc).__name__}"] += 1
            return None
        finally:
            self.stats.requests += 1
            self.stats.seconds.append(time.perf_counter() - t0)
        return resp

    async def prerequisites(self, resources: list[dict]) -> bool:
        """The prescriptions and dispenses, all or nothing (``PUT``: a rerun rewrites them)."""
        if not resources:
            return True
        resp = await self._post("/fhir", transaction_of(resources))
        if resp is None:
            return False
        if resp.status_code != 200:
            self.stats.entries[f"transaction {resp.status_code}"] += 1
            self.stats.failed(f"POST /fhir (transaction of {len(resources)} prerequisites) -> {resp.status_code}: {resp.text}")
            return False
        self.stats.entries["transaction 200"] += 1
        return True

    async def batch(self, resources: list[dict]) -> list[dict | None]:
        """POST them as one batch; each entry's response (None where the whole request failed)."""
        resp = await self._post("/fhir", batch_of(resources))
        if resp is None:
            return [None] * len(resources)
        if resp.status_code != 200:
            for r in resources:
                self.stats.entries[f"{r['resourceType']} batch-{resp.status_code}"] += 1
            self.stats.failed(f"POST /fhir (batch of {len(resources)}) -> {resp.status_code}: {resp.text}")
            return [None] * len(resources)
        entries = orjson.loads(resp.content).get("entry") or []
        out = []
        for res, entry in zip(resources, entries):
            response = entry.get("response") or {}
            status = str(response.get("status", "?")).split(" ")[0]
            self.stats.entries[f"{res['resourceType']} {status}"] += 1
            if not status.startswith("2"):
                ident = (res.get("identifier") or [{}])[0].get("value", "")
                self.stats.failed(f"batch entry POST {res['resourceType']} {ident} -> {status}: "
                                  f"{orjson.dumps(response.get('outcome') or entry.get('resource')).decode()}")
            out.append(response)
        return out


@dataclass
class OpenLoop:
    latency: Latency
    achieved_per_s: float  # answers per second, first scheduled request to last answer

    def to_json(self) -> dict:
        return {**self.latency.to_json(), "achieved_per_s": round(self.achieved_per_s, 1)}


async def open_loop(client: httpx.AsyncClient, path: str, bodies: list[bytes], rate: float, duration_s: float) -> OpenLoop:
    """POST ``bodies`` to ``path`` at ``rate``/s for ``duration_s`` (at most len(bodies) requests);
    a request's latency runs from its scheduled instant to its answer.  When the server answers
    fewer than ``rate`` a second, latency grows with the run: ``achieved_per_s`` says so."""
    loop = asyncio.get_running_loop()
    count = min(len(bodies), int(rate * duration_s))
    out, samples = Latency(), []
    start = loop.time() + 0.05

    async def one(i: int, due: float) -> None:
        try:
            resp = await client.post(path, content=bodies[i])
            status = str(resp.status_code)
        except httpx.HTTPError as exc:
            resp, status = None, type(exc).__name__
        elapsed = (loop.time() - due) * 1000
        out.requests += 1
        out.statuses[status] = out.statuses.get(status, 0) + 1
        if resp is not None and resp.status_code in (200, 201):
            out.ok += 1
            samples.append(elapsed)
        elif not out.first_error:
            out.first_error = f"{status} POST {path} {resp.text[:300] if resp is not None else ''}"

    tasks = []
    for i in range(count):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    achieved = out.requests / (loop.time() - start) if count else 0.0
    samples.sort()
    if samples:
        out.p50_ms, out.p95_ms = percentile(samples, 50), percentile(samples, 95)
        out.p99_ms, out.max_ms = percentile(samples, 99), samples[-1]
    return OpenLoop(out, achieved)


@dataclass
class Sample:
    t: float  # seconds since the watch started (real)
    virtual_us: int | None
    counts: dict[str, int]  # ledger status -> rows

    @property
    def open(self) -> int:
        return self.counts.get("queued", 0) + self.counts.get("in-review", 0)


class LedgerWatch:
    """Polls ``claim_ledger`` rows received in [``since_us``, ``until_us``) (one connection, autocommit)."""

    WINDOW = "received_at >= %s AND received_at < %s"

    def __init__(self, dsn: str, since_us: int, until_us: int = 2**62) -> None:
        self.dsn, self.since_us, self.until_us = dsn, since_us, until_us
        self.samples: list[Sample] = []
        self._conn: psycopg.AsyncConnection | None = None
        self._t0 = time.monotonic()

    async def __aenter__(self) -> "LedgerWatch":
        self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._conn.close()

    async def poll(self, virtual_us: int | None = None) -> Sample:
        rows = await (await self._conn.execute(
            f"SELECT status, count(*) FROM claim_ledger WHERE {self.WINDOW} GROUP BY status",
            (self.since_us, self.until_us))).fetchall()
        sample = Sample(round(time.monotonic() - self._t0, 2), virtual_us, {s: n for s, n in rows})
        self.samples.append(sample)
        return sample

    async def decided_preauths(self) -> dict[tuple[str, str], str | None]:
        """(provider INPE, sheet number) -> pre-authorisation number (None: refused), decided ones."""
        rows = await (await self._conn.execute(
            "SELECT provider_inpe, claim_identifier, preauth_ref FROM claim_ledger "
            f"WHERE {self.WINDOW} AND use = 'preauthorization' AND status <> 'queued'",
            (self.since_us, self.until_us))).fetchall()
        return {(inpe, ident): ref for inpe, ident, ref in rows}

    async def rows(self, query: str, *params) -> list[tuple]:
        """``query``'s rows; it says ``{window}`` where the received_at window goes (two parameters first)."""
        return await (await self._conn.execute(query.format(window=self.WINDOW),
                                                (self.since_us, self.until_us, *params))).fetchall()

    def peak(self, status: str | None = None) -> int:
        return max(((s.open if status is None else s.counts.get(status, 0)) for s in self.samples), default=0)

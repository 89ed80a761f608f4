"""Single-client latency: one connection, requests one after another, bounded in count and time.

This is what one clinician's screen waits for, without queueing behind other clients (wrk
measures the loaded case).  Percentiles use the nearest-rank method on successful responses.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

import httpx


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (p in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Latency:
    requests: int = 0
    ok: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    p50_ms: float = float("nan")
    p95_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    first_error: str = ""

    @property
    def error_ratio(self) -> float:
        return 1 - self.ok / self.requests if self.requests else 1.0

    def to_json(self) -> dict:
        def r(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 2)

        return {"requests": self.requests, "ok": self.ok, "statuses": self.statuses, "p50_ms": r(self.p50_ms),
                "p95_ms": r(self.p95_ms), "p99_ms": r(self.p99_ms), "max_ms": r(self.max_ms),
                "first_error": self.first_error}


def measure(
    base: str, paths: tuple[str, ...], *, count: int = 200, budget_s: float = 20.0, warmup: int = 5,
    headers: dict[str, str] | None = None, rng: random.Random | None = None,
) -> Latency:
    """GET random ``paths`` (absolute paths on ``base``) sequentially over one keep-alive connection."""
    rng = rng or random.Random(0)
    out = Latency()
    samples: list[float] = []
    hdrs = {"Accept": "application/fhir+json", **(headers or {})}
    with httpx.Client(base_url=base, headers=hdrs, timeout=30.0) as client:
        for _ in range(warmup):  # connection set-up and first-use caches are not what we measure
            try:
                client.get(rng.choice(paths))
            except httpx.HTTPError:
                break
        deadline = time.monotonic() + budget_s
        while out.requests < count and time.monotonic() < deadline:
            path = rng.choice(paths)
            t0 = time.perf_counter()
            try:
                resp = client.get(path)
                status = str(resp.status_code)
            except httpx.HTTPError as exc:
                resp, status = None, type(exc).__name__
            elapsed = (time.perf_counter() - t0) * 1000
            out.requests += 1
            out.statuses[status] = out.statuses.get(status, 0) + 1
            if resp is not None and resp.status_code == 200:
                out.ok += 1
                samples.append(elapsed)
            elif not out.first_error:
                body = resp.text[:300].replace("\n", " ") if resp is not None else ""
                out.first_error = f"{status} {path[:160]} {body}"
    samples.sort()
    if samples:
        out.p50_ms, out.p95_ms = percentile(samples, 50), percentile(samples, 95)
        out.p99_ms, out.max_ms = percentile(samples, 99), samples[-1]
    return out

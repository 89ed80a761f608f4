"""Load the synthetic population into any FHIR server over HTTP, as transaction Bundles.

The reference population goes first (patients point to it), then one Bundle per patient,
``concurrency`` requests in flight.  Bundles come from the generator, or pre-serialised from
the caller (the benchmark does that so generation time is not counted as server time).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import httpx
import orjson

from ehr.demo.generator import DEFAULT_PER_PATIENT, patient_bundles, reference_bundle

FHIR_JSON = "application/fhir+json"
MAX_ERRORS_KEPT = 5


@dataclass
class LoadResult:
    bundles: int = 0
    resources: int = 0
    failed_bundles: int = 0
    seconds: float = 0.0
    stopped_early: bool = False  # the time budget ran out before the source did
    errors: list[str] = field(default_factory=list)  # the first few failures, for the report

    @property
    def resources_per_s(self) -> float:
        return self.resources / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {
            "bundles": self.bundles, "resources": self.resources, "failed_bundles": self.failed_bundles,
            "seconds": round(self.seconds, 3), "resources_per_s": round(self.resources_per_s, 1),
            "stopped_early": self.stopped_early, "errors": self.errors,
        }


def serialised(bundles: Iterable[dict]) -> Iterator[tuple[bytes, int]]:
    """(body, entry count) pairs, the form ``load_over_http`` sends."""
    for b in bundles:
        yield orjson.dumps(b), len(b["entry"])


def _headers(token: str | None) -> dict[str, str]:
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _failure(resp: httpx.Response) -> str:
    text = resp.text[:400].replace("\n", " ")
    return f"HTTP {resp.status_code}: {text}"


async def _post(client: httpx.AsyncClient, url: str, body: bytes, n: int, result: LoadResult) -> None:
    try:
        resp = await client.post(url, content=body)
    except httpx.HTTPError as exc:
        ok, why = False, f"{type(exc).__name__}: {exc}"
    else:
        ok = resp.status_code == 200
        why = "" if ok else _failure(resp)
    result.bundles += 1
    if ok:
        result.resources += n
    else:
        result.failed_bundles += 1
        if len(result.errors) < MAX_ERRORS_KEPT:
            result.errors.append(why)


async def load_over_http(
    base_url: str,
    n_patients: int,
    seed: int = 1,
    concurrency: int = 8,
    token: str | None = None,
    *,
    heavy_every: int = 0,
    per_patient: int = DEFAULT_PER_PATIENT,
    include_reference: bool = True,
    bundles: Iterable[tuple[bytes, int]] | None = None,
    progress: bool = False,
    timeout: float = 300.0,
    transport: httpx.AsyncBaseTransport | None = None,
    time_budget_s: float | None = None,
) -> LoadResult:
    """POST the population's transaction Bundles to ``base_url`` (the FHIR base, e.g. .../fhir).

    ``bundles`` replaces the generated patient bundles (pre-serialised ``(body, entries)``);
    the reference bundle is still sent first unless ``include_reference`` is false.  Failed
    bundles are counted, not raised: a partial load is still worth a report.  With
    ``time_budget_s``, no new bundle is started once it has elapsed (those in flight finish), so
    the bundles sent are always a prefix of the source.
    """
    result = LoadResult()
    source = iter(bundles if bundles is not None else serialised(
        patient_bundles(n_patients, seed, heavy_every=heavy_every, per_patient=per_patient)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    url = base_url.rstrip("/")  # POST [base], exactly
    async with httpx.AsyncClient(headers=_headers(token), timeout=timeout, limits=limits, transport=transport) as client:
        bar = _progress(progress, n_patients)
        started = time.perf_counter()
        try:
            if include_reference:
                body, n = next(serialised([reference_bundle(seed)]))
                await _post(client, url, body, n, result)

            deadline = started + time_budget_s if time_budget_s is not None else None

            async def worker() -> None:
                for body, n in source:  # one shared iterator: each bundle is taken exactly once
                    if deadline is not None and time.perf_counter() > deadline:
                        result.stopped_early = True
                        return
                    await _post(client, url, body, n, result)
                    if bar is not None:
                        bar[0].advance(bar[1])

            await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
        finally:
            result.seconds = time.perf_counter() - started
            if bar is not None:
                bar[0].stop()
    return result


def _progress(enabled: bool, total: int):
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("loading patients"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    task = bar.add_task("load", total=total)
    bar.start()
    return bar, task

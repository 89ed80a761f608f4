"""The benchmark's verdict: targets checked against a run's results, written as Markdown + JSON.

``results`` is the plain dict the harness assembles (see ``bench.harness``); everything here
reads only that dict, so a report can be regenerated from a saved ``.json``.
A measurement whose requests mostly failed is "n/a", never "met": errors are cheap answers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import orjson

MAX_ERROR_RATIO = 0.01


@dataclass(frozen=True)
class Verdict:
    measured: str
    met: bool | None  # None: not measured, or measured with too many errors
    why: str = ""


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    goal: str
    check: Callable[[dict], Verdict]


def _wrk(results: dict, key: str) -> dict | None:
    return (results.get("wrk") or {}).get(key)


def _usable(run: dict | None) -> str:
    """Why a wrk/latency measurement cannot be judged ('' when it can)."""
    if not run:
        return "not measured"
    if run.get("skipped"):
        return run["skipped"]
    ratio = run.get("error_ratio", 0.0)
    if ratio > MAX_ERROR_RATIO:
        return f"{ratio:.0%} of requests failed"
    return ""


def _ok_rps(run: dict) -> float:
    return run["rps"] * (1 - min(1.0, run.get("error_ratio", 0.0)))


def _read_throughput(results: dict) -> Verdict:
    server, floor = _wrk(results, "read"), _wrk(results, "read_floor")
    why = _usable(server) or _usable(floor)
    if why:
        return Verdict("—", None, why)
    ratio = _ok_rps(server) / _ok_rps(floor) if _ok_rps(floor) else 0.0
    return Verdict(f"{_ok_rps(server):,.0f} req/s = {ratio:.2f} × floor ({_ok_rps(floor):,.0f})", ratio >= 0.6)


def _read_p99(results: dict) -> Verdict:
    server, floor = _wrk(results, "read"), _wrk(results, "read_floor")
    why = _usable(server) or _usable(floor)
    if why:
        return Verdict("—", None, why)
    s, f = server["latency_ms"].get("p99"), floor["latency_ms"].get("p99")
    if s is None or not f:
        return Verdict("—", None, "no latency distribution")
    return Verdict(f"{s:.2f} ms = {s / f:.2f} × floor p99 ({f:.2f} ms)", s <= 1.5 * f)


def _ingest(results: dict) -> Verdict:
    ing = results.get("ingest")
    if not ing:
        return Verdict("—", None, "not measured")
    if ing["bundles"] and ing["failed_bundles"] / ing["bundles"] > MAX_ERROR_RATIO:
        return Verdict(f"{ing['resources_per_s']:,.0f} res/s", None,
                       f"{ing['failed_bundles']} of {ing['bundles']} bundles failed")
    return Verdict(f"{ing['resources_per_s']:,.0f} resources/s", ing["resources_per_s"] >= 1500)


def _creates(results: dict) -> Verdict:
    run = _wrk(results, "create")
    why = _usable(run)
    if why:
        return Verdict("—", None, why)
    return Verdict(f"{_ok_rps(run):,.0f} req/s", _ok_rps(run) >= 800)


def _p95(key: str, limit_ms: float) -> Callable[[dict], Verdict]:
    def check(results: dict) -> Verdict:
        lat = (results.get("latency") or {}).get(key)
        if not lat:
            return Verdict("—", None, "not measured")
        if lat.get("skipped"):
            return Verdict("—", None, lat["skipped"])
        if not lat["requests"] or lat["ok"] / lat["requests"] < 1 - MAX_ERROR_RATIO or lat["p95_ms"] is None:
            failed = lat["requests"] - lat["ok"]
            return Verdict("—", None, f"{failed} of {lat['requests']} requests failed {lat.get('first_error', '')[:120]}")
        return Verdict(f"{lat['p95_ms']:.1f} ms (n={lat['ok']})", lat["p95_ms"] < limit_ms)

    return check


def _memory(results: dict) -> Verdict:
    mem = results.get("memory")
    if not mem or not mem.get("samples"):
        return Verdict("—", None, "not measured")
    return Verdict(f"{mem['max_worker_rss_mb']:.0f} MB peak RSS", mem["max_worker_rss_mb"] < 300)


TARGETS = (
    Target("read_throughput", "Read by id, 32 connections", "≥ 0.6 × read floor req/s", _read_throughput),
    Target("read_p99", "Read by id p99, 32 connections", "≤ 1.5 × read floor p99", _read_p99),
    Target("ingest", "Transaction ingest", "≥ 1,500 resources/s", _ingest),
    Target("creates", "Single creates (POST Patient)", "≥ 800 req/s", _creates),
    Target("search_token", "Token search p95 (1 client)", "< 10 ms", _p95("search_token", 10)),
    Target("search_identifier", "Identifier search p95 (1 client)", "< 10 ms", _p95("search_identifier", 10)),
    Target("search_date_sort", "Date range + _sort p95 (1 client)", "< 30 ms", _p95("search_date_sort", 30)),
    Target("search_chained", "Chained search p95 (1 client)", "< 50 ms", _p95("search_chained", 50)),
    Target("search_has", "_has p95 (1 client)", "< 50 ms", _p95("search_has", 50)),
    Target("search_total", "_total=accurate over the store p95 (1 client)", "< 200 ms", _p95("search_total", 200)),
    Target("everything", "$everything of a ~500-resource patient p95 (1 client)", "< 150 ms", _p95("everything", 150)),
    Target("memory", "Server memory per worker", "< 300 MB", _memory),
)


def evaluate(results: dict, targets: tuple | list | None = None) -> list[dict]:
    out = []
    for t in targets if targets is not None else TARGETS:
        v = t.check(results)
        out.append({"key": t.key, "label": t.label, "goal": t.goal, "measured": v.measured, "met": v.met, "why": v.why})
    return out


def _status(met: bool | None) -> str:
    return "met" if met else ("MISSED" if met is False else "n/a")


def _fmt(x, digits: int = 2) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def render_markdown(results: dict) -> str:
    targets = results.get("targets") or evaluate(results)
    cfg, machine = results.get("config", {}), results.get("machine", {})
    met = sum(1 for t in targets if t["met"])
    missed = sum(1 for t in targets if t["met"] is False)
    lines = [
        f"# Sijill benchmark — {results.get('date', '')}",
        "",
        f"{met} targets met, {missed} missed, {len(targets) - met - missed} not measurable, "
        f"on {_fmt(cfg.get('patients'))} patients "
        f"({_fmt((results.get('data') or {}).get('stored', {}).get('resources'))} resources stored). "
        f"Run: `{results.get('command', 'python -m bench.harness')}`.",
        "",
        "## Targets",
        "",
        "| Target | Goal | Measured | Status |",
        "| --- | --- | --- | --- |",
    ]
    for t in targets:
        status = _status(t["met"]) + (f" ({t['why']})" if t["why"] else "")
        lines.append(f"| {t['label']} | {t['goal']} | {t['measured']} | {status} |")

    wrk_runs = results.get("wrk") or {}
    if wrk_runs:
        lines += ["", f"## Throughput under load (wrk, {cfg.get('connections')} connections, "
                      f"{cfg.get('duration_s')} s each)", "",
                  "| Scenario | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | requests | errors |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        labels = results.get("labels", {})
        for key, run in wrk_runs.items():
            if run.get("skipped"):
                lines.append(f"| {labels.get(key, key)} | — | — | — | — | — | — | — | {run['skipped']} |")
                continue
            lat = run.get("latency_ms", {})
            errs = run.get("errors", {})
            err_txt = ", ".join(f"{k} {v}" for k, v in errs.items() if v) or "0"
            lines.append(
                f"| {labels.get(key, key)} | {_fmt(run['rps'], 0)} | {_fmt(lat.get('p50'))} | {_fmt(lat.get('p90'))} | "
                f"{_fmt(lat.get('p99'))} | {_fmt(lat.get('p999'))} | {_fmt(lat.get('max'))} | {_fmt(run['requests'])} | "
                f"{err_txt} |")

    lat_runs = results.get("latency") or {}
    if lat_runs:
        lines += ["", "## Single-client latency (sequential requests, one connection)", "",
                  "| Scenario | requests | ok | p50 ms | p95 ms | p99 ms | max ms | statuses |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        labels = results.get("labels", {})
        for key, lat in lat_runs.items():
            if lat.get("skipped"):
                lines.append(f"| {labels.get(key, key)} | — | — | — | — | — | — | {lat['skipped']} |")
                continue
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(lat["statuses"].items()))
            lines.append(f"| {labels.get(key, key)} | {lat['requests']} | {lat['ok']} | {_fmt(lat['p50_ms'])} | "
                         f"{_fmt(lat['p95_ms'])} | {_fmt(lat['p99_ms'])} | {_fmt(lat['max_ms'])} | {statuses} |")

    ing, floors = results.get("ingest"), results.get("floors") or {}
    lines += ["", "## Writes", ""]
    if ing:
        lines.append(f"- Transaction ingest over HTTP ({cfg.get('load_concurrency')} in flight): "
                     f"{_fmt(ing['resources'])} resources in {_fmt(ing['bundles'])} bundles, {ing['seconds']:.1f} s → "
                     f"**{_fmt(ing['resources_per_s'], 0)} resources/s**; failed bundles: {ing['failed_bundles']}.")
        for err in ing.get("errors", [])[:3]:
            lines.append(f"  - `{err[:200]}`")
    if floors.get("insert"):
        fi = floors["insert"]
        ratio = ""
        if ing and fi["rows_per_s"]:
            ratio = f" (server ingest = {ing['resources_per_s'] / fi['rows_per_s']:.2f} × this floor)"
        lines.append(f"- Write floor, raw psycopg `executemany` of the same resources into a scratch table: "
                     f"{_fmt(fi['rows'])} rows, **{_fmt(fi['rows_per_s'], 0)} rows/s**{ratio}.")
    if floors.get("read_table"):
        lines.append(f"- Read floor served from table `{floors['read_table']}` (Starlette + psycopg pool, "
                     f"uvicorn uvloop/httptools, {cfg.get('workers')} workers).")

    mem = results.get("memory")
    if mem and mem.get("processes"):
        lines += ["", f"## Server memory ({mem['samples']} samples)", "",
                  "| pid | role | peak RSS MB | last RSS MB | command |", "| ---: | --- | ---: | ---: | --- |"]
        for p in mem["processes"]:
            lines.append(f"| {p['pid']} | {p['role']} | {p['peak_rss_mb']} | {p['last_rss_mb']} | `{p['cmd'][:80]}` |")

    data = results.get("data") or {}
    gen, stored = data.get("generated") or {}, data.get("stored") or {}
    lines += ["", "## Data", ""]
    if gen:
        lines.append(f"- Generated: {_fmt(gen.get('patients'))} patients, {_fmt(gen.get('resources'))} resources "
                     f"({_fmt(gen.get('generated_per_s'), 0)} resources/s generation); heavy patients: "
                     + (", ".join(f"{k} ({v})" for k, v in (gen.get('heavy') or {}).items()) or "none") + ".")
    if stored:
        lines.append(f"- Stored after the run: {_fmt(stored.get('resources'))} resources, database "
                     f"{_fmt(stored.get('database_mb'))} MB.")
        if stored.get("by_type"):
            lines.append("- By type: " + ", ".join(f"{k} {v:,}" for k, v in stored["by_type"].items()) + ".")

    if machine:
        lines += ["", "## Machine", ""]
        lines += [f"- {k}: {v}" for k, v in machine.items()]
    if cfg:
        lines += ["", "## Configuration", ""]
        lines += [f"- {k}: {v}" for k, v in cfg.items()]
    notes = results.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write(results: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<date>.md`` and ``<date>.json`` (a later run the same day replaces them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {**results, "targets": evaluate(results)}
    stem = results.get("date") or "undated"
    md, js = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    js.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    md.write_text(render_markdown(results))
    return md, js

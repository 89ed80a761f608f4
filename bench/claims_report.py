"""The claims benchmark's verdict: targets, each with its floor ratio, as Markdown + JSON.

``results`` is the plain dict ``bench.claims_replay`` assembles; everything here reads only
that dict, so a report can be regenerated from its ``.json``.  Figures follow the harness's
rules (``bench/report.py``): a measurement whose requests mostly failed is "n/a", never "met".
"""
from __future__ import annotations

import pstats
from pathlib import Path

import orjson

from bench import report
from bench.report import MAX_ERROR_RATIO, Target, Verdict, _fmt, _status

AUTO_RATE_GOAL = 300.0  # claims/s, submission to decision
NATIONAL_DAY_GOAL_S = 120.0
SUBMIT_P99_GOAL_MS = 150.0
ELIGIBILITY_P99_GOAL_MS = 50.0


def _ratio(x: float | None, floor: float | None) -> str:
    return f"{x / floor:.3f}" if x and floor else "—"


def _throughput(results: dict) -> Verdict:
    tp = results.get("throughput")
    if not tp or not tp.get("auto_decided"):
        return Verdict("—", None, (tp or {}).get("skipped", "not measured"))
    rate = tp["auto_rate"]
    floors = results.get("floors") or {}
    http = (floors.get("http_batch") or {}).get("rows_per_s")
    raw = (floors.get("insert") or {}).get("rows_per_s")
    return Verdict(f"{rate:,.1f} claims/s = {_ratio(rate, http)} × HTTP batch floor ({_fmt(http, 0)} rows/s) "
                   f"= {_ratio(rate, raw)} × raw insert floor ({_fmt(raw, 0)} rows/s)", rate >= AUTO_RATE_GOAL)


def _national_day(results: dict) -> Verdict:
    tp = results.get("throughput")
    if not tp or not tp.get("auto_decided"):
        return Verdict("—", None, "not measured")
    at_rate = 28_000 / tp["auto_rate"]
    if tp["sheets"] < 28_000:
        return Verdict(f"≈ {at_rate:,.0f} s at the measured rate", at_rate < NATIONAL_DAY_GOAL_S,
                       f"only {tp['sheets']:,} sheets were submitted within the budget")
    return Verdict(f"{tp['processed_seconds']:,.0f} s for {tp['sheets']:,} sheets (all processed)",
                   tp["processed_seconds"] < NATIONAL_DAY_GOAL_S)


def _p99(key: str, floor_key: str, goal_ms: float):
    def check(results: dict) -> Verdict:
        lat = (results.get("latency") or {}).get(key)
        if not lat:
            return Verdict("—", None, "not measured")
        if not lat["requests"] or lat["ok"] / lat["requests"] < 1 - MAX_ERROR_RATIO or lat["p99_ms"] is None:
            return Verdict("—", None, f"{lat['requests'] - lat['ok']} of {lat['requests']} failed {lat.get('first_error', '')[:160]}")
        floor = ((results.get("floors") or {}).get(floor_key) or {}).get("p99_ms")
        return Verdict(f"{lat['p99_ms']:.1f} ms = {_ratio(lat['p99_ms'], floor)} × floor p99 ({_fmt(floor)} ms), "
                       f"n={lat['ok']}", lat["p99_ms"] < goal_ms)

    return check


def _week(results: dict) -> Verdict:
    wk = (results.get("week") or {}).get("verdict")
    if not wk or not wk.get("rows"):
        return Verdict("—", None, (results.get("week") or {}).get("skipped", "not measured"))
    plan = results["week"]["plan"]
    share = wk["share_within"]
    text = (f"{share:.2%} of {wk['rows']:,} ledger rows within 48 h (sample f={plan['sample']:.4%} of "
            f"{plan['week_total_full']:,}); worst {wk['worst_decision_hours']:.1f} h")
    return Verdict(text, share == 1.0 and wk["late_undecided"] == 0 and wk["open_in_time"] == 0)


def _capacity(results: dict) -> Verdict:
    tp, plan = results.get("throughput"), (results.get("week") or {}).get("plan")
    if not tp or not tp.get("auto_decided") or not plan:
        return Verdict("—", None, "not measured")
    need = plan["peak_rate_full_per_s"]
    return Verdict(f"measured {tp['auto_rate']:,.1f} claims/s vs required {need:,.1f}/s in the busiest hour",
                   tp["auto_rate"] >= need)


TARGETS = (
    Target("auto_throughput", "Automatically decidable claims, submission → decision", "≥ 300 claims/s", _throughput),
    Target("national_day", "The national day (28,000 sheets) submitted and decided", "< 120 s", _national_day),
    Target("submit_p99", "Submission p99 (single POST Claim, open loop)", "< 150 ms",
           _p99("submit", "http_single", SUBMIT_P99_GOAL_MS)),
    Target("eligibility_p99", "Eligibility p99 (POST CoverageEligibilityRequest, open loop)", "< 50 ms",
           _p99("eligibility", "http_single", ELIGIBILITY_P99_GOAL_MS)),
    Target("week_48h", "Replayed week at 10× national volume, agents simulated", "100 % decided within 48 h", _week),
    Target("week_capacity", "Decision capacity vs 10× national busiest hour (real time)", "measured ≥ required",
           _capacity),
)


def evaluate(results: dict) -> list[dict]:
    return report.evaluate(results, TARGETS)


# The worker's stages, by the functions that run them (cumulative time, nested calls included).
STAGES = (("claims/worker.py", "escalate", "escalation scan"), ("claims/queue.py", "lease", "leasing jobs"),
          ("claims/adjudication/facts.py", "load_facts", "loading facts"),
          ("claims/adjudication/engine.py", "adjudicate", "adjudication rules"),
          ("claims/recording.py", "record_decisions", "recording decisions"),
          ("claims/recording.py", "record_pend", "recording pends"),
          ("ehr/interactions/context.py", "store_many", "versioned writes (ClaimResponse, EOB)"),
          ("ehr/store/repository.py", "flush_index", "search index rows"),
          ("claims/notify.py", "deliver_due", "notification delivery"),
          ("ehr/store/db.py", "write_transaction", "transactions (begin/commit)"))


def profile_summary(path: Path, top: int = 15) -> dict:
    """The profiled worker's costs: its stages, own time per area, the top functions by own time."""
    stats = pstats.Stats(str(path))
    total = stats.total_tt or 1e-9
    rows, areas, stages = [], {}, {}
    for (file, line, func), (_cc, calls, tt, ct, _callers) in stats.stats.items():
        area = _area(file, func)
        areas[area] = areas.get(area, 0.0) + tt
        rows.append((tt, ct, calls, f"{_short(file)}:{line}({func})"))
        for suffix, name, label in STAGES:
            if func == name and file.endswith(suffix):
                stages[label] = stages.get(label, 0.0) + ct
    rows.sort(reverse=True)
    return {
        "total_s": round(total, 2),
        "stages": {k: round(v / total, 4) for k, v in sorted(stages.items(), key=lambda kv: -kv[1])},
        "top_own_time": [{"function": f, "own_s": round(tt, 3), "cumulative_s": round(ct, 3), "calls": n,
                          "share": round(tt / total, 4)} for tt, ct, n, f in rows[:top]],
        "by_area": {k: round(v / total, 4) for k, v in sorted(areas.items(), key=lambda kv: -kv[1])},
    }


_AREAS = (("/claims/adjudication/", "adjudication (claims/adjudication)"), ("/claims/", "claims (recording, queue, worker)"),
          ("/ehr/search/", "search index extraction (ehr/search)"), ("/ehr/store/", "store (ehr/store)"),
          ("/ehr/", "ehr (hooks, validation)"), ("/profiles/", "profiles (reference, validation)"),
          ("fhir", "fhir.resources / pydantic"), ("pydantic", "fhir.resources / pydantic"),
          ("sqlalchemy", "SQLAlchemy"), ("psycopg", "psycopg (driver)"), ("asyncio", "asyncio / event loop"),
          ("selectors", "asyncio / event loop"))
_C_CALLS = (("epoll", "waiting on PostgreSQL (epoll)"), ("orjson", "orjson (JSON)"), ("psycopg", "psycopg (driver)"),
            ("pydantic", "fhir.resources / pydantic"), ("sqlalchemy", "SQLAlchemy"))


def _area(file: str, func: str) -> str:
    if file == "~":  # a C function: named by what it is
        return next((label for key, label in _C_CALLS if key in func), "other C calls")
    return next((label for key, label in _AREAS if key in file), "other Python")


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def render_markdown(results: dict) -> str:
    targets = results.get("targets") or evaluate(results)
    met = sum(1 for t in targets if t["met"])
    missed = sum(1 for t in targets if t["met"] is False)
    lines = [f"# Sijill claims benchmark — {results.get('date', '')}", ""]
    if results.get("context"):
        lines += [f"> {results['context']}", ""]
    lines += [f"{met} targets met, {missed} missed, {len(targets) - met - missed} not measurable. "
              f"Run: `{results.get('command', 'python -m bench.claims_replay')}`.", "",
              "## Targets", "", "| Target | Goal | Measured | Status |", "| --- | --- | --- | --- |"]
    for t in targets:
        lines.append(f"| {t['label']} | {t['goal']} | {t['measured']} | {_status(t['met'])}"
                     + (f" ({t['why']})" if t["why"] else "") + " |")
    lines += _throughput_section(results) + _latency_section(results) + _floor_section(results)
    lines += _week_section(results) + _profile_section(results) + _memory_section(results)
    for title, key in (("Data", "data"), ("Machine", "machine"), ("Configuration", "config")):
        if results.get(key):
            lines += ["", f"## {title}", ""] + [f"- {k}: {_plain(v)}" for k, v in results[key].items()]
    if results.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    return "\n".join(lines) + "\n"


def _plain(v) -> str:
    return orjson.dumps(v).decode() if isinstance(v, (dict, list)) else str(v)


def _throughput_section(results: dict) -> list[str]:
    tp = results.get("throughput")
    if not tp or tp.get("skipped"):
        return []
    cfg = results.get("config", {})
    out = ["", f"## Throughput: batches of {cfg.get('batch')} `POST Claim` entries, {cfg.get('in_flight')} in flight, "
               f"{cfg.get('workers')} `sijill worker`", "",
           f"- Sheets submitted: {_fmt(tp['sheets'])} (stays after their pre-authorisation included: "
           f"{_fmt(tp.get('stays_sent'))}); prerequisites written first: {_fmt(tp.get('first_resources'))} resources.",
           f"- Decided automatically: **{_fmt(tp['auto_decided'])}** (outcomes {tp.get('outcomes')}); pended for an agent: "
           f"{_fmt(tp['pended'])} ({tp['pended'] / max(tp['sheets'], 1):.1%}); still queued at the end: {_fmt(tp['queued_left'])}; "
           f"complementary insurers' rows: {_fmt(tp['complementary'])} ({_fmt(tp['complementary_decided'])} decided).",
           f"- First submission → last automatic decision: {tp['auto_seconds']:.1f} s → **{tp['auto_rate']:,.1f} claims/s**; "
           f"every sheet processed (decided or pended): {tp['processed_seconds']:.1f} s → {tp['processed_rate']:,.1f} sheets/s.",
           f"- Submission alone: {tp['submission_rate']:,.1f} sheets/s accepted; the workers alone (first → last decision): "
           f"{tp['worker_rate']:,.1f} decisions/s; peak queue depth (queued): {_fmt(tp['peak_queued'])}.",
           f"- HTTP: {tp['send']['requests']} requests, entries {tp['send']['entries']}, request p50 "
           f"{_fmt(tp['send']['request_p50_ms'])} ms / p99 {_fmt(tp['send']['request_p99_ms'])} ms."]
    out += [f"  - failure: `{f[:300]}`" for f in tp["send"].get("failures", [])]
    if tp.get("stopped"):
        out.append(f"- Stopped early: {tp['stopped']}.")
    return out


def _latency_section(results: dict) -> list[str]:
    lat, floors = results.get("latency") or {}, results.get("floors") or {}
    rows = [(k, v) for k, v in (("submit", lat.get("submit")), ("eligibility", lat.get("eligibility")),
                                ("floor: bare POST", floors.get("http_single"))) if v]
    if not rows:
        return []
    cfg = results.get("config", {})
    out = ["", f"## Latency (open loop, {cfg.get('rate')}/s for {cfg.get('latency_seconds')} s, workers running)", "",
           "| Request | requests | ok | answers/s | p50 ms | p95 ms | p99 ms | max ms | statuses |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for key, v in rows:
        statuses = ", ".join(f"{k}: {n}" for k, n in sorted(v["statuses"].items()))
        out.append(f"| {key} | {v['requests']} | {v['ok']} | {_fmt(v.get('achieved_per_s'))} | {_fmt(v['p50_ms'])} | "
                   f"{_fmt(v['p95_ms'])} | {_fmt(v['p99_ms'])} | {_fmt(v['max_ms'])} | {statuses} |")
    out.append("")
    out.append("Open loop: when the server answers fewer requests a second than are sent, every later request waits "
               "behind the earlier ones and latency grows with the run's length (answers/s below the rate).")
    return out


def _floor_section(results: dict) -> list[str]:
    floors = results.get("floors") or {}
    out = []
    if floors.get("insert"):
        fi = floors["insert"]
        out.append(f"- Raw psycopg `executemany` of the same Claims' JSON: {_fmt(fi['rows'])} rows, **{_fmt(fi['rows_per_s'], 0)} rows/s**.")
    if floors.get("http_batch"):
        fb = floors["http_batch"]
        out.append(f"- Bare HTTP endpoint (Starlette + psycopg, same workers, same batches and in-flight count): "
                   f"{_fmt(fb['rows'])} rows in {fb['seconds']:.1f} s, **{_fmt(fb['rows_per_s'], 0)} rows/s**.")
    return (["", "## Floors (same run, same data)", ""] + out) if out else []


def _week_section(results: dict) -> list[str]:
    wk = results.get("week")
    if not wk or wk.get("skipped"):
        return ["", "## Replayed week", "", f"Skipped: {wk['skipped']}."] if wk else []
    plan, rep, v = wk["plan"], wk["replay"], wk.get("verdict") or {}
    out = ["", "## Replayed week at 10× national volume (time-compressed, real system)", "",
           f"- Week of {plan['monday']} at {plan['per_day_full']:,.0f} sheets/day on average = "
           f"{plan['week_total_full']:,} sheets; busiest hour {plan['peak_rate_full_per_s']:.1f} sheets/s in real time.",
           f"- Compression: virtual clock × {plan['speedup']:,.0f} ({plan['week_seconds']:.0f} real seconds for the week and "
           f"its last deadlines); sample f = {plan['sample']:.4%} of the sheets (busiest hour at ≤ 50 % of the measured "
           f"capacity); agents {plan['agents_full']} × f → {plan['agents_simulated']} simulated at "
           f"{plan['review_minutes_simulated']} virtual minutes per review ({plan['review_minutes_full']} at full scale), "
           f"shifts `{wk.get('shifts')}`.",
           f"- Submitted: {_fmt(rep['sent'])} sheets (stays {rep['stays_sent']}, beyond the week {rep['stays_beyond_week']}, "
           f"refused pre-authorisations {rep['stays_refused']}), {_fmt(rep['eligibility'])} rights checks, in "
           f"{rep['real_seconds']:.0f} real s; stopped: {rep['stopped']}; submission lag (arrival → answer, virtual) "
           f"{rep.get('lag_hours')} h.",
           f"- HTTP entries {wk['send']['entries']}."]
    out += [f"  - failure: `{f[:300]}`" for f in wk["send"].get("failures", [])]
    if v:
        out += [f"- Ledger: {v['rows']:,} rows ({v['sheets']:,} sheets, {v['complementary']:,} complementary), decided "
                f"{v['decided']:,}, **within 48 h {v['within_deadline']:,} = {v['share_within']:.2%}**, late and undecided "
                f"{v['late_undecided']}, open in time {v['open_in_time']}.",
                f"- Decision time (virtual hours) automatic {v['decision_hours_auto']}, by agents {v['decision_hours_agents']}, "
                f"from the sheet's arrival {v['hours_from_arrival']}; worst {v['worst_decision_hours']} h ({v['worst_claim']}).",
                f"- Peak queue depth: queued {v['peak_queued']}, in review {v['peak_in_review']}, open {v['peak_open']} "
                f"(at {v['peak_open_at']}); at full scale ≈ {round(v['peak_open'] / plan['sample']):,} open."]
    ag = wk.get("agents") or {}
    if ag:
        out.append(f"- Agents: {ag['decided']} decided, {ag['conflicts']} conflicts, statuses {ag['statuses']}, "
                   f"{ag['queue_polls']} queue polls.")
        out += [f"  - failure: `{f[:300]}`" for f in ag.get("failures", [])]
    if wk.get("sla_days"):
        out += ["", "| day | fund | received | decided | within 48 h | breaches |", "| --- | --- | ---: | ---: | ---: | --- |"]
        out += [f"| {d['day']} | {d['fund']} | {d['received']} | {d['decided']} | {d['share_within']:.2%} | "
                f"{d['breaches'] or '—'} |" for d in wk["sla_days"]]
    if wk.get("capacity"):
        out += ["", f"- Required vs measured: {wk['capacity']}"]
    ex = wk.get("extrapolation")
    if ex:
        out += ["", f"### {ex['label']}", "",
                f"The full week ({ex['sheets']:,} sheets) through a FIFO queue model at the measured {ex['capacity_per_s']} "
                f"claims/s and {ex['agents']} agents × {ex['review_minutes']} min per review in shifts "
                f"({ex['review_share']:.1%} of sheets reviewed): automatic backlog peak {ex['auto_peak_backlog']:,}, worst "
                f"wait {ex['auto_worst_hours']} h; review backlog peak {ex['review_peak_backlog']:,}, worst wait "
                f"{ex['review_worst_hours']} h; undecided at the end {ex['undecided_at_end']:,} → "
                f"{'every claim within 48 h' if ex['within_deadline'] else 'BREACHES the 48 h'}."]
    return out


def _profile_section(results: dict) -> list[str]:
    prof = results.get("profile")
    if not prof or prof.get("skipped"):
        return []
    out = ["", f"## What limits the worker (cProfile of one worker draining {prof['jobs']} queued claims alone in "
               f"{prof['seconds']} s: {prof['rate']:.1f} claims/s under the profiler)", "",
           "Stages (cumulative, nested): " + ", ".join(f"{k} {v:.0%}" for k, v in prof["summary"]["stages"].items()) + ".",
           "",
           "Own time by area: " + ", ".join(f"{k} {v:.0%}" for k, v in prof["summary"]["by_area"].items() if v >= 0.01) + ".",
           "", "| function | own s | cumulative s | calls | share |", "| --- | ---: | ---: | ---: | ---: |"]
    out += [f"| `{r['function'][:110]}` | {r['own_s']} | {r['cumulative_s']} | {r['calls']:,} | {r['share']:.1%} |"
            for r in prof["summary"]["top_own_time"]]
    return out


def _memory_section(results: dict) -> list[str]:
    mem = results.get("memory") or {}
    if not mem:
        return []
    out = ["", "## Memory (peak RSS, MB)", ""]
    for name, rep in mem.items():
        procs = ", ".join(f"{p['role']} {p['peak_rss_mb']}" for p in rep.get("processes", []))
        out.append(f"- {name}: {procs or '—'}")
    return out


def write(results: dict, out_dir: Path) -> tuple[Path, Path]:
    """``<date>-claims.md`` and ``.json`` (a later run the same day replaces them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {**results, "targets": evaluate(results)}
    stem = f"{results.get('date') or 'undated'}-claims"
    md, js = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    js.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    md.write_text(render_markdown(results))
    return md, js

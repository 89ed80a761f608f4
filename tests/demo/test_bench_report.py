"""The benchmark's parsing and verdicts, on canned wrk output and canned results."""
from __future__ import annotations

import math

import orjson
import pytest

from bench import report, wrk
from bench.latency import percentile

WRK_WITH_SUMMARY = """\
Running 2s test @ http://127.0.0.1:18124
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    14.48ms    5.57ms  50.46ms   78.73%
    Req/Sec   279.25     66.07   500.00     77.50%
  1116 requests in 2.01s, 2.69MB read
  Non-2xx or 3xx responses: 19
Requests/sec:    555.81
Transfer/sec:      1.34MB
WRK_SUMMARY {"requests":1116,"duration_us":2007882,"bytes":2818052,"errors":{"connect":0,"read":0,"write":0,\
"status":19,"timeout":0},"latency_us":{"min":2365,"mean":14475.6,"stdev":5573.0,"max":50456,"p50":13879,\
"p75":16932,"p90":20561,"p99":35181,"p999":50243}}
"""

WRK_PLAIN = """\
Running 10s test @ http://127.0.0.1:8000/fhir/metadata
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    1.20ms  40.00ms   90.00%
    Req/Sec     5.20k   300.00     6.00k    70.00%
  103456 requests in 10.00s, 80.00MB read
  Non-2xx or 3xx responses: 12
Requests/sec:  10345.60
Transfer/sec:      8.00MB
"""


def test_parses_the_lua_summary_line():
    r = wrk.parse_output(WRK_WITH_SUMMARY)
    assert r.requests == 1116
    assert r.seconds == pytest.approx(2.007882)
    assert r.rps == pytest.approx(1116 / 2.007882)
    assert r.latency_ms["p50"] == pytest.approx(13.879)
    assert r.latency_ms["p99"] == pytest.approx(35.181)
    assert r.latency_ms["p999"] == pytest.approx(50.243)
    assert r.errors["status"] == 19 and r.failed == 19
    assert r.error_ratio == pytest.approx(19 / 1116)
    assert r.ok_rps == pytest.approx(r.rps * (1 - 19 / 1116))
    assert orjson.loads(orjson.dumps(r.to_json()))["latency_ms"]["p90"] == pytest.approx(20.561)


def test_falls_back_to_wrk_text_output():
    r = wrk.parse_output(WRK_PLAIN)
    assert r.requests == 103456 and r.seconds == pytest.approx(10.0)
    assert r.rps == pytest.approx(10345.60)
    assert r.errors == {"status": 12}
    assert r.latency_ms == {}


def test_unrecognised_output_is_an_error():
    with pytest.raises(wrk.WrkError):
        wrk.parse_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_nearest_rank_percentile():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def _wrk_json(rps: float, p99: float, status_errors: int = 0, requests: int = 10_000) -> dict:
    return {"requests": requests, "seconds": 10.0, "rps": rps,
            "latency_ms": {"p50": p99 / 4, "p90": p99 / 2, "p99": p99, "p999": p99 * 2, "max": p99 * 3},
            "errors": {"connect": 0, "read": 0, "write": 0, "status": status_errors, "timeout": 0},
            "error_ratio": status_errors / requests}


def _latency(p95: float, ok: int = 200, requests: int = 200) -> dict:
    return {"requests": requests, "ok": ok, "statuses": {"200": ok}, "p50_ms": p95 / 2, "p95_ms": p95,
            "p99_ms": p95 * 1.2, "max_ms": p95 * 2, "first_error": ""}


def _results() -> dict:
    return {
        "date": "2025-06-30",
        "config": {"patients": 2000, "connections": 32, "duration_s": 10, "workers": 2, "load_concurrency": 8},
        "wrk": {
            "read": _wrk_json(3500, 30.0),
            "read_floor": _wrk_json(5000, 15.0),
            "create": _wrk_json(900, 80.0),
            "everything": _wrk_json(100, 400.0, status_errors=5000),
        },
        "latency": {
            "search_token": _latency(8.0),
            "search_identifier": _latency(12.0),
            "search_date_sort": _latency(29.9),
            "search_chained": _latency(40.0),
            "search_has": _latency(10.0, ok=150),
            "search_total": _latency(150.0),
            "everything": _latency(100.0),
        },
        "ingest": {"bundles": 2001, "resources": 62000, "failed_bundles": 0, "seconds": 31.0,
                   "resources_per_s": 2000.0, "errors": []},
        "floors": {"insert": {"rows": 62000, "seconds": 2.0, "rows_per_s": 31000.0}, "read_table": "resource"},
        "memory": {"samples": 100, "max_worker_rss_mb": 312.5,
                   "processes": [{"pid": 10, "role": "master", "peak_rss_mb": 60.0, "last_rss_mb": 59.0, "cmd": "sijill"},
                                 {"pid": 11, "role": "worker", "peak_rss_mb": 312.5, "last_rss_mb": 300.0, "cmd": "w"}]},
        "data": {"generated": {"patients": 2000, "resources": 62000, "generated_per_s": 40000, "heavy": {"pat-1-0": 495}},
                 "stored": {"resources": 64241, "database_mb": 250.0, "by_type": {"Patient": 2000}}},
        "machine": {"nproc": 2},
        "labels": {"read": "Read Patient by id"},
        "notes": ["a note"],
    }


def test_targets_are_judged_from_the_results():
    verdicts = {t["key"]: t for t in report.evaluate(_results())}
    assert verdicts["read_throughput"]["met"] is True  # 3500 / 5000 = 0.70 ≥ 0.6
    assert "0.70 × floor" in verdicts["read_throughput"]["measured"]
    assert verdicts["read_p99"]["met"] is False  # 30 ms > 1.5 × 15 ms
    assert verdicts["ingest"]["met"] is True
    assert verdicts["creates"]["met"] is True
    assert verdicts["search_token"]["met"] is True
    assert verdicts["search_identifier"]["met"] is False
    assert verdicts["search_date_sort"]["met"] is True
    assert verdicts["search_chained"]["met"] is True
    assert verdicts["search_has"]["met"] is None  # 50 of 200 failed: not judged
    assert "failed" in verdicts["search_has"]["why"]
    assert verdicts["search_total"]["met"] is True
    assert verdicts["everything"]["met"] is True
    assert verdicts["memory"]["met"] is False  # 312.5 MB ≥ 300 MB


def test_errors_and_missing_measurements_are_never_met():
    results = _results()
    results["wrk"]["read"] = _wrk_json(9000, 1.0, status_errors=9000, requests=9000)  # fast 404s
    results["ingest"]["failed_bundles"] = 500
    del results["latency"]["search_total"]
    results["wrk"]["create"] = {"skipped": "server not running"}
    verdicts = {t["key"]: t for t in report.evaluate(results)}
    assert verdicts["read_throughput"]["met"] is None and "100%" in verdicts["read_throughput"]["why"]
    assert verdicts["ingest"]["met"] is None
    assert verdicts["search_total"]["met"] is None and verdicts["search_total"]["why"] == "not measured"
    assert verdicts["creates"]["met"] is None and verdicts["creates"]["why"] == "server not running"


def test_report_files(tmp_path):
    md, js = report.write(_results(), tmp_path / "results")
    assert md.name == "2025-06-30.md" and js.name == "2025-06-30.json"
    saved = orjson.loads(js.read_bytes())
    assert {t["key"] for t in saved["targets"]} == {t.key for t in report.TARGETS}
    text = md.read_text()
    assert text.startswith("# Sijill benchmark — 2025-06-30")
    assert "| Read by id, 32 connections | ≥ 0.6 × read floor req/s | 3,500 req/s = 0.70 × floor (5,000) | met |" in text
    assert "| Server memory per worker | < 300 MB | 312 MB peak RSS | MISSED |" in text
    assert "| Read Patient by id | 3,500 |" in text
    assert "31,000 rows/s" in text and "server ingest = 0.06 × this floor" in text
    assert "- nproc: 2" in text and "- a note" in text
    # The report can be regenerated from its own JSON.
    assert report.render_markdown(saved) == text

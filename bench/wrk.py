"""Driving ``wrk`` (a separate load-generator process on loopback) and reading its results.

The Lua scripts in ``bench/lua`` print one ``WRK_SUMMARY {json}`` line from ``done()`` with
the latency percentiles; wrk's human-readable lines are parsed as a fallback and for the
non-2xx count.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

LUA_DIR = Path(__file__).resolve().parent / "lua"
INSTALL_HINT = "wrk is not installed: apt-get update && apt-get install -y wrk"
_SUMMARY = re.compile(r"^WRK_SUMMARY (\{.*\})\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s*([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class WrkError(RuntimeError):
    pass


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50, p75, p90, p99, p999, mean, max
    errors: dict[str, int] = field(default_factory=dict)  # connect, read, write, status (non-2xx/3xx), timeout

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def error_ratio(self) -> float:
        return self.failed / self.requests if self.requests else 1.0

    @property
    def ok_rps(self) -> float:
        """Throughput of successful responses only: errors are often cheaper than answers."""
        return self.rps * (1 - min(1.0, self.error_ratio))

    def to_json(self) -> dict:
        d = asdict(self)
        d["rps"] = round(self.rps, 1)
        d["error_ratio"] = round(self.error_ratio, 4)
        return d


def available() -> bool:
    return shutil.which("wrk") is not None


def version() -> str:
    if not available():
        return "missing"
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].split(" Copyright")[0] if text else "unknown"


def parse_output(text: str) -> WrkResult:
    """Read wrk's stdout: the Lua summary line when present, the text report otherwise."""
    m = _SUMMARY.search(text)
    if m:
        s = orjson.loads(m.group(1))
        seconds = s["duration_us"] / 1e6
        lat = s["latency_us"]
        return WrkResult(
            requests=s["requests"],
            seconds=seconds,
            rps=s["requests"] / seconds if seconds > 0 else 0.0,
            latency_ms={k: round(v / 1000.0, 3) for k, v in lat.items()},
            errors=dict(s["errors"]),
        )
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    if not rps or not total:
        raise WrkError(f"unrecognised wrk output: {text[:300]!r}")
    seconds = float(total.group(2)) * _UNIT_S[total.group(3)]
    non2xx = _NON_2XX.search(text)
    return WrkResult(int(total.group(1)), seconds, float(rps.group(1)), {},
                     {"status": int(non2xx.group(1)) if non2xx else 0})


def run(
    url: str,
    script: str,
    script_args: list[str],
    *,
    connections: int,
    duration_s: int,
    threads: int = 2,
    headers: dict[str, str] | None = None,
    timeout_s: int = 10,
) -> WrkResult:
    """Run one bounded wrk phase; ``url`` gives the host (paths come from the script)."""
    if not available():
        raise WrkError(INSTALL_HINT)
    cmd = ["wrk", "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{duration_s}s",
           "--timeout", f"{timeout_s}s", "-s", str(LUA_DIR / script)]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    cmd += [url, "--", *script_args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + timeout_s + 30)
    if proc.returncode != 0:
        raise WrkError(f"wrk exited {proc.returncode}: {(proc.stderr or proc.stdout)[:500]}")
    return parse_output(proc.stdout)

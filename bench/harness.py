"""Benchmark harness: the real server on PostgreSQL against the floors, on the same data.

    python -m bench.harness [--patients N] [--duration S] [--connections C] [--out bench/results]

1. a fresh database ``sijill_bench``, migrated by ``sijill db upgrade``; the server started as
   ``sijill serve --workers 2`` and awaited on ``GET /fhir/metadata``;
2. the synthetic population loaded over HTTP as transaction Bundles (ingest resources/s);
3. the floors: a bare Starlette + psycopg read path (same worker count) and raw psycopg
   inserts of the same resources;
4. wrk (separate process, loopback, bounded duration, random existing ids) for reads, searches,
   $everything and single creates; single-client latencies with a sequential httpx loop;
5. the server workers' RSS sampled throughout;
6. ``bench/results/<date>.md`` and ``.json`` with the targets marked met / missed.
Every phase is bounded in count and time; a failing phase is noted and the run goes on.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from importlib import metadata
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

from bench import latency, pg, report, scenarios, wrk
from bench.procs import RssSampler, Service, free_port
from ehr.demo import iter_resources
from ehr.demo.loader import load_over_http

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/sijill_bench"
WORKERS = 2
LOAD_CONCURRENCY = 8
CREATE_SEED_OFFSET = 1000  # the single-create bodies come from another population
# Single-client latency is measured for these (wrk measures them under load as well).
LATENCY_SCENARIOS = ("search_token", "search_identifier", "search_date_sort", "search_chained", "search_has",
                     "search_total", "search_include", "everything")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.harness", description=__doc__.split("\n")[0])
    p.add_argument("--patients", type=int, default=2000, help="synthetic patients to load (~30 resources each)")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk phase")
    p.add_argument("--connections", type=int, default=32, help="wrk connections")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="report directory")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--per-patient", type=int, default=30, help="average resources per patient")
    p.add_argument("--heavy-every", type=int, default=500, help="every k-th patient has ~500 resources")
    p.add_argument("--latency-requests", type=int, default=200, help="single-client requests per search")
    p.add_argument("--ingest-budget", type=float, default=600.0,
                   help="seconds of HTTP loading at most; the rest of the population is then skipped")
    p.add_argument("--database-url", default=DEFAULT_DB, help="PostgreSQL database to (re)create")
    p.add_argument("--token", default=os.environ.get("SIJILL_BENCH_TOKEN"),
                   help="bearer token; without one the server runs with SIJILL_AUTH_REQUIRED=false")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=sys.stdout.isatty())
    args = p.parse_args(argv)
    if args.patients < 1 or args.duration < 1 or args.connections < 1:
        p.error("--patients, --duration and --connections must be positive")
    return args


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "missing"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def load_average() -> str:
    """1/5/15-minute load: other work on the machine skews every figure, so the report says."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine_facts(db_url: str) -> dict:
    cpu = "unknown"
    mem_gb = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    try:
        pg_version = pg.server_version(db_url)
    except psycopg.Error:
        pg_version = "unreachable"
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (uncommitted changes)"
    return {
        "nproc": os.cpu_count(),
        "load average at start": load_average(),
        "cpu": cpu,
        "memory": mem_gb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "wrk": wrk.version(),
        "sijill commit": commit,
        "packages": ", ".join(f"{p} {_version(p)}" for p in (
            "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "sqlalchemy", "psycopg", "orjson",
            "fhir.resources")),
    }


class Run:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args, self.console = args, console
        self.work = Path(tempfile.mkdtemp(prefix="sijill-bench-"))
        self.notes: list[str] = []
        self.rng = random.Random(args.seed)
        self.headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        self.results: dict = {
            "date": datetime.now().date().isoformat(),
            "started_at": datetime.now().isoformat(timespec="seconds"),
            "command": "python -m bench.harness " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in (("patients", args.patients), ("duration", args.duration),
                                                            ("connections", args.connections))),
            "config": {
                "patients": args.patients, "seed": args.seed, "per_patient": args.per_patient,
                "heavy_every": args.heavy_every, "duration_s": args.duration, "connections": args.connections,
                "workers": WORKERS, "load_concurrency": LOAD_CONCURRENCY, "latency_requests": args.latency_requests,
                "ingest_budget_s": args.ingest_budget,
                "auth": "bearer token" if args.token else "disabled (SIJILL_AUTH_REQUIRED=false)",
                "database": args.database_url.rsplit("@", 1)[-1],
                "server command": " ".join([*pg.sijill_command(), "serve", "--workers", str(WORKERS)]),
            },
            "wrk": {}, "latency": {}, "floors": {}, "labels": {}, "notes": self.notes,
        }

    @contextmanager
    def phase(self, name: str):
        """Run one phase; a failure is noted in the report and the run continues."""
        self.console.print(f"[bold cyan]▶ {name}[/bold cyan]")
        t0 = time.perf_counter()
        try:
            yield
        except Exception as exc:  # noqa: BLE001 — a benchmark reports what broke, it does not stop
            self.notes.append(f"{name} failed: {type(exc).__name__}: {str(exc)[:300]}")
            self.console.print(f"[red]  {name} failed: {exc}[/red]")
        else:
            self.console.print(f"  done in {time.perf_counter() - t0:.1f} s")

    def _wrk(self, key: str, base: str, script: str, script_args: list[str], duration: int | None = None) -> None:
        result = wrk.run(base, script, script_args, connections=self.args.connections,
                         duration_s=duration or self.args.duration, headers=self.headers)
        self.results["wrk"][key] = result.to_json()
        errs = f", {result.failed} errors" if result.failed else ""
        self.console.print(f"  {key}: {result.rps:,.0f} req/s, p99 {result.latency_ms.get('p99', float('nan')):.2f} ms{errs}")

    def _server_env(self, port: int) -> dict[str, str]:
        """The server's environment: this database and address, auth per --token, quiet logs."""
        env = {**os.environ, "SIJILL_DATABASE_URL": self.args.database_url,
               "SIJILL_BASE_URL": f"http://127.0.0.1:{port}/fhir", "SIJILL_LOG_LEVEL": "warning",
               "SIJILL_DATA_DIR": str(self.work / "data"),
               # Measure the data path, not the per-client rate limiter.
               "SIJILL_RATE_LIMIT": "1000000/second", "SIJILL_RATE_LIMIT_ANONYMOUS": "1000000/second",
               "PYTHONUNBUFFERED": "1"}
        env["SIJILL_AUTH_REQUIRED"] = "true" if self.args.token else "false"
        return env

    def execute(self) -> int:
        args, res = self.args, self.results
        self.console.print(f"Working files in {self.work}")
        res["machine"] = machine_facts(args.database_url)
        with self.phase("database: recreate and `sijill db upgrade`"):
            pg.recreate_database(args.database_url)
            pg.migrate(args.database_url, self.work / "migrate.log")

        catalog = scenarios.Catalog()
        spool = self.work / "bundles.ndjson"
        with self.phase(f"generate {args.patients} patients"):
            catalog = scenarios.spool(spool, args.patients, args.seed, args.heavy_every, args.per_patient)
            self.console.print(f"  {catalog.resources:,} resources, {catalog.generated_per_s:,.0f} generated/s")
        res["data"] = {"generated": {
            "patients": catalog.patients, "bundles": catalog.bundles, "resources": catalog.resources,
            "generation_s": round(catalog.generation_s, 2), "generated_per_s": round(catalog.generated_per_s),
            "heavy": catalog.heavy}}

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = Service("server", [*pg.sijill_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
                                    "--workers", str(WORKERS)], self._server_env(port), self.work / "server.log", cwd=REPO)
        sampler = RssSampler(server.pid)
        sampler.start()
        server_up = False
        try:
            with self.phase("start server (`sijill serve --workers 2`)"):
                server_up = server.wait_ready(f"{base}/fhir/metadata", timeout_s=90)
                if not server_up:
                    raise RuntimeError(f"no 200 from /fhir/metadata; server log tail:\n{server.tail()}")
            if server_up:
                with self.phase(f"ingest over HTTP ({LOAD_CONCURRENCY} transactions in flight)"):
                    ingest = asyncio.run(load_over_http(
                        f"{base}/fhir", args.patients, args.seed, LOAD_CONCURRENCY, args.token,
                        bundles=scenarios.spooled(spool, catalog.entry_counts), progress=args.progress,
                        time_budget_s=args.ingest_budget))
                    res["ingest"] = ingest.to_json()
                    self.console.print(f"  {ingest.resources:,} resources, {ingest.resources_per_s:,.0f}/s, "
                                       f"{ingest.failed_bundles} failed bundles")
                    if ingest.stopped_early:
                        sent = max(0, ingest.bundles - 1)  # the reference bundle went first
                        catalog = catalog.prefix(sent)
                        self.notes.append(
                            f"Ingest stopped at its {args.ingest_budget:.0f} s budget: {sent} of {args.patients} "
                            "patients loaded; every later phase uses those.")
            with self.phase("ANALYZE (planner statistics after the bulk load)"):
                with psycopg.connect(args.database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as c:
                    c.execute("ANALYZE")
            with self.phase("write floor (raw psycopg executemany)"):
                floor_write = pg.insert_floor(args.database_url, iter_resources(
                    catalog.patients, args.seed, heavy_every=args.heavy_every, per_patient=args.per_patient))
                res["floors"]["insert"] = floor_write.to_json()
                self.console.print(f"  {floor_write.rows:,} rows, {floor_write.rows_per_s:,.0f} rows/s")

            paths = {}
            scs = scenarios.scenarios(catalog, self.rng)
            for key, sc in scs.items():
                paths[key] = scenarios.write_paths(self.work, sc)
                res["labels"][key] = sc.label
            res["labels"].update({"read_floor": "Read floor (Starlette + psycopg)", "create": "Single creates (POST Patient)"})
            self._reads(base if server_up else None, paths["read"])
            if server_up:
                self._searches(base, paths, scs)
                with self.phase("wrk: single creates"):
                    bodies = self.work / "create.bodies"
                    bodies.write_bytes(b"\n".join(scenarios.create_bodies(args.seed + CREATE_SEED_OFFSET)) + b"\n")
                    self._wrk("create", base, "create.lua", [str(bodies), "/fhir/Patient"])
        finally:
            res["memory"] = sampler.stop().to_json()
            server.stop()
        with self.phase("store size"):
            res["data"]["stored"] = pg.store_size(args.database_url)
        if not server_up:
            self.notes.append("The server did not start: only the floors were measured.")
        res["finished_at"] = datetime.now().isoformat(timespec="seconds")
        res["machine"]["load average at end"] = load_average()
        md, js = report.write(res, args.out)
        self._print_summary()
        self.console.print(f"Report: {md} and {js}")
        shutil.rmtree(self.work / "data", ignore_errors=True)
        spool.unlink(missing_ok=True)  # can be gigabytes at the 1M-resource scale; the logs stay
        self.console.print(f"Logs kept in {self.work}")
        return 0 if server_up else 1

    def _reads(self, base: str | None, read_paths: Path) -> None:
        args, res = self.args, self.results
        warmup = max(1, min(3, args.duration // 3))
        if base:
            with self.phase("wrk: read by id (server)"):
                self._wrk("read_warmup", base, "paths.lua", [str(read_paths)], duration=warmup)
                del res["wrk"]["read_warmup"]
                self._wrk("read", base, "paths.lua", [str(read_paths)])
        else:
            res["wrk"]["read"] = {"skipped": "server not running"}
        table = "resource"
        try:
            if pg.count_stored(args.database_url, "Patient") == 0:
                table = pg.FLOOR_TABLE
                self.notes.append("The server stored no Patient: the read floor served the scratch table instead.")
        except psycopg.Error:
            table = pg.FLOOR_TABLE
        res["floors"]["read_table"] = table
        port = free_port()
        floor_base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "BENCH_FLOOR_DSN": pg.libpq_url(args.database_url), "BENCH_FLOOR_TABLE": table,
               "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
        floor = Service("read-floor", [sys.executable, "-m", "uvicorn", "bench.floor_read:app_from_env", "--factory",
                                       "--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS),
                                       "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                                       "--log-level", "warning"], env, self.work / "floor.log", cwd=REPO)
        try:
            with self.phase("wrk: read by id (floor)"):
                probe = read_paths.read_text().split("\n", 1)[0]
                if not floor.wait_ready(floor_base + probe, timeout_s=60):
                    raise RuntimeError(f"read floor not answering; log tail:\n{floor.tail()}")
                self._wrk("read_floor_warmup", floor_base, "paths.lua", [str(read_paths)], duration=warmup)
                del res["wrk"]["read_floor_warmup"]
                self._wrk("read_floor", floor_base, "paths.lua", [str(read_paths)])
        finally:
            floor.stop()

    def _searches(self, base: str, paths: dict[str, Path], scs: dict[str, scenarios.Scenario]) -> None:
        args, res = self.args, self.results
        with self.phase("single-client latency (httpx, sequential)"):
            for key in LATENCY_SCENARIOS:
                lat = latency.measure(base, scs[key].paths, count=args.latency_requests, budget_s=20.0,
                                      headers=self.headers, rng=random.Random(key))
                res["latency"][key] = lat.to_json()
                self.console.print(f"  {key}: p95 {lat.p95_ms:.1f} ms ({lat.ok}/{lat.requests} ok)")
        for key in LATENCY_SCENARIOS:
            with self.phase(f"wrk: {key}"):
                self._wrk(key, base, "paths.lua", [str(paths[key])])

    def _print_summary(self) -> None:
        table = Table(title="Targets")
        for col in ("Target", "Goal", "Measured", "Status"):
            table.add_column(col)
        for t in report.evaluate(self.results):
            status = {True: "[green]met[/green]", False: "[red]missed[/red]", None: "[yellow]n/a[/yellow]"}[t["met"]]
            table.add_row(t["label"], t["goal"], t["measured"], status + (f" ({t['why'][:60]})" if t["why"] else ""))
        self.console.print(table)


def preflight(args: argparse.Namespace, console: Console) -> int:
    if not wrk.available():
        console.print(f"[red]{wrk.INSTALL_HINT}[/red]")
        return 2
    if problem := pg.unreachable(args.database_url):
        console.print(f"[red]PostgreSQL is not reachable for {args.database_url}: {problem}[/red]")
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    code = preflight(args, console)
    if code:
        return code
    return Run(args, console).execute()


if __name__ == "__main__":
    sys.exit(main())

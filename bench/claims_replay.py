"""The care-sheet benchmark: a realistic day replayed against the real server and workers.

    python -m bench.claims_replay [--sheets 28000] [--budget 300] [--workers 2]   # or: sijill bench claims

1. a fresh database ``sijill_bench_claims`` (dropped and recreated), ``sijill db upgrade``,
   ``sijill reference load-sample``, the demo population loaded in-process (no claims day);
2. ``sijill serve --workers 2`` (auth off, rate limits lifted) and K ``sijill worker`` processes;
3. **throughput**: the day's sheets as ``batch`` Bundles of ``POST Claim`` entries (prescriptions
   and dispenses first, as a transaction), C in flight; stays once their pre-authorisation is
   granted; claims/s from the first submission to the last decision, read from ``claim_ledger``;
4. **profile**: one worker under cProfile drains a further set of sheets alone;
5. **latency**: single ``POST Claim`` then ``POST CoverageEligibilityRequest`` at a fixed rate
   (open loop) while the workers run;
6. **floors**: raw psycopg inserts of the same Claims, and a bare Starlette + psycopg endpoint
   fed the same batches and the same single POSTs;
7. **week**: server and workers restarted on the benchmark clock, a sample of a week at 10×
   national volume replayed time-compressed with simulated agents (``bench/claims_week.py``);
8. ``bench/results/<date>-claims.md`` and ``.json``.
Every phase is bounded in count and time; a failing phase is noted and the run goes on.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import orjson
import psycopg
from rich.console import Console

from bench import claims_report, pg
from bench.claims_agents import DEFAULT_SHIFTS, Agents, parse_shifts
from bench.claims_day import DAY_WEIGHTS, NATIONAL_DAY, read_spool, spool_day, spool_week
from bench.claims_load import FHIR_HEADERS, LedgerWatch, Sender, SendStats, batch_of, open_loop
from bench.claims_week import fluid_week, plan_week, replay_week, required_agents, verdict
from bench.harness import Run, load_average, machine_facts
from bench.procs import RssSampler, Service, free_port
from claims.caresheet import today
from claims.clock import real_now_us

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/sijill_bench_claims"
SERVER_WORKERS = 2
TZ = "Africa/Casablanca"
# Each phase draws its sheets for other dates of care, so no phase's sheets look like
# duplicates of another's: (label, days before today of the submission day, care days).
PHASE_DAYS = {"T": (0, 21), "P": (21, 10), "L": (31, 14)}
WEEK_WEEKS_BACK = 8  # the replayed week: eight weeks ago, clear of the other phases' dates of care


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.claims_replay", description=__doc__.split("\n")[0])
    p.add_argument("--sheets", type=int, default=NATIONAL_DAY, help="sheets of the throughput day (the national day)")
    p.add_argument("--budget", type=float, default=300.0, help="seconds of submission at most in the throughput phase")
    p.add_argument("--drain", type=float, default=180.0, help="seconds to wait for the last decisions after it")
    p.add_argument("--batch", type=int, default=100, help="Claim entries per batch Bundle")
    p.add_argument("--in-flight", type=int, default=4, help="batch Bundles in flight")
    p.add_argument("--workers", type=int, default=2, help="`sijill worker` processes")
    p.add_argument("--patients", type=int, default=2000, help="demo patients loaded in-process")
    p.add_argument("--per-patient", type=int, default=8, help="mean resources per demo patient")
    p.add_argument("--rate", type=float, default=50.0, help="single POSTs per second in the latency phase")
    p.add_argument("--latency-seconds", type=float, default=20.0, help="duration of each latency run")
    p.add_argument("--profile-sheets", type=int, default=1500, help="sheets drained by the profiled worker (0: skip)")
    p.add_argument("--week-seconds", type=float, default=480.0, help="real seconds for the replayed week (0: skip)")
    p.add_argument("--week-scale", type=float, default=10.0, help="the week's volume, × the national day")
    p.add_argument("--week-sample", type=float, default=None, help="share of the week's sheets to submit (default: "
                   "from the measured capacity, busiest hour at 50 %%)")
    p.add_argument("--week-capacity", type=float, default=40.0,
                   help="claims/s assumed for the week's sample when the throughput phase measured none")
    p.add_argument("--agents", type=int, default=600, help="fund agents at the week's full scale")
    p.add_argument("--review-minutes", type=float, default=10.0, help="minutes an agent takes per review")
    p.add_argument("--shifts", default=DEFAULT_SHIFTS, help="agents' working hours, Moroccan time")
    p.add_argument("--phases", default="throughput,profile,latency,floors,week",
                   help="comma-separated subset of throughput,profile,latency,floors,week")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="report directory")
    p.add_argument("--database-url", default=DEFAULT_DB, help="PostgreSQL database to (re)create")
    p.add_argument("--context", default="", help="a line on the run's circumstances, printed atop the report")
    args = p.parse_args(argv)
    args.token = None  # the agents act through the `agent` parameter: the server runs without tokens
    args.phases = {x.strip() for x in args.phases.split(",") if x.strip()}
    try:
        args.shift_list = parse_shifts(args.shifts)
    except ValueError as exc:
        p.error(str(exc))
    if min(args.sheets, args.batch, args.in_flight, args.workers, args.patients) < 1 or args.rate <= 0:
        p.error("--sheets, --batch, --in-flight, --workers, --patients and --rate must be positive")
    return args


async def load_population(url: str, base_url: str, patients: int, per_patient: int, seed: int) -> dict:
    """The demo population through the in-process transaction path (the API's hooks plugged in)."""
    from ehr.demo.generator import patient_bundles, reference_bundle
    from ehr.interactions.transaction import Options, transaction
    from ehr.plugins import load_plugins
    from ehr.store.db import create_engine

    load_plugins()
    engine = create_engine(url)
    opts = Options(base_url, 20, 1000, 1_000_000, False)
    t0 = time.perf_counter()
    try:
        await transaction(engine, reference_bundle(seed), opts)
        resources = 0
        for b in patient_bundles(patients, seed, per_patient=per_patient):
            await transaction(engine, b, opts)
            resources += len(b["entry"])
        async with engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE")
            await conn.commit()
    finally:
        await engine.dispose()
    seconds = time.perf_counter() - t0
    return {"patients": patients, "patient_resources": resources, "load_seconds": round(seconds, 1)}


async def world_spools(url: str, base_url: str, jobs: list[tuple]) -> tuple[dict, dict]:
    """Write the spools ``jobs`` name from the loaded world; (summaries, funds and insured)."""
    from claims.demo import claims_world
    from ehr.plugins import load_plugins
    from ehr.store.db import create_engine

    load_plugins()
    engine = create_engine(url)
    try:
        world = await claims_world(engine, base_url, today(TZ))
    finally:
        await engine.dispose()
    if world is None:
        raise RuntimeError("no demo patient or doctor loaded")
    out = {}
    for name, fn, kwargs in jobs:
        t0 = time.perf_counter()
        summary = fn(world, **kwargs)
        out[name] = {**summary.to_json(), "generation_s": round(time.perf_counter() - t0, 2)}
    facts = {"funds": sorted(f"Organization/{oid}" for oid in world.population.funds.values()),
             "insured": sum(1 for p in world.population.patients if p in world.population.coverage)}
    return out, facts


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


class ClaimsRun:
    phase = Run.phase  # a failing phase is noted and the run goes on
    _server_env = Run._server_env

    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args, self.console = args, console
        self.work = Path(tempfile.mkdtemp(prefix="sijill-bench-claims-"))
        self.notes: list[str] = []
        self.dsn = pg.libpq_url(args.database_url)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server: Service | None = None
        self.workers: list[Service] = []
        self.samplers: dict[str, RssSampler] = {}
        self.funds: list[str] = []
        self.start_seconds = 0.0  # the longest the server took to answer: the week's clock waits for it
        now = datetime.now()
        self.results: dict = {
            "date": now.date().isoformat(), "started_at": now.isoformat(timespec="seconds"),
            "context": args.context,
            "command": "python -m bench.claims_replay " + " ".join(
                f"--{k.replace('_', '-')} {getattr(args, k)}" for k in ("sheets", "budget", "batch", "in_flight", "workers",
                                                                          "rate", "week_seconds")),
            "config": {k: getattr(args, k) for k in (
                "sheets", "budget", "drain", "batch", "in_flight", "workers", "patients", "per_patient", "rate",
                "latency_seconds", "profile_sheets", "week_seconds", "week_scale", "agents", "review_minutes", "seed")}
            | {"server command": f"sijill serve --workers {SERVER_WORKERS}", "auth": "disabled (SIJILL_AUTH_REQUIRED=false)",
               "database": args.database_url.rsplit("@", 1)[-1], "phases": sorted(args.phases)},
            "notes": self.notes, "memory": {},
        }

    # --- processes ---------------------------------------------------------------------------

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**self._server_env(self.port), **(extra or {})}

    def start(self, extra_env: dict[str, str] | None = None, tag: str = "") -> None:
        """The server and the K claims workers, with the same environment."""
        env = self._env(extra_env)
        started = time.monotonic()
        self.server = Service("server", [*pg.sijill_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                                         "--workers", str(SERVER_WORKERS)], env, self.work / f"server{tag}.log", cwd=REPO)
        self.samplers[f"server{tag}"] = RssSampler(self.server.pid)
        self.samplers[f"server{tag}"].start()
        if not self.server.wait_ready(f"{self.base}/fhir/metadata", timeout_s=90):
            raise RuntimeError(f"no 200 from /fhir/metadata; server log tail:\n{self.server.tail()}")
        self.start_workers(env, tag)
        self.start_seconds = max(self.start_seconds, time.monotonic() - started)

    def start_workers(self, env: dict[str, str] | None = None, tag: str = "") -> None:
        env = env or self._env()
        for k in range(self.args.workers):
            w = Service(f"worker-{k}", [*pg.sijill_command(), "worker", "--name", f"bench-{k}"], env,
                        self.work / f"worker{tag}-{k}.log", cwd=REPO)
            self.workers.append(w)
            self.samplers[f"worker{tag}-{k}"] = RssSampler(w.pid)
            self.samplers[f"worker{tag}-{k}"].start()

    def stop_workers(self) -> None:
        for w in self.workers:
            died = not w.alive()
            w.stop()
            if died:  # a worker that ended before being stopped crashed: say how, from its log
                lines = w.log.read_text(errors="replace").splitlines()
                cause = " ".join(ln.strip() for ln in lines if re.search(r"^\w*(Error|Exception|Detected)\b|\[SQL:|CONTEXT:", ln.strip()))
                self.notes.append(f"{w.name} died during the run (exit {w.proc.returncode}, log {w.log}): {cause[:700]}")
        self.workers = []

    def stop(self) -> None:
        self.stop_workers()
        if self.server is not None:
            self.server.stop()
            self.server = None
        for name, sampler in list(self.samplers.items()):
            if sampler.is_alive():
                self.results["memory"][name] = sampler.stop().to_json()

    def client(self, base: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base or self.base, headers=FHIR_HEADERS, timeout=120.0,
                                 limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))

    # --- the run -----------------------------------------------------------------------------

    def execute(self) -> int:
        args, res = self.args, self.results
        self.console.print(f"Working files in {self.work}")
        res["machine"] = machine_facts(args.database_url)
        res["data"] = {}
        ok = True
        with self.phase("database: recreate, `sijill db upgrade`, `sijill reference load-sample`"):
            pg.recreate_database(args.database_url)
            pg.migrate(args.database_url, self.work / "migrate.log")
            self._reference_sample()
        with self.phase(f"demo population in-process ({args.patients} patients)"):
            res["data"]["population"] = asyncio.run(load_population(
                args.database_url, f"{self.base}/fhir", args.patients, args.per_patient, args.seed))
            self.console.print(f"  {res['data']['population']}")
        with self.phase("spool the throughput, profile and latency days"):
            self._spool_days()
        if not self.funds:
            ok = False
            self.notes.append("No world to draw sheets from: every later phase skipped.")
        try:
            if ok:
                with self.phase(f"start server and {args.workers} workers"):
                    self.start()
            if ok and "throughput" in args.phases:
                with self.phase(f"throughput: {args.sheets} sheets in batches of {args.batch}, {args.in_flight} in flight"):
                    res["throughput"] = asyncio.run(self._throughput())
            if ok and "profile" in args.phases and args.profile_sheets:
                with self.phase(f"profile: one worker under cProfile drains {args.profile_sheets} sheets"):
                    res["profile"] = asyncio.run(self._profile())
            if ok and "latency" in args.phases:
                with self.phase(f"latency: single POSTs at {args.rate}/s, open loop"):
                    if not self.workers:
                        self.start_workers()
                    res["latency"] = asyncio.run(self._latency())
            self.stop_workers()
            if ok and "floors" in args.phases:
                with self.phase("floors: raw inserts, bare HTTP endpoint"):
                    res["floors"] = asyncio.run(self._floors())
            self.stop()
            if ok and "week" in args.phases and args.week_seconds > 0:
                with self.phase(f"week at {args.week_scale:g}× national volume, {args.week_seconds:.0f} s compressed"):
                    res["week"] = self._week()
        finally:
            self.stop()
        res["finished_at"] = datetime.now().isoformat(timespec="seconds")
        res["machine"]["load average at end"] = load_average()
        md, js = claims_report.write(res, args.out)
        for t in claims_report.evaluate(res):
            status = {True: "[green]met[/green]", False: "[red]MISSED[/red]", None: "[yellow]n/a[/yellow]"}[t["met"]]
            self.console.print(f"  {status} {t['label']}: {t['measured']} {t['why']}")
        self.console.print(f"Report: {md} and {js}\nLogs kept in {self.work}")
        return 0 if ok else 1

    def _reference_sample(self) -> None:
        env = {**os.environ, "SIJILL_DATABASE_URL": self.args.database_url}
        with (self.work / "reference.log").open("ab") as log:
            proc = subprocess.run([*pg.sijill_command(), "reference", "load-sample"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"sijill reference load-sample failed (exit {proc.returncode}); see {self.work / 'reference.log'}")

    def _phase_day(self, label: str) -> tuple[date, int]:
        back, care_days = PHASE_DAYS[label]
        return today(TZ) - timedelta(days=back), care_days

    def _spool_days(self) -> None:
        args = self.args
        latency_count = int(args.rate * args.latency_seconds) + 10
        jobs = []
        for label, count, share in (("T", args.sheets, 0.0), ("P", args.profile_sheets, 0.0), ("L", latency_count, 1.0)):
            if count:
                day, care_days = self._phase_day(label)
                jobs.append((label, spool_day, dict(path=self.work / f"day-{label}.ndjson", day=day, sheets=count,
                                                     seed=args.seed, label=label, care_days=care_days,
                                                     eligibility_share=share)))
        summaries, facts = asyncio.run(world_spools(args.database_url, f"{self.base}/fhir", jobs))
        self.funds = facts["funds"]
        self.results["data"]["spools"] = summaries
        self.results["data"]["insured"] = facts["insured"]
        self.console.print(f"  {summaries.get('T')}")

    # --- throughput ----------------------------------------------------------------------------

    async def _throughput(self) -> dict:
        args = self.args
        records = [r for r in read_spool(self.work / "day-T.ndjson") if r["kind"] != "eligibility"]
        t0 = real_now_us()
        stays: dict[tuple[str, str], dict] = {}
        stats = SendStats()
        out: dict = {"first_resources": sum(len(r.get("first") or ()) for r in records)}
        deadline = time.monotonic() + args.budget
        async with self.client() as client, LedgerWatch(self.dsn, t0) as watch:
            sender = Sender(client, stats)
            gate = asyncio.Semaphore(args.in_flight)

            async def send(chunk: list[dict]) -> None:
                try:
                    if await sender.prerequisites([x for r in chunk for x in r.get("first") or ()]):
                        await sender.batch([r["claim"] for r in chunk])
                finally:
                    gate.release()

            async def watch_loop(stop: asyncio.Event) -> None:
                while not stop.is_set():
                    await watch.poll()
                    await asyncio.sleep(0.5)

            stop = asyncio.Event()
            watcher = asyncio.create_task(watch_loop(stop))
            tasks = []
            for chunk in _chunks(records, args.batch):
                if time.monotonic() > deadline:
                    out["stopped"] = f"submission budget of {args.budget:.0f} s reached"
                    break
                for r in chunk:
                    if r.get("stay") is not None:
                        stays[(r["claim"]["provider"]["identifier"]["value"], r["claim"]["identifier"][0]["value"])] = r["stay"]
                await gate.acquire()  # at most C in flight; released when the chunk is answered
                tasks.append(asyncio.create_task(send(chunk)))
            await asyncio.gather(*tasks)
            out["stays_sent"] = await self._stays(sender, watch, stays, deadline)
            drain_until = time.monotonic() + args.drain
            while time.monotonic() < drain_until:
                if (await watch.poll()).counts.get("queued", 0) == 0:
                    break
                await asyncio.sleep(0.5)
            stop.set()
            await watcher
            out.update(await self._ledger_figures(watch, t0))
            out["peak_queued"] = watch.peak("queued")
            out["queue_series"] = [(s.t, s.counts.get("queued", 0), s.counts.get("in-review", 0)) for s in watch.samples[::4]]
        out["send"] = stats.to_json()
        self.console.print(f"  {out['auto_decided']:,} decided automatically in {out['auto_seconds']:.1f} s → "
                           f"{out['auto_rate']:,.1f} claims/s; {out['pended']} pended; entries {stats.entries}")
        return out

    async def _stays(self, sender: Sender, watch: LedgerWatch, stays: dict, deadline: float) -> int:
        """Each granted pre-authorisation's stay, as soon as the fund's number is known."""
        from claims.demo import granted

        sent = 0
        while stays and time.monotonic() < deadline + self.args.drain:
            decided = await watch.decided_preauths()
            ready = [granted(stays.pop(k), ref) for k, ref in decided.items() if k in stays and ref]
            for k in [k for k, ref in decided.items() if k in stays and not ref]:
                stays.pop(k)  # refused or pended: no stay follows
            for chunk in _chunks(ready, self.args.batch):
                await sender.batch(chunk)
                sent += len(chunk)
            if stays:
                await asyncio.sleep(0.5)
        return sent

    async def _ledger_figures(self, watch: LedgerWatch, t0: int) -> dict:
        (row,) = await watch.rows(
            "SELECT count(*) FILTER (WHERE payer_rank = 1),"
            " count(*) FILTER (WHERE payer_rank = 1 AND decided_by = 'system'),"
            " max(received_at) FILTER (WHERE payer_rank = 1),"
            " min(decided_at) FILTER (WHERE payer_rank = 1 AND decided_by = 'system'),"
            " max(decided_at) FILTER (WHERE payer_rank = 1 AND decided_by = 'system'),"
            " count(*) FILTER (WHERE payer_rank = 1 AND status = 'in-review'),"
            " count(*) FILTER (WHERE status = 'queued'),"
            " count(*) FILTER (WHERE payer_rank > 1), count(*) FILTER (WHERE payer_rank > 1 AND decided_at IS NOT NULL)"
            " FROM claim_ledger WHERE {window}")
        sheets, auto, last_received, first_decided, last_decided, pended, queued, compl, compl_decided = row
        (last_pend,) = (await watch.rows(
            "SELECT max(t.created_at) FROM claim_review_task t JOIN claim_ledger l ON l.id = t.ledger_id "
            "WHERE l.received_at >= %s AND l.received_at < %s"))[0]
        outcomes = dict(await watch.rows(
            "SELECT outcome, count(*) FROM claim_ledger WHERE {window} AND payer_rank = 1 "
            "AND decided_by = 'system' GROUP BY outcome"))
        auto_s = ((last_decided or t0) - t0) / 1e6
        processed_s = (max(last_decided or t0, last_pend or t0) - t0) / 1e6
        return {
            "sheets": sheets, "auto_decided": auto, "pended": pended, "queued_left": queued, "outcomes": outcomes,
            "complementary": compl, "complementary_decided": compl_decided,
            "auto_seconds": round(auto_s, 2), "auto_rate": round(auto / auto_s, 2) if auto_s > 0 else 0.0,
            "processed_seconds": round(processed_s, 2),
            "processed_rate": round((auto + pended) / processed_s, 2) if processed_s > 0 else 0.0,
            "submission_rate": round(sheets / ((last_received - t0) / 1e6), 2) if last_received else 0.0,
            "worker_rate": round(auto / ((last_decided - first_decided) / 1e6), 2)
            if auto and last_decided > first_decided else 0.0,
        }

    # --- profile -------------------------------------------------------------------------------

    async def _profile(self) -> dict:
        self.stop_workers()
        records = [r for r in read_spool(self.work / "day-P.ndjson") if r["kind"] != "eligibility"]
        async with self.client() as client:
            sender = Sender(client)
            for chunk in _chunks(records, self.args.batch):
                if await sender.prerequisites([x for r in chunk for x in r.get("first") or ()]):
                    await sender.batch([r["claim"] for r in chunk])
        prof = self.work / "worker.prof"
        proc = subprocess.run([sys.executable, "-m", "bench.claims_profile", str(prof)], env=self._env(), cwd=REPO,
                              capture_output=True, text=True, timeout=900)
        (self.work / "worker-profile.log").write_text(proc.stdout + proc.stderr)
        drained = [line.split() for line in proc.stdout.splitlines() if line.startswith("DRAINED ")]
        if proc.returncode != 0 or not drained:
            raise RuntimeError(f"profiled worker exited {proc.returncode}; see {self.work / 'worker-profile.log'}")
        done, seconds = int(drained[-1][1]), float(drained[-1][2])
        self.start_workers()
        return {"jobs": done, "seconds": round(seconds, 2), "rate": done / seconds if seconds else 0.0,
                "summary": claims_report.profile_summary(prof), "file": str(prof), "send": sender.stats.to_json()}

    # --- latency -------------------------------------------------------------------------------

    async def _latency(self) -> dict:
        args = self.args
        records = list(read_spool(self.work / "day-L.ndjson"))
        sheets = [r for r in records if r["kind"] != "eligibility"]
        checks = [orjson.dumps(r["request"]) for r in records if r["kind"] == "eligibility"]
        async with self.client() as client:
            sender = Sender(client)
            first = [x for r in sheets for x in r.get("first") or ()]
            for chunk in _chunks(first, 200):  # written beforehand: not what is timed
                await sender.prerequisites(chunk)
            submit = await open_loop(client, "/fhir/Claim", [orjson.dumps(r["claim"]) for r in sheets], args.rate,
                                     args.latency_seconds)
            eligibility = await open_loop(client, "/fhir/CoverageEligibilityRequest", checks, args.rate, args.latency_seconds)
        for name, run in (("POST Claim", submit), ("POST CoverageEligibilityRequest", eligibility)):
            self.console.print(f"  {name} p50 {run.latency.p50_ms:.1f} / p99 {run.latency.p99_ms:.1f} ms, "
                               f"{run.achieved_per_s:.1f} answers/s, {run.latency.statuses}")
        return {"submit": submit.to_json(), "eligibility": eligibility.to_json(), "prerequisites": sender.stats.to_json()}

    # --- floors --------------------------------------------------------------------------------

    async def _floors(self) -> dict:
        args = self.args
        claims = [r["claim"] for r in read_spool(self.work / "day-T.ndjson") if r["kind"] != "eligibility"]
        rows = [{**c, "id": c["identifier"][0]["value"]} for c in claims]
        insert = pg.insert_floor(args.database_url, iter(rows), batch=args.batch, time_budget_s=args.budget)
        out: dict = {"insert": insert.to_json()}
        self.console.print(f"  raw inserts: {insert.rows_per_s:,.0f} rows/s")
        with psycopg.connect(self.dsn) as conn:
            pg.create_floor_table(conn)
        port = free_port()
        env = {**os.environ, "BENCH_FLOOR_DSN": self.dsn,
               "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
        floor = Service("claims-floor", [sys.executable, "-m", "uvicorn", "bench.claims_floor:app_from_env", "--factory",
                                         "--host", "127.0.0.1", "--port", str(port), "--workers", str(SERVER_WORKERS),
                                         "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level",
                                         "warning"], env, self.work / "floor.log", cwd=REPO)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and floor.alive():
                try:
                    httpx.post(f"{base}/fhir/Claim", content=b"{}", timeout=2.0)
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.25)
            async with self.client(base) as client:
                gate = asyncio.Semaphore(args.in_flight)

                async def post(body: bytes) -> None:
                    async with gate:
                        await client.post("/fhir", content=body)

                bodies = [batch_of(chunk) for chunk in _chunks(claims, args.batch)]
                t0 = time.perf_counter()
                await asyncio.gather(*(post(b) for b in bodies))
                seconds = time.perf_counter() - t0
                out["http_batch"] = {"rows": len(claims), "seconds": round(seconds, 3),
                                     "rows_per_s": round(len(claims) / seconds, 1)}
                single = await open_loop(client, "/fhir/Claim", [orjson.dumps(c) for c in claims], args.rate,
                                         args.latency_seconds)
                out["http_single"] = single.to_json()
        finally:
            floor.stop()
        self.console.print(f"  HTTP batch floor {out['http_batch']['rows_per_s']:,.0f} rows/s; single POST floor p99 "
                           f"{out['http_single']['p99_ms']} ms")
        return out

    # --- the week ------------------------------------------------------------------------------

    def _week(self) -> dict:
        args = self.args
        capacity = (self.results.get("throughput") or {}).get("auto_rate") or args.week_capacity
        this_monday = today(TZ) - timedelta(days=today(TZ).weekday())
        monday = this_monday - timedelta(weeks=WEEK_WEEKS_BACK)
        plan = plan_week(monday, args.week_scale * NATIONAL_DAY, capacity, args.week_seconds, deadline_hours=48,
                         agents=args.agents, review_minutes=args.review_minutes, tz=TZ, sample=args.week_sample)
        path = self.work / "week.ndjson"
        per_day = plan.per_day_full * plan.sample
        # Care on the day of submission while the population allows it: each day's generator
        # draws its own (patient, date) pairs, which overlap between days when dates spread.
        care_days = max(1, math.ceil(per_day * max(DAY_WEIGHTS) / self.results["data"]["insured"]))
        spools, _ = asyncio.run(world_spools(args.database_url, f"{self.base}/fhir", [(
            "W", spool_week, dict(path=path, monday=monday, per_day=per_day, seed=args.seed, care_days=care_days))]))
        records = [r for r in read_spool(path)]
        self.console.print(f"  sample f={plan.sample:.4%}: {spools['W']['sheets']:,} sheets, "
                           f"{spools['W']['eligibility']:,} rights checks; speedup ×{plan.speedup:,.0f}")
        # Room for the server and workers to start before the virtual week begins.
        origin = datetime.now(timezone.utc) + timedelta(seconds=max(6.0, 1.5 * self.start_seconds + 3))
        self.start({"SIJILL_CLAIMS_CLOCK_SPEEDUP": str(plan.speedup), "SIJILL_CLAIMS_CLOCK_START": plan.start.isoformat(),
                    "SIJILL_CLAIMS_CLOCK_ORIGIN": origin.isoformat(),
                    # Leases, in virtual seconds, as long in real time as the default 60 s.
                    "SIJILL_CLAIMS_LEASE_SECONDS": str(math.ceil(60 * plan.speedup))}, tag="-week")
        if datetime.now(timezone.utc) > origin:
            self.notes.append("The week's processes took longer to start than the clock's origin allowed: "
                              "its first sheets were sent late (see the submission lag).")
        result: dict = {"plan": plan.to_json(), "spool": spools["W"], "shifts": args.shifts}
        result.update(asyncio.run(self._replay(records, plan, origin)))
        review_share = spools["W"]["expected_review_share"]
        result["capacity"] = (f"the week's busiest hour needs {plan.to_json()['peak_rate_full_per_s']:.1f} sheets/s in real "
                              f"time at full volume; the throughput phase measured {capacity:,.1f} claims/s "
                              f"({'enough' if capacity >= plan.to_json()['peak_rate_full_per_s'] else 'NOT enough: a backlog builds at the peak'}); "
                              f"agents needed at full scale ≥ {required_agents(plan.per_day_full, review_share, args.review_minutes, args.shift_list)} "
                              f"(review time only), configured {args.agents}.")
        result["extrapolation"] = fluid_week(plan.per_day_full, capacity, args.agents, args.review_minutes, args.shift_list,
                                             review_share, 48, monday)
        return result

    async def _replay(self, records: list[dict], plan, origin: datetime) -> dict:
        from claims.clock import to_instant, virtual_clock
        from claims.sla import sla_report
        from ehr.store.clock import from_datetime
        from ehr.store.db import create_engine

        clock = virtual_clock(plan.speedup, plan.start, origin)
        async with self.client() as client:
            agents = Agents(client, self.funds, count=plan.agents, review_minutes=plan.review_minutes,
                            speedup=plan.speedup, clock_us=clock, shifts=self.args.shift_list, tz=TZ,
                            due_before=to_instant(from_datetime(plan.start) + int(plan.span_s * 1e6)))
            rep, watch, sender = await replay_week(client, self.dsn, records, plan, origin, agents,
                                                   in_flight=self.args.in_flight)
            end_us = clock()
            async with LedgerWatch(self.dsn, watch.since_us, watch.until_us) as final:
                final.samples = watch.samples
                v = await verdict(final, records, plan, end_us)
        engine = create_engine(self.args.database_url, pool_size=1)
        days = []
        try:
            async with engine.connect() as conn:
                for d in range(math.ceil(plan.span_s / 86_400)):  # the week, and the days its last decisions fall on
                    for fd in await sla_report(conn, plan.monday + timedelta(days=d), tz=TZ, now=end_us):
                        reasons: dict[str, int] = {}
                        for b in fd.breaches:
                            reasons[b.reason] = reasons.get(b.reason, 0) + 1
                        days.append({"day": (plan.monday + timedelta(days=d)).strftime("%a %d"), "fund": fd.fund_code,
                                     "received": fd.received, "decided": fd.decided, "share_within": fd.share_within,
                                     "breaches": reasons})
        finally:
            await engine.dispose()
        lags = sorted(rep.lag_s)
        replay = {k: v for k, v in rep.__dict__.items() if k != "lag_s"}
        replay["lag_hours"] = {"p50": round(lags[len(lags) // 2] / 3600, 2), "max": round(lags[-1] / 3600, 2)} if lags else None
        self.console.print(f"  {v['within_deadline']:,}/{v['rows']:,} within 48 h, worst {v['worst_decision_hours']} h, "
                           f"stopped: {rep.stopped}")
        return {"replay": replay, "verdict": v, "agents": agents.stats.to_json(), "send": sender.stats.to_json(),
                "sla_days": days, "queue_series": [(s.t, s.virtual_us, s.counts) for s in watch.samples[::5]]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if problem := pg.unreachable(args.database_url):
        console.print(f"[red]PostgreSQL is not reachable for {args.database_url}: {problem}[/red]")
        return 2
    return ClaimsRun(args, console).execute()


if __name__ == "__main__":
    sys.exit(main())

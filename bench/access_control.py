"""What access control costs: read-by-id and search throughput, restricted vs unrestricted.

The same server, data, requests and tokens are measured twice per scenario:

* **restricted** — a doctor's token (care relationship with half of the patients) and a
  patient's token: every query carries the caller's policy (semi-joins on the index tables,
  consent and label checks), exactly as in production;
* **system/\\*** — a ``system/*.rs`` token whose principal is mapped to the unrestricted
  in-process caller (the token is still verified): no row filter at all.

Both pay the same token verification, routing, serialisation and audit trail (one event per
patient returned), so the ratio isolates the access control itself.  The target is a loss
under 15 %.  In-process (httpx over ASGI, ``--concurrency`` workers), bounded by
``--seconds`` per measurement: about 30 s with the defaults.

    .venv/bin/python -m bench.access_control [--database-url postgresql+psycopg://...]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from fastapi import Request
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from sqlalchemy import text

from ehr.app import create_app
from ehr.interactions.transaction import Options, transaction
from ehr.security.demo import DemoUser
from ehr.security.dependencies import current_principal, security_services
from ehr.security.principal import Principal
from ehr.security.roles import Role
from ehr.settings import Settings
from ehr.store.migrate import upgrade

BASE = "http://bench/fhir"
TARGET_LOSS = 0.15


@dataclass
class Phase:
    scenario: str
    caller: str
    requests: int
    seconds: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _prepare_database(url: str) -> None:
    upgrade(url)  # the migrations create the audit log (append-only) and the policy tables


def population(patients: int, per_patient: int) -> list[dict]:
    """Patients, each with an Encounter (Dr bench-doc for the even ones) and Observations."""
    now = datetime.now(timezone.utc)
    out: list[dict] = [{"resourceType": "Practitioner", "id": "bench-doc", "name": [{"family": "Bench"}]},
                       {"resourceType": "Practitioner", "id": "other-doc", "name": [{"family": "Other"}]}]
    for i in range(patients):
        pid = f"p{i}"
        doctor = "bench-doc" if i % 2 == 0 else "other-doc"
        out.append({"resourceType": "Patient", "id": pid, "name": [{"family": f"Patient{i}"}], "gender": "female", "birthDate": "1980-01-01"})
        out.append({"resourceType": "Encounter", "id": f"e{i}", "status": "finished", "class": {"code": "AMB"},
                    "subject": {"reference": f"Patient/{pid}"}, "participant": [{"individual": {"reference": f"Practitioner/{doctor}"}}],
                    "period": {"start": (now - timedelta(days=i % 300)).strftime("%Y-%m-%dT%H:%M:%SZ")}})
        for j in range(per_patient):
            out.append({"resourceType": "Observation", "id": f"o{i}-{j}", "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": ("8867-4", "8480-6", "29463-7")[j % 3]}]},
                        "subject": {"reference": f"Patient/{pid}"}, "valueQuantity": {"value": 60 + j, "unit": "/min"}})
    return out


async def _seed(app, resources: list[dict]) -> None:
    s = app.state.security.settings
    opts = Options(s.base_url, s.default_page_size, s.max_page_size, 1_000_000, False)
    for start in range(0, len(resources), 500):
        entries = [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources[start:start + 500]]
        await transaction(app.state.engine, {"resourceType": "Bundle", "type": "transaction", "entry": entries}, opts)


def _unrestricted_after_verification():
    """The baseline: the token is verified as usual, then acts with no row filter at all."""

    async def principal(request: Request) -> Principal:
        verified = await security_services(request).authenticate_request(request)  # verified once, as usual
        if not isinstance(verified, Principal):
            raise verified
        return Principal.unrestricted(subject=verified.subject)

    return principal


async def _measure(app, token: str, paths: list[str], seconds: float, concurrency: int, scenario: str, caller: str) -> Phase:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    transport = httpx.ASGITransport(app=app)
    done = errors = 0
    rng = random.Random(7)
    async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers) as client:
        for path in paths[:5]:  # warm-up: compiled statements, caches
            await client.get(path)
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                r = await client.get(rng.choice(paths))
                done += 1
                errors += r.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Phase(scenario, caller, done, elapsed, errors)


async def run(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sijill-acl-bench-"))
    url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    _prepare_database(url)
    settings = Settings(
        _env_file=None, database_url=url, base_url=BASE, data_dir=workdir, auth_required=True, dev_issuer_enabled=True,
        dev_issuer_private_key=SecretStr(_pem()), rate_limit="100000000/minute", rate_limit_anonymous="100000000/minute",
        log_json=False, log_level="warning",
    )
    app = create_app(settings)
    results: list[Phase] = []
    async with app.router.lifespan_context(app):
        started = time.perf_counter()
        await _seed(app, population(args.patients, args.per_patient))
        if url.startswith("postgresql"):  # what autovacuum does to a live database: plans need statistics
            async with app.state.engine.connect() as conn:
                await conn.execute(text("ANALYZE"))
                await conn.commit()
        print(f"seeded {args.patients} patients ({args.patients * (args.per_patient + 2)} resources) in {time.perf_counter() - started:.1f}s")
        issuer = app.state.security.issuer
        tokens = {
            "doctor": issuer.issue_token(DemoUser("bench-doc", Role.DOCTOR, "Practitioner/bench-doc")).access_token,
            "patient": issuer.issue_token(DemoUser("bench-patient", Role.PATIENT, "Patient/p0")).access_token,
            "system/*": issuer.issue_token(DemoUser("bench-system", Role.DOCTOR, "Practitioner/bench-doc"), "system/*.rs").access_token,
        }
        mine = [i for i in range(args.patients) if i % 2 == 0]  # the doctor's patients
        scenarios = {
            "read by id": {
                "doctor": [f"/Observation/o{i}-{j}" for i in mine for j in range(args.per_patient)],
                "patient": [f"/Observation/o0-{j}" for j in range(args.per_patient)],
            },
            "search": {
                "doctor": [f"/Observation?subject=Patient/p{i}&code=8867-4" for i in mine],
                "patient": ["/Observation?subject=Patient/p0&code=8867-4"],
            },
        }
        for scenario, by_caller in scenarios.items():
            for caller, paths in by_caller.items():
                # alternate short slices of both arms, so that drift (caches, autovacuum, the
                # machine) weighs on both alike
                restricted = Phase(scenario, caller, 0, 0.0, 0)
                baseline = Phase(scenario, f"system/* (same paths as {caller})", 0, 0.0, 0)
                for _ in range(args.rounds):
                    r = await _measure(app, tokens[caller], paths, args.seconds / args.rounds, args.concurrency, scenario, caller)
                    app.dependency_overrides[current_principal] = _unrestricted_after_verification()
                    try:
                        b = await _measure(app, tokens["system/*"], paths, args.seconds / args.rounds, args.concurrency, scenario, baseline.caller)
                    finally:
                        app.dependency_overrides.pop(current_principal, None)
                    for total, part in ((restricted, r), (baseline, b)):
                        total.requests += part.requests
                        total.seconds += part.seconds
                        total.errors += part.errors
                results += [restricted, baseline]
    shutil.rmtree(workdir, ignore_errors=True)
    return report(results)


def report(results: list[Phase]) -> int:
    print(f"\n{'scenario':<12} {'caller':<34} {'req/s':>9} {'errors':>7}")
    for p in results:
        print(f"{p.scenario:<12} {p.caller:<34} {p.rate:>9.1f} {p.errors:>7}")
    print(f"\n{'scenario':<12} {'caller':<9} {'restricted':>11} {'system/*':>10} {'ratio':>7} {'loss':>7}  target < {TARGET_LOSS:.0%}")
    worst = 0.0
    for restricted, baseline in zip(results[::2], results[1::2]):
        ratio = restricted.rate / baseline.rate if baseline.rate else 0.0
        worst = max(worst, 1 - ratio)
        verdict = "met" if 1 - ratio < TARGET_LOSS else "MISSED"
        print(f"{restricted.scenario:<12} {restricted.caller:<9} {restricted.rate:>11.1f} {baseline.rate:>10.1f} {ratio:>7.3f} {1 - ratio:>7.1%}  {verdict}")
    failed = sum(p.errors for p in results)
    if failed:
        print(f"\n{failed} requests did not answer 200: the figures are not comparable")
        return 1
    return 0 if worst < TARGET_LOSS else 3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", help="default: a fresh SQLite file; a PostgreSQL database is used as is (migrated)")
    p.add_argument("--patients", type=int, default=400)
    p.add_argument("--per-patient", type=int, default=12, help="Observations per patient")
    p.add_argument("--seconds", type=float, default=3.0, help="per measurement (8 measurements)")
    p.add_argument("--rounds", type=int, default=6, help="alternating slices per measurement")
    p.add_argument("--concurrency", type=int, default=8)
    return asyncio.run(run(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())

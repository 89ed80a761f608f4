"""A live Sijill for the users' journeys: the demo as ``make run`` loads it, on PostgreSQL, served
by ``sijill serve`` with the built-in issuer on, and ``sijill worker`` processes deciding the
care sheets beside it.

One fresh database and one server for the whole journeys package (loading the demo is the
slow part).  Every request of a journey carries a demo user's own token, obtained from the real
token endpoint (``POST /auth/token``, demo-user grant): there is no unrestricted caller here.
The journeys share the server, so each works on its own patients (``ehr.demo.story`` names who
is there for whom) and never assumes it is alone.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import psycopg
import pytest

from tests.conftest import PG_ADMIN, require_postgresql

ROOT = Path(__file__).resolve().parents[2]
DEMO_PATIENTS = 12
DEMO_USER_GRANT = "https://fhir.sijill.ma/oauth/grant-type/demo-user"
FHIR_JSON = "application/fhir+json"
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 60, every: float = 0.2) -> T:
    """``probe()`` until it returns something truthy, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


@dataclass
class Live:
    """The running server: its FHIR base, a way to run ``sijill`` commands on its database, and
    an HTTP client per demo user (token from the token endpoint)."""

    root: str
    env: dict[str, str]
    logs: Path
    story: dict = field(default_factory=dict)  # `sijill demo --show --json`: who acts on what
    _clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"{self.root}/fhir"

    def sijill(self, *args: str, timeout: float = 600) -> str:
        """Run a ``sijill`` command (a batch tool: migrations, demo, payments) on this database."""
        done = subprocess.run([sys.executable, "-m", "ehr.cli", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"sijill {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def token(self, username: str) -> str:
        answer = httpx.post(f"{self.root}/auth/token", data={"grant_type": DEMO_USER_GRANT, "username": username}, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]

    def as_user(self, username: str) -> httpx.Client:
        """An HTTP client carrying ``username``'s token (one per user for the session)."""
        if username not in self._clients:
            self._clients[username] = httpx.Client(
                base_url=self.base, timeout=60,
                headers={"Authorization": f"Bearer {self.token(username)}", "Accept": FHIR_JSON},
            )
        return self._clients[username]

    def close(self) -> None:
        for c in self._clients.values():
            c.close()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _started(proc: subprocess.Popen, log: Path, probe: Callable[[], bool], what: str) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        return probe()

    eventually(ready, what, timeout=90)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def live(tmp_path_factory) -> Iterator[Live]:
    require_postgresql()
    name = f"sijill_journeys_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    work = tmp_path_factory.mktemp("journeys")
    port = _free_port()
    root = f"http://127.0.0.1:{port}"
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    env = dict(
        os.environ, SIJILL_DATABASE_URL=url, SIJILL_BASE_URL=f"{root}/fhir", SIJILL_DATA_DIR=str(work / "data"),
        SIJILL_DEV_ISSUER_ENABLED="true", SIJILL_LOG_JSON="false", SIJILL_CLAIMS_IDLE_SLEEP_SECONDS="0.1",
        # Journeys are quick successions of calls from few users: no rate limit in the way.
        SIJILL_RATE_LIMIT="1000000/minute", SIJILL_RATE_LIMIT_ANONYMOUS="1000000/minute",
    )
    server = Live(root, env, work)
    procs: list[subprocess.Popen] = []
    try:
        # What `make run` does, then the workers `make run` tells you to start beside it.
        server.sijill("db", "upgrade")
        server.sijill("reference", "load-sample")
        server.sijill("demo", "--patients", str(DEMO_PATIENTS))
        server.story = json.loads(server.sijill("demo", "--show", "--json"))
        log = work / "serve.log"
        procs.append(subprocess.Popen([sys.executable, "-m", "ehr.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                                      stdout=log.open("wb"), stderr=subprocess.STDOUT))
        _started(procs[-1], log, lambda: _answers(f"{root}/fhir/metadata"), "the server")
        for n in (1, 2):
            wlog = work / f"worker-{n}.log"
            procs.append(subprocess.Popen([sys.executable, "-m", "claims.worker", "--name", f"journeys-{n}"], cwd=ROOT,
                                          env=env, stdout=subprocess.DEVNULL, stderr=wlog.open("wb")))
            _started(procs[-1], wlog, lambda p=wlog: "started" in p.read_text(), f"worker {n}")
        yield server
    finally:
        server.close()
        for proc in reversed(procs):
            _stop(proc)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def parameters(**values: object) -> dict:
    """A FHIR Parameters body: ``identifier=`` → valueIdentifier, ``birthDate=`` → valueDate,
    strings → valueString, dicts with resourceType → resource."""
    kinds = {"identifier": "valueIdentifier", "birthDate": "valueDate"}
    out = []
    for name, value in values.items():
        if isinstance(value, dict) and "resourceType" in value:
            out.append({"name": name, "resource": value})
        else:
            out.append({"name": name, kinds.get(name, "valueString"): value})
    return {"resourceType": "Parameters", "parameter": out}


def entries(bundle: dict, res_type: str | None = None) -> list[dict]:
    return [e["resource"] for e in bundle.get("entry", []) if res_type is None or e["resource"]["resourceType"] == res_type]


CIN = "https://fhir.sijill.ma/sid/cin"
INPE = "https://fhir.sijill.ma/sid/inpe"
PRESCRIPTION = "https://fhir.sijill.ma/sid/prescription"
CLAIM_NUMBER = "https://fhir.sijill.ma/sid/claim"
ACTS = "https://fhir.sijill.ma/CodeSystem/acte"
MEDICINE = "https://fhir.sijill.ma/CodeSystem/medicament"
ATC = "http://www.whocc.no/atc"


def care_sheet(kind: str, patient: str, coverage: str, provider: str, inpe: str, items: list[tuple[str, str, float]]) -> dict:
    """A care sheet as a provider's software sends it: no ``insurer`` (the server routes it)."""
    today = time.strftime("%Y-%m-%d")
    lines = [{"sequence": n, "productOrService": {"coding": [{"system": system, "code": code}]}, "servicedDate": today,
              "quantity": {"value": 1}, "unitPrice": {"value": price, "currency": "MAD"},
              "net": {"value": price, "currency": "MAD"}} for n, (system, code, price) in enumerate(items, 1)]
    return {
        "resourceType": "Claim", "status": "active", "use": "claim",
        "identifier": [{"system": CLAIM_NUMBER, "value": f"FSE-J-{uuid.uuid4().hex[:12].upper()}"}],
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": kind}]},
        "patient": {"reference": patient}, "created": today,
        "provider": {"reference": provider, "identifier": {"system": INPE, "value": inpe}},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": coverage}}],
        "item": lines, "total": {"value": round(sum(p for *_, p in items), 2), "currency": "MAD"},
    }


def decided(client: httpx.Client, response_id: str, timeout: float = 60) -> dict:
    """The ClaimResponse once the worker has decided it (or a fund agent, for a pended one)."""
    def probe():
        res = client.get(f"ClaimResponse/{response_id}")
        assert res.status_code == 200, res.text
        return res.json() if res.json().get("outcome") != "queued" else None

    return eventually(probe, f"the decision of ClaimResponse/{response_id}", timeout)


def paid(live: Live, client: httpx.Client, response_id: str) -> dict:
    """Run the day's payments (``sijill pay``, the funds' batch) and read the ClaimResponse's payment."""
    live.sijill("pay")
    res = client.get(f"ClaimResponse/{response_id}").json()
    assert res.get("payment", {}).get("amount", {}).get("value", 0) > 0, res
    return res["payment"]

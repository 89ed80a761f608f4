"""`sijill serve --workers N` holds on a loaded machine: the supervisor's ping timeout is a
setting (60 s by default, not uvicorn's 5 s), and importing the app does no heavy work."""
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ehr.cli import app as cli_app
from ehr.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_app_loads_no_domain_package_nor_terminology():
    probe = "import sys, ehr.app; print(sorted(m for m in sys.modules if m.split('.')[0] in ('claims', 'interop', 'profiles')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_serve_hands_the_healthcheck_timeout_to_uvicorn(monkeypatch):
    from typer.testing import CliRunner

    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.setenv("SIJILL_SERVE_WORKER_HEALTHCHECK_SECONDS", "45")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    from ehr.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["serve", "--workers", "2", "--port", "8999"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert seen["timeout_worker_healthcheck"] == 45 and seen["workers"] == 2
    assert os.path.isdir(os.environ.pop("PROMETHEUS_MULTIPROC_DIR"))  # the workers share their counters
    assert Settings.model_fields["serve_worker_healthcheck_seconds"].default == 60


def _burn(until: float) -> None:
    while time.monotonic() < until:
        pass


def test_a_loaded_machine_does_not_kill_healthy_workers(tmp_path, free_tcp_port, sqlite_template):
    db = tmp_path / "sijill.db"
    db.write_bytes(sqlite_template.read_bytes())
    env = {**os.environ, "SIJILL_DATABASE_URL": f"sqlite+aiosqlite:///{db}", "SIJILL_DATA_DIR": str(tmp_path / "data"),
           "SIJILL_AUTH_REQUIRED": "false", "SIJILL_LOG_JSON": "false"}
    server = subprocess.Popen([sys.executable, "-m", "ehr.cli", "serve", "--workers", "2", "--port", str(free_tcp_port)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Bounded burners: one more busy process than the machine has cores, for 30 s, from the
    # start (workers import under load too); then the server must have started and answered.
    burners = [multiprocessing.Process(target=_burn, args=(time.monotonic() + 30,)) for _ in range((os.cpu_count() or 2) + 1)]
    try:
        for b in burners:
            b.start()
        answered = 0
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and (answered < 10 or any(b.is_alive() for b in burners)):
            try:
                answered += httpx.get(f"http://127.0.0.1:{free_tcp_port}/health/live", timeout=5).status_code == 200
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    finally:
        for b in burners:
            b.join()
        server.terminate()
        log = server.communicate(timeout=60)[0]
    assert answered >= 10, log
    assert "died" not in log and "failed to start" not in log, log

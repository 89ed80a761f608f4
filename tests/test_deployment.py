"""docker-compose.yml and the Dockerfile: what can be checked without a Docker engine."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from typer.main import get_command

from ehr.cli import app as cli_app
from ehr.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


COMPOSE_FILES = ("docker-compose.yml", "docker-compose.demo.yml")


def _compose(name: str = "docker-compose.yml") -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def _command(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def _cli_paths() -> set[tuple[str, ...]]:
    root = get_command(cli_app)
    paths = set()

    def walk(cmd, prefix):
        for name, sub in getattr(cmd, "commands", {}).items():
            paths.add(prefix + (name,))
            walk(sub, prefix + (name,))

    walk(root, ())
    return paths


def _sijill_invocations(command: str) -> list[tuple[str, ...]]:
    out = []
    for part in re.split(r"&&|;", command):
        words = shlex.split(part)
        if words and words[0] == "sijill":
            out.append(tuple(w for w in words[1:] if not w.startswith("-") and not w[0].isdigit() and "." not in w))
    return out


def test_compose_parses_and_wires_app_to_postgres():
    compose = _compose()
    services = compose["services"]
    assert {"app", "db", "migrate", "worker"} <= set(services)
    app_env = services["app"]["environment"]
    assert app_env["SIJILL_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@db:5432/" in app_env["SIJILL_DATABASE_URL"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_compose_runs_minio_and_wires_app_and_worker_to_it():
    services = _compose()["services"]
    minio = services["minio"]
    assert minio["image"].startswith("minio/minio:") and "latest" not in minio["image"]
    assert minio["healthcheck"]["test"][:2] == ["CMD", "mc"]  # the image has no curl
    volume = next(v for v in minio["volumes"] if v.endswith(":/data"))
    assert volume.split(":")[0] in _compose()["volumes"]
    assert services["app"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert ("storage", "gc") in _cli_paths()  # what operators run against it
    for name in ("app", "worker"):
        env = services[name]["environment"]
        assert env["SIJILL_STORAGE_URL"].startswith("s3://")
        assert env["SIJILL_S3_ENDPOINT"] == "minio:9000"
        # the keys come from the environment, and are the ones MinIO is started with
        assert env["SIJILL_S3_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_USER"]
        assert env["SIJILL_S3_SECRET_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"]
        assert env["SIJILL_S3_SECRET_KEY"].startswith("${SIJILL_S3_SECRET_KEY")
        assert Settings(_env_file=None, s3_secure=env["SIJILL_S3_SECURE"]).s3_secure is False


def test_compose_names_only_settings_the_app_reads():
    fields = {f"SIJILL_{name.upper()}" for name in Settings.model_fields}
    for file in COMPOSE_FILES:
        for name, service in _compose(file)["services"].items():
            for var in service.get("environment", {}):
                if var.startswith("SIJILL_"):
                    assert var in fields, f"{file}: {name} sets {var}, which no setting reads"


def test_compose_and_dockerfile_commands_exist_in_the_cli():
    paths = _cli_paths()
    commands = [_command(s) for file in COMPOSE_FILES for s in _compose(file)["services"].values()]
    commands += [" ".join(json.loads(m)) for m in re.findall(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M)]
    invocations = [inv for c in commands for inv in _sijill_invocations(c)]
    assert len(invocations) >= 8
    for inv in invocations:
        assert any(inv[: len(p)] == p for p in paths), f"sijill {' '.join(inv)} is not a CLI command"


def test_migrations_run_once_before_any_server_or_worker():
    for file in COMPOSE_FILES:
        services = _compose(file)["services"]
        upgraders = [n for n, s in services.items() if "sijill db upgrade" in _command(s)]
        assert len(upgraders) == 1, file
        for name in ("app", "worker"):
            assert "db upgrade" not in _command(services[name])
            assert services[name]["depends_on"][upgraders[0]]["condition"] == "service_completed_successfully"
        assert services[upgraders[0]]["restart"] == "no"


def test_production_expects_a_real_provider_and_the_demo_brings_its_own():
    prod = _compose()["services"]["app"]["environment"]
    assert prod["SIJILL_ISSUER_URL"].startswith("${SIJILL_ISSUER_URL:?")  # compose refuses to start without it
    assert "SIJILL_DEV_ISSUER_ENABLED" not in prod
    demo = _compose("docker-compose.demo.yml")["services"]
    assert Settings(_env_file=None, dev_issuer_enabled=demo["app"]["environment"]["SIJILL_DEV_ISSUER_ENABLED"]).dev_issuer_enabled
    setup = _command(demo["setup"])
    assert "sijill reference load-sample" in setup and "sijill demo" in setup
    assert {"app", "worker", "db", "minio"} <= set(demo)


def _answers(path: str) -> int:
    """The status the app gives ``path`` (not started: a readiness probe then finds no database)."""
    import asyncio

    import httpx

    from ehr.app import create_app

    async def ask() -> int:
        app = create_app(Settings(_env_file=None))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            return (await c.get(path)).status_code

    return asyncio.run(ask())


def test_healthchecks_ask_real_routes():
    checks = [s["healthcheck"]["test"] for f in COMPOSE_FILES for n, s in _compose(f)["services"].items() if n == "app"]
    checks += re.findall(r"HEALTHCHECK[^\n]*\\\n\s*CMD (.*)", (ROOT / "Dockerfile").read_text())
    assert len(checks) == 3
    for check in checks:
        path = re.search(r"127\.0\.0\.1:8000(/[a-z/]+)", " ".join(check) if isinstance(check, list) else check).group(1)
        assert _answers(path) in (200, 503), path  # a real route: live, or ready/not ready


def test_worker_healthcheck_asks_its_metrics_port():
    worker = _compose()["services"]["worker"]
    port = worker["environment"]["SIJILL_CLAIMS_WORKER_METRICS_PORT"]
    assert f"127.0.0.1:{port}/metrics" in " ".join(worker["healthcheck"]["test"])


def test_image_runs_as_a_non_root_user_and_leaves_bench_out_of_production():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = dict(re.findall(r"^FROM \S+ AS (\w+)\n(.*?)(?=^FROM |\Z)", dockerfile, re.M | re.S))
    assert {"base", "production", "demo"} <= set(stages)
    assert re.search(r"^USER (?!root)\w+", stages["production"], re.M) and "HEALTHCHECK" in stages["production"]
    assert "FROM production AS demo" in dockerfile and stages["demo"].rstrip().splitlines()[-1] == "USER sijill"
    assert "COPY bench" not in stages["production"] and "rm -rf ehr/demo" in stages["production"]
    # The dependency layer comes from the lock file alone (cached until it changes).
    assert stages["base"].index("COPY requirements.lock") < stages["base"].index("--require-hashes")
    assert "COPY ehr" not in stages["base"]
    for file in COMPOSE_FILES:
        targets = {s["build"]["target"] for s in _compose(file)["services"].values() if "build" in s}
        assert targets == ({"production"} if file == "docker-compose.yml" else {"demo"})


def test_the_compose_commands_run_without_docker(tmp_path):
    """The demo's setup and the migrate job, as plain commands against a fresh SQLite file."""
    env = {**os.environ, "SIJILL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/sijill.db",
           "SIJILL_DATA_DIR": str(tmp_path / "data"), "SIJILL_LOG_JSON": "false"}
    setup = _compose("docker-compose.demo.yml")["services"]["setup"]["command"]
    assert setup[:2] == ["sh", "-c"]
    done = subprocess.run(["sh", "-c", setup[2].replace("--patients 200", "--patients 3")], env={**env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"},
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_lock_pins_every_runtime_dependency_at_the_declared_version():
    import tomllib

    lock = (ROOT / "requirements.lock").read_text().lower()
    for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, version = dep.split("==")
        name = re.sub(r"\[.*\]", "", name).lower().replace("_", "-").replace(".", "-")
        assert f"\n{name}=={version} \\" in lock, dep

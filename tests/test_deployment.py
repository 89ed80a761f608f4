"""docker-compose.yml and the Dockerfile: what can be checked without a Docker engine."""
import re
import shlex
from pathlib import Path

import yaml
from typer.main import get_command

from ehr.cli import app as cli_app
from ehr.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


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
    assert {"app", "db"} <= set(services)
    app_env = services["app"]["environment"]
    assert app_env["SIJILL_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@db:5432/" in app_env["SIJILL_DATABASE_URL"]
    assert services["app"]["depends_on"]["db"]["condition"] == "service_healthy"


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
    for name, service in _compose()["services"].items():
        for var in service.get("environment", {}):
            if var.startswith("SIJILL_"):
                assert var in fields, f"{name} sets {var}, which no setting reads"


def test_compose_and_dockerfile_commands_exist_in_the_cli():
    paths = _cli_paths()
    commands = [" ".join(s["command"]) if isinstance(s.get("command"), list) else s.get("command", "")
                for s in _compose()["services"].values()]
    commands.append(re.search(r'CMD \[.*"(sijill.*)"\]', (ROOT / "Dockerfile").read_text()).group(1))
    invocations = [inv for c in commands for inv in _sijill_invocations(c)]
    assert invocations
    for inv in invocations:
        assert any(inv[: len(p)] == p for p in paths), f"sijill {' '.join(inv)} is not a CLI command"

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

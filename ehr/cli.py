"""The ``sijill`` command line: serve, migrate, load demo data, benchmark."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer
from rich.console import Console

from ehr.settings import get_settings

app = typer.Typer(help="Sijill — FHIR server for Morocco's compulsory health insurance (AMO).", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()


@app.callback()
def _logs() -> None:
    """Commands log like the server: JSON lines with the whitelisted fields only."""
    from ehr.ops.logs import setup_logging

    setup_logging(get_settings())


def _mount() -> None:
    """Commands contributed by the domain packages."""
    from ehr.security.cli import audit_app, token_command
    from claims.payment import pay_command
    from claims.statistics.placement import statistics_app
    from claims.sla import sla_command
    from claims.worker import worker_command
    from profiles.cli import reference_app

    app.command("worker")(worker_command)
    app.command("sla")(sla_command)
    app.command("pay")(pay_command)
    app.command("token")(token_command)
    app.add_typer(audit_app, name="audit")
    app.add_typer(reference_app, name="reference")
    app.add_typer(statistics_app, name="statistics")


_mount()

# --- storage: the object store behind Binary (docs/storage.md) ------------------------------
storage_app = typer.Typer(help="Object storage of documents (Binary bytes).", no_args_is_help=True)
app.add_typer(storage_app, name="storage")


@storage_app.command("gc")
def storage_gc(
    older_than_minutes: int = typer.Option(60, min=1, help="Only objects at least this old (a write may be committing)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the orphans without deleting them."),
) -> None:
    """Delete stored objects that no Binary version refers to (left by a crash between write and commit)."""
    from datetime import timedelta

    from ehr.store.db import create_engine
    from interop.binary.gc import collect
    from interop.storage import open_store

    settings = get_settings()

    async def run():
        engine = create_engine(settings.database_url)
        try:
            return await collect(engine, open_store(settings), min_age=timedelta(minutes=older_than_minutes), dry_run=dry_run)
        finally:
            await engine.dispose()

    done = asyncio.run(run())
    for key in done.deleted:
        console.print(("would delete " if dry_run else "deleted ") + key)
    console.print(f"{len(done.deleted)} orphan(s){' found' if dry_run else ' deleted'}, "
                  f"{done.kept_referenced} referenced and {done.kept_recent} recent object(s) kept")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="Worker processes (in a container: 1, and scale the containers)."),
) -> None:
    """Serve the FHIR API (base /fhir)."""
    import uvicorn

    settings = get_settings()
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import tempfile

        # Before the workers start: they then share their counters (ehr.ops.metrics).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sijill-metrics-")
    console.print(f"Serving FHIR at http://{host}:{port}/fhir on {settings.database_url.split('@')[-1]}")
    uvicorn.run(
        "ehr.app:create_app", factory=True, host=host, port=port, workers=workers,
        loop="uvloop", http="httptools", log_level=settings.log_level, access_log=False,
        # A worker is killed when it misses a ping for this long: on a loaded machine 5 s was not enough.
        timeout_worker_healthcheck=settings.serve_worker_healthcheck_seconds,
    )


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply schema migrations (SQLite or PostgreSQL, per SIJILL_DATABASE_URL) and store the shipped profiles."""
    from ehr.store.migrate import upgrade

    from ehr.content_install import install_content
    from ehr.store.db import create_engine

    settings = get_settings()
    upgrade(settings.database_url, revision)
    console.print(f"[green]Database at {revision}[/green]")

    async def install() -> tuple[int, int]:
        engine = create_engine(settings.database_url)
        try:
            return await install_content(engine, settings.base_url)
        finally:
            await engine.dispose()

    written, unchanged = asyncio.run(install())
    console.print(f"Conformance content: {written} written, {unchanged} unchanged")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="The revision to go back to, e.g. 0005, or -1.")) -> None:
    """Undo schema migrations down to REVISION (each migration's downgrade; some refuse while
    they would lose data, e.g. unsealed audit events: seal first)."""
    from ehr.store.migrate import downgrade

    downgrade(get_settings().database_url, revision)
    console.print(f"[green]Database at {revision}[/green]")


@app.command("backup")
def backup_command(dest: Path = typer.Argument(..., help="A new directory for the backup.")) -> None:
    """Back up the database and the stored documents together, while the server runs."""
    from interop.storage import open_store
    from interop.storage.backup import backup

    settings = get_settings()
    done = backup(settings.database_url, open_store(settings), dest)
    console.print(f"[green]backup written to {done.path}[/green]: database at revision {done.revision}, "
                  f"{done.objects} document object(s), {done.bytes} bytes")


@app.command("restore")
def restore_command(src: Path = typer.Argument(..., exists=True, file_okay=False, help="A directory `sijill backup` wrote.")) -> None:
    """Replace the database and put back the documents of a backup.

    Stop the server and the workers first, run `sijill db upgrade` after; `storage gc` then
    keeps every document newer than the backup."""
    from interop.storage import open_store
    from interop.storage.backup import restore

    settings = get_settings()
    manifest = restore(src, settings.database_url, open_store(settings))
    console.print(f"[green]restored[/green] the backup of {manifest['created']} (database revision "
                  f"{manifest['database']['revision']}, {len(manifest['objects'])} document object(s))")


@app.command()
def demo(
    patients: int = typer.Option(200, min=1, help="How many synthetic patients to load."),
    seed: int = typer.Option(1, help="Generator seed: the same seed gives the same population."),
    show: bool = typer.Option(False, "--show", help="Load nothing: print what each demo user can act on."),
    as_json: bool = typer.Option(False, "--json", help="That summary as JSON on stdout."),
) -> None:
    """Generate and load a synthetic Moroccan population (idempotent: ids are deterministic),
    then print which patient, prescription and care sheet each demo user can act on."""
    from ehr.demo_load import load_demo

    asyncio.run(load_demo(get_settings(), patients, seed, Console(stderr=True) if as_json else console, load=not show,
                          as_json=as_json))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Run the benchmark harness against a real server on PostgreSQL; writes bench/results/.

    Every option is the harness's own (`sijill bench --help-harness` lists them), e.g.
    `sijill bench --patients 2000 --duration 10 --connections 32`.  `sijill bench claims [options]`
    runs the care-sheet benchmark instead (`sijill bench claims --help-harness`), `sijill bench
    prescription-print` the printed prescription's (PDF with QR code).
    """
    from bench.harness import main as bench_main

    args = ["--help" if a == "--help-harness" else a for a in ctx.args]
    if args[:1] == ["claims"]:
        from bench.claims_replay import main as claims_main

        raise typer.Exit(claims_main(args[1:]))
    if args[:1] == ["prescription-print"]:
        from bench.prescription_print import main as print_main

        raise typer.Exit(print_main(args[1:]))
    raise typer.Exit(bench_main(args))


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()

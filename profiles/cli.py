"""``sijill reference …``: load the published reference tables and list the loaded versions.

    sijill reference load tariffs TNR-2025.xlsx --version 2025 --effective-from 2025-01-01
    sijill reference load-sample
    sijill reference list

A rejected file prints every bad row (line, column, reason) and exits with status 1; nothing
is written then, and the version in force stays the same.
"""
from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from ehr.outcome import FHIRError
from ehr.settings import get_settings
from ehr.store.db import create_engine, write_transaction
from profiles.reference.codesystems import SAMPLE_DIR, SAMPLE_FILES
from profiles.reference.kinds import KINDS
from profiles.reference.loader import LoadRejected, LoadReport, load
from profiles.reference.tables import reference_table_version

reference_app = typer.Typer(help="Tables de référence : médicaments, tarifs (TNR), ALD/ALC.", no_args_is_help=True)



def _out() -> Console:
    # Made per use so it writes to the current stdout at the current terminal width.
    return Console()
KIND_HELP = "Type de table : " + ", ".join(f"{k} ({v.label})" for k, v in KINDS.items())


def _url(database_url: str | None) -> str:
    return database_url or get_settings().database_url


async def _load_one(url: str, kind: str, path: Path, **options) -> LoadReport:
    engine = create_engine(url, pool_size=1)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=_out(), transient=True) as bar:
            tasks: dict[str, int] = {}

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(f"{phase} de {path.name}", total=total)
                bar.update(tasks[phase], completed=done)

            async with write_transaction(engine) as conn:
                return await load(conn, kind, path, progress=progress, **options)
    finally:
        await engine.dispose()


def _print_report(report: LoadReport) -> None:
    until = f" jusqu'au {report.effective_to}" if report.effective_to else ""
    _out().print(f"[green]✓[/] {report.kind} version [bold]{report.version}[/] : {report.rows} lignes chargées, "
                  f"en vigueur à partir du {report.effective_from}{until}" + (" [yellow](DONNÉES D'EXEMPLE)[/]" if report.sample else ""))
    if report.closed_version:
        _out().print(f"  la version {report.closed_version} prend fin le veille de cette date")
    if report.ignored_columns:
        _out().print(f"  colonnes ignorées : {', '.join(report.ignored_columns)}")


def _database_error(exc: DBAPIError) -> typer.Exit:
    _out().print(f"[red]✗[/] erreur de la base de données : {exc.orig}\n"
                 "  Les tables de référence existent-elles ? (migrations : sijill db upgrade)")
    return typer.Exit(2)


def _print_rejection(exc: FHIRError, path: Path) -> None:
    if isinstance(exc, LoadRejected):
        table = Table(title=f"{path.name} refusé : {len(exc.errors)} problème(s), rien n'a été chargé", title_justify="left")
        table.add_column("Ligne", justify="right")
        table.add_column("Colonne")
        table.add_column("Problème")
        for e in exc.errors:
            table.add_row(str(e.line), e.column or "", e.message)
        _out().print(table)
    else:
        for issue in exc.issues:
            _out().print(f"[red]✗[/] {issue.diagnostics}")


@reference_app.command("load")
def load_command(
    kind: str = typer.Argument(..., help=KIND_HELP),
    file: Path = typer.Argument(..., help="Fichier CSV ou XLSX publié"),
    version: Optional[str] = typer.Option(None, "--version", help="Version de la table (sinon « # version: » du fichier)"),
    effective_from: Optional[str] = typer.Option(None, "--effective-from", help="Date d'entrée en vigueur AAAA-MM-JJ"),
    effective_to: Optional[str] = typer.Option(None, "--effective-to", help="Date de fin (incluse), facultative"),
    source: Optional[str] = typer.Option(None, "--source", help="Origine du fichier (publication, arrêté…)"),
    sample: Optional[bool] = typer.Option(None, "--sample/--official", help="Données d'exemple ou officielles"),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Base de données (sinon SIJILL_DATABASE_URL)"),
) -> None:
    """Charger un fichier comme nouvelle version d'une table de référence (tout ou rien)."""
    try:
        report = asyncio.run(_load_one(_url(database_url), kind, file, version=version, effective_from=effective_from,
                                       effective_to=effective_to, source=source, sample=sample))
    except FHIRError as exc:
        _print_rejection(exc, file)
        raise typer.Exit(1) from None
    except DBAPIError as exc:
        raise _database_error(exc) from None
    _print_report(report)


@reference_app.command("load-sample")
def load_sample_command(
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Base de données (sinon SIJILL_DATABASE_URL)"),
) -> None:
    """Charger les tables d'exemple livrées avec Sijill (marquées comme telles)."""
    failed = False
    for kind, filename in SAMPLE_FILES.items():
        try:
            _print_report(asyncio.run(_load_one(_url(database_url), kind, SAMPLE_DIR / filename, sample=True)))
        except FHIRError as exc:
            if exc.status == 409:  # already loaded: nothing to do
                _out().print(f"[yellow]•[/] {kind} : {exc.issues[0].diagnostics}")
                continue
            failed = True
            _print_rejection(exc, SAMPLE_DIR / filename)
        except DBAPIError as exc:
            raise _database_error(exc) from None
    if failed:
        raise typer.Exit(1)


async def _versions(url: str) -> list:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            v = reference_table_version
            return (await conn.execute(select(v).order_by(v.c.kind, v.c.effective_from))).all()
    finally:
        await engine.dispose()


@reference_app.command("list")
def list_command(
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Base de données (sinon SIJILL_DATABASE_URL)"),
) -> None:
    """Lister les versions chargées et celle en vigueur aujourd'hui."""
    try:
        rows = asyncio.run(_versions(_url(database_url)))
    except DBAPIError as exc:
        raise _database_error(exc) from None
    today = date.today()
    table = Table(title="Tables de référence chargées", title_justify="left")
    for col in ("Table", "Version", "En vigueur du", "au", "Lignes", "Exemple", "Source", ""):
        table.add_column(col)
    for r in rows:
        in_force = r.effective_from <= today and (r.effective_to is None or r.effective_to >= today)
        table.add_row(r.kind, r.version, str(r.effective_from), str(r.effective_to or "—"), str(r.row_count),
                      "oui" if r.sample else "non", r.source, "[green]en vigueur[/]" if in_force else "")
    _out().print(table if rows else "Aucune table de référence chargée.")

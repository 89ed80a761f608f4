"""Command-line pieces the lead mounts: ``sijill token`` and ``sijill audit seal|verify|purge``."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import typer
from rich.console import Console

from ehr.security.audit import purge, seal_pending, verify
from ehr.security.issuer import DevIssuer, OAuthError
from ehr.settings import get_settings
from ehr.store.clock import now_us
from ehr.store.db import create_engine, read_connection, write_transaction

err_console = Console(stderr=True)
console = Console()


def token_command(
    user: str = typer.Option(..., "--user", help="Demo user: doctor, pharmacist, agent-cnss, agent-cnops, agent-amo-tadamon, patient, paper-agent, admin, statistician"),
    scopes: str | None = typer.Option(None, "--scopes", help="Space-separated SMART scopes (default: the role's)"),
    ttl: int | None = typer.Option(None, "--ttl", help="Lifetime in seconds (default SIJILL_TOKEN_TTL_SECONDS)"),
) -> None:
    """Print a bearer token for a demo user, signed by the built-in issuer."""
    settings = get_settings()
    if not settings.dev_issuer_enabled:
        err_console.print("[red]The built-in issuer is disabled: set SIJILL_DEV_ISSUER_ENABLED=true[/red]")
        raise typer.Exit(2)
    issuer = DevIssuer.from_settings(settings, settings.base_url)
    try:
        issued = issuer.issue_token(user, scopes, ttl)
    except OAuthError as exc:
        err_console.print(f"[red]{exc.description}[/red]")
        raise typer.Exit(2) from None
    # Only the token on stdout, so that TOKEN=$(sijill token --user doctor) works.
    print(issued.access_token)


audit_app = typer.Typer(help="The hash-chained audit trail", no_args_is_help=True)


async def _seal(url: str) -> int:
    engine = create_engine(url)
    try:
        return await seal_pending(engine)
    finally:
        await engine.dispose()


async def _verify(url: str):
    """Seal what the inbox holds, then verify the whole chain in one snapshot (PostgreSQL reads
    each statement afresh by default: sealers running meanwhile would look like a broken tail)."""
    engine = create_engine(url)
    try:
        sealed = await seal_pending(engine)
        async with read_connection(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            return sealed, await verify(conn)
    finally:
        await engine.dispose()


async def _purge(url: str, older_than_us: int):
    engine = create_engine(url)
    try:
        async with write_transaction(engine) as conn:
            return await purge(conn, older_than_us)
    finally:
        await engine.dispose()


@audit_app.command("seal")
def seal_command() -> None:
    """Chain the events waiting in the audit inbox (the server also does it every few seconds)."""
    sealed = asyncio.run(_seal(get_settings().database_url))
    console.print(f"sealed {sealed} events into the chain")


@audit_app.command("verify")
def verify_command() -> None:
    """Seal the inbox, then check every link of the chain; exit 1 at the first broken one."""
    sealed, report = asyncio.run(_verify(get_settings().database_url))
    if report.ok:
        console.print(f"[green]audit chain intact[/green]: {report.checked} events, anchor {report.anchor_seq}, head {report.head_seq}")
        console.print(f"head hash {report.head_hash}")
        console.print(f"sealed {sealed} events first; {report.pending} recorded since, waiting in the inbox")
        return
    console.print(f"[red]audit chain BROKEN at seq {report.broken_seq}[/red]: {report.reason} ({report.checked} events verified before it)")
    raise typer.Exit(1)


@audit_app.command("purge")
def purge_command(
    days: int | None = typer.Option(None, "--older-than-days", help="Default: SIJILL_AUDIT_RETENTION_DAYS"),
) -> None:
    """Seal the inbox, then remove events older than the retention period; what remains still verifies."""
    keep = days if days is not None else get_settings().audit_retention_days
    if keep < 1:
        err_console.print("[red]--older-than-days must be at least 1[/red]")
        raise typer.Exit(2)
    cutoff = now_us() - int(timedelta(days=keep).total_seconds() * 1_000_000)
    report = asyncio.run(_purge(get_settings().database_url, cutoff))
    console.print(f"purged {report.deleted} events; chain anchored at seq {report.anchor_seq}")

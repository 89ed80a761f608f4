"""Loading the synthetic population in-process, through the same transaction path as the API."""
from __future__ import annotations

import time

import orjson

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import func, select

from ehr.interactions.transaction import Options, transaction
from ehr.settings import Settings
from ehr.store.db import create_engine
from ehr.store.schema import resource


def _demo_users_bundle(reference: dict) -> dict:
    """The demo users' own resources (one per role, see ``sijill token``); what they act on is the
    story's (``ehr.demo.story_load``), written once the population is there."""
    from ehr.security.demo import demo_resources

    have = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in reference.get("entry", [])}
    resources = [r for r in demo_resources() if (r["resourceType"], r["id"]) not in have]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources
    ]}


async def load_demo(settings: Settings, patients: int, seed: int, console: Console, *, load: bool = True,
                    as_json: bool = False) -> int:
    from claims.demo import load_claims_day
    from ehr.demo.story_load import print_summary, summary, tell_story, walk_in_ids
    from ehr.plugins import load_plugins

    load_plugins()  # the same hooks as the API: profile validation, care-sheet submission

    engine = create_engine(settings.database_url)
    opts = Options(settings.base_url, settings.default_page_size, settings.max_page_size, 1_000_000, False)
    try:
        async with engine.connect() as conn:
            have = (
                await conn.execute(select(func.count()).select_from(resource).where(resource.c.res_type == "Patient"))
            ).scalar_one()
        written = 0
        if load and have >= patients:
            console.print(f"Demo data already loaded ({have} patients); nothing to do.")
        elif load:
            written = await _load_population(engine, opts, patients, seed, console)
            day = await load_claims_day(engine, settings, seed=seed, decide=True, spare=await walk_in_ids(engine))
            console.print(
                f"[green]A day of care sheets: {day.submitted} submitted, {day.decided} decided "
                f"({', '.join(f'{k} {v}' for k, v in sorted(day.by_kind.items()))})[/green]"
            )
        if load and await tell_story(engine, settings, opts, seed):
            console.print("[green]The demo's story: demo-patient's file, the care sheets, the payments and the trail[/green]")
        found = await summary(engine)
        if as_json:
            print(orjson.dumps(found).decode())
        else:
            print_summary(found, console)
        return written
    finally:
        await engine.dispose()


async def _load_population(engine, opts: Options, patients: int, seed: int, console: Console) -> int:
    from ehr.demo.generator import patient_bundles, reference_bundle

    started, written = time.perf_counter(), 0
    with Progress(
        TextColumn("[bold]Loading demo patients"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    ) as progress:
        task = progress.add_task("patients", total=patients)
        reference = reference_bundle(seed)
        await transaction(engine, reference, opts)
        await transaction(engine, _demo_users_bundle(reference), opts)
        for b in patient_bundles(patients, seed):
            await transaction(engine, b, opts)
            written += len(b.get("entry", []))
            progress.advance(task)
    elapsed = time.perf_counter() - started
    console.print(f"[green]Loaded {written} resources for {patients} patients in {elapsed:.1f}s ({written / elapsed:.0f}/s)[/green]")
    # Fresh statistics for the planner after a bulk load (autovacuum may be off or late).
    async with engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE" if conn.dialect.name == "postgresql" else "PRAGMA optimize")
        await conn.commit()
    return written

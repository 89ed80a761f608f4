"""Loading the synthetic population in-process, through the same transaction path as the API."""
from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import func, select

from ehr.interactions.transaction import Options, transaction
from ehr.settings import Settings
from ehr.store.db import create_engine
from ehr.store.schema import resource


def _demo_users_bundle(reference: dict) -> dict:
    """The demo users' own resources (one per role, see ``sijill token``), and for the demo doctor
    an encounter with the first patients so the doctor has a file to open."""
    from ehr.demo.generator import patient_id
    from ehr.security.demo import demo_resources

    have = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in reference.get("entry", [])}
    resources = [r for r in demo_resources() if (r["resourceType"], r["id"]) not in have]
    for i in range(5):
        resources.append({
            "resourceType": "Encounter", "id": f"demo-doctor-visit-{i}", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{patient_id(1, i)}"},
            "participant": [{"individual": {"reference": "Practitioner/demo-doctor"}}],
            "period": {"start": time.strftime("%Y-%m-%dT09:00:00+01:00"), "end": time.strftime("%Y-%m-%dT09:20:00+01:00")},
        })
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources
    ]}


async def load_demo(settings: Settings, patients: int, seed: int, console: Console) -> int:
    from claims.demo import load_claims_day
    from ehr.demo.generator import patient_bundles, reference_bundle
    from ehr.plugins import load_plugins

    load_plugins()  # the same hooks as the API: profile validation, care-sheet submission

    engine = create_engine(settings.database_url)
    opts = Options(settings.base_url, settings.default_page_size, settings.max_page_size, 1_000_000, False)
    try:
        async with engine.connect() as conn:
            have = (
                await conn.execute(select(func.count()).select_from(resource).where(resource.c.res_type == "Patient"))
            ).scalar_one()
        if have >= patients:
            console.print(f"Demo data already loaded ({have} patients); nothing to do.")
            return 0
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
        day = await load_claims_day(engine, settings, seed=seed, decide=True)
        console.print(
            f"[green]A day of care sheets: {day.submitted} submitted, {day.decided} decided "
            f"({', '.join(f'{k} {v}' for k, v in sorted(day.by_kind.items()))})[/green]"
        )
        return written
    finally:
        await engine.dispose()

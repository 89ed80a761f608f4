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


async def load_demo(settings: Settings, patients: int, seed: int, console: Console) -> int:
    from ehr.demo.generator import patient_bundles, reference_bundle

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
            await transaction(engine, reference_bundle(seed), opts)
            for b in patient_bundles(patients, seed):
                await transaction(engine, b, opts)
                written += len(b.get("entry", []))
                progress.advance(task)
        elapsed = time.perf_counter() - started
        console.print(f"[green]Loaded {written} resources for {patients} patients in {elapsed:.1f}s ({written / elapsed:.0f}/s)[/green]")
        return written
    finally:
        await engine.dispose()

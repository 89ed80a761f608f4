"""The statistics' side tables, kept by a write hook (``ehr.hooks.observer``) on every write of a
Patient or a Coverage, whatever the path (REST, transaction Bundles, the demo and bench loaders,
registry feeds), in the writer's transaction:

- ``patient_place``: the province and region of each patient's address (``territory.place_of``),
  so an aggregate joins one row per patient by its key instead of reading addresses — reading
  them at query time costs a scan of the whole insured population per query;
- ``coverage_start``: the start of each AMO Coverage (order 1, active), for the time to the
  first care after it.

``sijill statistics refresh`` rebuilds both from the stored resources (a database that predates
them, or after a bulk import that wrote rows directly).
"""
from __future__ import annotations

import asyncio

import orjson
import typer
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from claims.coverage import coverage_facts
from claims.lookups import fund_code, resources_by_id
from claims.statistics.territory import place_of
from claims.tables import coverage_start, patient_place
from ehr.hooks import observer
from ehr.interactions.context import Context
from ehr.store.db import create_engine, write_transaction
from ehr.store.repository import Stored
from ehr.store.schema import resource

_CHUNK = 500  # ids per DELETE … IN (bound parameters stay under both databases' limits)


def _patient_rows(patients: dict[str, dict | None]) -> list[dict]:
    return [dict(patient_id=pid, province=place[0], region=place[1])
            for pid, res in patients.items() if res is not None and (place := place_of(res)) is not None]


async def _coverage_rows(conn: AsyncConnection, coverages: dict[str, dict | None]) -> list[dict]:
    facts = {cid: f for cid, res in coverages.items() if res is not None and (f := coverage_facts(res, {})) is not None
             and f.beneficiary_id and f.status == "active" and f.order in (None, 1)}
    orgs = await resources_by_id(conn, {("Organization", f.fund_ref.split("/", 1)[1]) for f in facts.values()})
    return [dict(coverage_id=cid, patient_id=f.beneficiary_id, starts_on=f.start.isoformat(),
                 fund_code=fund_code(orgs.get(("Organization", f.fund_ref.split("/", 1)[1])), f.fund_ref.split("/", 1)[1]))
            for cid, f in facts.items() if f.start is not None]


async def _replace(conn: AsyncConnection, table, key, ids: list[str], rows: list[dict]) -> None:
    for i in range(0, len(ids), _CHUNK):
        await conn.execute(delete(table).where(key.in_(ids[i:i + _CHUNK])))
    if rows:
        await conn.execute(insert(table), rows)


@observer
async def follow_writes(ctx: Context, written: list[tuple[Stored, dict | None]]) -> None:
    """A Patient's new address moves them (an address naming no area: no row); a Coverage's new
    period moves its start; a deletion removes the row."""
    patients = {s.res_id: res for s, res in written if s.res_type == "Patient"}
    coverages = {s.res_id: res for s, res in written if s.res_type == "Coverage"}
    if patients:
        await _replace(ctx.conn, patient_place, patient_place.c.patient_id, sorted(patients), _patient_rows(patients))
    if coverages:
        await _replace(ctx.conn, coverage_start, coverage_start.c.coverage_id, sorted(coverages),
                       await _coverage_rows(ctx.conn, coverages))


async def refresh(conn: AsyncConnection, page: int = 2000) -> dict[str, int]:
    """Rebuild both tables from the current Patients and Coverages; the rows written per table."""
    counts = {}
    for res_type, table in (("Patient", patient_place), ("Coverage", coverage_start)):
        await conn.execute(delete(table))
        counts[table.name], last = 0, ""
        while True:  # keyset pages: no cursor held open across the inserts
            batch = (await conn.execute(
                select(resource.c.res_id, resource.c.content)
                .where(resource.c.res_type == res_type, resource.c.deleted.is_(False), resource.c.res_id > last)
                .order_by(resource.c.res_id).limit(page))).all()
            if not batch:
                break
            last = batch[-1].res_id
            found = {rid: orjson.loads(content) for rid, content in batch}
            rows = _patient_rows(found) if res_type == "Patient" else await _coverage_rows(conn, found)
            if rows:
                await conn.execute(insert(table), rows)
            counts[table.name] += len(rows)
    return counts


async def _refresh(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        async with write_transaction(engine) as conn:
            return await refresh(conn)
    finally:
        await engine.dispose()


statistics_app = typer.Typer(help="Statistics for policy (docs/statistics.md).", no_args_is_help=True)


@statistics_app.command("refresh")
def refresh_command() -> None:
    """Rebuild the patients' placement and the coverage starts from the stored resources."""
    from ehr.settings import get_settings

    counts = asyncio.run(_refresh(get_settings().database_url))
    typer.echo(f"patient_place: {counts['patient_place']} patients placed; coverage_start: {counts['coverage_start']} coverages")

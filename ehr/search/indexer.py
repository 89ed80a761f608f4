"""Index rows of a resource, written in the same transaction as the version they describe.

Per resource type, an extraction plan is compiled once (each parameter's expression through
``ehr.search.fhirpath``) and kept in the registry's cache, which ``Registry.add`` clears.  Writing a resource's
rows is a single statement on PostgreSQL (DELETE and INSERT of every table as CTEs) and a
single trip to aiosqlite's worker thread on SQLite.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterable

import orjson
from sqlalchemy import JSON, BigInteger, any_, bindparam, cast, delete, func, insert, literal, literal_column, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.search.fhirpath import CompiledPath, compile_path
from ehr.search.registry import COLUMN_PARAMS, Registry, SearchParam, get_registry
from ehr.search.values import COLUMNS, EMITTERS, Rows, emit_reference, emit_token, new_rows
from ehr.settings import get_settings
from ehr.store.schema import INDEX_TABLES

Emitter = Callable[[Any, int, int, Rows], None]


@dataclass(frozen=True)
class _Plan:
    param: SearchParam
    path: CompiledPath
    emit: Emitter
    # compartment types a reference from this param puts the resource in (Patient, ...)
    compartments: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _CompositePlan:
    param: SearchParam
    path: CompiledPath
    components: tuple[tuple[int, CompiledPath, Emitter], ...]


@dataclass(frozen=True)
class _TypePlan:
    plans: tuple[_Plan, ...]
    composites: tuple[_CompositePlan, ...]
    own_compartment: bool  # a Patient is in its own Patient compartment, etc.


def _emitter(param: SearchParam, ptype: str, own_base: str) -> Emitter:
    if ptype == "reference":
        ident = param.sub_hash(":identifier")
        return lambda v, h, g, rows: emit_reference(v, h, g, rows, own_base, ident)
    if ptype == "token":
        return partial(emit_token, of_type=param.sub_hash(":of-type"))
    return EMITTERS[ptype]


def _type_plan(registry: Registry, res_type: str) -> _TypePlan:
    key = ("extraction-plan", res_type)
    plan = registry.cache.get(key)
    if plan is not None:
        return plan
    own_base = get_settings().base_url.rstrip("/")
    links: dict[str, set[str]] = {}
    for comp, codes in registry.compartment_params(res_type).items():
        for code in codes:
            links.setdefault(code, set()).add(comp)
    plans, composites = [], []
    for param in registry.for_type(res_type).values():
        if param.code in COLUMN_PARAMS or not param.expression:
            continue
        path = compile_path(param.expression)
        if param.type == "composite":
            comps = tuple(
                (param.sub_hash(f"${i}"), compile_path(c.expression), _emitter(param, c.type, own_base))
                for i, c in enumerate(param.components)
            )
            composites.append(_CompositePlan(param, path, comps))
        else:
            comps_of = frozenset(links.get(param.code, ())) if param.type == "reference" else frozenset()
            plans.append(_Plan(param, path, _emitter(param, param.type, own_base), comps_of))
    plan = _TypePlan(tuple(plans), tuple(composites), res_type in registry.compartments)
    registry.cache[key] = plan
    return plan


def _extract_rows(resource: dict, registry: Registry | None = None) -> Rows:
    registry = registry or get_registry()
    res_type = resource.get("resourceType")
    rows = new_rows()
    if res_type not in registry.resource_types:
        return rows
    tplan = _type_plan(registry, res_type)
    compartment = rows["compartment"]
    for plan in tplan.plans:
        values = plan.path(resource, resource)
        if not values:
            continue
        h = plan.param.hash
        if plan.compartments:
            for value in values:
                for ttype, tid in plan.emit(value, h, 0, rows):
                    if ttype in plan.compartments:
                        compartment[(ttype, tid)] = None
        else:
            emit = plan.emit
            for value in values:
                emit(value, h, 0, rows)
    grp = 0
    for cplan in tplan.composites:
        for node in cplan.path(resource, resource):
            parts = [path(node, resource) for _, path, _ in cplan.components]
            if not all(parts):  # a tuple missing a component can never match a composite search
                continue
            grp += 1
            for (h, _, emit), values in zip(cplan.components, parts):
                for value in values:
                    emit(value, h, grp, rows)
    own_id = resource.get("id")
    if tplan.own_compartment and isinstance(own_id, str):
        compartment[(res_type, own_id)] = None
    return rows


def extract(resource: dict) -> dict[str, list[dict]]:
    """Index rows of ``resource`` by table key ("string", "token", ..., "compartment"), no rid."""
    rows = _extract_rows(resource)
    return {key: [dict(zip(COLUMNS[key], row)) for row in found] for key, found in rows.items() if found}


# -- writing ---------------------------------------------------------------------------------
_INSERTS = {key: insert(table) for key, table in INDEX_TABLES.items()}
_DELETES = [delete(t).where(t.c.rid.in_(bindparam("rids", expanding=True))) for t in INDEX_TABLES.values()]


def _pg_write(fresh: bool):
    """One PostgreSQL statement replacing the rows of ``:rids`` in every index table.

    Data-modifying CTEs all run, each exactly once, against the same snapshot (so the DELETEs
    never see the rows being INSERTed).  Each table's new rows travel as one JSON parameter
    expanded server-side by ``json_populate_recordset`` (typed by the table's own row type):
    nine parameters whatever the number of rows, a short constant SQL text that psycopg keeps
    prepared, and no per-element array adaptation in Python.
    """
    stmt = select(literal(1))
    for key, table in INDEX_TABLES.items():
        if not fresh:
            rids = bindparam("rids", type_=ARRAY(BigInteger))
            stmt = stmt.add_cte(delete(table).where(table.c.rid == any_(rids)).cte(f"d_{key}"))
        names = [c.name for c in table.columns]
        record = literal_column(f"NULL::{table.name}")  # a type name, not a value
        rows = func.json_populate_recordset(record, cast(bindparam(key), JSON)).table_valued(*names)
        stmt = stmt.add_cte(insert(table).from_select(names, select(*[rows.c[n] for n in names])).cte(f"i_{key}"))
    return stmt


_PG_WRITE = {fresh: _pg_write(fresh) for fresh in (False, True)}


def _sqlite_sql() -> dict[str, tuple[str, str]]:
    """Per table, the positional DELETE-by-rid and INSERT that SQLite runs in one go."""
    dialect = sqlite.dialect(paramstyle="qmark")
    out = {}
    for key, table in INDEX_TABLES.items():
        names = ["rid", *COLUMNS[key]]
        ins = insert(table).compile(dialect=dialect, column_keys=names)
        assert list(ins.positiontup) == names
        out[key] = (str(delete(table).where(table.c.rid == bindparam("rid")).compile(dialect=dialect)), str(ins))
    return out


_SQLITE_SQL = _sqlite_sql()


async def _sqlite_write(conn: AsyncConnection, rids: list[int], batch: dict[str, list[tuple]], fresh: bool) -> bool:
    """Run every DELETE/INSERT in aiosqlite's worker thread in one hop, inside the caller's
    transaction.  Each statement through SQLAlchemy costs a thread round trip; a write touches
    up to 16 statements.  Returns False if the driver is not aiosqlite (the caller then goes
    statement by statement)."""
    raw = (await conn.get_raw_connection()).driver_connection
    run_in_thread = getattr(raw, "_execute", None)
    if run_in_thread is None or not hasattr(raw, "_conn"):
        return False
    ops = []
    for key, (delete_sql, insert_sql) in _SQLITE_SQL.items():
        if not fresh:
            ops.append((delete_sql, [(rid,) for rid in rids]))
        if batch.get(key):
            ops.append((insert_sql, batch[key]))

    def work() -> None:
        db = raw._conn
        for sql, params in ops:
            db.executemany(sql, params)

    await run_in_thread(work)
    return True


async def unindex_resources(conn: AsyncConnection, rids: list[int]) -> None:
    if rids:
        await _write(conn, rids, {}, fresh=False)


async def unindex_resource(conn: AsyncConnection, rid: int) -> None:
    await unindex_resources(conn, [rid])


def _pg_params(rids: list[int], batch: dict[str, list[tuple]]) -> dict:
    params: dict = {"rids": rids}
    for key, cols in COLUMNS.items():
        names = ("rid",) + cols
        params[key] = orjson.dumps([dict(zip(names, row)) for row in batch.get(key) or ()]).decode()
    return params


async def _write(conn: AsyncConnection, rids: list[int], batch: dict[str, list[tuple]], fresh: bool) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(_PG_WRITE[fresh], _pg_params(rids, batch))
        return
    # Only inside the caller's transaction: outside one, SQLAlchemy's autobegin must run first.
    if conn.dialect.driver == "aiosqlite" and conn.in_transaction() and await _sqlite_write(conn, rids, batch, fresh):
        return
    if not fresh:
        for stmt in _DELETES:
            await conn.execute(stmt, {"rids": rids})
    for key, rows in batch.items():
        if rows:
            cols = ("rid",) + COLUMNS[key]
            await conn.execute(_INSERTS[key], [dict(zip(cols, row)) for row in rows])


async def index_resources(conn: AsyncConnection, items: Iterable[tuple[int, dict]], *, fresh: bool = False) -> None:
    """Replace the index rows of many resources: one statement on PostgreSQL, one trip to
    SQLite's thread, whatever the number of resources.

    ``fresh=True`` says the rids were just created, so there is nothing to delete.
    """
    registry = get_registry()
    batch: dict[str, list[tuple]] = {key: [] for key in COLUMNS}
    rids = []
    for rid, res in items:
        rids.append(rid)
        for key, found in _extract_rows(res, registry).items():
            if found:
                batch[key].extend((rid, *row) for row in found)
    if rids:
        await _write(conn, rids, batch, fresh)


async def index_resource(conn: AsyncConnection, rid: int, resource: dict, *, fresh: bool = False) -> None:
    """Replace ``rid``'s index rows (all tables) by those of ``resource``."""
    await index_resources(conn, [(rid, resource)], fresh=fresh)

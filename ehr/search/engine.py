"""FHIR search over the index tables: one statement per page, one for the total, one per
include level.

``search`` turns the raw query pairs into SQL conditions (``ehr.search.criteria``), pages with
a keyset cursor (``ehr.search.paging``), adds includes (``ehr.search.includes``) and splices the
stored JSON bytes into a searchset Bundle without parsing them (unless ``_summary`` or
``_elements`` asks for a subset).  ``find_matches`` is the strict, unpaged variant behind
conditional create/update/delete and conditional references.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence
from urllib.parse import quote, urlencode

import orjson
from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

from ehr.bundle import bundle, entry
from ehr.outcome import FHIRError, Issue, not_found, outcome_bytes
from ehr.parsing import query_params
from ehr.search.access import AccessFilter
from ehr.search.criteria import Context, UnknownParameter, criterion, current, type_is
from ehr.search.includes import IncludeSpec, fetch_includes, parse_include
from ehr.search.paging import Cursor, SortKey, after, decode_cursor, encode_cursor, order_by, sort_keys
from ehr.search.params import invalid, not_supported
from ehr.search.registry import Registry, get_registry
from ehr.search.subset import Subset, apply_subset, parse_subset
from ehr.settings import get_settings
from ehr.store.schema import idx_compartment, resource

# Parameters that shape the result rather than filter it.
_RESULT_PARAMS = {"_count", "_sort", "_summary", "_elements", "_total", "_cursor", "_contained", "_containedType"}
# Handled by the REST layer; accepted and passed along in links.
_TRANSPORT_PARAMS = {"_format", "_pretty"}
TOTAL_MODES = ("none", "estimate", "accurate")


@dataclass
class SearchOutcome:
    bundle: bytes  # a searchset Bundle, ready to send
    rids: list[int]  # matches then includes, as returned
    patient_ids: list[str]  # patients whose compartment the returned resources are in
    total: int | None = None
    warnings: list[Issue] = field(default_factory=list)


@dataclass
class _Request:
    """What the query pairs ask for, once read."""

    types: tuple[str, ...]
    all_types: bool
    filters: list[ColumnElement[bool]] = field(default_factory=list)
    used: list[tuple[str, str]] = field(default_factory=list)  # echoed in self/next links
    warnings: list[Issue] = field(default_factory=list)
    count: int | None = None
    sort: str | None = None
    summary: str | None = None
    elements: str | None = None
    total: str | None = None
    cursor: str | None = None
    includes: list[IncludeSpec] = field(default_factory=list)


def _pairs(query: str | Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(query, str):
        return query_params(query.lstrip("?"))
    return list(query)


def _types(registry: Registry, res_type: str | None, params: list[tuple[str, str]]) -> tuple[tuple[str, ...], bool]:
    if res_type is not None:
        if res_type not in registry.resource_types:
            raise not_found(res_type)
        return (res_type,), False
    listed = [t.strip() for name, v in params if name == "_type" for t in v.split(",") if t.strip()]
    if not listed:
        return tuple(sorted(registry.resource_types)), True
    for t in listed:
        if t not in registry.resource_types:
            raise invalid("_type", f"Unknown resource type {t!r}", "value")
    return tuple(sorted(set(listed))), False


def _unknown(req: _Request, strict: bool, name: str, diagnostics: str) -> None:
    if strict:
        raise not_supported(name, diagnostics)
    req.warnings.append(Issue("not-supported", f"{diagnostics}; ignored", "warning", (f"http.{name}",)))


async def _read(
    ctx: Context, res_type: str | None, params: list[tuple[str, str]], strict: bool, filters_only: bool = False
) -> _Request:
    types, all_types = _types(ctx.registry, res_type, params)
    req = _Request(types, all_types)
    for name, value in params:
        base = name.partition(":")[0]
        if name == "_type" and res_type is None:
            req.used.append((name, value))
        elif base in ("_include", "_revinclude"):
            if not filters_only:
                req.includes.append(parse_include(ctx.registry, name, value))
            req.used.append((name, value))
        elif name in _TRANSPORT_PARAMS:
            req.used.append((name, value))
        elif name in _RESULT_PARAMS:
            if not filters_only:
                _result_param(req, strict, name, value)
        else:
            try:
                req.filters.append(await criterion(ctx, types, name, value, resource))
                req.used.append((name, value))
            except UnknownParameter as exc:
                _unknown(req, strict, exc.name, exc.diagnostics)
    return req


def _result_param(req: _Request, strict: bool, name: str, value: str) -> None:
    if name == "_count":
        try:
            req.count = int(value)
        except ValueError:
            raise invalid(name, f"_count must be a whole number, not {value!r}", "value") from None
        if req.count < 0:
            raise invalid(name, "_count cannot be negative", "value")
    elif name == "_sort":
        req.sort = value
    elif name == "_summary":
        req.summary = value
    elif name == "_elements":
        req.elements = value
    elif name == "_total":
        if value not in TOTAL_MODES:
            raise invalid(name, f"_total must be one of {', '.join(TOTAL_MODES)}", "value")
        req.total = value
    elif name == "_cursor":
        req.cursor = value
        return  # the next link carries its own cursor
    elif name == "_contained":
        if value != "false":
            _unknown(req, strict, name, "_contained searches are not supported")
            return
    elif name == "_containedType":
        _unknown(req, strict, name, "_containedType is not supported")
        return
    req.used.append((name, value))


def _link(base_url: str, res_type: str | None, pairs: list[tuple[str, str]]) -> str:
    url = f"{base_url}/{res_type}" if res_type else base_url
    if not pairs:
        return url
    return url + "?" + urlencode(pairs, quote_via=quote, safe=":,|/$*")


def _patients_expr(dialect: str):
    """The Patient compartments of each returned row, space-separated, read in the same query.
    Looked up by rid alone (a row has a handful of compartment rows): a ``comp_type`` filter
    could lead a planner to the (comp_type, comp_id) index and scan every patient's rows."""
    c = idx_compartment.alias()
    pid = case((c.c.comp_type == "Patient", c.c.comp_id))
    agg = func.string_agg(pid, literal(" ")) if dialect == "postgresql" else func.group_concat(pid, " ")
    return select(agg).where(c.c.rid == resource.c.rid).scalar_subquery().label("patients")


def _base_where(req: _Request, access: AccessFilter | None) -> list[ColumnElement[bool]]:
    where = current(resource, access)
    if not req.all_types:
        where.append(type_is(resource.c.res_type, req.types))
    return where + req.filters


class _Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON) <select>`` with the select's bound parameters."""

    inherit_cache = False

    def __init__(self, stmt):
        self.stmt = stmt


@compiles(_Explain, "postgresql")
def _compile_explain(element, compiler, **kw):
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.stmt, **kw)


async def _count(conn: AsyncConnection, where: list, mode: str) -> int:
    stmt = select(func.count()).select_from(resource).where(*where)
    if mode == "estimate" and conn.dialect.name == "postgresql":
        # The planner's row estimate: no scan at all, good enough for "about 12,000 results".
        plan = (await conn.execute(_Explain(select(resource.c.rid).where(*where)))).scalar()
        plan = orjson.loads(plan) if isinstance(plan, (str, bytes)) else plan
        return int(plan[0]["Plan"]["Plan Rows"])
    return int((await conn.execute(stmt)).scalar_one())


async def search(
    conn: AsyncConnection,
    res_type: str | None,
    params: list[tuple[str, str]],
    *,
    base_url: str,
    handling: str = "lenient",
    access: AccessFilter | None = None,
    default_count: int = 20,
    max_count: int = 1000,
) -> SearchOutcome:
    """Run a type-level (``res_type``) or system-level (None, with ``_type``) search."""
    registry = get_registry()
    base_url = base_url.rstrip("/")
    ctx = Context(conn, registry, base_url, access)
    params = _pairs(params)
    req = await _read(ctx, res_type, params, handling == "strict")
    subset = parse_subset(req.summary, req.elements)
    count = min(default_count if req.count is None else req.count, max_count)
    if req.summary == "count":
        count = 0
    keys = sort_keys(registry, req.types, req.sort, resource) if req.sort else []
    cursor = decode_cursor(req.cursor, len(keys)) if req.cursor else None
    where = _base_where(req, access)

    rows: list = []
    next_cursor: Cursor | None = None
    if count > 0:
        rows, last_keys = await _page(conn, where, keys, cursor, count + 1)
        if len(rows) > count:
            rows = rows[:count]
            next_cursor = Cursor(last_keys[count - 1], rows[-1][0], None)

    total_mode = req.total or "accurate"
    total: int | None = None
    if total_mode != "none":
        if cursor is not None:
            total = cursor.total
        elif count > 0 and next_cursor is None:
            total = len(rows)  # the whole result fits on this page: no need to count
        else:
            total = await _count(conn, where, total_mode)
    if next_cursor is not None:
        next_cursor = Cursor(next_cursor.values, next_cursor.rid, total)

    included: list = []
    truncated = False
    if req.includes and rows:
        included, truncated = await fetch_includes(
            conn, registry, req.includes, rows, _row_columns(conn), access, max_count
        )
    if truncated:
        req.warnings.append(
            Issue("too-costly", f"Only the first {max_count} included resources are returned", "warning", ("http._include",))
        )

    entries = [_entry(base_url, row, "match", subset, registry) for row in rows]
    entries += [_entry(base_url, row, "include", subset, registry) for row in included]
    if req.warnings:
        entries.append(entry(None, outcome_bytes(req.warnings), search={"mode": "outcome"}))
    self_pairs = req.used + ([("_cursor", req.cursor)] if req.cursor else [])
    links = [("self", _link(base_url, res_type, self_pairs))]
    if next_cursor is not None:
        links.append(("next", _link(base_url, res_type, req.used + [("_cursor", encode_cursor(next_cursor))])))
    body = bundle("searchset", entries, total=total, links=links)
    returned = rows + included
    patients = sorted({pid for row in returned if row[4] for pid in row[4].split(" ")})
    return SearchOutcome(body, [row[0] for row in returned], patients, total, req.warnings)


def _row_columns(conn: AsyncConnection) -> list:
    return [
        resource.c.rid,
        resource.c.res_type,
        resource.c.res_id,
        resource.c.content,
        _patients_expr(conn.dialect.name),
    ]


async def _page(conn: AsyncConnection, where: list, keys: list[SortKey], cursor: Cursor | None, limit: int):
    """Rows (rid, type, id, content, patients) of one page and each row's sort key values."""
    cols = _row_columns(conn)
    if any(k.correlated for k in keys):
        # Compute per-row keys once in a derived table, then order/filter on its columns.
        inner = select(resource.c.rid.label("rid"), *[k.expr.label(f"k{i}") for i, k in enumerate(keys)])
        m = inner.where(*where).subquery("m")
        key_cols = [(m.c[f"k{i}"], k.desc) for i, k in enumerate(keys)]
        rid = m.c.rid
        stmt = select(*cols, *[c for c, _ in key_cols]).select_from(m.join(resource, resource.c.rid == m.c.rid))
    else:
        key_cols = [(k.expr, k.desc) for k in keys]
        rid = resource.c.rid
        stmt = select(*cols, *[c for c, _ in key_cols]).where(*where)
    if cursor is not None:
        stmt = stmt.where(after(key_cols, cursor.values, rid, cursor.rid))
    stmt = stmt.order_by(*order_by(key_cols, rid)).limit(limit)
    result = (await conn.execute(stmt)).all()
    n = len(cols)
    return [tuple(r[:n]) for r in result], [list(r[n:]) for r in result]


def _entry(base_url: str, row, mode: str, subset: Subset | None, registry: Registry) -> bytes:
    rid, res_type, res_id, content, _ = row
    if subset is not None and content:
        content = apply_subset(content, res_type, subset, registry)
    return entry(f"{base_url}/{res_type}/{res_id}", content, search={"mode": mode})


async def find_matches(
    conn: AsyncConnection,
    res_type: str,
    query: str | list[tuple[str, str]],
    *,
    access: AccessFilter | None = None,
    limit: int = 2,
) -> list[tuple[int, str]]:
    """(rid, id) of up to ``limit`` current resources matching ``query`` (strict: an unknown
    parameter is a 400).  Conditional interactions need at least one criterion."""
    registry = get_registry()
    ctx = Context(conn, registry, get_settings().base_url.rstrip("/"), access)
    req = await _read(ctx, res_type, _pairs(query), strict=True, filters_only=True)
    if not req.filters:
        raise FHIRError.of(400, "invalid", "A conditional operation needs at least one search criterion", "http")
    stmt = (
        select(resource.c.rid, resource.c.res_id)
        .where(*_base_where(req, access))
        .order_by(resource.c.rid)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in (await conn.execute(stmt)).all()]

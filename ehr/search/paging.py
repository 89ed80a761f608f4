"""``_sort`` keys and keyset paging over (sort keys..., rid).

A page never uses OFFSET: the ``next`` link carries an opaque ``_cursor`` holding the sort key
values and rid of the last row sent, and the next page asks for rows strictly after it.  Rows
inserted meanwhile land before or after the cursor but never shift or repeat a page.

A multi-valued parameter sorts by its smallest value ascending and its largest descending
(dates by range start / end).  Missing values sort last in both directions; ordering by
``key IS NULL`` first makes that identical on PostgreSQL and SQLite.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import orjson
from sqlalchemy import ColumnElement, FromClause, and_, case, func, or_, select

from ehr.search.criteria import UnknownParameter, lookup, param_is
from ehr.search.params import invalid
from ehr.search.registry import Registry
from ehr.store.schema import INDEX_TABLES

_SORT_COLUMNS = {"string": "norm", "token": "code", "uri": "uri"}


@dataclass(frozen=True)
class SortKey:
    expr: ColumnElement
    desc: bool
    correlated: bool  # a subquery per row rather than a column of ``resource``


def sort_keys(registry: Registry, types: tuple[str, ...], spec: str, res: FromClause) -> list[SortKey]:
    keys = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        desc = item.startswith("-")
        code = item.lstrip("-")
        if code == "_id":
            keys.append(SortKey(res.c.res_id, desc, False))
            continue
        if code == "_lastUpdated":
            keys.append(SortKey(res.c.last_updated, desc, False))
            continue
        try:
            params = lookup(registry, types, code, "_sort")
        except UnknownParameter as exc:
            raise invalid("_sort", exc.diagnostics) from None
        ptype = params[0].type
        table = INDEX_TABLES.get(ptype)
        if ptype in ("reference", "composite") or table is None:
            raise invalid("_sort", f"Sorting by {ptype} parameter {code!r} is not supported")
        a = table.alias()
        if ptype in _SORT_COLUMNS:
            col = a.c[_SORT_COLUMNS[ptype]]
        else:  # date, number, quantity: by the end of the range descending, its start ascending
            col = a.c.high if desc else a.c.low
        # The row's few index rows by rid, the parameter picked inside the aggregate: a filter on
        # ``param`` would tempt a planner without statistics into scanning (param, value)
        # in value order for the min/max.
        own = case((param_is(a.c.param, [p.hash for p in params]), col))
        expr = select(func.max(own) if desc else func.min(own)).where(a.c.rid == res.c.rid).scalar_subquery()
        keys.append(SortKey(expr, desc, True))
    return keys


def order_by(keys: list[tuple[ColumnElement, bool]], rid) -> list:
    out = []
    for expr, desc in keys:
        out.append(expr.is_(None).asc())
        out.append(expr.desc() if desc else expr.asc())
    out.append(rid.asc())
    return out


def after(keys: list[tuple[ColumnElement, bool]], values: list, rid, last_rid: int) -> ColumnElement[bool]:
    """Rows strictly after (values..., last_rid) in ``order_by`` order."""
    alternatives = []
    equal_so_far: list[ColumnElement[bool]] = []
    for (expr, desc), value in zip(keys, values):
        if value is None:  # nulls come last: only other nulls can follow, and only on later keys
            equal_so_far.append(expr.is_(None))
            continue
        beyond = expr < value if desc else expr > value
        alternatives.append(and_(*equal_so_far, or_(expr.is_(None), beyond)))
        equal_so_far.append(expr == value)
    alternatives.append(and_(*equal_so_far, rid > last_rid))
    return or_(*alternatives)


@dataclass(frozen=True)
class Cursor:
    values: list
    rid: int
    total: int | None


def encode_cursor(cursor: Cursor) -> str:
    raw = orjson.dumps({"k": cursor.values, "r": cursor.rid, "t": cursor.total})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(text: str, n_keys: int) -> Cursor:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        values, rid, total = data["k"], data["r"], data["t"]
        ok = (
            isinstance(values, list)
            and len(values) == n_keys
            and all(v is None or isinstance(v, (str, int, float)) for v in values)
            and isinstance(rid, int)
            and (total is None or isinstance(total, int))
        )
    except (binascii.Error, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise invalid("_cursor", "The paging cursor is not valid for this search; start again from the first page")
    return Cursor(values, rid, total)

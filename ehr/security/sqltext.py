"""Policy SQL written as text and placed in SQLAlchemy statements as one cacheable element.

The access policy is a large condition (probes, consent checks, a nested one for Binaries)
built for every request: as SQLAlchemy expression trees it would cost tens of milliseconds of
Python per request (every alias builds its column collections), as text it costs microseconds.
``Fragment`` carries the text, the columns of the row it filters (the engine's ``resource``
alias, or ``resource_version``) and the bound values; it takes part in SQLAlchemy's statement
cache like any built-in element (its text and columns are the cache key, its binds the values).

``Q`` hands out alias names and bind placeholders in a deterministic order, so the same policy
shape gives the same text, request after request (compiled once, prepared once).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import orjson
from sqlalchemy import BigInteger, ColumnElement, FromClause, String, Text, TextClause, TypeDecorator, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.sqltypes import BOOLEANTYPE
from sqlalchemy.sql.visitors import InternalTraversal


class ValueList(TypeDecorator):
    """A list bound as ONE parameter: a PostgreSQL array, a JSON array for SQLite.

    Expanding ``IN (?, ?, …)`` lists of a doctor's few hundred patients would give every
    statement hundreds of parameters to render, send and parse; one parameter costs the same
    whatever the list.  Written in SQL as a one-column subquery (see ``list_subquery``).
    """

    impl = String
    cache_ok = True

    def __init__(self, integers: bool = False):
        super().__init__()
        self.integers = integers

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(BigInteger if self.integers else Text))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return list(value) if dialect.name == "postgresql" else orjson.dumps(list(value)).decode()


def _array(placeholder: str, integers: bool) -> str:
    return f"CAST({placeholder} AS {'BIGINT' if integers else 'TEXT'}[])"


def list_subquery(placeholder: str, dialect_name: str, integers: bool) -> str:
    if dialect_name == "postgresql":
        return f"(SELECT unnest({_array(placeholder, integers)}))"
    return f"(SELECT value FROM json_each({placeholder}))"


def in_list(col: str, placeholder: str, dialect_name: str, integers: bool) -> str:
    """``col`` among the list: ``= ANY(array)`` on PostgreSQL (a plain filter, nothing to plan),
    a JSON table on SQLite."""
    if dialect_name == "postgresql":
        return f"{col} = ANY({_array(placeholder, integers)})"
    return f"{col} IN {list_subquery(placeholder, dialect_name, integers)}"


@dataclass(frozen=True)
class Row:
    """How the filtered row's columns are written in the text."""

    rid: str
    res_id: str
    res_type: str

    @classmethod
    def alias(cls, name: str) -> "Row":
        return cls(f"{name}.rid", f"{name}.res_id", f"{name}.res_type")


OUTER = Row("{rid}", "{res_id}", "{res_type}")  # filled in at compile time from the row's columns


class Q:
    """Names and bound values of one piece of policy SQL."""

    def __init__(self) -> None:
        self._aliases = 0
        self.binds: dict[str, object] = {}
        self.lists: dict[str, bool] = {}  # list binds -> integers?
        self.in_cols: dict[str, str] = {}  # list binds written as "<col> IN <list>" -> col

    def alias(self, base: str) -> str:
        self._aliases += 1
        return f"acl_{base}{self._aliases}"

    def bind(self, value, type_=None) -> str:
        """A placeholder for ``value``; a list is written as a one-column subquery (``x IN {p}``)."""
        name = f"p{len(self.binds)}"
        if isinstance(value, (list, tuple, set, frozenset)):
            values = sorted(value)
            integers = bool(values) and all(isinstance(v, int) for v in values)
            self.binds[name] = bindparam(name, values, type_=ValueList(integers), unique=True)
            self.lists[name] = integers
        else:
            self.binds[name] = bindparam(name, value, type_=type_, unique=True)
        return "{" + name + "}"

    def one_of(self, col: str, values: Iterable) -> str:
        values = sorted(set(values))
        if not values:
            return "1 = 0"
        if len(values) == 1:
            return f"{col} = {self.bind(values[0])}"
        placeholder = self.bind(values)
        name = placeholder[1:-1]
        self.in_cols[name] = col
        return "{in_" + name + "}"

    def _rendered(self, name: str, rendered: str, dialect_name: str) -> dict[str, str]:
        """Template values of one bind: itself, and its ``col IN list`` form when it has one."""
        if name not in self.lists:
            return {name: rendered}
        integers = self.lists[name]
        out = {name: list_subquery(rendered, dialect_name, integers)}
        if name in self.in_cols:
            out["in_" + name] = in_list(self.in_cols[name], rendered, dialect_name, integers)
        return out

    def fragment(self, row: FromClause, sql: str) -> "Fragment":
        return Fragment(sql, (row.c.rid, row.c.res_id, row.c.res_type), self)

    def statement(self, sql: str, dialect_name: str) -> TextClause:
        """Standalone SQL (no outer row), for queries the policy runs itself."""
        values: dict[str, str] = {}
        for name in self.binds:
            values.update(self._rendered(name, f":{name}", dialect_name))
        return text(sql.format(**values)).bindparams(*[bindparam(n, b.value, type_=b.type) for n, b in self.binds.items()])


def literal_list(values: Iterable) -> str:
    """Constants of the code (parameter hashes, type names, codes) written inline: ``(a, b)``."""
    out = []
    for v in values:
        if isinstance(v, int):
            out.append(str(v))
        else:
            assert "'" not in v, v  # constants only, never request data
            out.append(f"'{v}'")
    return "(" + ", ".join(out) + ")"


def literal(value: int | str) -> str:
    return literal_list([value])[1:-1]


def probe_int(col: str) -> str:
    """A column no index can serve: inside a probe the rows are found by rid, then filtered."""
    return f"({col} + 0)"


def probe_str(col: str) -> str:
    return f"({col} || '')"


class Fragment(ColumnElement[bool]):
    inherit_cache = True
    _is_implicitly_boolean = True
    type = BOOLEANTYPE
    # The text (with its placeholders: which bind is a list, and of what, is written in it) is
    # the cache key together with the row's columns; the binds carry the values.
    _traverse_internals = [
        ("sql", InternalTraversal.dp_string),
        ("cols", InternalTraversal.dp_clauseelement_tuple),
        ("binds", InternalTraversal.dp_clauseelement_tuple),
    ]

    def __init__(self, sql: str, cols: Sequence, q: Q):
        # the list binds' kinds and columns are part of the text's meaning: put them in the key
        self.sql = sql + "".join(f"\n-- {n}:{int(q.lists[n])}:{q.in_cols.get(n, '')}" for n in q.lists)
        self.template = sql
        self.cols = tuple(cols)
        self.binds = tuple(q.binds.values())
        self.names = tuple(q.binds)
        self.q = q

    @property
    def _from_objects(self):
        return [f for c in self.cols for f in c._from_objects]


@compiles(Fragment)
def _compile_fragment(element: Fragment, compiler, **kw) -> str:
    rid, res_id, res_type = (compiler.process(c, **kw) for c in element.cols)
    row = {"rid": rid, "res_id": res_id, "res_type": res_type}
    values: dict[str, str] = {}
    for name, b in zip(element.names, element.binds):
        for key, sql in element.q._rendered(name, compiler.process(b, **kw), compiler.dialect.name).items():
            values[key] = sql.format(**row) if "{" in sql else sql  # an "IN" column may be the row's
    return "(" + element.template.format(**row, **values) + ")"

"""One query parameter -> one SQL condition on a ``resource`` row (table or alias).

Each AND-ed parameter becomes ``rid IN (SELECT rid FROM idx_<type> WHERE param = :h AND
(<value 1> OR <value 2>...))``, a semi-join served by the ``(param, ...)`` B-trees; negations
(``:not``, ``:missing=true``) become ``NOT EXISTS``.  Chains join ``idx_reference`` to the
target ``resource`` row (``(res_type, res_id)`` is unique) and recurse; ``_has`` goes the
other way.  Every ``resource`` row a chain or ``_has`` passes through must be current and
pass the ``AccessFilter``.  Only bound parameters; no JSON is read at query time.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

from sqlalchemy import ColumnElement, FromClause, and_, exists, false, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.outcome import FHIRError
from ehr.search.access import AccessFilter, access_clause
from ehr.search.normalize import normalize
from ehr.search.params import (
    Number,
    Token,
    invalid,
    not_supported,
    or_values,
    parse_bool,
    parse_date,
    parse_number,
    parse_quantity,
    parse_token,
    prefixed,
    split_escaped,
    split_modifier,
    unescape,
)
from ehr.search.registry import COLUMN_PARAMS, Registry, SearchParam
from ehr.search.terminology import get_terminology
from ehr.search.values import word_hash
from ehr.store.clock import now_us
from ehr.store.schema import INDEX_TABLES, idx_reference, idx_token, resource

MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "token": {"text", "not", "in", "not-in", "above", "below", "of-type", "missing"},
    "reference": {"identifier", "missing", "above", "below"},  # plus :[type]
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "uri": {"below", "above", "missing"},
    "composite": {"missing"},
}
_DAY_US = 86_400_000_000


class UnknownParameter(Exception):
    """The parameter is not defined (or not supported) for the searched type(s)."""

    def __init__(self, name: str, diagnostics: str):
        super().__init__(diagnostics)
        self.name = name
        self.diagnostics = diagnostics


@dataclass
class Context:
    conn: AsyncConnection
    registry: Registry
    base_url: str  # without trailing slash
    access: AccessFilter | None

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name


# -- small SQL helpers -----------------------------------------------------------------------
def param_is(col, hashes: Sequence[int]) -> ColumnElement[bool]:
    return col == hashes[0] if len(hashes) == 1 else col.in_(list(hashes))


def type_is(col, types: Sequence[str]) -> ColumnElement[bool]:
    return col == types[0] if len(types) == 1 else col.in_(list(types))


def current(res: FromClause, access: AccessFilter | None) -> list[ColumnElement[bool]]:
    """A ``resource`` row that may be used at all: not deleted and visible to the caller."""
    return [res.c.deleted == false(), *access_clause(access, res)]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def starts_with(col, text: str, dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":  # the column is COLLATE "C", so LIKE 'x%' is an index range
        return col.like(_escape_like(text) + "%", escape="\\")
    # SQLite compares strings by code point (BINARY): a range uses the index, LIKE would not.
    return and_(col >= text, col < text + "\U0010ffff")


def contains(col, text: str) -> ColumnElement[bool]:
    return col.like("%" + _escape_like(text) + "%", escape="\\")


def _rows_in(res: FromClause, table, hashes: Sequence[int], cond: Callable | None, negate: bool = False):
    """``res`` has (or, negated, has no) row of ``table`` under ``hashes`` satisfying
    ``cond(alias)``."""
    a = table.alias()
    where = [param_is(a.c.param, hashes)]
    if cond is not None:
        where.append(cond(a))
    if negate:
        return ~exists().where(a.c.rid == res.c.rid, *where)
    return res.c.rid.in_(select(a.c.rid).where(*where))


# -- entry point -----------------------------------------------------------------------------
async def criterion(ctx: Context, types: tuple[str, ...], name: str, value: str, res: FromClause) -> ColumnElement[bool]:
    """The condition for ``name=value`` on ``res``, whose type is one of ``types``."""
    if name.startswith("_has:"):
        return await _reverse_chain(ctx, types, name, value, res)
    link, dot, rest = name.partition(".")
    if dot:
        return await _chain(ctx, types, link, rest, value, res, name)
    code, modifier = split_modifier(name)
    params = lookup(ctx.registry, types, code, name)
    return await _value_clause(ctx, params, modifier, value, res, name)


def lookup(registry: Registry, types: tuple[str, ...], code: str, name: str) -> list[SearchParam]:
    """The definition of ``code`` on every one of ``types``, or UnknownParameter."""
    params = []
    for t in types:
        p = registry.get(t, code)
        if p is None:
            where = types[0] if len(types) == 1 else f"all of {', '.join(types[:5])}{'...' if len(types) > 5 else ''}"
            raise UnknownParameter(name, f"Unknown search parameter {code!r} for {where}")
        params.append(p)
    if len({p.type for p in params}) > 1:
        raise invalid(name, f"Parameter {code!r} has different types across {', '.join(types)}")
    return params


async def _chain(ctx: Context, types, link: str, rest: str, value: str, res, name: str):
    code, type_mod = split_modifier(link)
    params = lookup(ctx.registry, types, code, name)
    if params[0].type != "reference":
        raise invalid(name, f"{code!r} is not a reference parameter and cannot be chained")
    registry = ctx.registry
    if type_mod is not None:
        if type_mod not in registry.resource_types:
            raise invalid(name, f"Unknown resource type {type_mod!r} in chain")
        candidates = {type_mod}
    else:
        candidates = {t for p in params for t in p.targets} or set(registry.resource_types)
    next_code = split_modifier(rest.partition(".")[0])[0]
    if next_code == "_has":
        targets = tuple(sorted(candidates & registry.resource_types))
    else:
        targets = tuple(sorted(t for t in candidates if registry.get(t, next_code)))
    if not targets:
        raise invalid(name, f"None of the types {code!r} can point to has a parameter {next_code!r}")
    t = resource.alias()
    r = idx_reference.alias()
    try:
        inner = await criterion(ctx, targets, rest, value, t)
    except UnknownParameter as exc:
        raise invalid(name, exc.diagnostics) from None
    # Nested IN rather than a join, so even a planner without statistics starts from the
    # (usually few) matching targets and probes (param, target_id, ...) for what points at them.
    where = [type_is(t.c.res_type, targets), *current(t, ctx.access), inner]
    links = select(r.c.rid).where(param_is(r.c.param, [p.hash for p in params]))
    if len(targets) == 1:
        links = links.where(r.c.target_type == targets[0], r.c.target_id.in_(select(t.c.res_id).where(*where)))
    else:
        links = links.where(tuple_(r.c.target_type, r.c.target_id).in_(select(t.c.res_type, t.c.res_id).where(*where)))
    return res.c.rid.in_(links)


async def _reverse_chain(ctx: Context, types, name: str, value: str, res):
    parts = name.split(":", 3)
    if len(parts) < 4 or not parts[3]:
        raise invalid(name, "_has needs the form _has:Type:reference-param:param")
    _, src_type, code, rest = parts
    registry = ctx.registry
    if src_type not in registry.resource_types:
        raise invalid(name, f"Unknown resource type {src_type!r} in _has")
    link = registry.get(src_type, code)
    if link is None or link.type != "reference":
        raise invalid(name, f"{src_type} has no reference parameter {code!r}")
    if link.targets and not set(types) & set(link.targets):
        raise invalid(name, f"{src_type}.{code} never points to {', '.join(types)}")
    o = resource.alias()
    r = idx_reference.alias()
    try:
        inner = await criterion(ctx, (src_type,), rest, value, o)
    except UnknownParameter as exc:
        raise invalid(name, exc.diagnostics) from None
    where = [r.c.param == link.hash, o.c.res_type == src_type, *current(o, ctx.access), inner]
    joined = r.join(o, o.c.rid == r.c.rid)
    if len(types) == 1:
        sub = select(r.c.target_id).select_from(joined).where(r.c.target_type == types[0], *where)
        return res.c.res_id.in_(sub)
    sub = select(r.c.target_type, r.c.target_id).select_from(joined).where(r.c.target_type.in_(types), *where)
    return tuple_(res.c.res_type, res.c.res_id).in_(sub)


# -- values ----------------------------------------------------------------------------------
async def _value_clause(ctx: Context, params: list[SearchParam], modifier: str | None, value: str, res, name: str):
    p = params[0]
    ptype = p.type
    if p.code in COLUMN_PARAMS:
        return _column_clause(p.code, modifier, value, res, name)
    if modifier is not None and modifier not in MODIFIERS[ptype]:
        if not (ptype == "reference" and modifier in ctx.registry.resource_types):
            raise invalid(name, f"Modifier :{modifier} is not valid on {ptype} parameter {p.code!r}")
    if modifier == "missing":
        return _missing(params, value, res, name)
    values = [v for v in or_values(value) if v != ""]
    if not values:
        raise invalid(name, f"Parameter {name!r} has no value", "value")
    hashes = [q.hash for q in params]
    if ptype == "composite":
        return _composite(ctx, params, values, res, name)
    if ptype == "token":
        return await _token_clause(ctx, params, modifier, values, res, name)
    if ptype == "reference":
        if modifier == "identifier":
            conds = [_token_cond(parse_token(v)) for v in values]
            return _rows_in(res, idx_token, [q.sub_hash(":identifier") for q in params], lambda a: or_(*(c(a) for c in conds)))
        if modifier in ("above", "below"):
            raise not_supported(name, f"Modifier :{modifier} on references is not supported")
        conds = [_reference_cond(ctx, params, v, modifier, name) for v in values]
        return _rows_in(res, idx_reference, hashes, lambda a: or_(*(c(a) for c in conds)))
    conds = [value_cond(ctx, ptype, v, modifier, name) for v in values]
    if ptype == "string" and modifier is None:  # the start of any word: one more (param, norm) range
        hashes += [word_hash(h) for h in hashes]
    return _rows_in(res, INDEX_TABLES[ptype], hashes, lambda a: or_(*(c(a) for c in conds)))


def _missing(params: list[SearchParam], value: str, res, name: str):
    p = params[0]
    if p.type == "composite":
        table, hashes = INDEX_TABLES[p.components[0].type], [q.sub_hash("$0") for q in params]
    else:
        table, hashes = INDEX_TABLES[p.type], [q.hash for q in params]
    missing = parse_bool(name, unescape(value))
    return _rows_in(res, table, hashes, None, negate=missing)


def _column_clause(code: str, modifier: str | None, value: str, res, name: str):
    if modifier == "missing":
        return false() if parse_bool(name, value) else true()
    if modifier is not None and not (code == "_id" and modifier == "not"):  # _id is a token
        raise invalid(name, f"Modifier :{modifier} is not valid on {code}")
    values = [unescape(v) for v in or_values(value) if v != ""]
    if not values:
        raise invalid(name, f"Parameter {name!r} has no value", "value")
    if code == "_id":
        return res.c.res_id.not_in(values) if modifier == "not" else res.c.res_id.in_(values)
    col = res.c.last_updated
    return or_(*(date_cond(col, col, *_date_value(name, v)) for v in values))


def value_cond(ctx: Context, ptype: str, raw: str, modifier: str | None, name: str):
    """A function alias -> condition for one (comma-free) value of a string/date/number/
    quantity/uri/token parameter; used for plain parameters and composite components."""
    if ptype == "string":
        text = unescape(raw)
        norm = normalize(text)[:255]
        if modifier == "exact":
            if len(text) >= 255:  # stored truncated: folding may have shifted what the first 255 are
                return lambda a: a.c.exact == text[:255]
            return lambda a: and_(a.c.norm == norm, a.c.exact == text)
        if modifier == "contains":
            return lambda a: contains(a.c.norm, norm)
        return lambda a: starts_with(a.c.norm, norm, ctx.dialect)
    if ptype == "date":
        prefix, low, high = _date_value(name, raw)
        return lambda a: date_cond(a.c.low, a.c.high, prefix, low, high)
    if ptype == "number":
        prefix, rest = prefixed(name, unescape(raw))
        number = parse_number(name, rest)
        return lambda a: number_cond(a, prefix, number)
    if ptype == "quantity":
        q = parse_quantity(name, raw)

        def quantity(a):
            conds = [number_cond(a, q.prefix, q.number)]
            if q.system is not None:
                conds.append(a.c.system == q.system)
            if q.code is not None:
                conds.append(a.c.code == q.code)
            return and_(*conds)

        return quantity
    if ptype == "uri":
        uri = unescape(raw)
        if modifier == "below":
            return lambda a: starts_with(a.c.uri, uri, ctx.dialect)
        if modifier == "above":
            prefixes = _uri_prefixes(uri)
            return lambda a: a.c.uri.in_(prefixes)
        return lambda a: a.c.uri == uri
    if ptype == "token":
        if modifier == "text":
            text = normalize(unescape(raw))[:255]
            return lambda a: starts_with(a.c.text, text, ctx.dialect)
        return _token_cond(parse_token(raw))
    if ptype == "reference":
        raise invalid(name, "reference components are not supported in composites")
    raise invalid(name, f"Cannot search on {ptype} values")


def _date_value(name: str, raw: str) -> tuple[str, int, int]:
    prefix, rest = prefixed(name, unescape(raw))
    low, high = parse_date(name, rest)
    return prefix, low, high


def date_cond(tl, th, prefix: str, vl: int, vh: int) -> ColumnElement[bool]:
    """Target range [tl, th] against search range [vl, vh], per the spec's prefix table."""
    eq = and_(tl >= vl, th <= vh)
    if prefix == "eq":
        return eq
    if prefix == "ne":
        return or_(tl < vl, th > vh)
    if prefix == "gt":
        return th > vh
    if prefix == "lt":
        return tl < vl
    if prefix == "ge":
        return or_(th > vh, eq)
    if prefix == "le":
        return or_(tl < vl, eq)
    if prefix == "sa":
        return tl > vh
    if prefix == "eb":
        return th < vl
    # ap: within 10% of the distance between the value and now (at least a day)
    slack = max(abs(now_us() - vl) // 10, _DAY_US)
    return and_(tl <= vh + slack, th >= vl - slack)


def number_cond(a, prefix: str, n: Number) -> ColumnElement[bool]:
    """Indexed [low, high] (a point for plain numbers) against the searched number."""
    lo, hi, v = a.c.low, a.c.high, n.value
    if prefix == "eq":
        return and_(lo >= n.low, hi <= n.high if n.closed else hi < n.high)
    if prefix == "ne":
        return or_(lo < n.low, hi > n.high if n.closed else hi >= n.high)
    if prefix == "gt":
        return hi > v
    if prefix == "lt":
        return lo < v
    if prefix == "ge":
        return hi >= v
    if prefix == "le":
        return lo <= v
    if prefix == "sa":
        return lo > v
    if prefix == "eb":
        return hi < v
    slack = abs(v) * 0.1 or (n.high - n.low) / 2
    return and_(lo <= v + slack, hi >= v - slack)


def _uri_prefixes(uri: str) -> list[str]:
    """``uri`` and every ancestor of it at a path boundary (for ``:above``)."""
    out = [uri]
    cut = uri.rstrip("/")
    while "/" in cut:
        cut = cut[: cut.rindex("/")]
        if cut.endswith("/") or cut.endswith(":"):
            break
        out.extend([cut, cut + "/"])
    return out


def _token_cond(tok: Token):
    if tok.any_system:
        if tok.code is None:
            return lambda a: true()
        return lambda a: a.c.code == tok.code
    conds_system = (lambda a: a.c.system == tok.system) if tok.system else (lambda a: a.c.system.is_(None))
    if tok.code is None:
        return conds_system
    return lambda a: and_(conds_system(a), a.c.code == tok.code)


async def _token_clause(ctx: Context, params, modifier, values: list[str], res, name: str):
    hashes = [q.hash for q in params]
    if modifier == "of-type":
        conds = []
        for v in values:
            parts = [unescape(x) for x in split_escaped(v, "|")]
            if len(parts) != 3 or not parts[1] or not parts[2]:
                raise invalid(name, f"{v!r}: :of-type needs system|code|value", "value")
            system, code, ident = parts
            conds.append(_of_type_cond(system or None, f"{code}|{ident}"))
        return _rows_in(res, idx_token, [q.sub_hash(":of-type") for q in params], lambda a: or_(*(c(a) for c in conds)))
    if modifier in ("in", "not-in", "above", "below"):
        codes = await _terminology_codes(ctx, modifier, values, name)
        if not codes:
            return true() if modifier == "not-in" else false()
        cond = lambda a: or_(*(_code_in(a, s, cs) for s, cs in codes.items()))  # noqa: E731
        return _rows_in(res, idx_token, hashes, cond, negate=modifier == "not-in")
    conds = [value_cond(ctx, "token", v, modifier if modifier == "text" else None, name) for v in values]
    return _rows_in(res, idx_token, hashes, lambda a: or_(*(c(a) for c in conds)), negate=modifier == "not")


def _of_type_cond(system: str | None, code: str):
    return lambda a: and_(a.c.system == system if system else a.c.system.is_(None), a.c.code == code)


def _code_in(a, system: str | None, codes: list[str]):
    sys_cond = a.c.system == system if system else true()
    return and_(sys_cond, a.c.code.in_(codes))


async def _terminology_codes(ctx: Context, modifier: str, values: list[str], name: str) -> dict[str | None, list[str]]:
    terminology = get_terminology()
    if terminology is None:
        raise not_supported(name, f"Modifier :{modifier} needs a terminology service, none is configured")
    grouped: dict[str | None, set[str]] = {}
    for v in values:
        try:
            if modifier in ("in", "not-in"):
                found = await terminology.expand(ctx.conn, unescape(v))
            else:
                tok = parse_token(v)
                if tok.code is None:
                    raise invalid(name, f":{modifier} needs a code", "value")
                found = await terminology.related(ctx.conn, tok.system, tok.code, modifier)
        except FHIRError as err:  # point the client at the parameter that failed
            err.issues = [i if i.expression else replace(i, expression=(f"http.{name}",)) for i in err.issues]
            raise
        for system, code in found:
            grouped.setdefault(system, set()).add(code)
    return {s: sorted(c) for s, c in grouped.items()}


def _reference_cond(ctx: Context, params: list[SearchParam], raw: str, type_mod: str | None, name: str):
    value = unescape(raw)
    if ctx.base_url and value.startswith(ctx.base_url + "/"):
        value = value[len(ctx.base_url) + 1 :]
    if "://" in value or value.startswith("urn:"):
        return lambda a: a.c.url == value
    parts = value.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) == 2:
        rtype, rid = parts
        if rtype not in ctx.registry.resource_types:
            raise invalid(name, f"Unknown resource type {rtype!r} in reference {value!r}", "value")
        if type_mod and type_mod != rtype:
            raise invalid(name, f"Reference {value!r} contradicts modifier :{type_mod}", "value")
    elif len(parts) == 1:
        rtype, rid = type_mod, parts[0]
    else:
        raise invalid(name, f"{value!r} is not a reference (id, Type/id or URL)", "value")
    if rtype:
        return lambda a: and_(a.c.target_id == rid, a.c.target_type == rtype)
    return lambda a: a.c.target_id == rid


def _composite(ctx: Context, params: list[SearchParam], values: list[str], res, name: str):
    comps = params[0].components
    tables = [INDEX_TABLES[c.type] for c in comps]
    alts = []
    for v in values:
        parts = split_escaped(v, "$")
        if len(parts) != len(comps):
            raise invalid(name, f"{v!r} needs {len(comps)} components separated by $", "value")
        conds = [value_cond(ctx, c.type, part, None, name) for c, part in zip(comps, parts)]
        aliases = [t.alias() for t in tables]
        first = aliases[0]
        joined = first
        for a in aliases[1:]:
            joined = joined.join(a, and_(a.c.rid == first.c.rid, a.c.grp == first.c.grp))
        where = []
        for i, (a, cond) in enumerate(zip(aliases, conds)):
            where.append(param_is(a.c.param, [q.sub_hash(f"${i}") for q in params]))
            where.append(cond(a))
        alts.append(res.c.rid.in_(select(first.c.rid).select_from(joined).where(*where)))
    return or_(*alts) if len(alts) > 1 else alts[0]

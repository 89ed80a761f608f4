"""``_include`` / ``_revinclude``: one query per level, whatever the page size.

A level gathers, in one statement, every resource referenced by (include) or referring to
(revinclude) the resources of the previous level, through ``idx_reference`` joined to
``resource`` on ``(res_type, res_id)``.  Level 1 starts from the page's matches with all
includes; later levels start from what the previous level added, with the ``:iterate`` ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import ColumnElement, and_, or_, select, true, union
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.search.access import AccessFilter
from ehr.search.criteria import current, param_is
from ehr.search.params import invalid
from ehr.search.registry import Registry
from ehr.store.schema import idx_reference, resource

MAX_LEVELS = 4  # iterate at most this deep; cycles stop earlier since nothing new is found


@dataclass(frozen=True)
class IncludeSpec:
    reverse: bool
    iterate: bool
    source_type: str | None  # None: any type ("*")
    code: str | None  # None: every reference parameter ("Type:*" or "*")
    target_type: str | None


def parse_include(registry: Registry, name: str, value: str) -> IncludeSpec:
    base, _, modifier = name.partition(":")
    if modifier not in ("", "iterate", "recurse"):
        raise invalid(name, f"Unknown modifier :{modifier} on {base}")
    reverse = base == "_revinclude"
    iterate = modifier in ("iterate", "recurse")
    if value == "*":
        return IncludeSpec(reverse, iterate, None, None, None)
    parts = value.split(":")
    if len(parts) not in (2, 3):
        raise invalid(name, f"{value!r} must be Type:param or Type:param:TargetType", "value")
    src, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if src not in registry.resource_types:
        raise invalid(name, f"Unknown resource type {src!r}", "value")
    if target is not None and target not in registry.resource_types:
        raise invalid(name, f"Unknown resource type {target!r}", "value")
    if code == "*":
        return IncludeSpec(reverse, iterate, src, None, target)
    param = registry.get(src, code)
    if param is None or param.type != "reference":
        raise invalid(name, f"{src} has no reference parameter {code!r}", "value")
    if target is not None and param.targets and target not in param.targets:
        raise invalid(name, f"{src}.{code} never points to {target}", "value")
    return IncludeSpec(reverse, iterate, src, code, target)


def _hashes(registry: Registry, source_types: Sequence[str], code: str | None) -> list[int]:
    out = []
    for t in source_types:
        if code is None:
            out.extend(p.hash for p in registry.for_type(t).values() if p.type == "reference")
        elif (p := registry.get(t, code)) is not None:
            out.append(p.hash)
    return out


def _link_cond(registry: Registry, r, spec: IncludeSpec, source_types: Sequence[str]) -> ColumnElement[bool] | None:
    if spec.reverse:
        # the referring resources are of spec.source_type; the sources are the targets
        if spec.source_type is None:
            cond = true()
        else:
            hashes = _hashes(registry, [spec.source_type], spec.code)
            if not hashes:
                return None
            cond = param_is(r.c.param, hashes)
    else:
        types = [spec.source_type] if spec.source_type else list(source_types)
        hashes = _hashes(registry, [t for t in types if t in source_types], spec.code)
        if not hashes:
            return None
        cond = param_is(r.c.param, hashes)
    if spec.target_type is not None:
        cond = and_(cond, r.c.target_type == spec.target_type)
    return cond


def level_statement(
    registry: Registry,
    specs: Sequence[IncludeSpec],
    source_rids: list[int],
    source_types: set[str],
    columns: Sequence,
    access: AccessFilter | None,
    limit: int,
):
    """The one SELECT of a level, or None when no spec applies to these sources."""
    forward, backward = [], []
    r, r2 = idx_reference.alias(), idx_reference.alias()
    for spec in specs:
        if spec.reverse:
            cond = _link_cond(registry, r2, spec, source_types)
            if cond is not None:
                backward.append(cond)
        else:
            cond = _link_cond(registry, r, spec, source_types)
            if cond is not None:
                forward.append(cond)
    subs = []
    if forward:
        t = resource.alias()
        subs.append(
            select(t.c.rid)
            .select_from(r.join(t, and_(t.c.res_type == r.c.target_type, t.c.res_id == r.c.target_id)))
            .where(r.c.rid.in_(source_rids), or_(*forward))
        )
    if backward:
        p = resource.alias()
        subs.append(
            select(r2.c.rid)
            .select_from(r2.join(p, and_(p.c.res_type == r2.c.target_type, p.c.res_id == r2.c.target_id)))
            .where(p.c.rid.in_(source_rids), or_(*backward))
        )
    if not subs:
        return None
    found = subs[0] if len(subs) == 1 else union(*subs)
    return (
        select(*columns)
        .where(resource.c.rid.in_(found), *current(resource, access))
        .order_by(resource.c.rid)
        .limit(limit)
    )


async def fetch_includes(
    conn: AsyncConnection,
    registry: Registry,
    specs: Sequence[IncludeSpec],
    matches: list,
    columns: Sequence,
    access: AccessFilter | None,
    limit: int,
) -> tuple[list, bool]:
    """Included rows (``columns`` of ``resource``, rid first, type second) and whether the
    limit cut them short."""
    seen = {row[0] for row in matches}
    level_rows = matches
    out: list = []
    truncated = False
    for level in range(MAX_LEVELS):
        active = list(specs) if level == 0 else [s for s in specs if s.iterate]
        if not active or not level_rows:
            break
        stmt = level_statement(
            registry, active, [row[0] for row in level_rows], {row[1] for row in level_rows}, columns, access, limit + 1
        )
        if stmt is None:
            break
        rows = (await conn.execute(stmt)).all()
        if len(rows) > limit:
            rows, truncated = rows[:limit], True
        new = [row for row in rows if row[0] not in seen]
        seen.update(row[0] for row in new)
        out.extend(new)
        level_rows = new
        if len(out) >= limit:
            truncated = truncated or len(out) > limit
            out = out[:limit]
            break
    return out, truncated

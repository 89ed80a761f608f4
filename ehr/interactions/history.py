"""history of an instance, a type or the whole system: newest first, keyset-paged on seq."""
from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import aliased

from ehr import bundle
from ehr.interactions.context import Context, Result
from ehr.outcome import FHIRError, not_found
from ehr.parsing import bigint
from ehr.store.clock import parse_instant_bounds, to_instant
from ehr.store.schema import resource_version

_KNOWN = {"_since", "_at", "_count", "_cursor", "_format", "_pretty", "_total"}
_STATUS = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "204 No Content"}


def _params(params: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in params:
        if name not in _KNOWN:
            raise FHIRError.of(400, "not-supported", f"History does not support the parameter {name}", f"http.{name}")
        out[name] = value
    return out


def _count(value: str | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    count = bigint(value)
    if count is None:
        raise FHIRError.of(400, "invalid", f"_count must be a non-negative integer, not {value!r}", "http._count")
    return min(count, maximum)


def _bound(name: str, value: str, upper: bool) -> int:
    try:
        low, high = parse_instant_bounds(value)
    except ValueError as exc:
        raise FHIRError.of(400, "invalid", f"{name}: {exc}", f"http.{name}") from None
    return high if upper else low


async def history(
    ctx: Context,
    res_type: str | None,
    res_id: str | None,
    params: list[tuple[str, str]],
    *,
    default_count: int,
    max_count: int,
) -> Result:
    if res_type is not None:
        # An instance's history is a read of it; a type's history lists like a search.
        ctx.require(res_type, "r" if res_id else "s")
    p = _params(params)
    v = resource_version
    cond = []
    if res_type:
        cond.append(v.c.res_type == res_type)
    if res_id:
        cond.append(v.c.res_id == res_id)
    if "_since" in p:
        cond.append(v.c.last_updated >= _bound("_since", p["_since"], upper=False))
    if "_at" in p:
        at = _bound("_at", p["_at"], upper=True)
        newer = aliased(v)
        # The version in force at that time: the newest one not after it.
        cond.append(v.c.last_updated <= at)
        cond.append(
            ~exists().where(newer.c.rid == v.c.rid, newer.c.last_updated <= at, newer.c.version_id > v.c.version_id)
        )
    if ctx.access is not None and (clause := ctx.access.clause(v)) is not None:
        cond.append(clause)
    count = _count(p.get("_count"), default_count, max_count)
    page_cond = list(cond)
    if "_cursor" in p:
        cursor = bigint(p["_cursor"])
        if cursor is None:
            raise FHIRError.of(400, "invalid", "Malformed _cursor", "http._cursor")
        page_cond.append(v.c.seq < cursor)
    stmt = (
        select(v.c.seq, v.c.res_type, v.c.res_id, v.c.version_id, v.c.last_updated, v.c.deleted, v.c.method, v.c.content, v.c.rid)
        .where(and_(True, *page_cond))
        .order_by(v.c.seq.desc())
        .limit(count + 1)
    )
    rows = (await ctx.conn.execute(stmt)).all()
    if res_id and not rows and not {"_cursor", "_since", "_at"} & set(p):
        # no version at all (or none visible to the caller): the instance does not exist
        raise not_found(res_type, res_id)
    total = None
    if res_id or p.get("_total") == "accurate":
        total = (await ctx.conn.execute(select(func.count()).select_from(v).where(and_(True, *cond)))).scalar_one()
    entries = []
    for seq, rtype, rid, vid, updated, deleted, method, content, _ in rows[:count]:
        url = f"{ctx.base_url}/{rtype}/{rid}"
        request = {"method": method, "url": f"{rtype}/{rid}" if method != "POST" else rtype}
        response = {"status": _STATUS[method], "etag": f'W/"{vid}"', "lastModified": to_instant(updated)}
        entries.append(bundle.entry(url, None if deleted else content, request=request, response=response))
    base = "/".join(x for x in (ctx.base_url, res_type, res_id, "_history") if x)
    keep = [(k, val) for k, val in params if k != "_cursor"]
    links = [("self", base + ("?" + urlencode(params) if params else ""))]
    if len(rows) > count and count:
        links.append(("next", base + "?" + urlencode(keep + [("_cursor", str(rows[count - 1][0]))])))
    return Result(200, body=bundle.bundle("history", entries, total=total, links=links), rids=sorted({r[8] for r in rows[:count]}))

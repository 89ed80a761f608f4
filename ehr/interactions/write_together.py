"""Plain creates and updates of a transaction Bundle, written together.

A Bundle of a patient's file is mostly ``PUT Type/id`` and ``POST Type`` entries with nothing
special about them.  Written one by one they cost two statements each; here the same checks run
per entry (role and scopes, ids, write rules, If-Match, visibility of what is overwritten,
profile validation), then every version goes in with one statement per table
(``repository.write_many``), whatever the count.  Entries that need more (a business
submission, conditional or duplicate targets) are left to the ordinary path.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable

from ehr.hooks import conform, submission_handlers, validate_write
from ehr.interactions.context import Context, Result, store_many
from ehr.interactions.preconditions import check_id
from ehr.interactions.update import may_replace
from ehr.outcome import FHIRError
from ehr.store import repository
from ehr.store.repository import NewVersion


def plain(entries: list) -> list:
    """The entries this module can write, as (entry, (type, id)) pairs: creates with a server id
    and updates by id, of types without a submission handler, naming a resource no other entry
    names (those keep the ordinary path, which orders them)."""
    keys = [_key(e) for e in entries]
    counts = Counter(k for k in keys if k is not None)
    return [
        (e, key) for e, key in zip(entries, keys)
        if key is not None and counts[key] == 1 and e.target.res_type not in submission_handlers
        and ((e.method == "POST" and not e.extra.get("existing")) or e.method == "PUT")
    ]


def _key(e) -> tuple[str, str] | None:
    t = e.target
    if e.method == "POST":
        return (t.res_type, e.extra["id"]) if "id" in e.extra else None
    return (t.res_type, t.res_id) if t.res_id is not None and e.method in ("PUT", "PATCH", "DELETE") else None


async def write_together(ctx: Context, group: list, where: Callable[[FHIRError, str, str], FHIRError]) -> None:
    """Check each entry of ``group`` ((entry, (type, id)) pairs) then write them all; sets each
    entry's ``result``.  ``where`` locates an error in its entry (location, resource type)."""
    if not group:
        return
    priors = await repository.current_many(
        ctx.conn, [key for e, key in group if e.method == "PUT"], for_update=True
    )
    items, statuses = [], []
    for e, (res_type, res_id) in group:
        try:
            prior, status = await _check(ctx, e, res_type, res_id, priors.get((res_type, res_id)))
            await validate_write(ctx, e.resource, res_id, prior)
        except FHIRError as err:
            raise where(err, e.where, res_type) from None
        items.append(NewVersion(res_type, res_id, e.resource, e.method, prior))
        statuses.append(status)
    # what the updates replace, checked together (each refusal names its entry)
    entry_of = {item.prior.rid: e for (e, _), item in zip(group, items) if item.prior is not None}
    await ctx.check_prior([item.prior for item in items if item.prior is not None], lambda s: entry_of[s.rid].where)
    written = await store_many(ctx, items, validated=True)
    for (e, _), stored, status in zip(group, written, statuses):
        e.result = Result(status, stored)


async def _check(ctx: Context, e, res_type: str, res_id: str, prior) -> tuple[object, int]:
    if e.method == "POST":
        ctx.require(res_type, "c")
        conform(ctx, e.resource)
        ctx.check_write(res_type, res_id, e.resource)
        return None, 201
    ctx.require(res_type, "u")
    check_id(res_type, res_id)
    conform(ctx, e.resource)
    ctx.check_write(res_type, res_id, e.resource)
    return prior, await may_replace(ctx, res_type, res_id, prior, e.if_match, check_old=False)

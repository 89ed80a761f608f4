"""update (also update-as-create with a client id) and conditional update.

A resource the caller may not see is absent for them: updating it answers 404 (it is neither
overwritten nor revealed by a different answer than a missing one would get from a read).
"""
from __future__ import annotations

from ehr.interactions.context import Context, Result, store
from ehr.interactions.preconditions import check_id, check_if_match, lock_condition, new_id, single_match
from ehr.outcome import FHIRError, not_found
from ehr.store import repository
from ehr.store.repository import Stored


async def update(ctx: Context, res_type: str, res_id: str, res: dict, *, if_match: str | None = None) -> Result:
    ctx.require(res_type, "u")
    check_id(res_type, res_id)
    ctx.check_write(res_type, res_id, res)
    prior = await repository.current(ctx.conn, res_type, res_id, for_update=True)
    status = await may_replace(ctx, res_type, res_id, prior, if_match)
    stored = await store(ctx, res_type, res_id, res, method="PUT", prior=prior)
    return Result(status, stored)


async def may_replace(ctx: Context, res_type: str, res_id: str, prior: Stored | None, if_match: str | None) -> int:
    """The checks on what an update overwrites (locked ``prior``): its status, 200 or 201."""
    existed = prior is not None and not prior.deleted
    if existed and ctx.access is not None:
        if await repository.current(ctx.conn, res_type, res_id, access=ctx.access) is None:
            raise not_found(res_type, res_id)
    if not existed:
        ctx.require(res_type, "c")  # update-as-create
    check_if_match(res_type, res_id, prior, if_match)
    return 200 if existed else 201


async def conditional_update(
    ctx: Context, res_type: str, query: str, res: dict, *, if_match: str | None = None
) -> Result:
    ctx.require(res_type, "u")
    await lock_condition(ctx.conn, res_type, query)
    match = await single_match(ctx, res_type, query, "Conditional update")
    body_id = res.get("id")
    if match is not None:
        if body_id is not None and body_id != match:
            raise FHIRError.of(
                400, "invalid", f"The resource id {body_id!r} differs from the matched {res_type}/{match}", f"{res_type}.id"
            )
        return await update(ctx, res_type, match, res, if_match=if_match)
    return await update(ctx, res_type, body_id or new_id(), res, if_match=if_match)

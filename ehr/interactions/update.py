"""update (also update-as-create with a client id) and conditional update.

A resource the caller may not see is absent for them, and a PUT tells nothing more: callers who
may create under an id of their choosing (the unrestricted in-process caller, an admin for
reference data) get 404 for an invisible id, as from a read; every other caller gets the same
405 for an invisible id as for a missing one (they create with POST, the server assigns ids).
What an update replaces must be writable by the caller too (``Context.check_prior``).
"""
from __future__ import annotations

from ehr.hooks import conform
from ehr.interactions.context import Context, Result, store
from ehr.interactions.preconditions import check_id, check_if_match, lock_condition, new_id, single_match
from ehr.outcome import FHIRError, not_found
from ehr.store import repository
from ehr.store.repository import Stored


async def update(
    ctx: Context, res_type: str, res_id: str, res: dict, *, if_match: str | None = None, assigned: bool = False
) -> Result:
    """``assigned``: the server chose ``res_id`` (a conditional update that matched nothing)."""
    ctx.require(res_type, "u")
    check_id(res_type, res_id)
    conform(ctx, res)
    ctx.check_write(res_type, res_id, res)
    prior = await repository.current(ctx.conn, res_type, res_id, for_update=True)
    status = await may_replace(ctx, res_type, res_id, prior, if_match, assigned=assigned)
    stored = await store(ctx, res_type, res_id, res, method="PUT", prior=prior)
    return Result(status, stored)


async def may_replace(
    ctx: Context, res_type: str, res_id: str, prior: Stored | None, if_match: str | None, *,
    assigned: bool = False, check_old: bool = True,
) -> int:
    """The checks on what an update overwrites (locked ``prior``): its status, 200 or 201.
    ``check_old=False``: the caller checks the old content itself (several at once)."""
    existed = prior is not None and not prior.deleted
    visible = existed and (ctx.access is None or await repository.current(ctx.conn, res_type, res_id, access=ctx.access) is not None)
    if not visible:
        if not assigned and not ctx.may_choose_id(res_type):
            raise no_update_as_create(res_type, res_id)
        if existed:
            raise not_found(res_type, res_id)
        ctx.require(res_type, "c")  # update-as-create
    check_if_match(res_type, res_id, prior, if_match)
    if visible and check_old:
        await ctx.check_prior([prior])
    return 200 if existed else 201


def no_update_as_create(res_type: str, res_id: str) -> FHIRError:
    """The one answer to a PUT on an id the caller cannot see, whether or not it exists."""
    return FHIRError.of(
        405, "not-supported",
        f"No {res_type}/{res_id} you may update; the server assigns ids: create a {res_type} with POST /{res_type}",
    )


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
    return await update(ctx, res_type, body_id or new_id(), res, if_match=if_match, assigned=body_id is None)

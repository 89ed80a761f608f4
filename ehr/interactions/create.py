"""create and conditional create (If-None-Exist)."""
from __future__ import annotations

from ehr.hooks import conform
from ehr.interactions.context import Context, Result, store
from ehr.interactions.preconditions import lock_condition, new_id, single_match
from ehr.store import repository


async def create(
    ctx: Context, res_type: str, res: dict, *, if_none_exist: str | None = None, res_id: str | None = None
) -> Result:
    """``res_id`` is only for ids the server assigned earlier (a transaction's urn:uuid entries)."""
    ctx.require(res_type, "c")
    if if_none_exist:
        await lock_condition(ctx.conn, res_type, if_none_exist)
        existing = await single_match(ctx, res_type, if_none_exist, "If-None-Exist")
        if existing is not None:
            return Result(200, await repository.current(ctx.conn, res_type, existing, access=ctx.access))
    # The server owns ids: whatever id the client sent is replaced.
    res_id = res_id or new_id()
    conform(ctx, res)
    ctx.check_write(res_type, res_id, res)
    stored = await store(ctx, res_type, res_id, res, method="POST", prior=None)
    return Result(201, stored)


async def submit_or_create(ctx: Context, res_type: str, res: dict, *, if_none_exist: str | None = None, res_id: str | None = None) -> Result:
    """A type with a business submission (a care sheet) goes to its handler; others are created.

    ``res_id`` (an id the server assigned earlier) goes to the handler too: a transaction's other
    entries were rewritten to reference the resource under that id."""
    from ehr.hooks import submission_handlers

    handler = submission_handlers.get(res_type)
    if handler is not None:
        ctx.require(res_type, "c")
        conform(ctx, res)
        ctx.check_write(res_type, res_id, res)
        return await handler(ctx, res, res_id)
    return await create(ctx, res_type, res, if_none_exist=if_none_exist, res_id=res_id)

"""delete and conditional delete; deleting what is absent or already deleted is a no-op."""
from __future__ import annotations

from ehr.interactions.context import Context, Result
from ehr.interactions.preconditions import check_if_match, lock_condition, single_match
from ehr.store import repository


async def delete(ctx: Context, res_type: str, res_id: str, *, if_match: str | None = None) -> Result:
    prior = await repository.current(ctx.conn, res_type, res_id, for_update=True)
    check_if_match(res_type, res_id, prior, if_match)
    if prior is None or prior.deleted:
        return Result(204)
    stored = await repository.write(ctx.conn, res_type, res_id, None, method="DELETE", prior=prior)
    return Result(204, stored)


async def conditional_delete(ctx: Context, res_type: str, query: str, *, if_match: str | None = None) -> Result:
    await lock_condition(ctx.conn, res_type, query)
    match = await single_match(ctx, res_type, query, "Conditional delete")
    if match is None:
        return Result(204)
    return await delete(ctx, res_type, match, if_match=if_match)

"""delete and conditional delete; deleting what is absent, already deleted or invisible to the
caller is the same no-op (204), so a delete reveals nothing about what the caller cannot see."""
from __future__ import annotations

from ehr.hooks import observe_writes
from ehr.interactions.context import Context, Result
from ehr.interactions.preconditions import check_if_match, lock_condition, single_match
from ehr.store import repository


async def delete(ctx: Context, res_type: str, res_id: str, *, if_match: str | None = None) -> Result:
    ctx.require(res_type, "d")
    prior = await repository.current(ctx.conn, res_type, res_id, for_update=True, access=ctx.access)
    check_if_match(res_type, res_id, prior, if_match)
    if prior is None or prior.deleted:
        return Result(204)
    ctx.check_write(res_type, res_id, None)
    await ctx.check_prior([prior])
    patients = None
    if ctx.guard is not None:  # the index rows go with the deletion: name the patients first
        from ehr.security.trail import patient_refs

        patients = await patient_refs(ctx.conn, [prior.rid])
    stored = await repository.write(ctx.conn, res_type, res_id, None, method="DELETE", prior=prior)
    await observe_writes(ctx, [(stored, None)])
    await ctx.wrote(stored, None, "DELETE")
    return Result(204, stored, patients=patients)


async def conditional_delete(ctx: Context, res_type: str, query: str, *, if_match: str | None = None) -> Result:
    ctx.require(res_type, "d")
    await lock_condition(ctx.conn, res_type, query)
    match = await single_match(ctx, res_type, query, "Conditional delete")
    if match is None:
        return Result(204)
    return await delete(ctx, res_type, match, if_match=if_match)

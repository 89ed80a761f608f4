"""patch: JSON Patch (RFC 6902) applied to the current version, then validated like an update."""
from __future__ import annotations

import jsonpatch

from ehr.hooks import conform
from ehr.interactions.context import Context, Result, store
from ehr.interactions.preconditions import check_if_match, lock_condition, single_match
from ehr.outcome import FHIRError, not_found
from ehr.parsing import check_resource
from ehr.store import repository


def apply_json_patch(res_type: str, current: dict, operations: object) -> dict:
    if not isinstance(operations, list):
        raise FHIRError.of(400, "structure", "A JSON Patch document is an array of operations")
    try:
        patched = jsonpatch.JsonPatch(operations).apply(current)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise FHIRError.of(409, "conflict", f"JSON Patch test failed: {exc}", res_type) from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, TypeError) as exc:
        raise FHIRError.of(400, "invalid", f"The JSON Patch cannot be applied: {exc}", res_type) from None
    return patched


async def patch(
    ctx: Context, res_type: str, res_id: str, operations: object, *, if_match: str | None = None
) -> Result:
    ctx.require(res_type, "u")
    prior = await repository.current(ctx.conn, res_type, res_id, for_update=True, access=ctx.access)
    if prior is None:
        raise not_found(res_type, res_id)
    if prior.deleted:
        raise FHIRError.of(410, "deleted", f"{res_type}/{res_id} has been deleted")
    check_if_match(res_type, res_id, prior, if_match)
    await ctx.check_prior([prior])
    patched = apply_json_patch(res_type, prior.resource(), operations)
    # A patch may not turn the resource into another one.
    patched = check_resource(patched, expected_type=res_type, url_id=res_id)
    conform(ctx, patched)
    ctx.check_write(res_type, res_id, patched)
    stored = await store(ctx, res_type, res_id, patched, method="PATCH", prior=prior)
    return Result(200, stored)


async def conditional_patch(
    ctx: Context, res_type: str, query: str, operations: object, *, if_match: str | None = None
) -> Result:
    ctx.require(res_type, "u")
    await lock_condition(ctx.conn, res_type, query)
    match = await single_match(ctx, res_type, query, "Conditional patch")
    if match is None:
        raise FHIRError.of(404, "not-found", f"No {res_type} matches {query}")
    return await patch(ctx, res_type, match, operations, if_match=if_match)

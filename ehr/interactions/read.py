"""read and vread: an invisible resource is exactly as absent as a missing one (404)."""
from __future__ import annotations

from ehr.interactions.context import Context, Result
from ehr.outcome import FHIRError, not_found
from ehr.parsing import bigint
from ehr.store import repository


def _gone(res_type: str, res_id: str) -> FHIRError:
    return FHIRError.of(410, "deleted", f"{res_type}/{res_id} has been deleted")


async def read(ctx: Context, res_type: str, res_id: str) -> Result:
    ctx.require(res_type, "r")
    stored = await repository.current(ctx.conn, res_type, res_id, access=ctx.access)
    if stored is None:
        raise not_found(res_type, res_id)
    if stored.deleted:
        raise _gone(res_type, res_id)
    return Result(200, stored)


async def vread(ctx: Context, res_type: str, res_id: str, version_id: str) -> Result:
    ctx.require(res_type, "r")
    number = bigint(version_id)  # no version has a number past 64 bits
    if number is None:
        raise not_found(f"{res_type}/{res_id}/_history", version_id)
    stored = await repository.version(ctx.conn, res_type, res_id, number, access=ctx.access)
    if stored is None:
        raise not_found(f"{res_type}/{res_id}/_history", version_id)
    if stored.deleted:
        raise _gone(res_type, f"{res_id}/_history/{version_id}")
    return Result(200, stored)

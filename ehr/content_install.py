"""Storing the shipped conformance content (profiles, identifier systems, terminology) in the
server, so clients can read it as FHIR resources.  Idempotent: a resource whose content is
unchanged is not written again, so re-running makes no new versions.
"""
from __future__ import annotations

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from ehr.interactions.context import Context
from ehr.interactions.update import update
from ehr.store import repository
from ehr.store.db import write_transaction


def _comparable(res: dict) -> dict:
    return {k: v for k, v in res.items() if k != "meta"}


async def install_content(engine: AsyncEngine, base_url: str) -> tuple[int, int]:
    """Returns (written, unchanged)."""
    from profiles.content import iter_content

    written = unchanged = 0
    async with write_transaction(engine) as conn:
        ctx = Context(conn, base_url, pending_index=[])
        for res in iter_content():
            current = await repository.current(conn, res["resourceType"], res["id"])
            if current is not None and not current.deleted and _comparable(orjson.loads(current.content)) == _comparable(res):
                unchanged += 1
                continue
            await update(ctx, res["resourceType"], res["id"], dict(res))
            written += 1
        await ctx.flush()
    return written, unchanged

"""Preconditions shared by the write interactions: If-Match, resource ids, conditional matches."""
from __future__ import annotations

import hashlib
import re
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.outcome import FHIRError
from ehr.search.engine import find_matches

if TYPE_CHECKING:
    from ehr.interactions.context import Context
from ehr.store.repository import Stored

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ETAG = re.compile(r'^\s*(?:W/)?"?([0-9]+)"?\s*$')


def new_id() -> str:
    return str(uuid.uuid4())


def check_id(res_type: str, res_id: str) -> str:
    if not _ID.fullmatch(res_id):
        raise FHIRError.of(400, "invalid", f"{res_id!r} is not a valid resource id", f"{res_type}.id")
    return res_id


def version_of_etag(etag: str) -> int:
    m = _ETAG.match(etag)
    if not m:
        raise FHIRError.of(400, "invalid", f"Malformed ETag {etag!r}; expected W/\"<versionId>\"")
    return int(m.group(1))


def check_if_match(res_type: str, res_id: str, prior: Stored | None, if_match: str | None) -> None:
    if if_match is None:
        return
    wanted = version_of_etag(if_match)
    if prior is None or prior.deleted or prior.version_id != wanted:
        have = "none" if prior is None or prior.deleted else prior.version_id
        raise FHIRError.of(
            412, "conflict", f"{res_type}/{res_id} is at version {have}, If-Match asked for {wanted}"
        )


async def lock_condition(conn: AsyncConnection, res_type: str, query: str) -> None:
    """Serialise conditional writes on the same criteria so two can't both create.

    SQLite already serialises writers (BEGIN IMMEDIATE); PostgreSQL takes a transaction-scoped
    advisory lock on a hash of the criteria.
    """
    if conn.dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.blake2b(f"{res_type}?{query}".encode(), digest_size=8).digest(), "big", signed=True)
    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


async def single_match(ctx: "Context", res_type: str, query: str, what: str) -> str | None:
    """The id of the one resource matching ``query``; None if none; 412 if several."""
    await ctx.flush()
    matches = await find_matches(ctx.conn, res_type, query, access=ctx.access, limit=2)
    if len(matches) > 1:
        raise FHIRError.of(
            412, "multiple-matches", f"{what}: {res_type}?{query} matches more than one resource"
        )
    return matches[0][1] if matches else None

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.search.access import AccessFilter
from ehr.store.repository import Stored


@dataclass
class Context:
    conn: AsyncConnection
    base_url: str
    access: AccessFilter | None = None
    # Set by Bundle processing: index rows are then written once for the whole Bundle.
    pending_index: list | None = None

    async def flush(self) -> None:
        """Make everything written so far searchable (before a search inside a Bundle)."""
        if self.pending_index:
            from ehr.store.repository import flush_index

            await flush_index(self.conn, self.pending_index)


@dataclass
class Result:
    status: int
    stored: Stored | None = None  # the version written or read: ETag, Last-Modified, Location
    body: bytes | None = None  # a Bundle or other non-stored payload
    issues: list = field(default_factory=list)  # informational OperationOutcome issues

    @property
    def content(self) -> bytes | None:
        if self.body is not None:
            return self.body
        return self.stored.content if self.stored else None


async def store(ctx: Context, res_type: str, res_id: str, res: dict, *, method: str, prior: Stored | None) -> Stored:
    """Every create/update/patch passes here: domain validators first, then the versioned write."""
    from ehr.hooks import validate_write
    from ehr.store import repository

    await validate_write(ctx, res)
    return await repository.write(
        ctx.conn, res_type, res_id, res, method=method, prior=prior, index_later=ctx.pending_index
    )

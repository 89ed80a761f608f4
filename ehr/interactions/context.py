"""The service layer: one module per FHIR interaction, free of HTTP.

Each function takes a ``Context`` (an open connection inside the caller's transaction, the
public base URL, the caller's access filter and write guard) and plain values, and returns a
``Result`` the REST layer turns into a response — or that a transaction Bundle turns into an
entry.  ``access`` narrows every read (an invisible resource is absent); ``guard`` checks what
the caller may write and records it; both are None for in-process callers (tools, the demo
loader, domain handlers writing on the server's behalf).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.outcome import FHIRError
from ehr.search.access import AccessFilter
from ehr.security.principal import Principal
from ehr.security.search_params import ensure_registered
from ehr.store.repository import Stored

# The security parameters must be indexed on every write, whoever writes.
ensure_registered()


class Guard(Protocol):
    """Write-side checks of the caller (``ehr.security.guard.RequestGuard``)."""

    principal: Principal  # who writes: write hooks that depend on the role (checks at prescribing) read it

    def require(self, res_type: str, interaction: str) -> None: ...

    def check_write(self, res_type: str, res_id: str | None, res: dict | None) -> None: ...

    async def wrote(self, ctx: "Context", stored: Stored, res: dict | None, method: str) -> None: ...

    async def outside(self, ctx: "Context", written: list[Stored]) -> list[Stored]: ...


@dataclass
class Context:
    conn: AsyncConnection
    base_url: str
    access: AccessFilter | None = None
    # Set by Bundle processing: index rows are then written once for the whole Bundle.
    pending_index: list | None = None
    guard: Guard | None = None
    written: list[Stored] = field(default_factory=list)  # versions written through this context
    # What write preparers remember across the writes of one request or transaction Bundle
    # (the prescription number its lines of one patient share).
    shared: dict = field(default_factory=dict)

    async def flush(self) -> None:
        """Make everything written so far searchable (before a search inside a Bundle)."""
        if self.pending_index:
            from ehr.store.repository import flush_index

            await flush_index(self.conn, self.pending_index)

    def require(self, res_type: str, interaction: str) -> None:
        """403 unless the caller's role and scopes allow ``interaction`` (c r u d s) on the type."""
        if self.guard is not None:
            self.guard.require(res_type, interaction)

    def check_write(self, res_type: str, res_id: str | None, res: dict | None) -> None:
        if self.guard is not None:
            self.guard.check_write(res_type, res_id, res)

    async def wrote(self, stored: Stored, res: dict | None, method: str) -> None:
        self.written.append(stored)
        if self.guard is None:
            return
        await self.guard.wrote(self, stored, res, method)
        if self.pending_index is None:  # index rows are there already: check now
            await self.check_written([stored])

    async def check_written(self, written: list[Stored]) -> list[Stored]:
        """Raise 403 for what the caller may not write there; Bundles call it after the flush."""
        if self.guard is None:
            return []
        bad = await self.guard.outside(self, written)
        if bad:
            s = bad[0]
            raise FHIRError.of(
                403, "forbidden", f"{s.res_type}/{s.res_id} would be outside the records you may write to", s.res_type
            )
        return bad


@dataclass
class Result:
    status: int
    stored: Stored | None = None  # the version written or read: ETag, Last-Modified, Location
    body: bytes | None = None  # a Bundle or other non-stored payload
    issues: list = field(default_factory=list)  # informational OperationOutcome issues
    rids: list[int] = field(default_factory=list)  # resource rows returned (searches, history)
    patients: list[str] | None = None  # "Patient/<id>" concerned, when known without the index

    @property
    def content(self) -> bytes | None:
        if self.body is not None:
            return self.body
        return self.stored.content if self.stored else None

    @property
    def touched(self) -> list[int]:
        """Resource rows this result is about, for the audit trail."""
        return self.rids or ([self.stored.rid] if self.stored is not None else [])


async def store(ctx: Context, res_type: str, res_id: str, res: dict, *, method: str, prior: Stored | None) -> Stored:
    """Every create/update/patch passes here: domain validators first, then the versioned write."""
    from ehr.hooks import validate_write
    from ehr.store import repository

    await validate_write(ctx, res, prior)
    stored = await repository.write(
        ctx.conn, res_type, res_id, res, method=method, prior=prior, index_later=ctx.pending_index
    )
    await ctx.wrote(stored, res, method)
    return stored


async def store_many(ctx: Context, items: list, *, validated: bool = False) -> list[Stored]:
    """``store`` for many versions (``repository.NewVersion``) in a fixed number of statements
    (``validated``: the caller ran the write validators on each already)."""
    from ehr.hooks import validate_write
    from ehr.store import repository

    for item in items if not validated else ():
        await validate_write(ctx, item.res, item.prior)
    pending = ctx.pending_index if ctx.pending_index is not None else []
    written = await repository.write_many(ctx.conn, items, index_later=pending)
    if ctx.pending_index is None:
        await repository.flush_index(ctx.conn, pending)
    for item, stored in zip(items, written):
        await ctx.wrote(stored, item.res, item.method)
    return written

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
from typing import Callable, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.outcome import FHIRError
from ehr.search.access import AccessFilter
from ehr.security.principal import Principal
from ehr.security.search_params import ensure_registered
from ehr.store.repository import Stored

# The security parameters must be indexed on every write, whoever writes.
ensure_registered()

# Records that are only ever added to: an audit event that could be rewritten or deleted would
# prove nothing.  No caller, the unrestricted one included, updates, patches or deletes them.
APPEND_ONLY_TYPES = frozenset({"AuditEvent"})


def refuse_append_only(res_type: str) -> None:
    if res_type in APPEND_ONLY_TYPES:
        raise FHIRError.of(
            405, "not-supported",
            f"Un {res_type} ne se modifie ni ne se supprime : le journal ne fait que s'allonger. "
            f"لا يمكن تعديل {res_type} ولا حذفه: السجل لا يقبل إلا الإضافة.",
            res_type,
        )


@dataclass(frozen=True)
class Refusal:
    """A version the caller may not write (or replace), and why."""

    stored: Stored
    status: int
    code: str
    diagnostics: str
    path: str | None = None  # FHIRPath of the offending element inside the resource

    def error(self, where: str | None = None) -> FHIRError:
        """Located in the resource, or in the Bundle entry ``where`` ("Bundle.entry[2]")."""
        base = f"{where}.resource" if where else self.stored.res_type
        expression = f"{base}.{self.path}" if self.path else (where or self.stored.res_type)
        return FHIRError.of(self.status, self.code, self.diagnostics, expression)


class Guard(Protocol):
    """Write-side checks of the caller (``ehr.security.guard.RequestGuard``)."""

    principal: Principal  # who writes: write hooks that depend on the role (checks at prescribing) read it

    def require(self, res_type: str, interaction: str) -> None: ...

    def check_write(self, res_type: str, res_id: str | None, res: dict | None) -> None: ...

    def may_choose_id(self, res_type: str) -> bool: ...

    async def check_prior(self, ctx: "Context", priors: list[Stored]) -> Refusal | None: ...

    async def wrote(self, ctx: "Context", stored: Stored, res: dict | None, method: str) -> None: ...

    async def refused(self, ctx: "Context", written: list[Stored]) -> Refusal | None: ...


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
    entry: str | None = None  # the transaction entry being run ("Bundle.entry[2]"): where refusals point
    # Resources found conforming to the base definition, by id() (``ehr.hooks.conform``); the
    # value keeps each alive, so an id is not reused by another resource meanwhile.
    conformant: dict[int, dict] = field(default_factory=dict)

    async def flush(self) -> None:
        """Make everything written so far searchable (before a search inside a Bundle)."""
        if self.pending_index:
            from ehr.store.repository import flush_index

            await flush_index(self.conn, self.pending_index)

    def require(self, res_type: str, interaction: str) -> None:
        """403 unless the caller's role and scopes allow ``interaction`` (c r u d s) on the type;
        405 for rewriting an append-only type, whoever asks."""
        if interaction in ("u", "d"):
            refuse_append_only(res_type)
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

    def may_choose_id(self, res_type: str) -> bool:
        """Whether the caller may create ``res_type`` under an id of its choosing (update-as-create)."""
        return self.guard is None or self.guard.may_choose_id(res_type)

    async def check_prior(self, priors: list[Stored], where: Callable[[Stored], str] | None = None) -> None:
        """Raise 403 when the caller may not write the versions an update, patch or delete
        replaces (``where``: the Bundle entry of a version)."""
        if self.guard is not None and (refusal := await self.guard.check_prior(self, priors)) is not None:
            raise refusal.error(where(refusal.stored) if where else self.entry)

    async def check_written(self, written: list[Stored], where: Callable[[Stored], str] | None = None) -> None:
        """Raise 403 for what the caller may not write there, 422 for a reference to a patient
        who does not exist; Bundles call it after the flush (``where``: the entry of a version)."""
        if self.guard is not None and (refusal := await self.guard.refused(self, written)) is not None:
            raise refusal.error(where(refusal.stored) if where else self.entry)


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
    from ehr.hooks import observe_writes, validate_write
    from ehr.store import repository

    await validate_write(ctx, res, res_id, prior)
    stored = await repository.write(
        ctx.conn, res_type, res_id, res, method=method, prior=prior, index_later=ctx.pending_index
    )
    await observe_writes(ctx, [(stored, res)])
    await ctx.wrote(stored, res, method)
    return stored


async def store_many(ctx: Context, items: list, *, validated: bool = False) -> list[Stored]:
    """``store`` for many versions (``repository.NewVersion``) in a fixed number of statements
    (``validated``: the caller ran the write validators on each already)."""
    from ehr.hooks import observe_writes, validate_write
    from ehr.store import repository

    for item in items if not validated else ():
        await validate_write(ctx, item.res, item.res_id, item.prior)
    pending = ctx.pending_index if ctx.pending_index is not None else []
    written = await repository.write_many(ctx.conn, items, index_later=pending)
    if ctx.pending_index is None:
        await repository.flush_index(ctx.conn, pending)
    await observe_writes(ctx, [(stored, item.res) for item, stored in zip(items, written)])
    for item, stored in zip(items, written):
        await ctx.wrote(stored, item.res, item.method)
    return written

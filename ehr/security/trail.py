"""Recording each request in the audit trail: one AuditEvent per patient whose data it touched.

``RequestAudit`` lives for one request.  The endpoint says what it is doing (``begin``), then:

* a write records its events with ``record(conn, ...)`` inside the transaction of the change, so
  both commit or neither does (into the audit inbox: no shared row is locked, so writers do
  not wait for each other; the sealer chains the events afterwards, see ``audit_log.seal``);
* a read records them with ``record_read(...)`` in its own transaction right after the read and
  before the response: if the trail cannot be written, the caller gets an error, not the data;
* anything that fails (404, 403, 409...) is recorded by the error handler with ``record_failure``;
  the patients concerned by a failed access to one resource are looked up unfiltered, so that a
  patient sees refused attempts on their record too (the caller learns nothing from it).

Patients come from ``idx_compartment`` (the resource's Patient compartment), so reads need no
resource parsing.  While a doctor holds a break-the-glass grant for a patient, that patient's
events carry purposeOfUse BTG.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ehr.security.audit import append, audit_events
from ehr.security.principal import BreakGlassGrant, Principal
from ehr.security.roles import Role
from ehr.security.tables import break_glass_grant
from ehr.store.clock import now_us
from ehr.store.db import write_transaction
from ehr.store.schema import idx_compartment, resource

_CHUNK = 5000  # rids per IN list
log = logging.getLogger("sijill.audit")


async def compartment_patients(conn: AsyncConnection, rids: Iterable[int]) -> dict[int, list[str]]:
    """rid -> ids of the patients whose compartment holds it."""
    rids = sorted(set(rids))
    out: dict[int, list[str]] = {}
    c = idx_compartment
    for i in range(0, len(rids), _CHUNK):
        stmt = select(c.c.rid, c.c.comp_id).where(c.c.comp_type == "Patient", c.c.rid.in_(rids[i : i + _CHUNK]))
        for rid, pid in (await conn.execute(stmt)).all():
            out.setdefault(rid, []).append(pid)
    return out


async def patient_refs(conn: AsyncConnection, rids: Iterable[int]) -> list[str]:
    found = await compartment_patients(conn, rids)
    return sorted({f"Patient/{pid}" for pids in found.values() for pid in pids})


async def named_patients(conn: AsyncConnection, patients: Sequence[str] | None, rids: Iterable[int]) -> list[str]:
    """The patients named, and those whose compartments hold ``rids`` (None and no rids: nobody)."""
    rids = list(rids)
    if not rids:
        return list(patients or ())
    found = await patient_refs(conn, rids)
    return sorted({*(patients or ()), *found}) if patients else found


async def target_patients(conn: AsyncConnection, res_type: str, res_id: str) -> list[str]:
    """Patients of one resource, whoever may see it (for the trail of a refused access)."""
    rid = (await conn.execute(select(resource.c.rid).where(resource.c.res_type == res_type, resource.c.res_id == res_id))).scalar()
    return await patient_refs(conn, [rid]) if rid is not None else []


EventBuilder = Callable[[AsyncConnection], Awaitable[list[dict]]]


class AuditWriter:
    """Group commit for the events of reads: requests that finish while a batch is being
    committed share the next transaction (one inbox INSERT and one commit for all of them).

    Each request still waits for the commit of its own events before its response is sent, so
    nothing is returned that is not in the trail; if the batch fails, every request in it fails.
    """

    def __init__(self, engine: AsyncEngine, max_batch: int = 256):
        self.engine = engine
        self.max_batch = max_batch
        self._pending: list[tuple[EventBuilder, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def submit(self, build: EventBuilder) -> None:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((build, future))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        await asyncio.shield(future)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                try:
                    async with write_transaction(self.engine) as conn:
                        events: list[dict] = []
                        for build, _ in batch:
                            events.extend(await build(conn))
                        await append(conn, events)
                except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                    log.error("audit batch of %d requests failed: %s", len(batch), type(exc).__name__)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._flusher = None


@dataclass
class Scope:
    """What the request does, for the events (and for a failure event if it goes wrong)."""

    interaction: str
    what: str | None = None
    query: str | None = None
    operation: str | None = None
    target: tuple[str, str] | None = None  # the one resource addressed by id


class RequestAudit:
    def __init__(
        self, engine: AsyncEngine | None, principal: Principal, *, address: str | None, site: str | None,
        writer: AuditWriter | None = None, glass: tuple[tuple[str, int], ...] | None = None,
    ):
        self.engine = engine
        self.writer = writer
        self.glass = glass  # the doctor's running grants (patient id, end), known with their identity
        self.principal = principal
        self.address = address
        self.site = site
        self.scope: Scope | None = None
        self.recorded = False

    def begin(self, interaction: str, **details) -> None:
        self.scope = Scope(interaction, **details)

    async def _principal_for(self, conn: AsyncConnection, patients: Sequence[str]) -> Principal:
        """The principal with their running break-the-glass grants on these patients attached
        (from the request's identity; read from the table only when there is none)."""
        if self.principal.role is not Role.DOCTOR or not self.principal.fhir_user or not patients:
            return self.principal
        ids = {p.split("/", 1)[1] for p in patients}
        at = now_us()
        if self.glass is not None:
            running = [(pid, until) for pid, until in self.glass if pid in ids and until > at]
        else:
            g = break_glass_grant
            running = (await conn.execute(
                select(g.c.patient_id, g.c.expires_at).where(g.c.actor == self.principal.fhir_user, g.c.expires_at > at,
                                                             g.c.patient_id.in_(sorted(ids)))
            )).all()
        principal = self.principal
        for pid, until in running:
            principal = principal.with_break_glass(BreakGlassGrant(f"Patient/{pid}", "", 0, until))
        return principal

    async def build(
        self, conn: AsyncConnection, *, status: int = 200, patients: Sequence[str] = (), scope: Scope | None = None,
        description: str | None = None,
    ) -> list[dict]:
        s = scope or self.scope or Scope("operation")
        principal = await self._principal_for(conn, patients)
        return audit_events(
            s.interaction, principal, patients=patients, status=status, what=s.what, query=s.query,
            operation=s.operation, address=self.address, site=self.site, description=description,
        )

    async def record(
        self, conn: AsyncConnection, *, status: int = 200, rids: Iterable[int] = (), patients: Sequence[str] | None = None,
        scope: Scope | None = None,
    ) -> None:
        """Events of a successful interaction, in the caller's transaction: for the patients
        named and those of the resources ``rids``."""
        patients = await named_patients(conn, patients, rids)
        await append(conn, await self.build(conn, status=status, patients=patients, scope=scope))
        self.recorded = True

    async def record_read(self, *, status: int = 200, rids: Iterable[int] = (), patients: Sequence[str] | None = None, also=None) -> None:
        """Events of a read, in their own transaction, before the data leaves the server.
        ``also(conn)`` runs in the same transaction (a pharmacy's presentation record)."""
        if self.engine is None:
            return
        if self.writer is not None and also is None:
            scope, rids = self.scope, list(rids)

            async def build(conn: AsyncConnection) -> list[dict]:
                pats = await named_patients(conn, patients, rids)
                return await self.build(conn, status=status, patients=pats, scope=scope)

            await self.writer.submit(build)
            self.recorded = True
            return
        async with write_transaction(self.engine) as conn:
            if also is not None:
                await also(conn)
            await self.record(conn, status=status, rids=rids, patients=patients)

    async def record_failure(self, status: int, issue_codes: Sequence[str]) -> None:
        """A refused or failed interaction (the change, if any, was rolled back)."""
        if self.recorded or self.scope is None or self.engine is None:
            return
        self.recorded = True
        description = f"HTTP {status}: {', '.join(dict.fromkeys(issue_codes)) or 'error'}"
        async with write_transaction(self.engine) as conn:
            patients = await target_patients(conn, *self.scope.target) if self.scope.target else []
            await append(conn, await self.build(conn, status=status, patients=patients, description=description))


# --- Bundles ------------------------------------------------------------------------------------
_WRITE_INTERACTION = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def entry_scope(entry) -> Scope:
    """What one Bundle entry did, as a restful interaction."""
    t = entry.target
    if entry.method in _WRITE_INTERACTION:
        interaction = _WRITE_INTERACTION[entry.method]
    elif t.history:
        interaction = "history-instance" if t.res_id else "history-type" if t.res_type else "history-system"
    elif t.version_id is not None:
        interaction = "vread"
    elif t.res_id is not None:
        interaction = "read"
    else:
        interaction = "search-type" if t.res_type else "search-system"
    stored = entry.result.stored if entry.result is not None else None
    if stored is not None:
        return Scope(interaction, what=f"{stored.res_type}/{stored.res_id}/_history/{stored.version_id}")
    if interaction.startswith("search"):
        return Scope(interaction, what=t.res_type, query=t.query)
    return Scope(interaction, what="/".join(x for x in (t.res_type, t.res_id) if x) or None,
                 target=(t.res_type, t.res_id) if t.res_type and t.res_id else None)


class BundleTrail:
    """The ``BundleAudit`` of a request: events per entry (and per patient of each entry)."""

    def __init__(self, audit: RequestAudit):
        self.audit = audit

    async def entries(self, conn: AsyncConnection, entries: list) -> None:
        done = [e for e in entries if e.result is not None]
        unknown = [rid for e in done if e.result.patients is None for rid in e.result.touched]
        by_rid = await compartment_patients(conn, unknown)
        per_entry = []
        for e in done:
            patients = e.result.patients
            if patients is None:
                patients = sorted({f"Patient/{p}" for rid in e.result.touched for p in by_rid.get(rid, ())})
            per_entry.append((e, patients))
        principal = await self.audit._principal_for(conn, sorted({p for _, ps in per_entry for p in ps}))
        events: list[dict] = []
        for e, patients in per_entry:
            s = entry_scope(e)
            events += audit_events(
                s.interaction, principal, patients=patients, status=e.result.status, what=s.what, query=s.query,
                address=self.audit.address, site=self.audit.site,
            )
        await append(conn, events)
        self.audit.recorded = True

    async def failed(self, entries: list) -> None:
        if not entries or self.audit.engine is None:
            return
        async with write_transaction(self.audit.engine) as conn:
            events = []
            for e in entries:
                s = entry_scope(e)
                patients = await target_patients(conn, *s.target) if s.target else []
                codes = ", ".join(dict.fromkeys(i.code for i in e.error.issues)) or "error"
                events += audit_events(
                    s.interaction, self.audit.principal, patients=patients, status=e.error.status, what=s.what,
                    query=s.query, address=self.audit.address, site=self.audit.site,
                    description=f"HTTP {e.error.status}: {codes}",
                )
            await append(conn, events)

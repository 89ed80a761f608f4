"""batch and transaction Bundles.

A transaction is all-or-nothing in one database transaction, processed in the order the spec
sets (DELETE, POST, PUT/PATCH, then GET/HEAD) whatever the entry order, with ``urn:uuid:`` (and
other fullUrl) references rewritten to the ids the server assigns and conditional references
(``Patient?identifier=…``) resolved to the one resource they match.  A batch runs each entry in
its own transaction and reports each entry's outcome.  The existing resources a transaction
changes are locked at once in (type, id) order, and a transaction (or batch entry) PostgreSQL
picks as a deadlock victim runs again from the request (``ehr.store.faults``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ehr import bundle
from ehr.interactions import create, delete, history, patch, read, update
from ehr.interactions.bundle_entries import conditional_references, patch_operations, rewrite
from ehr.interactions.context import Context, Guard, Result
from ehr.interactions.preconditions import new_id, single_match
from ehr.interactions.urls import Target, parse_target
from ehr.interactions.write_together import plain, write_together
from ehr.outcome import FHIRError, in_entry, operation_outcome
from ehr.parsing import check_resource
from ehr.search.access import AccessFilter
from ehr.search.engine import search
from ehr.search.limits import SearchLimits, check_bundle_searches, check_search
from ehr.store import repository
from ehr.store.clock import to_instant
from ehr.store.db import write_transaction
from ehr.store.faults import CONTENTION, each_attempt, fault_kind, retrying_write

log = logging.getLogger("sijill.bundle")
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_REASON = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified"}


@dataclass
class Entry:
    index: int
    method: str
    target: Target
    full_url: str | None
    resource: dict | None
    if_match: str | None = None
    if_none_exist: str | None = None
    if_none_match: str | None = None
    result: Result | None = None
    error: FHIRError | None = None
    extra: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


class BundleAudit(Protocol):
    """Records the entries in the audit trail (``ehr.rest`` wires the request's audit)."""

    async def entries(self, conn: AsyncConnection, entries: list["Entry"]) -> None:
        """Successful entries, inside the transaction that made them."""

    async def failed(self, entries: list["Entry"]) -> None:
        """Entries of a batch that failed (their own transactions were rolled back)."""


@dataclass
class Options:
    base_url: str
    default_count: int
    max_count: int
    max_entries: int
    representation: bool  # Prefer: return=representation
    access: AccessFilter | None = None
    guard: Guard | None = None
    audit: BundleAudit | None = None
    attempts: int = 1  # tries of a transaction the database picks as a deadlock victim
    limits: SearchLimits | None = None  # of each search entry
    max_searches: int | None = None  # search entries in one Bundle


def _entries(bundle_json: dict, opts: Options) -> list[Entry]:
    raw = bundle_json.get("entry") or []
    if not isinstance(raw, list):
        raise FHIRError.of(400, "structure", "Bundle.entry must be an array", "Bundle.entry")
    if len(raw) > opts.max_entries:
        raise FHIRError.of(
            413, "too-costly", f"The Bundle has {len(raw)} entries; at most {opts.max_entries} are accepted", "Bundle.entry"
        )
    out = []
    for i, e in enumerate(raw):
        where = f"Bundle.entry[{i}]"
        req = e.get("request") if isinstance(e, dict) else None
        if not isinstance(req, dict) or not isinstance(req.get("url"), str):
            raise FHIRError.of(400, "required", "Each entry needs request.method and request.url", f"{where}.request")
        method = req.get("method")
        if method not in _ORDER:
            raise FHIRError.of(400, "invalid", f"Unsupported request.method {method!r}", f"{where}.request.method")
        target = parse_target(req["url"], opts.base_url, f"{where}.request.url")
        res = e.get("resource")
        if method in ("POST", "PUT") and res is None:
            raise FHIRError.of(400, "required", f"A {method} entry needs a resource", f"{where}.resource")
        out.append(
            Entry(i, method, target, e.get("fullUrl"), res, req.get("ifMatch"), req.get("ifNoneExist"), req.get("ifNoneMatch"))
        )
    check_bundle_searches([e.where for e in out if e.method in ("GET", "HEAD") and e.target.res_id is None], opts.max_searches)
    return out


def _validate(entry: Entry) -> None:
    if entry.method in ("POST", "PUT"):
        if entry.target.res_type is None:
            raise FHIRError.of(400, "invalid", "The request URL must name a resource type", f"{entry.where}.request.url")
        url_id = entry.target.res_id if entry.method == "PUT" else None
        try:
            entry.resource = check_resource(entry.resource, expected_type=entry.target.res_type, url_id=url_id)
        except FHIRError as err:
            body_type = entry.resource.get("resourceType") if isinstance(entry.resource, dict) else None
            raise in_entry(err, entry.where, body_type if isinstance(body_type, str) else None) from None


async def _assign_ids(ctx: Context, entries: list[Entry]) -> dict[str, str]:
    ids: dict[str, str] = {}
    for e in entries:
        t = e.target
        if e.method == "POST":
            existing = None
            if e.if_none_exist:
                existing = await single_match(ctx, t.res_type, e.if_none_exist, f"{e.where}.request.ifNoneExist")
            e.extra["id"] = existing or new_id()
            e.extra["existing"] = existing is not None
            if e.full_url:
                ids[e.full_url] = f"{t.res_type}/{e.extra['id']}"
        elif e.method == "PUT" and t.res_id is None:
            match = await single_match(ctx, t.res_type, t.query, "Conditional update")
            e.extra["id"] = match or (e.resource or {}).get("id") or new_id()
            e.extra["assigned"] = not (match or (e.resource or {}).get("id"))
            if e.full_url:
                ids[e.full_url] = f"{t.res_type}/{e.extra['id']}"
        elif e.method == "PUT" and e.full_url:
            ids[e.full_url] = f"{t.res_type}/{t.res_id}"
    resolved: dict[str, str] = {}
    for e in entries:
        if e.resource is None:
            continue
        conditional: list[str] = []
        conditional_references(e.resource, conditional)
        for ref in conditional:
            if ref in resolved:
                continue
            res_type, _, query = ref.partition("?")
            match = await single_match(ctx, res_type, query, f"Conditional reference {ref}")
            if match is None:
                raise FHIRError.of(404, "not-found", f"The conditional reference {ref} matches nothing", f"{e.where}.resource")
            resolved[ref] = f"{res_type}/{match}"
    ids.update(resolved)
    return ids


async def _run(ctx: Context, e: Entry, opts: Options) -> Result:
    t = e.target
    if e.method == "POST":
        if e.extra.get("existing"):  # If-None-Exist matched while ids were assigned
            return Result(200, (await read.read(ctx, t.res_type, e.extra["id"])).stored)
        if "id" in e.extra:
            return await create.submit_or_create(ctx, t.res_type, e.resource, res_id=e.extra["id"])
        return await create.submit_or_create(ctx, t.res_type, e.resource, if_none_exist=e.if_none_exist)
    if e.method == "PUT":
        return await update.update(ctx, t.res_type, t.res_id or e.extra["id"], e.resource, if_match=e.if_match,
                                   assigned=e.extra.get("assigned", False))
    if e.method == "DELETE":
        if t.res_id is None:
            return await delete.conditional_delete(ctx, t.res_type, t.query, if_match=e.if_match)
        return await delete.delete(ctx, t.res_type, t.res_id, if_match=e.if_match)
    if e.method == "PATCH":
        ops = patch_operations(e)
        if t.res_id is None:
            return await patch.conditional_patch(ctx, t.res_type, t.query, ops, if_match=e.if_match)
        return await patch.patch(ctx, t.res_type, t.res_id, ops, if_match=e.if_match)
    # GET / HEAD: everything written before must be searchable
    await ctx.flush()
    if t.history:
        return await history.history(
            ctx, t.res_type, t.res_id, t.params, default_count=opts.default_count, max_count=opts.max_count
        )
    if t.version_id is not None:
        return await read.vread(ctx, t.res_type, t.res_id, t.version_id)
    if t.res_id is not None:
        return await read.read(ctx, t.res_type, t.res_id)
    for res_type in search_types(t.res_type, t.params):
        ctx.require(res_type, "s")
    check_search(t.params, opts.limits)
    found = await search(
        ctx.conn, t.res_type, t.params, base_url=opts.base_url, access=ctx.access,
        default_count=opts.default_count, max_count=opts.max_count,
    )
    return Result(200, body=found.bundle, rids=found.rids, patients=[f"Patient/{p}" for p in found.patient_ids])


def search_types(res_type: str | None, params: list[tuple[str, str]]) -> list[str]:
    """The types a search lists (its own, or the system search's ``_type``): each needs ``s``."""
    if res_type is not None:
        return [res_type]
    return [t.strip() for name, v in params if name == "_type" for t in v.split(",") if t.strip()]


def _response_entry(e: Entry, opts: Options) -> bytes:
    if e.error is not None:
        status = e.error.status
        return bundle.entry(
            None, response={"status": str(status), "outcome": operation_outcome(e.error.issues, e.error.contained)}
        )
    r = e.result
    response: dict = {"status": f"{r.status} {_REASON.get(r.status, '')}".strip()}
    s = r.stored
    full_url = None
    if s is not None:
        full_url = f"{opts.base_url}/{s.res_type}/{s.res_id}"
        if not s.deleted:
            response["etag"] = s.etag
            response["lastModified"] = to_instant(s.last_updated)
        if r.status == 201:
            response["location"] = f"{s.res_type}/{s.res_id}/_history/{s.version_id}"
    body = None
    if e.method in ("GET", "HEAD"):
        body = r.content if e.method == "GET" else None
    elif opts.representation and s is not None and not s.deleted:
        body = s.content
    return bundle.entry(full_url, body, response=response)


async def transaction(engine: AsyncEngine, bundle_json: dict, opts: Options) -> bytes:
    request = each_attempt(bundle_json) if opts.attempts > 1 else (lambda: bundle_json)  # no copy if never retried
    first = [_prepared(request(), opts)]  # refused before any connection is taken if malformed

    async def attempt(conn: AsyncConnection) -> list[Entry]:
        # A retried attempt (the database's deadlock victim) starts again from the request.
        entries = first.pop() if first else _prepared(request(), opts)
        await _apply(conn, entries, opts)
        return entries

    done = await retrying_write(engine, attempt, opts.attempts)
    return bundle.bundle("transaction-response", (_response_entry(e, opts) for e in done))


def _prepared(bundle_json: dict, opts: Options) -> list[Entry]:
    entries = _entries(bundle_json, opts)
    for e in entries:
        _validate(e)
    return entries


async def _apply(conn: AsyncConnection, entries: list[Entry], opts: Options) -> None:
    ctx = Context(conn, opts.base_url, opts.access, pending_index=[], guard=opts.guard)
    ids = await _assign_ids(ctx, entries)
    if ids:
        for e in entries:
            if e.resource is not None:
                rewrite(e.resource, ids)
    await _lock_targets(conn, entries)
    entry_of: dict[int, Entry] = {}
    together = plain(entries)
    grouped = {id(e) for e, _ in together}
    alone = [e for e in entries if id(e) not in grouped]
    for e in sorted(alone, key=lambda x: _ORDER[x.method]) + [None]:
        if together and (e is None or _ORDER[e.method] >= _ORDER["POST"]):
            # After the deletes, before every other write: what the rest refers to is there.
            await write_together(ctx, together, in_entry)
            entry_of.update({t.result.stored.rid: t for t, _ in together})
            together = []
        if e is None:
            break
        before = len(ctx.written)
        ctx.entry = e.where
        try:
            e.result = await _run(ctx, e, opts)
        except FHIRError as err:
            raise in_entry(err, e.where, e.target.res_type) from None
        for s in ctx.written[before:]:
            entry_of.setdefault(s.rid, e)
    await ctx.flush()
    # write rules that need the index rows, per entry (the refusal names its entry)
    await ctx.check_written(ctx.written, lambda s: entry_of[s.rid].where)
    if opts.audit is not None:
        await opts.audit.entries(conn, entries)


async def _lock_targets(conn: AsyncConnection, entries: list[Entry]) -> None:
    """Lock every existing resource the Bundle changes by id, all at once in (type, id) order:
    two Bundles naming the same resources in opposite orders then queue instead of deadlocking."""
    changed = [(e.target.res_type, e.target.res_id or e.extra.get("id")) for e in entries if e.method in ("PUT", "PATCH", "DELETE")]
    await repository.lock_in_order(conn, [(t, i) for t, i in changed if t and i])


async def batch(engine: AsyncEngine, bundle_json: dict, opts: Options) -> bytes:
    entries = _entries(bundle_json, opts)
    for e in entries:
        try:
            _validate(e)
        except FHIRError as err:
            e.error = err
    handled = await _bulk_submissions(engine, entries, opts)
    for e in entries:
        if e.error is not None or id(e) in handled:
            continue
        try:
            e.result = await retrying_write(engine, _one_entry(e, opts), opts.attempts)
        except FHIRError as err:
            e.error = err
    for e in entries:  # each outcome names its entry (``in_entry`` leaves located expressions as they are)
        if e.error is not None:
            in_entry(e.error, e.where, e.target.res_type)
    if opts.audit is not None:
        await opts.audit.failed([e for e in entries if e.error is not None])
    return bundle.bundle("batch-response", (_response_entry(e, opts) for e in entries))


def _one_entry(e: Entry, opts: Options):
    """A batch entry in its own transaction (with its audit events), from its request each attempt."""
    resource = each_attempt(e.resource)

    async def attempt(conn: AsyncConnection) -> Result:
        e.resource = resource()
        result = await _run(Context(conn, opts.base_url, opts.access, guard=opts.guard), e, opts)
        if opts.audit is not None:
            e.result = result
            await opts.audit.entries(conn, [e])
        return result

    return attempt


async def _bulk_submissions(engine: AsyncEngine, entries: list[Entry], opts: Options) -> set[int]:
    """Plain POSTs of a type with a bulk submission handler (care sheets) go through it together,
    in one transaction, each entry still getting its own answer.  If that transaction fails as a
    whole (a concurrent write or deadlock, a write rule), nothing of it stays and the entries run one
    by one (each retried if it loses a deadlock).
    Returns the entries answered here (by ``id``)."""
    from ehr.hooks import bulk_submission_handlers, conform

    groups: dict[str, list[Entry]] = {}
    for e in entries:
        t = e.target
        if (e.error is None and e.method == "POST" and t.res_id is None and not t.query and not e.if_none_exist
                and t.res_type in bulk_submission_handlers):
            groups.setdefault(t.res_type, []).append(e)
    handled: set[int] = set()
    for res_type, group in groups.items():
        if len(group) < 2:
            continue
        try:
            async with write_transaction(engine) as conn:
                ctx = Context(conn, opts.base_url, opts.access, pending_index=[], guard=opts.guard)
                allowed = []
                for e in group:
                    try:
                        ctx.require(res_type, "c")
                        conform(ctx, e.resource)
                        ctx.check_write(res_type, None, e.resource)
                        allowed.append(e)
                    except FHIRError as err:
                        e.error = err
                answers = await bulk_submission_handlers[res_type](ctx, [(e.resource, None) for e in allowed])
                for e, answer in zip(allowed, answers):
                    if isinstance(answer, FHIRError):
                        e.error = answer
                    else:
                        e.result = answer
                await ctx.flush()
                await ctx.check_written(ctx.written)
                if opts.audit is not None:
                    await opts.audit.entries(conn, [e for e in group if e.result is not None])
        except (FHIRError, DBAPIError) as err:
            if isinstance(err, DBAPIError) and fault_kind(err) != CONTENTION:
                raise
            log.info("%d %s entries of a batch could not be written together (%s): one by one", len(group), res_type,
                     err.issues[0].diagnostics if isinstance(err, FHIRError) and err.issues else type(err).__name__)
            for e in group:
                e.result = e.error = None
            continue
        handled.update(id(e) for e in group)
    return handled

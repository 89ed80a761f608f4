"""The versioned store: every write is a new version; reads send the stored bytes.

The server owns ``id``, ``meta.versionId`` and ``meta.lastUpdated``; whatever the client sent
there is replaced.  The current version lives in ``resource`` (one primary-key lookup for a
read) and every version, deletions included, in ``resource_version``.  Index rows are
rewritten in the same transaction as the version they describe.
"""
from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import and_, bindparam, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.outcome import FHIRError
from ehr.search.access import AccessFilter
from ehr.search.indexer import index_resource, index_resources, unindex_resource
from ehr.store.clock import now_us, to_instant
from ehr.store.schema import resource, resource_version


@dataclass(frozen=True)
class Stored:
    rid: int
    res_type: str
    res_id: str
    version_id: int
    last_updated: int  # epoch µs
    deleted: bool
    content: bytes | None

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'

    def resource(self) -> dict:
        return orjson.loads(self.content) if self.content else {}


_CURRENT_COLS = (
    resource.c.rid,
    resource.c.res_type,
    resource.c.res_id,
    resource.c.version_id,
    resource.c.last_updated,
    resource.c.deleted,
    resource.c.content,
)
_current_stmt = select(*_CURRENT_COLS).where(
    and_(resource.c.res_type == bindparam("t"), resource.c.res_id == bindparam("i"))
)


def _visible(stmt, table, access: AccessFilter | None):
    clause = access.clause(table) if access is not None else None
    return stmt if clause is None else stmt.where(clause)


async def current(
    conn: AsyncConnection,
    res_type: str,
    res_id: str,
    *,
    for_update: bool = False,
    access: AccessFilter | None = None,
) -> Stored | None:
    stmt = _visible(_current_stmt, resource, access)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt, {"t": res_type, "i": res_id})).first()
    return Stored(*row) if row else None


async def version(
    conn: AsyncConnection, res_type: str, res_id: str, version_id: int, *, access: AccessFilter | None = None
) -> Stored | None:
    v = resource_version.c
    stmt = select(v.rid, v.res_type, v.res_id, v.version_id, v.last_updated, v.deleted, v.content).where(
        v.res_type == res_type, v.res_id == res_id, v.version_id == version_id
    )
    stmt = _visible(stmt, resource_version, access)
    row = (await conn.execute(stmt)).first()
    return Stored(*row) if row else None


def stamp(res: dict, res_id: str, version_id: int, last_updated: int) -> bytes:
    """Serialise with the server-owned fields, resourceType/id/meta first."""
    meta = dict(res.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = to_instant(last_updated)
    out = {"resourceType": res["resourceType"], "id": res_id, "meta": meta}
    for k, val in res.items():
        if k not in out:
            out[k] = val
    res.clear()
    res.update(out)
    return orjson.dumps(out)


async def write(
    conn: AsyncConnection,
    res_type: str,
    res_id: str,
    res: dict | None,
    *,
    method: str,
    prior: Stored | None,
    index_later: list | None = None,
) -> Stored:
    """Write the next version of ``res_type/res_id`` (``res`` None = delete).

    ``prior`` is the current row as the caller read it (``for_update`` on PostgreSQL); the
    update is conditional on its version so a concurrent writer can never be silently
    overwritten.  ``index_later`` collects (rid, resource, fresh) for one batched index write
    at the end of a Bundle (see ``flush_index``) instead of one per resource.
    """
    last_updated = now_us()
    if prior is not None and last_updated <= prior.last_updated:
        last_updated = prior.last_updated + 1  # versions of a resource stay strictly ordered
    version_id = (prior.version_id + 1) if prior else 1
    content = stamp(res, res_id, version_id, last_updated) if res is not None else None
    deleted = res is None
    row = {"version_id": version_id, "last_updated": last_updated, "deleted": deleted, "content": content}
    if prior is None:
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        stmt = (
            dialect_insert(resource)
            .values(res_type=res_type, res_id=res_id, **row)
            .on_conflict_do_nothing(index_elements=["res_type", "res_id"])
            .returning(resource.c.rid)
        )
        rid = (await conn.execute(stmt)).scalar()
        if rid is None:
            raise FHIRError.of(409, "conflict", f"{res_type}/{res_id} was created by a concurrent request; retry")
    else:
        rid = prior.rid
        result = await conn.execute(
            update(resource)
            .where(resource.c.rid == rid, resource.c.version_id == prior.version_id)
            .values(**row)
        )
        if result.rowcount != 1:
            raise FHIRError.of(
                412, "conflict", f"{res_type}/{res_id} was changed by a concurrent request (version conflict)"
            )
    await conn.execute(
        insert(resource_version).values(rid=rid, res_type=res_type, res_id=res_id, method=method, **row)
    )
    if res is None:
        await unindex_resource(conn, rid)
    elif index_later is not None:
        index_later.append((rid, res, prior is None))
    else:
        await index_resource(conn, rid, res, fresh=prior is None)
    return Stored(rid, res_type, res_id, version_id, last_updated, deleted, content)


async def current_many(
    conn: AsyncConnection, keys: list[tuple[str, str]], *, for_update: bool = False
) -> dict[tuple[str, str], Stored]:
    """The current rows of many (type, id) pairs in one query (a Bundle's targets)."""
    found: dict[tuple[str, str], Stored] = {}
    for part in _chunks(sorted(set(keys))):
        stmt = select(*_CURRENT_COLS).where(tuple_(resource.c.res_type, resource.c.res_id).in_(part))
        if for_update:  # rows locked in (type, id) order, as rows are emitted: see lock_in_order
            stmt = stmt.order_by(resource.c.res_type, resource.c.res_id).with_for_update()
        found.update({(row.res_type, row.res_id): Stored(*row) for row in await conn.execute(stmt)})
    return found


async def lock_in_order(conn: AsyncConnection, keys: list[tuple[str, str]]) -> None:
    """Lock the current rows of ``keys`` in (type, id) order (PostgreSQL; SQLite serialises writers).

    Every writer that locks what it changes in this one order queues behind the others instead
    of deadlocking with a writer that named the same resources in another order."""
    if conn.dialect.name != "postgresql" or len(keys) < 2:
        return  # one row: its own lock, taken by the write, cannot deadlock on another
    await current_many(conn, keys, for_update=True)


# Bound parameters per statement stay well under SQLite's and PostgreSQL's limits.
_CHUNK = 500


def _chunks(seq: list) -> list[list]:
    return [seq[i : i + _CHUNK] for i in range(0, len(seq), _CHUNK)]


@dataclass
class NewVersion:
    res_type: str
    res_id: str
    res: dict
    method: str
    prior: Stored | None


async def write_many(conn: AsyncConnection, items: list[NewVersion], *, index_later: list) -> list[Stored]:
    """``write`` for many resources at once: one INSERT for the new ones, one UPDATE per
    changed one, one INSERT for all versions, whatever the count.  Same guarantees as
    ``write``: a concurrent creation is a 409, a concurrent update a 412.
    """
    if not items:
        return []
    now = now_us()
    rows = []
    for item in items:
        prior = item.prior
        last_updated = max(now, prior.last_updated + 1) if prior is not None else now
        version_id = prior.version_id + 1 if prior is not None else 1
        content = stamp(item.res, item.res_id, version_id, last_updated)
        rows.append({"version_id": version_id, "last_updated": last_updated, "deleted": False, "content": content})
    fresh = [(item, row) for item, row in zip(items, rows) if item.prior is None]
    rids: dict[tuple[str, str], int] = {}
    if fresh:
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        # executemany + RETURNING: SQLAlchemy's "insertmanyvalues" batches it with a cached compile.
        stmt = (
            dialect_insert(resource)
            .on_conflict_do_nothing(index_elements=["res_type", "res_id"])
            .returning(resource.c.rid, resource.c.res_type, resource.c.res_id)
        )
        result = await conn.execute(stmt, [{"res_type": i.res_type, "res_id": i.res_id, **row} for i, row in fresh])
        rids.update({(t, i): rid for rid, t, i in result})
        if len(rids) != len(fresh):
            lost = next(f"{i.res_type}/{i.res_id}" for i, _ in fresh if (i.res_type, i.res_id) not in rids)
            raise FHIRError.of(409, "conflict", f"{lost} was created by a concurrent request; retry")
    changed = [(item, row) for item, row in zip(items, rows) if item.prior is not None]
    if changed:
        result = await conn.execute(
            update(resource)
            .where(resource.c.rid == bindparam("b_rid"), resource.c.version_id == bindparam("b_prior"))
            .values(version_id=bindparam("b_vid"), last_updated=bindparam("b_at"), deleted=False, content=bindparam("b_content")),
            [
                {"b_rid": i.prior.rid, "b_prior": i.prior.version_id, "b_vid": r["version_id"], "b_at": r["last_updated"], "b_content": r["content"]}
                for i, r in changed
            ],
        )
        if result.rowcount != len(changed):
            raise FHIRError.of(412, "conflict", "A resource of the Bundle was changed by a concurrent request (version conflict)")
        rids.update({(i.res_type, i.res_id): i.prior.rid for i, _ in changed})
    stored = []
    versions = []
    for item, row in zip(items, rows):
        rid = rids[(item.res_type, item.res_id)]
        versions.append({"rid": rid, "res_type": item.res_type, "res_id": item.res_id, "method": item.method, **row})
        index_later.append((rid, item.res, item.prior is None))
        stored.append(Stored(rid, item.res_type, item.res_id, row["version_id"], row["last_updated"], False, row["content"]))
    await conn.execute(insert(resource_version), versions)
    return stored


async def flush_index(conn: AsyncConnection, pending: list) -> None:
    """Write the index rows collected by ``write(..., index_later=pending)``, batched."""
    if not pending:
        return
    latest: dict[int, tuple[dict, bool]] = {}
    for rid, res, fresh in pending:  # a resource written twice in one Bundle: its last version counts
        was_fresh = latest[rid][1] if rid in latest else fresh
        latest[rid] = (res, was_fresh)
    pending.clear()
    for fresh in (True, False):
        items = [(rid, res) for rid, (res, f) in latest.items() if f is fresh]
        if items:
            await index_resources(conn, items, fresh=fresh)

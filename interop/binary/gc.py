"""Garbage collection of objects no Binary version refers to.

Writes store the object first and commit the row after, so a crash (or a refused write whose
clean-up failed) can leave an object behind.  Objects younger than ``min_age`` are never
touched: their row may be about to commit; nor are objects newer than the backup last restored
(``interop.storage.backup``: the restored database does not know them, they are not garbage).
Candidates are listed before the rows are read, so a row committed meanwhile is seen.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import anyio.to_thread
import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ehr.store.db import read_connection
from ehr.store.schema import resource_version
from interop.binary.pointer import object_of
from interop.storage import ObjectStore, StoredObject
from interop.storage.backup import restore_point

PREFIX = "Binary/"
_BATCH = 1000


@dataclass
class Collection:
    deleted: list[str]
    kept_referenced: int
    kept_recent: int


async def referenced_keys(engine: AsyncEngine) -> set[str]:
    """The object keys every version of every Binary points to (old versions keep theirs)."""
    v = resource_version.c
    keys: set[str] = set()
    last = 0
    async with read_connection(engine) as conn:
        while True:
            rows = (await conn.execute(
                select(v.seq, v.content).where(v.res_type == "Binary", v.seq > last, v.content.is_not(None))
                .order_by(v.seq).limit(_BATCH)
            )).all()
            for seq, content in rows:
                last = seq
                if b"_data" in content and (ref := object_of(orjson.loads(content))) is not None:
                    keys.add(ref.key)
            if len(rows) < _BATCH:
                return keys


async def collect(engine: AsyncEngine, store: ObjectStore, *, min_age: timedelta = timedelta(hours=1),
                  dry_run: bool = False, now: datetime | None = None) -> Collection:
    cutoff = (now or datetime.now(timezone.utc)) - min_age
    restored_from = await anyio.to_thread.run_sync(restore_point, store)
    if restored_from is not None:  # documents newer than the restored database are kept, always
        cutoff = min(cutoff, restored_from)
    listed: list[StoredObject] = await anyio.to_thread.run_sync(lambda: list(store.list(PREFIX)))
    old = [o for o in listed if o.modified <= cutoff]
    referenced = await referenced_keys(engine)
    orphans = [o.key for o in old if o.key not in referenced]
    if not dry_run:
        for key in orphans:
            await anyio.to_thread.run_sync(store.delete, key)
    return Collection(orphans, kept_referenced=len(old) - len(orphans), kept_recent=len(listed) - len(old))

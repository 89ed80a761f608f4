"""The export itself: each type's visible rows, in rid order, streamed as NDJSON to the store.

Rows are read with the caller's access filter, the same condition every search of theirs
carries: an insurer's export holds its fund's data only.  Pages are short transactions, so a
long export holds no connection or snapshot for its whole duration.  The patients of each page
are gathered as it is read (one compartment query per page) and kept beside the file, so its
download is audited for every patient it holds.
"""
from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ehr.security.request import RequestSecurity
from ehr.security.trail import patient_refs
from ehr.store.db import read_connection
from ehr.store.schema import idx_compartment, resource
from interop.bulk.jobs import ExportJob, cancelled, purge, save
from interop.storage import ObjectStore
from interop.storage import aio

log = logging.getLogger("sijill")
PAGE = 500
# Files never reach this limit in practice; it is the object store's guard, not a policy.
MAX_FILE_BYTES = 1 << 40

_running: set[asyncio.Task] = set()  # strong references: a task nobody holds may be collected


class Cancelled(Exception):
    pass


def start(engine: AsyncEngine, store: ObjectStore, security: RequestSecurity, job: ExportJob) -> None:
    task = asyncio.get_running_loop().create_task(run(engine, store, security, job))
    _running.add(task)
    task.add_done_callback(_running.discard)


async def run(engine: AsyncEngine, store: ObjectStore, security: RequestSecurity, job: ExportJob) -> None:
    try:
        for res_type in job.types:
            if await cancelled(store, job.id):
                raise Cancelled()
            counter, patients = [0], set()
            lines = _ndjson(engine, store, security, job, res_type, counter, patients)
            await aio.put_chunks(store, job.file_key(res_type), lines, "application/fhir+ndjson", MAX_FILE_BYTES)
            if counter[0]:
                await aio.put_bytes(store, job.patients_key(res_type), "\n".join(sorted(patients)).encode(), "text/plain")
                job.output.append({"type": res_type, "key": job.file_key(res_type), "count": counter[0]})
            else:  # an empty type gets no file (the manifest lists only what has data)
                await aio.delete(store, job.file_key(res_type))
            job.done_types += 1
            await save(store, job)
        if await cancelled(store, job.id):
            raise Cancelled()
        job.state = "complete"
        await save(store, job)
        if await cancelled(store, job.id):  # a DELETE that came in while the status was written
            raise Cancelled()
    except Cancelled:
        await purge(store, job, keep_marker=True)
    except Exception as exc:  # noqa: BLE001 - the client learns it from the status URL
        if await cancelled(store, job.id):  # the DELETE's purge removed a file being written
            await purge(store, job, keep_marker=True)
            return
        log.exception("bulk export %s failed", job.id)
        job.state, job.error = "failed", type(exc).__name__
        await save(store, job)


async def _ndjson(engine, store, security: RequestSecurity, job: ExportJob, res_type: str, counter: list[int],
                  patients: set[str]) -> AsyncIterator[bytes]:
    access = security.for_request(res_type).access
    r = resource.c
    cond = [r.res_type == res_type, r.deleted == False]  # noqa: E712
    if job.since is not None:
        cond.append(r.last_updated >= job.since)
    if job.patient_level and res_type != "Patient":
        c = idx_compartment.c
        cond.append(exists().where(c.rid == r.rid, c.comp_type == "Patient"))
    if access is not None and (clause := access.clause(resource)) is not None:
        cond.append(clause)
    last = 0
    while True:
        async with read_connection(engine) as conn:
            rows = (await conn.execute(
                select(r.rid, r.content).where(and_(*cond, r.rid > last)).order_by(r.rid).limit(PAGE)
            )).all()
            patients.update(await patient_refs(conn, [rid for rid, _ in rows]))
        if rows:
            last = rows[-1][0]
            counter[0] += len(rows)
            yield b"".join(content + b"\n" for _, content in rows)
        if len(rows) < PAGE:
            return
        if await cancelled(store, job.id):
            raise Cancelled()
        await save(store, job)  # heartbeat

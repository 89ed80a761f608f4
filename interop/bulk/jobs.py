"""Export jobs, kept as small JSON objects in the object store beside their files.

The store is shared by every server process (S3, or one directory), so a status poll or a
DELETE may reach any of them.  ``export/<job>/status.json`` is written only by the process
running the export; a DELETE writes ``export/<job>/cancelled`` (never overwritten), which the
exporter checks between pages and every reader honours.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field

import anyio.to_thread
import orjson

from interop.storage import ObjectMissing, ObjectStore
from interop.storage import aio

# A running export refreshes its status at least this often; older means its process died.
STALE_SECONDS = 300.0


@dataclass
class ExportJob:
    id: str
    subject: str  # who asked: only they may poll, download or cancel
    client_id: str | None
    request: str  # the kick-off URL
    transaction_time: str
    types: list[str]
    since: int | None = None  # epoch µs
    patient_level: bool = False
    state: str = "in-progress"  # complete | failed
    done_types: int = 0
    output: list[dict] = field(default_factory=list)  # {"type", "key", "count"}
    error: str | None = None
    heartbeat: float = field(default_factory=time.time)

    @classmethod
    def new(cls, **kw) -> "ExportJob":
        return cls(id=uuid.uuid4().hex, **kw)

    @property
    def prefix(self) -> str:
        return f"export/{self.id}/"

    def file_key(self, res_type: str) -> str:
        return f"{self.prefix}{res_type}.ndjson"

    def patients_key(self, res_type: str) -> str:
        """Beside each file, the patients it holds: downloading it is audited for each of them."""
        return f"{self.prefix}{res_type}.patients"

    def stale(self) -> bool:
        return self.state == "in-progress" and time.time() - self.heartbeat > STALE_SECONDS


def _status_key(job_id: str) -> str:
    return f"export/{job_id}/status.json"


def _cancel_key(job_id: str) -> str:
    return f"export/{job_id}/cancelled"


async def save(store: ObjectStore, job: ExportJob) -> None:
    job.heartbeat = time.time()
    await aio.put_bytes(store, _status_key(job.id), orjson.dumps(asdict(job)), "application/json")


async def load(store: ObjectStore, job_id: str) -> ExportJob | None:
    """The job, or None if unknown or cancelled."""
    if not job_id.isalnum() or await cancelled(store, job_id):
        return None
    try:
        raw = await aio.read_all(store, _status_key(job_id))
    except ObjectMissing:
        return None
    return ExportJob(**orjson.loads(raw))


async def cancelled(store: ObjectStore, job_id: str) -> bool:
    return await anyio.to_thread.run_sync(store.exists, _cancel_key(job_id))


async def cancel(store: ObjectStore, job: ExportJob) -> None:
    """Mark first (the exporter stops at its next check), then delete what is there."""
    await aio.put_bytes(store, _cancel_key(job.id), b"", "text/plain")
    await purge(store, job, keep_marker=True)


async def purge(store: ObjectStore, job: ExportJob, *, keep_marker: bool) -> None:
    listed = await anyio.to_thread.run_sync(lambda: [o.key for o in store.list(job.prefix)])
    for key in listed:
        if not (keep_marker and key == _cancel_key(job.id)):
            await aio.delete(store, key)

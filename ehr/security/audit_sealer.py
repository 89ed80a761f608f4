"""Sealing the audit inbox into the hash chain, on demand and in the background.

``seal_pending(engine)`` chains what the inbox holds when it is called, one short transaction
(one chain-head lock) per batch.  Who calls it:

* every server process, every ``SIJILL_AUDIT_SEAL_INTERVAL_SECONDS`` (``AuditSealer``, started
  and stopped by the app's lifespan; a last pass runs at shutdown);
* ``sijill worker``'s loop;
* whatever looks at the chain and must see every event: AuditEvent searches, ``sijill audit
  seal|verify`` (and ``purge``, which seals in its own transaction).

Any number of them may run at once, in several processes or hosts: they take turns on the
chain-head lock, and each event is chained exactly once (see ``audit_log.seal``).
"""
from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from ehr.security.audit_inbox import last_id
from ehr.security.audit_log import SEAL_BATCH, seal
from ehr.store.db import read_connection, write_transaction

log = logging.getLogger("sijill.audit")


async def seal_pending(engine: AsyncEngine, batch: int = SEAL_BATCH) -> int:
    """Chain every event committed to the inbox before the call; returns how many this call
    sealed (events another sealer took meanwhile are not counted).  Events arriving during the
    call wait for the next one, so a flood of new events cannot keep it running."""
    async with read_connection(engine) as conn:
        upto = await last_id(conn)  # a cheap look first: an empty inbox costs no lock
    if upto is None:
        return 0
    total = 0
    while True:
        async with write_transaction(engine) as conn:
            sealed = await seal(conn, batch, upto)
        total += sealed
        if sealed < batch:
            return total


class AuditSealer:
    """The background sealer of one server process."""

    def __init__(self, engine: AsyncEngine, interval_seconds: float):
        self.engine = engine
        self.interval = interval_seconds
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> AuditSealer:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-sealer")
        return self

    async def stop(self) -> None:
        """Let the current pass finish (never cancelled mid-transaction), run a last one, stop."""
        if self._task is None:
            return
        self._stop.set()
        await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                await seal_pending(self.engine)
            except Exception:  # noqa: BLE001 - the events stay in the inbox; the next pass retries
                log.exception("sealing the audit inbox failed")
            if stopping:
                return
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval)
            except TimeoutError:
                pass

"""The audit inbox (table ``audit_inbox``): where every request records its AuditEvents.

``append`` is a plain INSERT in the caller's transaction, so an event commits or rolls back with
the change it records, and it locks no shared row: concurrent requests do not wait for each
other's commit.  The events are not chained yet; ``audit_log.seal`` moves them, in id order,
to the end of the hash chain and deletes them from here in the same transaction.  The inbox is
append-only too: its triggers refuse UPDATE, TRUNCATE, and DELETE outside a sealing transaction.
"""
from __future__ import annotations

from typing import Sequence

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.security import audit_events
from ehr.security.tables import audit_inbox
from ehr.store.clock import parse_instant_bounds


def canonical(event: dict) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def recorded_us(event: dict) -> int:
    return parse_instant_bounds(event["recorded"])[0]


async def append(conn: AsyncConnection, events: Sequence[dict]) -> None:
    """Record ``events`` in the caller's transaction (the sealer chains them later, in order)."""
    if not events:
        return
    rows = [
        {
            "recorded": recorded_us(event),
            "patient_ref": audit_events.event_patient(event),
            "event": canonical({k: v for k, v in event.items() if k != "id"}),  # the chain assigns ids
        }
        for event in events
    ]
    await conn.execute(audit_inbox.insert(), rows)


async def last_id(conn: AsyncConnection) -> int | None:
    """The newest event waiting to be sealed (None: the inbox is empty)."""
    return (await conn.execute(select(func.max(audit_inbox.c.id)))).scalar()


async def pending_count(conn: AsyncConnection) -> int:
    return (await conn.execute(select(func.count()).select_from(audit_inbox))).scalar_one()

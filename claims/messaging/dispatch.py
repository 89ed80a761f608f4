"""Delivering the notifications that are due (run by ``sijill worker`` between rounds).

Rows of ``message_outbox`` are taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (held by
pushing ``next_attempt_at`` ahead, as ``claims.notify`` does), so several workers never send
the same one.  Each is routed by the patient's preferences and sent with a few quick retries
(tenacity); a transient failure that outlasts them is retried durably in later rounds, spaced
by the notify backoff, up to ``messaging_max_rounds``.  Then, in one transaction: the outbox
row is settled, the Communication gets its new version (``completed`` with ``sent``, or
``not-done`` with ``statusReason``) and an AuditEvent records channel, patient and template.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from claims.caresheet import today
from claims.clock import now_us, to_instant
from claims.messaging.adapters import Refused, Transient, send
from claims.messaging.notices import STATUS_REASON
from claims.messaging.preferences import Route, route
from claims.notify import backoff_us
from claims.settings import ClaimsSettings
from claims.tables import message_outbox
from ehr.interactions.context import Context, store
from ehr.security.audit import append, audit_event
from ehr.store import repository
from ehr.store.db import write_transaction

log = logging.getLogger("sijill.claims.messaging")
TEMPLATE = "https://fhir.sijill.ma/CodeSystem/notification"
NOT_DONE_TEXT = {"opted-out": "Le patient ne souhaite pas être notifié par ce canal",
                 "no-contact": "Aucun numéro mobile ni adresse électronique",
                 "delivery-failed": "Échec d'envoi après plusieurs tentatives"}


@dataclass(frozen=True)
class _Due:
    id: int
    patient_id: str | None
    event: str
    communication_id: str
    attempts: int
    reply_to: str | None
    language: str | None


async def _lease(engine: AsyncEngine, now: int, limit: int, hold_us: int) -> list[_Due]:
    o = message_outbox.c
    due = (select(o.id).where(o.status == "pending", o.next_attempt_at <= now).order_by(o.next_attempt_at, o.id)
           .limit(limit).with_for_update(skip_locked=True).scalar_subquery())
    async with write_transaction(engine) as conn:
        rows = (await conn.execute(
            update(message_outbox).where(o.id.in_(due)).values(next_attempt_at=now + hold_us)
            .returning(o.id, o.patient_id, o.event, o.communication_id, o.attempts, o.reply_to, o.language)
        )).all()
    return sorted((_Due(*r) for r in rows), key=lambda d: d.id)


async def _try(http: httpx.AsyncClient, settings: ClaimsSettings, way: Route, text: str) -> None:
    async for attempt in AsyncRetrying(stop=stop_after_attempt(settings.messaging_quick_retries),
                                       wait=wait_exponential(multiplier=0.2, max=2),
                                       retry=retry_if_exception_type(Transient), reraise=True):
        with attempt:
            await send(http, settings, way, text)


async def deliver_messages(engine: AsyncEngine, settings: ClaimsSettings, http: httpx.AsyncClient, *,
                           base_url: str, limit: int = 50) -> int:
    """Send the notifications that are due; returns how many were settled (sent or not-done)."""
    items = await _lease(engine, now_us(), limit, int(settings.notify_timeout_seconds * 4 * 1_000_000))
    settled = 0
    for item in items:
        async with engine.connect() as conn:
            patient = await repository.current(conn, "Patient", item.patient_id) if item.patient_id else None
            comm = await repository.current(conn, "Communication", item.communication_id)
        if comm is None:
            continue
        way: Route | str
        if item.reply_to:  # an answer to an inbound SMS: to the number that asked
            way = Route("sms", item.reply_to, item.language or settings.messaging_language)
        else:
            way = route(patient.resource() if patient and not patient.deleted else {}, item.event, today(settings.timezone),
                        settings.messaging_language)
        error, reason = None, None
        if isinstance(way, str):
            reason = way
        else:
            text = comm.resource()["payload"][0 if way.language == "fr" else 1]["contentString"]
            try:
                await _try(http, settings, way, text)
            except Refused as exc:
                error, reason = str(exc), "delivery-failed"
            except Transient as exc:
                error = str(exc)
                if item.attempts + 1 >= settings.messaging_max_rounds:
                    reason = "delivery-failed"
        settled += await _settle(engine, settings, item, way, error, reason, base_url)
    return settled


async def _settle(engine: AsyncEngine, settings: ClaimsSettings, item: _Due, way: Route | str, error: str | None,
                  reason: str | None, base_url: str) -> int:
    now = now_us()
    o = message_outbox.c
    attempts = item.attempts + 1
    async with write_transaction(engine) as conn:
        if error is not None and reason is None:  # try again in a later round
            await conn.execute(update(message_outbox).where(o.id == item.id).values(
                attempts=attempts, last_error=error[:2000], next_attempt_at=now + backoff_us(attempts, settings)))
            log.warning("notification %s not sent (round %d): %s", item.id, attempts, error)
            return 0
        await conn.execute(update(message_outbox).where(o.id == item.id).values(
            status="not-done" if reason else "sent", attempts=attempts, last_error=(error or reason or None),
            sent_at=None if reason else now))
        prior = await repository.current(conn, "Communication", item.communication_id, for_update=True)
        res = prior.resource()
        if reason:
            res["status"] = "not-done"
            res["statusReason"] = {"coding": [{"system": STATUS_REASON, "code": reason}], "text": NOT_DONE_TEXT[reason]}
        else:
            res["status"] = "completed"
            res["sent"] = to_instant(now)
            res["medium"] = [{"text": way.channel}]
        await store(Context(conn, base_url), "Communication", item.communication_id, res, method="PUT", prior=prior)
        await append(conn, [_audit(item, way, reason, now)])
    return 1


def _audit(item: _Due, way: Route | str, reason: str | None, now: int) -> dict:
    """What was sent, to whom, on which channel, with which template (never the text)."""
    event = audit_event("operation", None, patient=f"Patient/{item.patient_id}" if item.patient_id else None, operation="$notify",
                        what=f"Communication/{item.communication_id}", recorded_us=now,
                        status=200 if reason is None else 422, description=reason)
    channel = way.channel if isinstance(way, Route) else "none"
    detail = [{"type": "channel", "valueString": channel}, {"type": "template", "valueString": item.event}]
    if isinstance(way, Route) and way.guardian:
        detail.append({"type": "recipient", "valueString": "guardian"})
    event["entity"][-1]["detail"] = detail
    return event

"""Decision notifications: FHIR rest-hook Subscriptions fed by a transactional outbox.

A provider subscribes with ``criteria = "ClaimResponse?requestor=Practitioner/123"`` (or
``requestor:identifier=https://fhir.sijill.ma/sid/inpe|<INPE>``, ``insurer=``, ``patient=``,
``outcome=``, ``use=``).  Each decision writes one outbox row per matching subscription in the
decision's own transaction, so a notification exists if and only if the decision does.  The
worker then POSTs them (the ClaimResponse as payload, or an empty body when the subscription
asked for none), a few quick in-process retries with exponential backoff (tenacity), then
durable retries spaced by the same exponential policy through ``next_attempt_at``; after
``notify_max_attempts`` the row is ``failed`` and the Subscription is put in ``error``.
``Subscription/{id}/$status`` shows where deliveries stand.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl

import httpx
import orjson
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential

from claims.caresheet import any_reference
from claims.clock import now_us, to_instant
from claims.settings import ClaimsSettings
from claims.tables import claim_outbox
from ehr.hooks import validator
from ehr.interactions.context import Context
from ehr.outcome import FHIRError
from ehr.store.db import write_transaction
from ehr.store.schema import resource

log = logging.getLogger("sijill.claims.notify")

_PARAMS = {"requestor", "requestor:identifier", "insurer", "patient", "outcome", "use"}
_REF_TYPES = ("Practitioner", "PractitionerRole", "Organization", "Patient")


def _criteria(text: str) -> list[tuple[str, str]]:
    res_type, _, query = text.partition("?")
    if res_type != "ClaimResponse":
        raise ValueError("criteria must start with ClaimResponse")
    pairs = parse_qsl(query, keep_blank_values=True)
    unknown = [k for k, _ in pairs if k not in _PARAMS]
    if unknown:
        raise ValueError(f"unsupported parameters {unknown}; use {sorted(_PARAMS)}")
    return pairs


def _matches_one(response: dict, name: str, value: str) -> bool:
    if name in ("requestor", "insurer", "patient"):
        return any_reference(response.get(name), _REF_TYPES) == any_reference({"reference": value}, _REF_TYPES)
    if name == "requestor:identifier":
        system, _, code = value.rpartition("|")
        ident = (response.get("requestor") or {}).get("identifier") or {}
        return ident.get("value") == code and (not system or ident.get("system") == system)
    return str(response.get(name)) == value


@dataclass(frozen=True)
class Subscription:
    id: str
    criteria: tuple[tuple[str, str], ...]
    endpoint: str
    headers: tuple[str, ...]
    payload: str | None  # content type of the payload; None: empty notification

    def matches(self, response: dict) -> bool:
        return all(_matches_one(response, k, v) for k, v in self.criteria)


def _from_resource(res: dict) -> Subscription | None:
    channel = res.get("channel") or {}
    if res.get("status") not in ("active", "requested") or channel.get("type") != "rest-hook":
        return None
    criteria = res.get("criteria") or ""
    if not criteria.startswith("ClaimResponse"):
        return None
    try:
        pairs = _criteria(criteria)
    except ValueError:
        return None
    return Subscription(res["id"], tuple(pairs), channel.get("endpoint") or "", tuple(channel.get("header") or ()),
                        channel.get("payload"))


class Subscriptions:
    """The active ClaimResponse subscriptions, reloaded only when a Subscription changed."""

    def __init__(self) -> None:
        self._stamp: tuple | None = None
        self._subs: list[Subscription] = []

    async def refresh(self, conn: AsyncConnection) -> None:
        c = resource.c
        stamp = tuple(
            (await conn.execute(
                select(func.count(), func.max(c.last_updated)).where(c.res_type == "Subscription")
            )).one()
        )
        if stamp == self._stamp:
            return
        rows = await conn.execute(select(c.content).where(c.res_type == "Subscription", c.deleted.is_(False)))
        self._subs = [s for (content,) in rows if content and (s := _from_resource(orjson.loads(content)))]
        self._stamp = stamp

    @property
    def active(self) -> bool:
        return bool(self._subs)

    async def enqueue(self, conn: AsyncConnection, response: dict, now: int) -> int:
        return await self.enqueue_many(conn, [response], now)

    async def enqueue_many(self, conn: AsyncConnection, responses: list[dict], now: int) -> int:
        """One outbox row per (decision, matching subscription), in one statement."""
        rows = [
            dict(subscription_id=s.id, endpoint=s.endpoint, headers=orjson.dumps(list(s.headers)),
                 content_type=s.payload, focus=f"ClaimResponse/{response['id']}", status="pending", attempts=0,
                 next_attempt_at=now, created_at=now)
            for response in responses for s in self._subs if s.matches(response)
        ]
        if rows:
            await conn.execute(claim_outbox.insert(), rows)
        return len(rows)


@validator
async def check_claim_subscription(ctx: Context, res: dict) -> None:
    """A ClaimResponse rest-hook subscription must use criteria we can evaluate; we accept it."""
    if res.get("resourceType") != "Subscription" or not str(res.get("criteria", "")).startswith("ClaimResponse"):
        return
    channel = res.get("channel") or {}
    if channel.get("type") != "rest-hook":
        return
    try:
        _criteria(res["criteria"])
    except ValueError as exc:
        raise FHIRError.of(422, "not-supported", f"Subscription.criteria: {exc}", "Subscription.criteria") from None
    endpoint = channel.get("endpoint") or ""
    if not endpoint.startswith(("https://", "http://")):
        raise FHIRError.of(422, "required", "A rest-hook needs an http(s) endpoint", "Subscription.channel.endpoint")
    if res.get("status") == "requested":
        res["status"] = "active"  # the server accepts the subscription (R4 workflow)


# --- delivery ------------------------------------------------------------------------------


class _Retryable(Exception):
    pass


def backoff_us(attempt: int, settings: ClaimsSettings) -> int:
    """The durable retry delay after ``attempt`` failures: tenacity's exponential policy."""
    policy = wait_exponential(multiplier=settings.notify_backoff_seconds, max=settings.notify_backoff_max_seconds)
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return int(policy(state) * 1_000_000)


@dataclass(frozen=True)
class _Due:
    id: int
    subscription_id: str
    endpoint: str
    headers: list[str]
    content_type: str | None
    focus: str
    attempts: int


async def _lease_due(engine: AsyncEngine, now: int, limit: int, hold_us: int) -> list[_Due]:
    o = claim_outbox.c
    due = (
        select(o.id).where(o.status == "pending", o.next_attempt_at <= now).order_by(o.next_attempt_at, o.id)
        .limit(limit).with_for_update(skip_locked=True).scalar_subquery()
    )
    async with write_transaction(engine) as conn:
        rows = (await conn.execute(
            update(claim_outbox).where(o.id.in_(due)).values(next_attempt_at=now + hold_us)
            .returning(o.id, o.subscription_id, o.endpoint, o.headers, o.content_type, o.focus, o.attempts)
        )).all()
    return [_Due(r[0], r[1], r[2], orjson.loads(r[3] or b"[]"), r[4], r[5], r[6]) for r in rows]


async def _payloads(engine: AsyncEngine, items: list[_Due]) -> dict[str, bytes]:
    ids = sorted({d.focus.split("/", 1)[1] for d in items if d.content_type})
    if not ids:
        return {}
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(resource.c.res_id, resource.c.content).where(resource.c.res_type == "ClaimResponse", resource.c.res_id.in_(ids))
        )
        return {f"ClaimResponse/{i}": c for i, c in rows}


async def _post(http: httpx.AsyncClient, item: _Due, body: bytes | None, settings: ClaimsSettings) -> None:
    headers = {}
    for h in item.headers:
        name, _, value = h.partition(":")
        if name.strip():
            headers[name.strip()] = value.strip()
    if body is not None:
        headers["Content-Type"] = item.content_type
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.2, max=2),
        retry=retry_if_exception_type((_Retryable, httpx.TransportError)), reraise=True,
    ):
        with attempt:
            resp = await http.post(item.endpoint, content=body or b"", headers=headers, timeout=settings.notify_timeout_seconds)
            if resp.status_code >= 500 or resp.status_code == 429:
                raise _Retryable(f"HTTP {resp.status_code}")
            if resp.status_code >= 300:
                raise httpx.HTTPStatusError(f"HTTP {resp.status_code}", request=resp.request, response=resp)


async def deliver_due(engine: AsyncEngine, settings: ClaimsSettings, http: httpx.AsyncClient, limit: int = 50) -> int:
    """Send the notifications that are due; returns how many were delivered."""
    now = now_us()
    items = await _lease_due(engine, now, limit, int(settings.notify_timeout_seconds * 4 * 1_000_000))
    if not items:
        return 0
    payloads = await _payloads(engine, items)
    delivered = 0
    for item in items:
        body = payloads.get(item.focus) if item.content_type else None
        error = None
        try:
            await _post(http, item, body, settings)
        except (httpx.HTTPError, _Retryable) as exc:
            error = str(exc) or type(exc).__name__
        delivered += await _settle(engine, item, error, settings)
    return delivered


async def _settle(engine: AsyncEngine, item: _Due, error: str | None, settings: ClaimsSettings) -> int:
    now = now_us()
    attempts = item.attempts + 1
    o = claim_outbox.c
    async with write_transaction(engine) as conn:
        if error is None:
            await conn.execute(update(claim_outbox).where(o.id == item.id).values(
                status="delivered", attempts=attempts, delivered_at=now, last_error=None))
            return 1
        if attempts >= settings.notify_max_attempts:
            await conn.execute(update(claim_outbox).where(o.id == item.id).values(
                status="failed", attempts=attempts, last_error=error[:2000]))
            await _subscription_error(conn, item.subscription_id, error)
        else:
            await conn.execute(update(claim_outbox).where(o.id == item.id).values(
                attempts=attempts, last_error=error[:2000], next_attempt_at=now + backoff_us(attempts, settings)))
    log.warning("notification %s to %s failed (attempt %d): %s", item.id, item.endpoint, attempts, error)
    return 0


async def _subscription_error(conn: AsyncConnection, subscription_id: str, error: str) -> None:
    """Gave up on a notification: the Subscription says so (R4: status=error, error text)."""
    from ehr.settings import get_settings
    from ehr.store import repository
    from ehr.interactions.context import store

    prior = await repository.current(conn, "Subscription", subscription_id, for_update=True)
    if prior is None or prior.deleted:
        return
    res = prior.resource()
    if res.get("status") == "error":
        return
    res["status"] = "error"
    res["error"] = f"Notification abandonnée après plusieurs tentatives : {error}"[:1000]
    await store(Context(conn, get_settings().base_url), "Subscription", subscription_id, res, method="PUT", prior=prior)


async def subscription_status(conn: AsyncConnection, subscription: dict) -> dict:
    """An R4B SubscriptionStatus for ``Subscription/{id}/$status``, counted from the outbox."""
    o = claim_outbox.c
    counts = dict((await conn.execute(
        select(o.status, func.count()).where(o.subscription_id == subscription["id"]).group_by(o.status)
    )).all())
    last = (await conn.execute(
        select(o.last_error, o.next_attempt_at).where(o.subscription_id == subscription["id"], o.last_error.is_not(None))
        .order_by(o.id.desc()).limit(1)
    )).first()
    status = {
        "resourceType": "SubscriptionStatus",
        "status": subscription.get("status", "active") if subscription.get("status") in ("requested", "active", "error", "off") else "active",
        "type": "query-status",
        "eventsSinceSubscriptionStart": str(sum(counts.values())),
        "subscription": {"reference": f"Subscription/{subscription['id']}"},
        "topic": "https://fhir.sijill.ma/SubscriptionTopic/claim-decision",
        "extension": [
            {"url": "https://fhir.sijill.ma/StructureDefinition/notification-count", "extension": [
                {"url": s, "valueInteger": int(counts.get(s, 0))} for s in ("pending", "delivered", "failed")
            ]},
        ],
    }
    if last is not None:
        status["error"] = [{"text": f"{last[0]} (prochaine tentative : {to_instant(last[1])})"}]
    return status

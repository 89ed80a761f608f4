"""``POST /sms/inbound``: a patient texts a care sheet's status code from a basic phone.

The SMS gateway forwards each message texted to our number, as common gateways do, with the
JSON body ``{"from": "+212612345678", "text": "K7QM 4RZ9", "id": "<the gateway's message id>"}``
and ``Authorization: Bearer $SIJILL_CLAIMS_SMS_INBOUND_SECRET``.  The gateway is the one caller
this endpoint admits: the secret is compared in constant time; without a configured secret the
endpoint does not exist (404, fail-closed); 401 for a missing or wrong one; 400
(OperationOutcome) for a body without its fields.  A message posted again (same ``id``: the
gateway retries until it gets a 2xx) is answered 200 and queues nothing more.  A phone that
texts more than ``claims_sms_inbound_rate`` messages gets no further answer until its window
frees (200 ``throttled``; still audited): answers cost an SMS each, and trying codes stays slow.

The answer is queued in the outbox, in this transaction, and sent by the worker to the number
that texted: the sheet's stage (``status-<stage>``, no amount, no name, nothing clinical) in the
patient's language when the text is a sheet's code and the sender is a number on record for the
patient or a guardian; otherwise the one generic answer (``status-unknown``, in the default
language) — the same for an unknown code, a mistyped one and a stranger's phone: it confirms
nothing.  Each message is audited (``$sms-inbound``: in the patient's trail when the sender is
theirs; the phone number is kept in neither the audit nor the log).
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from limits import parse
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from claims.clock import now_us
from claims.messaging.catalogue import STAGE_EVENTS, UNKNOWN_EVENT
from claims.messaging.notices import notify
from claims.messaging.preferences import is_guardian, language
from claims.messaging.status_code import limiter, normalise, sheet_with, shown
from claims.tables import sms_inbound
from ehr.outcome import FHIRError
from ehr.security.audit import append, audit_event
from ehr.store import repository
from ehr.store.db import write_transaction

router = APIRouter()


@dataclass(frozen=True)
class Inbound:
    id: str
    sender: str
    text: str


def _authenticate(request: Request) -> None:
    secret = request.app.state.settings.claims_sms_inbound_secret
    if secret is None:
        raise FHIRError.of(404, "not-found", "Inbound SMS are off on this server (set SIJILL_CLAIMS_SMS_INBOUND_SECRET)")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
        raise FHIRError.of(401, "login", "The SMS gateway's secret is missing or wrong",
                           headers={"WWW-Authenticate": 'Bearer realm="sms-inbound"'})


async def _message(request: Request) -> Inbound:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise FHIRError.of(400, "structure", "An inbound SMS is a JSON object {\"from\", \"text\", \"id\"}")
    limits = {"id": 64, "from": 32, "text": 1600}
    for field, longest in limits.items():
        value = body.get(field)
        if not isinstance(value, str) or not value.strip() or len(value) > longest:
            raise FHIRError.of(400, "required" if value is None else "value",
                               f"{field!r}: a non-empty string of at most {longest} characters", field)
    if sum(c.isdigit() for c in body["from"]) < 6:
        raise FHIRError.of(400, "value", "'from': the sender's phone number", "from")
    return Inbound(body["id"].strip(), body["from"].strip(), body["text"])


def phone_key(number: str) -> str:
    """A Moroccan number as digits with its country code: "06 12 34 56 78" and "+212612345678" match."""
    digits = "".join(c for c in number if c.isdigit())
    if digits.startswith("00"):
        return digits[2:]
    return "212" + digits[1:] if digits.startswith("0") else digits


def numbers_on_record(patient: dict) -> set[str]:
    """The patient's phones and their guardians' (``Patient.contact``), as ``phone_key``s."""
    people = [patient, *filter(is_guardian, patient.get("contact") or [])]
    return {phone_key(t["value"]) for p in people for t in p.get("telecom") or []
            if t.get("system") in ("sms", "phone") and isinstance(t.get("value"), str)}


def _code_in(text: str) -> str | None:
    """The status code the patient typed (alone, or as one word of the message)."""
    for candidate in (text, *text.split()):
        try:
            return normalise(candidate)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class Answer:
    event: str
    patient_id: str | None = None
    claim_id: str | None = None
    code: str | None = None
    language: str | None = None


async def _answer(conn: AsyncConnection, message: Inbound, default_language: str) -> Answer:
    code = _code_in(message.text)
    sheet = await sheet_with(conn, code) if code else None
    if sheet is not None:
        patient = await repository.current(conn, "Patient", sheet.patient_id)
        res = patient.resource() if patient is not None and not patient.deleted else {}
        if phone_key(message.sender) in numbers_on_record(res):
            return Answer(STAGE_EVENTS[sheet.stage], sheet.patient_id, sheet.claim_id, code, language(res, default_language))
    return Answer(UNKNOWN_EVENT, language=default_language)


async def _first_time(conn: AsyncConnection, message_id: str) -> bool:
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(sms_inbound)
    done = await conn.execute(insert.values(message_id=message_id, received_at=now_us())
                              .on_conflict_do_nothing().returning(sms_inbound.c.message_id))
    return done.first() is not None


async def _within_rate(request: Request, sender: str) -> bool:
    # The limiter's store (Redis when shared) sees a digest, never the phone number.
    key = hashlib.sha256(phone_key(sender).encode()).hexdigest()[:32]
    return await limiter(request).hit(parse(request.app.state.settings.claims_sms_inbound_rate), "sms-inbound", key)


@router.post("/sms/inbound")
async def sms_received(request: Request) -> JSONResponse:
    _authenticate(request)
    message = await _message(request)
    async with write_transaction(request.app.state.engine) as conn:
        if not await _first_time(conn, message.id):
            return JSONResponse({"id": message.id, "status": "duplicate"})
        if not await _within_rate(request, message.sender):
            await append(conn, [audit_event("operation", None, operation="$sms-inbound", status=429,
                                            address=request.client.host if request.client else None)])
            return JSONResponse({"id": message.id, "status": "throttled"})
        answer = await _answer(conn, message, request.app.state.settings.claims_messaging_language)
        about = f"Claim/{answer.claim_id}" if answer.claim_id else None
        await notify(conn, answer.patient_id, answer.event, about,
                     {"code": shown(answer.code) if answer.code else "", "reply": message.id},
                     reply_to=message.sender, language=answer.language)
        await append(conn, [audit_event(
            "operation", None, patient=f"Patient/{answer.patient_id}" if answer.patient_id else None,
            operation="$sms-inbound", what=about, address=request.client.host if request.client else None)])
    return JSONResponse({"id": message.id, "status": "accepted"}, status_code=202)

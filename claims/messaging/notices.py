"""``notify``: write a patient notification and queue its delivery, in the caller's transaction.

The notification is a FHIR ``Communication`` (status ``in-progress`` until delivered; category
``https://fhir.sijill.ma/CodeSystem/notification|<event>``; subject and recipient the Patient;
``about`` the resource concerned; payload[0] the French text, payload[1] the Arabic one, both
from ``catalogue``).  Its outbox row is unique per (patient, event, about): a retried job, a
replayed decision or a second call for the same event writes nothing more and sends nothing.
An event that may recur about the same resource (a second break-the-glass by the same doctor)
passes ``params["occurrence"]``, which joins the deduplication key.

``about`` is a literal reference (``ClaimResponse/<id>``) or a logical one by identifier (a
prescription: ``{"type": "MedicationRequest", "identifier": <its number>}``, whose lines share
it).  An answer to an inbound SMS (``reply_to``: the number that texted, in ``language``) goes to
that number whatever the patient's channel preferences, once per gateway message id
(``params["reply"]``), and has no patient when it is the generic answer
(``claims.messaging.inbound``).
"""
from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from claims.clock import now_us
from claims.messaging.catalogue import EVENTS, LANGUAGES, render
from claims.tables import message_outbox
from ehr.interactions.context import Context, store
from ehr.interactions.preconditions import new_id
from ehr.store import repository

NOTIFICATION = "https://fhir.sijill.ma/CodeSystem/notification"
STATUS_REASON = "https://fhir.sijill.ma/CodeSystem/notification-not-done"


About = str | dict | None


def communication(patient_id: str | None, event: str, about: About, params: dict) -> dict:
    res: dict = {
        "resourceType": "Communication",
        "status": "in-progress",
        "category": [{"coding": [{"system": NOTIFICATION, "code": event}]}],
    }
    if patient_id is not None:
        res["subject"] = {"reference": f"Patient/{patient_id}"}
        res["recipient"] = [{"reference": f"Patient/{patient_id}"}]
    if about is not None:
        res["about"] = [{"reference": about} if isinstance(about, str) else about]
    res["payload"] = [{"contentString": render(event, lang, params)} for lang in LANGUAGES]
    if params.get("sender"):
        res["sender"] = {"reference": params["sender"]}
    return res


def _key(about: About, params: dict) -> str:
    """What makes a notice the same one again (with the patient and the event)."""
    if params.get("reply"):  # an answer to an inbound SMS: once per gateway message
        return f"sms#{params['reply']}"
    if isinstance(about, dict):
        ident = about["identifier"]
        about = f"{about['type']}?identifier={ident['system'].rsplit('/', 1)[-1]}|{ident['value']}"
    return f"{about or ''}#{params['occurrence']}" if params.get("occurrence") else about or ""


async def notify(ctx_or_conn: Context | AsyncConnection, patient_id: str | None, event: str, about: About, params: dict,
                 *, reply_to: str | None = None, language: str | None = None) -> None:
    """Tell the patient about ``event`` concerning ``about`` (once, whatever the retries)."""
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}")
    conn = ctx_or_conn.conn if isinstance(ctx_or_conn, Context) else ctx_or_conn
    comm_id = new_id()
    now = now_us()
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(message_outbox)
    queued = await conn.execute(insert.values(
        patient_id=patient_id, event=event, about=_key(about, params), communication_id=comm_id, status="pending",
        attempts=0, next_attempt_at=now, created_at=now, reply_to=reply_to, language=language,
    ).on_conflict_do_nothing(index_elements=["patient_id", "event", "about"]).returning(message_outbox.c.id))
    if queued.first() is None:
        return  # already told
    res = communication(patient_id, event, about, params)
    if isinstance(ctx_or_conn, Context):
        await store(ctx_or_conn, "Communication", comm_id, res, method="POST", prior=None)
    else:
        await repository.write(conn, "Communication", comm_id, res, method="POST", prior=None)

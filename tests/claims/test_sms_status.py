"""The care sheet's status code from the submission on, and a patient asking for it by SMS.

The code is created with the sheet (the acknowledgement carries it, a resubmission gets the same
one, the decision keeps it) and ``GET /status/{code}`` answers before any decision.  A patient
with a basic phone texts it to the gateway's number: the gateway stand-in's inbound webhook call
(played here by the test, with the shared secret) queues the answer, which the worker sends back
through the same stand-in (tests.claims.test_notifications.Hook) — the stage, in the patient's
language, nothing else; a stranger's phone or an unknown code gets one generic answer.
"""
from __future__ import annotations

import httpx
import orjson
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from claims.messaging.catalogue import render
from claims.messaging.status_code import check_character
from claims.tables import message_outbox, sms_inbound
from claims.uris import STATUS_CODE
from ehr.security.tables import audit_inbox
from tests.claims import builders as b
from tests.claims.test_adjudication_scenarios import World, drain, submit
from tests.claims.test_messaging import MOBILE, config, deliver, gateway, mailbox, notices, patient_prefers  # noqa: F401

SECRET = "inbound-secret"


def status_code_of(answer: dict) -> str:
    (code,) = [i["value"] for i in answer.get("identifier", []) if i["system"] == STATUS_CODE]
    return code


@pytest.fixture
def inbound(app):
    app.state.settings = app.state.settings.model_copy(update={"claims_sms_inbound_secret": SecretStr(SECRET)})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sijill")


async def texted(inbound, sender: str, text: str, message_id: str, secret: str = SECRET) -> httpx.Response:
    """What the SMS gateway posts for a message texted to our number."""
    return await inbound.post("/sms/inbound", json={"from": sender, "text": text, "id": message_id},
                              headers={"Authorization": f"Bearer {secret}"})


async def audited(app, operation: str) -> list[dict]:
    async with app.state.engine.connect() as conn:
        events = [orjson.loads(r.event) for r in await conn.execute(select(audit_inbox.c.event))]
    return [e for e in events if e["subtype"][-1]["code"] == operation]


async def test_the_acknowledgement_carries_the_code_and_status_answers_before_the_decision(client, app, settings):
    w = await World().build(client)
    sheet = w.sheet([b.act("C", 100, b.days_ago(1))])
    queued = await submit(client, sheet)
    code = status_code_of(queued)
    assert queued["outcome"] == "queued" and queued["identifier"][0]["type"]["text"] == "Code de suivi / رمز التتبع"
    public = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sijill")
    async with public:
        answer = await public.get(f"/status/{code}")
        assert answer.status_code == 200 and answer.json() == {"code": code, "stage": "received"}
        again = await client.post("/Claim", json=sheet)  # the same sheet again: the same answer, the same code
        assert again.status_code == 200 and status_code_of(again.json()) == code
        assert await drain(app, settings) == 1
        decided = (await client.get(f"/ClaimResponse/{queued['id']}")).json()
        assert decided["outcome"] == "complete" and status_code_of(decided) == code
        assert (await public.get(f"/status/{code}")).json()["stage"] == "decided"
    (note,) = await notices(client, w.patient["id"])
    assert code in note["payload"][0]["contentString"]


async def test_the_patient_texts_the_code_and_gets_the_stage_in_arabic(client, app, settings, gateway, mailbox, inbound):
    w = await World().build(client)
    await patient_prefers(client, w.patient, telecom=MOBILE, language="ar")
    code = status_code_of(await submit(client, w.sheet([b.act("C", 100, b.days_ago(1))])))

    # typed on a basic phone: lower case, a word before it, the national form of the number
    resp = await texted(inbound, "06 12 34 56 78", f"code {code.lower()}", "gw-1")
    assert resp.status_code == 202 and resp.json() == {"id": "gw-1", "status": "accepted"}
    assert (await texted(inbound, "06 12 34 56 78", code, "gw-1")).json()["status"] == "duplicate"  # the gateway retried

    assert await deliver(app, settings, config(gateway, mailbox)) == 1
    (headers, body), = gateway.received
    sent = orjson.loads(body)
    assert sent == {"to": "06 12 34 56 78", "text": render("status-received", "ar", {"code": code})}
    assert code in sent["text"] and "100" not in sent["text"]  # the stage only: no amount, nothing clinical
    assert await deliver(app, settings, config(gateway, mailbox)) == 0  # answered once
    (answer,) = [n for n in await notices(client, w.patient["id"]) if n["category"][0]["coding"][0]["code"] == "status-received"]
    assert answer["status"] == "completed" and answer["medium"] == [{"text": "sms"}]
    (event,) = await audited(app, "$sms-inbound")
    assert event["entity"][0]["what"]["reference"] == f"Patient/{w.patient['id']}"
    assert "612345678" not in orjson.dumps(event).decode()  # the number is not kept in the trail


async def test_a_guardians_phone_is_answered_too(client, app, settings, gateway, mailbox, inbound):
    w = await World().build(client)
    guardian = {"relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}],
                "telecom": [{"system": "phone", "value": "+212600000009"}]}
    await patient_prefers(client, {**w.patient, "birthDate": "2015-05-05"}, telecom=[], contact=[guardian], language="fr")
    code = status_code_of(await submit(client, w.sheet([b.act("C", 100, b.days_ago(1))])))
    assert (await texted(inbound, "00212600000009", code, "gw-7")).status_code == 202
    await deliver(app, settings, config(gateway, mailbox))
    assert orjson.loads(gateway.received[0][1])["text"] == render("status-received", "fr", {"code": code})


async def test_a_strangers_phone_and_an_unknown_code_get_the_same_answer_that_confirms_nothing(
        client, app, settings, gateway, mailbox, inbound):
    w = await World().build(client)
    await patient_prefers(client, w.patient, telecom=MOBILE, language="ar")
    code = status_code_of(await submit(client, w.sheet([b.act("C", 100, b.days_ago(1))])))
    unknown = "2222222" + check_character("2222222")
    for sender, text, message_id in (("+212699999999", code, "gw-2"),  # the right code from someone else's phone
                                     ("+212612345678", unknown, "gw-3"),  # her phone, no such sheet
                                     ("+212612345678", "bonjour", "gw-4")):  # no code at all
        assert (await texted(inbound, sender, text, message_id)).status_code == 202
    assert await deliver(app, settings, config(gateway, mailbox)) == 3
    generic = render("status-unknown", "fr", {})
    assert [orjson.loads(body) for _, body in gateway.received] == [
        {"to": "+212699999999", "text": generic}, {"to": "+212612345678", "text": generic},
        {"to": "+212612345678", "text": generic}]
    assert code not in generic
    async with app.state.engine.connect() as conn:
        rows = (await conn.execute(select(message_outbox.c.patient_id, message_outbox.c.event)
                                   .where(message_outbox.c.reply_to.is_not(None)))).all()
    assert rows == [(None, "status-unknown")] * 3  # tied to no patient
    assert [n["category"][0]["coding"][0]["code"] for n in await notices(client, w.patient["id"])] == []
    events = await audited(app, "$sms-inbound")
    assert len(events) == 3 and not any(e.get("entity") for e in events)  # audited, in no patient's trail


async def test_only_the_gateway_with_its_secret_is_heard(client, app, inbound):
    assert (await texted(inbound, "+212612345678", "X", "gw-5", secret="guess")).status_code == 401
    no_auth = await inbound.post("/sms/inbound", json={"from": "+212612345678", "text": "X", "id": "gw-5"})
    assert no_auth.status_code == 401 and no_auth.headers["WWW-Authenticate"].startswith("Bearer")
    bad = await inbound.post("/sms/inbound", json={"from": "+212612345678", "text": "X"},
                             headers={"Authorization": f"Bearer {SECRET}"})
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["id"]
    bad = await inbound.post("/sms/inbound", content=b"not json", headers={"Authorization": f"Bearer {SECRET}"})
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    async with app.state.engine.connect() as conn:
        assert (await conn.execute(select(sms_inbound))).all() == []
    app.state.settings = app.state.settings.model_copy(update={"claims_sms_inbound_secret": None})
    assert (await texted(inbound, "+212612345678", "X", "gw-6")).status_code == 404  # off unless configured


async def test_a_phone_texting_too_often_gets_no_more_answers_until_its_window_frees(client, app, settings, gateway, mailbox, inbound):
    app.state.settings = app.state.settings.model_copy(update={"claims_sms_inbound_rate": "2/hour"})
    statuses = [(await texted(inbound, "06 99 88 77 66", f"try {n}", f"gw-rate-{n}")).json()["status"] for n in range(3)]
    assert statuses == ["accepted", "accepted", "throttled"]
    other = await texted(inbound, "+212655443322", "bonjour", "gw-rate-other")  # another phone is not held back
    assert other.json()["status"] == "accepted"
    assert await deliver(app, settings, config(gateway, mailbox)) == 3
    assert [orjson.loads(body)["to"] for _, body in gateway.received].count("06 99 88 77 66") == 2
    assert len(await audited(app, "$sms-inbound")) == 4  # the unanswered one too

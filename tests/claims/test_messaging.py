"""Patient notifications by SMS and e-mail, against real protocol servers on the loopback:
an HTTP SMS gateway stand-in (tests.claims.test_notifications.Hook) and an SMTP server
(aiosmtpd); and the care sheet's status code with its public lookup."""
from __future__ import annotations

import socket

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from claims.messaging.catalogue import EVENTS, LANGUAGES, WIDTHS, fits_one_sms, render, sms_units
from claims.messaging.dispatch import deliver_messages
from claims.messaging.preferences import OPT_OUT
from claims.messaging.status_code import check_character, normalise
from claims.settings import ClaimsSettings
from claims.tables import claim_status_code, message_outbox
from ehr.security.tables import audit_inbox
from tests.claims import builders as b
from tests.claims.test_adjudication_scenarios import World, drain, submit
from tests.claims.test_notifications import Hook

NOTIFICATION = "https://fhir.sijill.ma/CodeSystem/notification"
CLINICAL = ("consultation", "diab", "C ", "استشارة", "سكري")


class Mailbox:
    """An SMTP server on a free loopback port that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

        class Handler:
            async def handle_DATA(_self, server, session, envelope):  # noqa: N802, N805
                self.messages.append((list(envelope.rcpt_tos), envelope.content.decode("utf-8", "replace")))
                return "250 OK"

        with socket.socket() as probe:  # aiosmtpd connects to its own port to start: name one
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()


@pytest.fixture
def gateway():
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def mailbox():
    m = Mailbox()
    yield m
    m.controller.stop()


def config(gateway: Hook, mailbox: Mailbox, **kw) -> ClaimsSettings:
    return ClaimsSettings(sms_gateway_url=gateway.url, sms_gateway_token="gw-secret", smtp_host="127.0.0.1",
                          smtp_port=mailbox.port, notify_backoff_seconds=30, **kw)


async def patient_prefers(client, patient: dict, *, telecom: list[dict], language: str = "ar", **extra) -> None:
    patient = {**patient, "telecom": telecom, **extra,
               "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": language}]}, "preferred": True}]}
    if not telecom:  # no means of contact of their own: the element is absent (FHIR has no empty arrays)
        del patient["telecom"]
    assert (await client.put(f"/Patient/{patient['id']}", json=patient)).status_code == 200


async def deliver(app, settings, cfg) -> int:
    async with httpx.AsyncClient() as http:
        return await deliver_messages(app.state.engine, cfg, http, base_url=settings.base_url)


async def notices(client, patient_id: str) -> list[dict]:
    found = (await client.get("/Communication", params={"subject": f"Patient/{patient_id}"})).json()
    return [e["resource"] for e in found.get("entry", [])
            if e["resource"].get("category", [{}])[0].get("coding", [{}])[0].get("system") == NOTIFICATION]


async def decided_sheet(client, app, settings, telecom, **prefs):
    w = await World().build(client)
    await patient_prefers(client, w.patient, telecom=telecom, **prefs)
    queued = await submit(client, w.sheet([b.act("C", 100, b.days_ago(1))]))
    assert await drain(app, settings) == 1
    return w, queued


MOBILE = [{"system": "email", "value": "amina@example.ma", "rank": 2},
          {"system": "phone", "use": "mobile", "value": "+212612345678", "rank": 1}]


async def test_decision_told_by_one_sms_in_the_patients_language(client, app, settings, gateway, mailbox):
    w, queued = await decided_sheet(client, app, settings, MOBILE)
    (note,) = await notices(client, w.patient["id"])
    assert note["status"] == "in-progress" and note["category"][0]["coding"][0]["code"] == "claim-decided"
    assert note["about"] == [{"reference": f"ClaimResponse/{queued['id']}"}]
    assert note["recipient"] == [{"reference": f"Patient/{w.patient['id']}"}]
    french, arabic = (p["contentString"] for p in note["payload"])
    assert "44.00 MAD" in french and "44.00" in arabic  # what she owes (100 asked, 56 paid by the fund)

    assert await deliver(app, settings, config(gateway, mailbox)) == 1
    (headers, body), = gateway.received
    sent = orjson.loads(body)
    assert sent == {"to": "+212612345678", "text": arabic} and headers["Authorization"] == "Bearer gw-secret"
    assert fits_one_sms(sent["text"]) and not any(word in sent["text"] for word in CLINICAL)
    assert mailbox.messages == []
    (note,) = await notices(client, w.patient["id"])
    assert note["status"] == "completed" and note["sent"] and note["medium"] == [{"text": "sms"}]
    # audited: channel, patient and template, never the text
    async with app.state.engine.connect() as conn:
        events = [orjson.loads(r.event) for r in await conn.execute(select(audit_inbox.c.event))]
    (sent_event,) = [e for e in events if e["subtype"][-1]["code"] == "$notify"]
    assert sent_event["entity"][0]["what"]["reference"] == f"Patient/{w.patient['id']}"
    assert {d["type"]: d["valueString"] for d in sent_event["entity"][-1]["detail"]} == {
        "channel": "sms", "template": "claim-decided"}
    assert arabic not in orjson.dumps(sent_event).decode()


async def test_email_when_preferred_in_french(client, app, settings, gateway, mailbox):
    email_first = [{**MOBILE[0], "rank": 1}, {**MOBILE[1], "rank": 2}]
    w, _ = await decided_sheet(client, app, settings, email_first, language="fr-MA")
    assert await deliver(app, settings, config(gateway, mailbox)) == 1
    (to, content), = mailbox.messages
    assert to == ["amina@example.ma"] and gateway.received == []
    assert "feuille de soins" in content and "44.00 MAD" in content
    (note,) = await notices(client, w.patient["id"])
    assert note["status"] == "completed" and note["medium"] == [{"text": "email"}]


async def test_opted_out_patient_is_sent_nothing(client, app, settings, gateway, mailbox):
    w, _ = await decided_sheet(client, app, settings, MOBILE, extension=[{"url": OPT_OUT, "valueBoolean": True}])
    assert await deliver(app, settings, config(gateway, mailbox)) == 1
    assert gateway.received == [] and mailbox.messages == []
    (note,) = await notices(client, w.patient["id"])
    assert note["status"] == "not-done" and note["statusReason"]["coding"][0]["code"] == "opted-out"
    assert "sent" not in note


async def test_gateway_failing_twice_then_succeeding_delivers_once(client, app, settings, gateway, mailbox):
    w, _ = await decided_sheet(client, app, settings, MOBILE)
    gateway.failures_left = 2
    cfg = config(gateway, mailbox)
    assert await deliver(app, settings, cfg) == 1
    assert len(gateway.received) == 1
    assert await deliver(app, settings, cfg) == 0 and len(gateway.received) == 1  # nothing left to send


async def test_gateway_down_then_not_done_after_the_rounds(client, app, settings, gateway, mailbox):
    w, _ = await decided_sheet(client, app, settings, MOBILE)
    gateway.failures_left = 100
    cfg = config(gateway, mailbox, messaging_quick_retries=1, messaging_max_rounds=2)
    assert await deliver(app, settings, cfg) == 0
    async with app.state.engine.begin() as conn:  # the next round is due now
        await conn.execute(message_outbox.update().values(next_attempt_at=0))
    assert await deliver(app, settings, cfg) == 1
    (note,) = await notices(client, w.patient["id"])
    assert note["status"] == "not-done" and note["statusReason"]["coding"][0]["code"] == "delivery-failed"


async def test_replay_sends_no_duplicate(client, app, settings, gateway, mailbox):
    from claims.messaging.notices import notify

    w, queued = await decided_sheet(client, app, settings, MOBILE)
    async with app.state.engine.begin() as conn:  # the same event again (a replayed decision)
        await notify(conn, w.patient["id"], "claim-decided", f"ClaimResponse/{queued['id']}", {"code": "X", "owed": "1"})
    assert len(await notices(client, w.patient["id"])) == 1
    assert await deliver(app, settings, config(gateway, mailbox)) == 1
    assert await deliver(app, settings, config(gateway, mailbox)) == 0
    assert len(gateway.received) == 1


async def test_minor_told_through_the_guardian(client, app, settings, gateway, mailbox):
    guardian = {"relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}]},
                                 {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}],
                "telecom": [{"system": "sms", "value": "+212600000001"}]}
    w = await World().build(client)
    await patient_prefers(client, {**w.patient, "birthDate": "2015-05-05"}, telecom=[], contact=[guardian])
    await submit(client, w.sheet([b.act("C", 100, b.days_ago(1))]))
    await drain(app, settings)
    assert await deliver(app, settings, config(gateway, mailbox)) == 1
    assert orjson.loads(gateway.received[0][1])["to"] == "+212600000001"


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_template_fits_one_sms_with_its_widest_values(event, language):
    text = render(event, language, {name: "9" * width for name, width in WIDTHS.items()})
    encoding, length, limit = sms_units(text)
    assert length <= limit, (event, language, length)
    assert encoding == ("GSM-7" if language == "fr" else "UCS-2")
    assert render(event, language, {"doctor": "Dr " + "x" * 200}).count("x") <= WIDTHS["doctor"]


async def test_status_code_answers_the_stage_and_nothing_else(client, app, settings, gateway, mailbox):
    w, _ = await decided_sheet(client, app, settings, MOBILE)
    async with app.state.engine.connect() as conn:
        code = (await conn.execute(select(claim_status_code.c.code))).scalar_one()
    (note,) = await notices(client, w.patient["id"])
    assert f"{code[:4]}-{code[4:]}" in note["payload"][0]["contentString"]  # the SMS gives it
    public = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sijill")
    async with public:
        answer = await public.get(f"/status/{code[:4].lower()}-{code[4:]}")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"code": f"{code[:4]}-{code[4:]}", "stage": "decided"}
        wrong = code[:-1] + next(c for c in "23456789" if c != code[-1])
        bad = await public.get(f"/status/{wrong}")
        assert bad.status_code == 400 and bad.json()["issue"][0]["code"] == "value"
        assert (await public.get("/status/short")).status_code == 400
        unknown = "2222222"
        assert (await public.get(f"/status/{unknown}{check_character(unknown)}")).status_code == 404
    assert normalise(f" {code[:4]} {code[4:]} ".lower()) == code


def test_check_character_catches_one_wrong_character_and_swaps():
    body = "K7QM4RZ"
    good = body + check_character(body)
    assert normalise(good) == good
    for i in range(7):
        for c in "23456789ABCDEFGHJKMNPQRSTVWXYZ":
            if c != body[i]:
                with pytest.raises(ValueError):
                    normalise(body[:i] + c + body[i + 1:] + good[-1])
    with pytest.raises(ValueError):
        normalise(body[1] + body[0] + body[2:] + good[-1])

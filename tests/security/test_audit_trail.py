"""The audit trail through the API: every access recorded per patient, readable by that patient,
written with the change it records, and verifiable afterwards (both databases)."""
from __future__ import annotations

import base64

import orjson
import pytest
from sqlalchemy import func, select, text

from ehr.security.audit import seal_pending, verify
from ehr.security.tables import audit_log
from ehr.store.db import read_connection

from .test_access_matrix import observation


async def trail(world, user: str = "pa", **params) -> list[dict]:
    async with world.client(user) as c:
        r = await c.get("/AuditEvent", params={"_count": 500, **params})
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


def by(events: list[dict], who: str) -> list[dict]:
    return [e for e in events if e["agent"][0]["who"].get("reference") == who]


def what(event: dict) -> str | None:
    return next((x["what"].get("reference") or x["what"].get("display") for x in event.get("entity", []) if x.get("role", {}).get("code") != "1"), None)


async def test_patient_sees_who_read_her_file_when_and_why(world):
    async with world.client("D1") as d1:
        assert (await d1.get("/Observation/obs-a")).status_code == 200
    events = by(await trail(world), "Practitioner/d1")
    read = next(e for e in events if e["action"] == "R")
    assert what(read) == "Observation/obs-a/_history/1"
    assert read["subtype"][0]["code"] == "read" and read["outcome"] == "0" and read["recorded"]
    assert read["entity"][0]["what"] == {"reference": "Patient/pa"}
    assert read["agent"][0]["network"]["address"] == "10.0.0.7"
    assert read["agent"][0]["policy"]  # the token id


async def test_one_event_per_patient_of_a_search(world):
    async with world.client("D3") as d3:
        body = (await d3.get("/Observation", params={"code": "8867-4"})).json()
    assert body["total"] == 2
    for patient in ("pa", "pb"):
        searches = [e for e in by(await trail(world, patient), "Practitioner/d3") if e["subtype"][0]["code"] == "search-type"]
        assert len(searches) == 1
        query = next(x for x in searches[0]["entity"] if x.get("role", {}).get("code") == "24")
        assert base64.b64decode(query["query"]).decode() == "code=8867-4"
    # the events are about one patient each
    async with read_connection(world.app.state.engine) as conn:
        refs = (await conn.execute(select(audit_log.c.patient_ref).where(audit_log.c.patient_ref.in_(["Patient/pa", "Patient/pb"])))).scalars().all()
    assert set(refs) == {"Patient/pa", "Patient/pb"}


async def test_refused_attempts_are_in_the_trail(world):
    async with world.client("D4") as d4:
        assert (await d4.get("/Patient/pa")).status_code == 404
    refused = by(await trail(world), "Practitioner/d4")
    assert len(refused) == 1 and refused[0]["outcome"] == "4" and "404" in refused[0]["outcomeDesc"]


async def test_a_refused_access_with_a_nul_in_the_id_is_in_the_trail(world):
    async with world.client("D4") as d4:
        r = await d4.get("/Patient/pa%00x")
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["Patient.id"]
    await seal_pending(world.app.state.engine)
    async with read_connection(world.app.state.engine) as conn:
        events = [orjson.loads(e) for e in (await conn.execute(select(audit_log.c.event))).scalars()]
    refused = by(events, "Practitioner/d4")
    assert len(refused) == 1 and refused[0]["outcome"] == "4" and "400" in refused[0]["outcomeDesc"]
    assert what(refused[0]) == "Patient/pa%00x"  # the request as it came, percent-encoded


async def test_write_events_commit_with_the_change(world):
    async with world.client("D1") as d1:
        created = await d1.post("/Observation", json=observation("pa"))
        failed = await d1.put("/Observation/obs-b", json={**observation("pb"), "id": "obs-b"})
    assert created.status_code == 201 and failed.status_code == 405  # as on a missing id (issue 10)
    creates = [e for e in by(await trail(world), "Practitioner/d1") if e["action"] == "C"]
    assert [what(e) for e in creates] == [f"Observation/{created.json()['id']}/_history/1"]
    # the refused update is recorded as a failure (outcome 4) on Brahim's trail, and changed nothing
    updates = [e for e in by(await trail(world, "pb"), "Practitioner/d1") if e["action"] == "U"]
    assert len(updates) == 1 and updates[0]["outcome"] == "4"


async def test_transaction_entries_are_audited(world):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Observation"}, "resource": observation("pa")},
        {"request": {"method": "GET", "url": "Encounter/enc-a"}},
    ]}
    async with world.client("D1") as d1:
        assert (await d1.post("/", json=bundle)).status_code == 200
    events = by(await trail(world), "Practitioner/d1")
    assert {e["subtype"][0]["code"] for e in events} >= {"create", "read"}


async def test_patients_see_only_their_own_and_dependants_trail(world):
    async with world.client("D1") as d1:
        await d1.get("/Observation/obs-a")
    async with world.client("D3") as d3:
        await d3.get("/Observation/obs-b")
    amina = await trail(world)
    assert amina and all(e["entity"][0]["what"]["reference"] in ("Patient/pa", "Patient/pc") for e in amina if e.get("entity"))
    assert await trail(world, "pa", patient="Patient/pb") == []  # someone else's: nothing
    seq = next(e["id"] for e in await trail(world, "pb") if by([e], "Practitioner/d3"))
    async with world.client("pa") as amina_client, world.client("pb") as brahim:
        assert (await amina_client.get(f"/AuditEvent/{seq}")).status_code == 404
        assert (await brahim.get(f"/AuditEvent/{seq}")).status_code == 200
    async with world.client("D1") as d1:
        assert (await d1.get("/AuditEvent")).status_code == 403
        assert (await d1.get(f"/AuditEvent/{seq}")).status_code == 403


async def test_trail_search_by_date_and_paging(world):
    async with world.client("D1") as d1:
        for _ in range(3):
            await d1.get("/Patient/pa")
    async with world.client("pa") as amina:
        first = (await amina.get("/AuditEvent", params={"patient": "pa", "date": "ge2020-01-01", "_count": 2})).json()
        assert len(first["entry"]) == 2 and first["total"] >= 3
        nxt = next(lnk["url"] for lnk in first["link"] if lnk["relation"] == "next")
        second = (await amina.get(nxt)).json()
        seqs = [int(e["resource"]["id"]) for e in first["entry"] + second["entry"]]
        assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
        assert (await amina.get("/AuditEvent", params={"date": "lt2000-01-01"})).json()["total"] == 0
        assert (await amina.get("/AuditEvent", params={"agent": "Practitioner/d1"})).status_code == 400


async def test_trail_cannot_be_written(world):
    event = {"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2025-01-01T00:00:00Z",
             "agent": [{"requestor": True}], "source": {"observer": {"display": "x"}}}
    async with world.client("D1") as d1:
        await d1.get("/Patient/pa")
    seq = (await trail(world))[0]["id"]
    for user in ("pa", "D1", "AD", "AG"):
        async with world.client(user) as c:
            assert (await c.post("/AuditEvent", json=event)).status_code == 403
            for r in (await c.put(f"/AuditEvent/{seq}", json={**event, "id": seq}), await c.delete(f"/AuditEvent/{seq}"),
                      await c.patch(f"/AuditEvent/{seq}", content=b"[]", headers={"Content-Type": "application/json-patch+json"}),
                      await c.delete("/AuditEvent", params={"patient": "pa"})):
                assert r.status_code == 405, (user, r.request.method, r.text)
                assert r.json()["issue"][0]["code"] == "not-supported"
    assert (await trail(world))[-1]["id"] == seq  # still there


async def test_trail_search_answers_every_parameter_it_declares(world):
    async with world.client("D1") as d1:
        await d1.get("/Patient/pa")
        metadata = (await d1.get("/metadata")).json()
    entry = next(r for r in metadata["rest"][0]["resource"] if r["type"] == "AuditEvent")
    assert sorted(p["name"] for p in entry["searchParam"]) == ["_id", "date", "patient"]
    assert {i["code"] for i in entry["interaction"]} & {"update", "patch", "delete"} == set()
    assert entry["searchInclude"] == [] and entry["conditionalDelete"] == "not-supported"
    mine = await trail(world)
    seq, recorded = mine[0]["id"], mine[0]["recorded"]
    assert [e["id"] for e in await trail(world, _id=seq)] == [seq]
    assert await trail(world, _id="999999999") == []
    assert seq in [e["id"] for e in await trail(world, date=recorded[:10])]
    assert seq not in [e["id"] for e in await trail(world, date=f"gt{recorded}")]
    assert {e["entity"][0]["what"]["reference"] for e in await trail(world, patient="Patient/pa")} == {"Patient/pa"}
    async with world.client("pa") as amina:
        for undeclared in ("agent", "entity", "type", "subtype", "action", "outcome", "source", "site"):
            r = await amina.get("/AuditEvent", params={undeclared: "x"})
            assert r.status_code == 400 and r.json()["issue"][0]["expression"] == [f"http.{undeclared}"]


async def test_the_log_refuses_updates_and_deletes_and_the_chain_verifies(world):
    async with world.client("D1") as d1:
        await d1.get("/Patient/pa")
        await d1.get("/Patient/pb")
    engine = world.app.state.engine
    await seal_pending(engine)
    async with read_connection(engine) as conn:
        report = await verify(conn)
        count = (await conn.execute(select(func.count()).select_from(audit_log))).scalar_one()
    assert report.ok and report.checked == count >= 2
    async with world.client("D1") as d1:
        await d1.get("/Patient/pa")  # an event waiting in the inbox: it cannot be changed either
    for statement in ("UPDATE audit_log SET recorded = 0", "DELETE FROM audit_log", "UPDATE audit_inbox SET recorded = 0",
                      "DELETE FROM audit_inbox"):
        with pytest.raises(Exception):
            async with engine.begin() as conn:
                await conn.execute(text(statement))


async def test_login_failures_are_audited(world):
    async with world.client(None, Authorization="Bearer not.a.token") as c:
        assert (await c.get("/Patient/pa")).status_code == 401
    await seal_pending(world.app.state.engine)
    async with read_connection(world.app.state.engine) as conn:
        events = [bytes(e) for e in (await conn.execute(select(audit_log.c.event))).scalars()]
    assert any(b'"110114"' in e and b'"10.0.0.7"' in e for e in events)

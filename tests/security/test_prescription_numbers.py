"""Prescription numbers: random, checked, assigned by the server; one number per pharmacy lookup,
misses throttled and audited (both databases for the API parts)."""
from __future__ import annotations

import re
from collections import Counter

import orjson
import pytest
from sqlalchemy import select

from ehr.interactions.transaction import Options, transaction
from ehr.security.audit import seal_pending
from ehr.security.demo import DemoUser
from ehr.security.prescription_number import ALPHABET, PATTERN, check_symbol, format_number, new_number, normalize
from ehr.security.roles import Role
from ehr.security.tables import audit_log
from ehr.store.db import read_connection

from .test_access_matrix import ids
from .world import RX, RX_A, RX_B

GROUP = "MedicationRequest.groupIdentifier"


def _compact(number: str) -> str:
    return number.replace("-", "")


def _grouped(compact: str) -> str:
    return "-".join(compact[i:i + 4] for i in range(0, 12, 4))


# --- the number ------------------------------------------------------------------------------------
def test_numbers_are_twelve_unambiguous_symbols_in_three_groups():
    for _ in range(2000):
        number = new_number()
        assert re.fullmatch(PATTERN, number) and len(_compact(number)) == 12
        assert not set(_compact(number)) & set("ILOU")
        assert normalize(number) == number


def test_typing_is_forgiven_but_not_mistakes():
    number = format_number(0x1234_5678_9ABC_DE & ((1 << 55) - 1))
    assert normalize(number.lower()) == number
    assert normalize(" ".join(_compact(number))) == number
    zeroes = format_number(0)  # 0000-0000-000x: what people type as O or o
    assert normalize(zeroes.replace("0", "O")) == zeroes and normalize(zeroes.replace("0", "o")) == zeroes
    ones = format_number(int("00001" * 11, 2))
    assert normalize(ones.replace("1", "I")) == ones and normalize(ones.replace("1", "l")) == ones
    for wrong in ("", number[:-1], number + "0", number.replace(number[0], "U"), "ORD-2024-000456", number[:-1] + "*"):
        assert normalize(wrong) is None, wrong


def test_check_symbol_detects_every_single_substitution():
    for bits in range(0, 1 << 55, (1 << 55) // 97):
        compact = _compact(format_number(bits))
        for i in range(12):
            for symbol in ALPHABET:
                if symbol != compact[i]:
                    assert normalize(compact[:i] + symbol + compact[i + 1:]) is None, (compact, i, symbol)


def test_check_symbol_detects_every_adjacent_transposition():
    """Every pair of distinct symbols, swapped at every position, check symbol included."""
    filler = "7SE7N65PTKS"
    for i in range(10):  # two data symbols
        for x in ALPHABET:
            for y in ALPHABET:
                if x != y:
                    body = filler[:i] + x + y + filler[i + 2:]
                    swapped = body[:i] + y + x + body[i + 2:]
                    assert normalize(_grouped(swapped + check_symbol(body))) is None, (body, i)
    swaps = set()
    for x in ALPHABET:  # the last data symbol and the check symbol
        for prefix in ALPHABET:
            body = filler[:9] + prefix + x
            check = check_symbol(body)
            if check != x:
                swaps.add((x, check))
                assert normalize(_grouped(body[:10] + check + x)) is None, body
    assert len(swaps) > 500


def test_numbers_are_random_and_distinct():
    draws = [_compact(new_number()) for _ in range(20_000)]
    assert len(set(draws)) == len(draws)
    expected = len(draws) / 32
    for position in range(11):
        counts = Counter(d[position] for d in draws)
        assert set(counts) == set(ALPHABET)
        assert all(0.75 * expected < n < 1.25 * expected for n in counts.values()), (position, counts)


# --- assigned when a prescription is written ---------------------------------------------------------
def line(patient: str = "pa", requester: str = "Practitioner/d1", medicine: str = "Amoxicilline 1g", **extra) -> dict:
    return {"resourceType": "MedicationRequest", "status": "active", "intent": "order", "medicationCodeableConcept": {"text": medicine},
            "subject": {"reference": f"Patient/{patient}"}, "requester": {"reference": requester}, **extra}


def number_of(res: dict) -> str:
    group = res["groupIdentifier"]
    assert group["system"] == RX and normalize(group["value"]) == group["value"]
    return group["value"]


def refused_at(response, expression: str) -> None:
    assert response.status_code == 422, response.text
    assert any(expression in i.get("expression", ()) for i in response.json()["issue"]), response.text


async def test_a_prescription_gets_a_random_number_its_lines_share(world):
    async with world.client("D1") as d1:
        single = await d1.post("/MedicationRequest", json=line())
        assert single.status_code == 201
        first = number_of(single.json())
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": line(medicine=m), "request": {"method": "POST", "url": "MedicationRequest"}} for m in ("Metformine", "Ramipril")
        ]}
        answer = await d1.post("", json=bundle)
        assert answer.status_code == 200, answer.text
        made = [(await d1.get(e["response"]["location"].split("/_history")[0])).json() for e in answer.json()["entry"]]
    shared = {number_of(r) for r in made}
    assert len(shared) == 1 and first not in shared and not {first, *shared} & {RX_A, RX_B}


async def test_a_caller_cannot_choose_a_number(world):
    async with world.client("D1") as d1:
        for number in (new_number(), "ORD-2024-000457", RX_B):  # unknown, malformed, another patient's
            refused_at(await d1.post("/MedicationRequest", json=line(groupIdentifier={"system": RX, "value": number})), GROUP)
        refused_at(await d1.post("/MedicationRequest", json=line(groupIdentifier={"system": "urn:x", "value": "1"})), GROUP)
        refused_at(await d1.post("/MedicationRequest", json=line(identifier=[{"system": RX, "value": new_number()}])),
                   "MedicationRequest.identifier[0]")
        # a line added to the doctor's own prescription for the same patient keeps its number
        added = await d1.post("/MedicationRequest", json=line(medicine="Ibuprofène", groupIdentifier={"system": RX, "value": RX_A.lower()}))
        assert added.status_code == 201 and number_of(added.json()) == RX_A
        # an update keeps the number even when the caller leaves it out, and cannot move the line
        mr = (await d1.get("/MedicationRequest/mr-a")).json()
        kept = await d1.put("/MedicationRequest/mr-a", json={k: v for k, v in {**mr, "status": "on-hold"}.items() if k != "groupIdentifier"})
        assert kept.status_code == 200 and number_of(kept.json()) == RX_A
        refused_at(await d1.put("/MedicationRequest/mr-a", json={**mr, "groupIdentifier": {"system": RX, "value": new_number()}}), GROUP)
    async with world.client("D3") as d3:  # D3 also treats Amina, but RX_A is D1's prescription
        refused_at(await d3.post("/MedicationRequest", json=line(requester="Practitioner/d3", groupIdentifier={"system": RX, "value": RX_A})), GROUP)


# --- found by the pharmacy ---------------------------------------------------------------------------
async def test_the_pharmacy_finds_every_line_by_the_number(world):
    async with world.client("D1") as d1:
        added = await d1.post("/MedicationRequest", json=line(medicine="Ibuprofène", groupIdentifier={"system": RX, "value": RX_A}))
        second = f"MedicationRequest/{added.json()['id']}"
    async with world.client("PH") as ph:
        assert (await ph.get(f"/{second}")).status_code == 404
        for params in ({"group-identifier": f"{RX}|{RX_A}"}, {"identifier": f"{RX}|{RX_A}"},
                       {"group-identifier": _compact(RX_A).lower()}, {"group-identifier": f"{RX}|{RX_A}", "status": "active"}):
            found = await ph.get("/MedicationRequest", params=params)
            assert found.status_code == 200 and ids(found.json()) == {"MedicationRequest/mr-a", second}, params
        assert (await ph.get(f"/{second}")).status_code == 200


@pytest.mark.parametrize("query", [
    f"group-identifier={RX}|{RX_A}&group-identifier={RX}|{RX_B}",
    f"group-identifier={RX}|{RX_A}&identifier={RX}|{RX_B}",
    f"group-identifier={RX}|{RX_A},{RX}|{RX_B}",
    f"identifier={RX}|{RX_A},{RX}|{RX_B}",
    "group-identifier:missing=false",
    f"group-identifier:not={RX}|{RX_A}",
    f"group-identifier:text={RX_A}",
    f"group-identifier={RX}|{RX_A}&_revinclude=MedicationDispense:prescription",
    f"group-identifier={RX}|{RX_A}&_include:iterate=MedicationRequest:subject",
    f"group-identifier={RX}|{RX_A}&_has:MedicationDispense:prescription:status=completed",
    f"group-identifier=urn:other|{RX_A}",
    f"identifier={RX}|{RX_A[:-1]}",
    f"group-identifier={RX}|{RX_A[:-1]}{'Z' if RX_A[-1] != 'Z' else 'Y'}",
])
async def test_one_exact_number_per_lookup(world, monkeypatch, query):
    async def no_search(*_, **__):
        raise AssertionError("the database was searched")

    monkeypatch.setattr("ehr.rest.routes.run_search", no_search)
    for user in ("PH", "D1"):
        async with world.client(user) as c:
            answer = await c.get(f"/MedicationRequest?{query}")
        assert answer.status_code == 400, (user, answer.text)
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["expression"][0].startswith("http.")


async def test_another_pharmacy_sees_nothing_without_the_number(world):
    other = DemoUser("PH2", Role.PHARMACIST, "Practitioner/ph2")
    await _write(world, [{"resourceType": "Practitioner", "id": "ph2"}, {"resourceType": "Organization", "id": "ph-org2", "name": "Pharmacie Rif"},
                         {"resourceType": "PractitionerRole", "id": "ph2-role", "practitioner": {"reference": "Practitioner/ph2"},
                          "organization": {"reference": "Organization/ph-org2"}}])
    async with world.client("PH") as ph:
        assert ids((await ph.get("/MedicationRequest", params={"group-identifier": f"{RX}|{RX_A}"})).json()) == {"MedicationRequest/mr-a"}
        assert (await ph.get("/MedicationRequest/mr-a")).status_code == 200
    async with world.client(other) as ph2:
        assert (await ph2.get("/MedicationRequest/mr-a")).status_code == 404
        assert (await ph2.get("/Patient/pa")).status_code == 404
        assert (await ph2.get("/MedicationRequest", params={"status": "active"})).json()["total"] == 0


# --- misses ---------------------------------------------------------------------------------------------
@pytest.fixture
def secure_settings(secure_settings):
    return secure_settings.model_copy(update={"prescription_lookup_misses": "3/15 minutes"})


async def test_repeated_misses_are_throttled_and_audited(world):
    tried = [new_number() for _ in range(3)]
    async with world.client("PH") as ph:
        for number in tried:
            miss = await ph.get("/MedicationRequest", params={"group-identifier": f"{RX}|{number}"})
            assert miss.status_code == 200 and miss.json()["total"] == 0
        throttled = await ph.get("/MedicationRequest", params={"group-identifier": f"{RX}|{RX_A}"})  # even a good number
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
        assert throttled.json()["issue"][0]["code"] == "throttled"
        assert (await ph.get("/MedicationRequest/mr-a")).status_code == 404  # nothing was presented
    colleague = DemoUser("PH3", Role.PHARMACIST, "Practitioner/ph3")  # same pharmacy: same count
    await _write(world, [{"resourceType": "PractitionerRole", "id": "ph3-role", "practitioner": {"reference": "Practitioner/ph3"},
                          "organization": {"reference": "Organization/ph-org"}}])
    async with world.client(colleague) as ph3:
        assert (await ph3.get("/MedicationRequest", params={"group-identifier": f"{RX}|{RX_A}"})).status_code == 429
    async with world.client("D1") as d1:  # doctors' searches present nothing and count nothing
        assert (await d1.get("/MedicationRequest", params={"group-identifier": f"{RX}|{tried[0]}"})).status_code == 200

    await seal_pending(world.app.state.engine)
    async with read_connection(world.app.state.engine) as conn:
        rows = (await conn.execute(select(audit_log.c.patient_ref, audit_log.c.event).order_by(audit_log.c.seq))).all()
    misses = [(ref, orjson.loads(e)) for ref, e in rows if b"Num\\u00e9ro d'ordonnance inconnu" in bytes(e)
              or "Numéro d'ordonnance inconnu".encode() in bytes(e)]
    assert len(misses) == 3
    for (ref, event), number in zip(misses, tried):
        assert ref is None and event["outcome"] == "4" and number in event["outcomeDesc"]
        assert event["agent"][0]["who"]["reference"] == "Practitioner/ph"
        assert all(x.get("role", {}).get("code") != "1" for x in event.get("entity", []))  # no patient


async def _write(world, resources: list[dict]) -> None:
    s = world.app.state.security.settings
    opts = Options(s.base_url, s.default_page_size, s.max_page_size, s.max_bundle_entries, False)
    entries = [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]
    await transaction(world.app.state.engine, {"resourceType": "Bundle", "type": "transaction", "entry": entries}, opts)


async def test_misses_are_shared_by_server_processes_through_redis():
    """Two processes (two throttles) on one Redis storage count the same misses."""
    import os
    import uuid

    from ehr.outcome import FHIRError
    from ehr.security.presence import MissThrottle

    uri = os.environ.get("SIJILL_TEST_REDIS", "async+redis://127.0.0.1:6379")
    first, second = MissThrottle("2/15 minutes", uri), MissThrottle("2/15 minutes", uri)
    pharmacy = f"Organization/test-{uuid.uuid4().hex}"
    try:
        await first.check(pharmacy)
    except Exception as exc:  # noqa: BLE001 - no Redis here
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"Redis is not reachable at {uri}: {exc}")
    await first.missed(pharmacy)
    await second.check(pharmacy)
    await second.missed(pharmacy)
    with pytest.raises(FHIRError) as refused:
        await first.check(pharmacy)
    assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) > 0

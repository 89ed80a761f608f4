"""Writing where one must not: create in a hidden record, update (PUT), JSON Patch and delete of an
invisible resource, moving one's own resource into a record one may not write to, conditional
create/update/patch/delete whose condition only a hidden resource meets, and forging a write as
another organisation or another doctor.

Every write is refused and the database is unchanged (checked directly, as the tool it is); a
refusal answers as the same write aimed at a missing patient or id does (no existence oracle),
and shows nothing of the hidden resource.
"""
from __future__ import annotations

import copy
import uuid

import orjson
import pytest

from .scenario import BY_NAME, CIN, NAMES, Adversary, Arena, Findings, leaks

JSON_PATCH = {"Content-Type": "application/json-patch+json"}
LOINC = "http://loinc.org"


def _observation(subject: str) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
            "subject": {"reference": subject}, "valueQuantity": {"value": 72, "unit": "/min"}}


def _communication(subject: str, sender: str) -> dict:
    return {"resourceType": "Communication", "status": "completed", "subject": {"reference": subject},
            "sender": {"reference": sender}, "payload": [{"contentString": "Bonjour"}]}


def _dispense(subject: str, performer: str, prescription: str | None = None) -> dict:
    res = {"resourceType": "MedicationDispense", "status": "completed", "medicationCodeableConcept": {"text": "Amoxicilline 1g"},
           "subject": {"reference": subject}, "performer": [{"actor": {"reference": performer}}]}
    if prescription:
        res["authorizingPrescription"] = [{"reference": prescription}]
    return res


def _coverage(beneficiary: str, payor: str) -> dict:
    return {"resourceType": "Coverage", "status": "active", "beneficiary": {"reference": beneficiary}, "payor": [{"reference": payor}]}


# What each adversary writes into a record: a builder of the resource, given the patient it is about.
CREATE_IN = {
    "patient": lambda p: _communication(p, "Patient/pb"),
    "guardian": lambda p: _communication(p, "Patient/pa"),
    "doctor-unrelated": _observation,
    "doctor-denied": _observation,
    "pharmacist": lambda p: _dispense(p, "Practitioner/ph"),
    "insurer-other-fund": lambda p: _coverage(p, "Organization/cnops"),
    "admin": _observation,
}
# Their own resource moved into a record they may not write to: (resource, element, new patient).
MOVES = {
    "patient": [("Observation/obs-b", "subject", "Patient/pa")],
    "guardian": [("Observation/obs-c", "subject", "Patient/pb")],
    "doctor-hidden-label": [("Observation/obs-a", "subject", "Patient/pb")],
    "insurer-other-fund": [("Coverage/cov-b", "beneficiary", "Patient/pa")],
}
# Writing as someone else: another fund, another pharmacy, another doctor.
FORGED = {
    "insurer-other-fund": [
        {"resourceType": "ClaimResponse", "status": "active", "type": {"text": "pharmacy"}, "use": "claim", "patient": {"reference": "Patient/pb"},
         "created": "2025-03-01", "insurer": {"reference": "Organization/cnss"}, "request": {"reference": "Claim/claim-b"}, "outcome": "complete"},
        {"resourceType": "PaymentReconciliation", "status": "active", "created": "2025-03-01", "paymentIssuer": {"reference": "Organization/cnss"},
         "paymentDate": "2025-03-01", "paymentAmount": {"value": 10, "currency": "MAD"}},
        _coverage("Patient/pb", "Organization/cnss"),
    ],
    "pharmacist": [
        _dispense("Patient/pa", "Organization/ph-org-2", "MedicationRequest/mr-a"),
        {"resourceType": "Claim", "status": "active", "type": {"text": "pharmacy"}, "use": "claim", "patient": {"reference": "Patient/pa"},
         "created": "2025-03-01", "insurer": {"reference": "Organization/cnss"}, "provider": {"reference": "Organization/ph-org-2"},
         "priority": {"text": "normal"}, "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/cov-a"}}]},
    ],
    "doctor-hidden-label": [  # in a patient of his, but as Dr D3
        {"resourceType": "MedicationRequest", "status": "active", "intent": "order", "medicationCodeableConcept": {"text": "Sertraline"},
         "subject": {"reference": "Patient/pa"}, "requester": {"reference": "Practitioner/d3"}},
    ],
}


def _missing() -> str:
    """An id nothing has (a fresh one each time: a write aimed at it might create it)."""
    return f"no-such-{uuid.uuid4().hex[:12]}"


def _patient_of(res: dict) -> str | None:
    if res["resourceType"] == "Patient":
        return f"Patient/{res['id']}"
    for key in ("subject", "patient", "beneficiary"):
        ref = (res.get(key) or {}).get("reference", "")
        if ref.startswith("Patient/"):
            return ref
    return None


def _without_meta(res: dict) -> dict:
    out = copy.deepcopy(res)
    out.pop("meta", None)
    return out


def _neutral(res: dict) -> dict:
    """The resource without what identifies it (a write that creates instead must not copy it)."""
    return {k: v for k, v in res.items() if k not in ("id", "meta", "identifier", "groupIdentifier", "name", "telecom")} | {"language": "fr"}


def _status(r) -> str:
    return f"{r.status_code} {r.text[:160]}"


def _shows(arena: Arena, adv: Adversary, r, case: str, sent: object = None) -> list[str]:
    """Secrets in the answer that the request itself (its URL, its body) did not carry."""
    return leaks(r.text, arena.secrets(adv, linked=True), case + (orjson.dumps(sent).decode() if sent is not None else ""))


async def _refused(f: Findings, arena: Arena, adv: Adversary, case: str, attempt, missing=None, sent: object = None) -> None:
    """Run the write (and the same write aimed at nothing): refused alike, nothing changed, nothing shown."""
    before = await arena.snapshot()
    r = await attempt()
    changed = await arena.snapshot() != before
    f.check(400 <= r.status_code < 500, case, f"not refused: {_status(r)}")
    f.check(not changed, case, "the database changed")
    f.check(not (found := _shows(arena, adv, r, case, sent)), case, f"answer shows {found}")
    if missing is not None:
        m = await missing()
        f.check(r.status_code == m.status_code, case, f"{r.status_code}, but aimed at a missing id: {m.status_code}")
        if await arena.snapshot() != before and 400 <= m.status_code < 500:
            f.check(False, case, "the write aimed at a missing id changed the database")


@pytest.mark.parametrize("name", NAMES)
async def test_create_in_a_hidden_record(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    build = CREATE_IN.get(name)
    writable = {f"Patient/{p}" for p in adv.sees}  # (a guardian writes about her daughter)
    patients = sorted({p for ref in adv.targets if (p := _patient_of(arena.contents[ref]))} - writable)
    async with arena.client(adv) as c:
        for patient in patients if build else []:
            res = build(patient)
            await _refused(f, arena, adv, f"POST {res['resourceType']} about {patient}",
                           lambda: c.post(f"/{res['resourceType']}", json=res),
                           lambda: c.post(f"/{res['resourceType']}", json=build(f"Patient/{_missing()}")), sent=res)
    f.assert_none()


@pytest.mark.parametrize("name", NAMES)
async def test_update_patch_and_delete_of_an_invisible_resource(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    async with arena.client(adv) as c:
        for ref in adv.targets:
            t, i = ref.split("/")
            res = _without_meta(arena.contents[ref])
            res["language"] = "fr"
            other = {**_neutral(res), "id": _missing()}  # (created on a missing id, it must not copy the hidden one)
            await _refused(f, arena, adv, f"PUT {ref}", lambda: c.put(f"/{ref}", json=res),
                           lambda: c.put(f"/{t}/{other['id']}", json=other), sent=res)
            ops = [{"op": "add", "path": "/language", "value": "ar"}]
            await _refused(f, arena, adv, f"PATCH {ref}", lambda: c.patch(f"/{ref}", json=ops, headers=JSON_PATCH),
                           lambda: c.patch(f"/{t}/{_missing()}", json=ops, headers=JSON_PATCH))
            before = await arena.snapshot()
            r, m = await c.delete(f"/{ref}"), await c.delete(f"/{t}/{_missing()}")
            f.check(await arena.snapshot() == before, f"DELETE {ref}", "the database changed")
            f.check(r.status_code == m.status_code, f"DELETE {ref}", f"{r.status_code}, but a missing id gets {m.status_code}")
    f.assert_none()


@pytest.mark.parametrize("name", NAMES)
async def test_moving_into_a_record_one_may_not_write_to(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    async with arena.client(adv) as c:
        for ref, element, patient in MOVES.get(name, []):
            own = await c.get(f"/{ref}")
            if not f.check(own.status_code == 200, f"GET {ref}", f"their own resource is not readable: {own.status_code}"):
                continue
            moved = _without_meta(own.json())
            moved[element] = {"reference": patient}
            await _refused(f, arena, adv, f"PUT {ref} {element}={patient}", lambda: c.put(f"/{ref}", json=moved), sent=moved)
            ops = [{"op": "replace", "path": f"/{element}", "value": {"reference": patient}}]
            await _refused(f, arena, adv, f"PATCH {ref} {element}={patient}", lambda: c.patch(f"/{ref}", json=ops, headers=JSON_PATCH))
    f.assert_none()


@pytest.mark.parametrize("name", NAMES)
async def test_conditional_writes_do_not_match_the_invisible(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    async with arena.client(adv) as c:
        if adv.may("Patient", "c") and "Patient/pa" in adv.targets:  # "create Amina unless she exists"
            before = await arena.row("Patient/pa")
            amina = {"resourceType": "Patient", "identifier": [{"system": CIN, "value": "AA111"}], "name": [{"family": "X"}]}
            r = await c.post("/Patient", json=amina, headers={"If-None-Exist": f"identifier={CIN}|AA111"})
            m = await c.post("/Patient", json=amina, headers={"If-None-Exist": f"identifier={CIN}|ZZ000"})
            case = "POST Patient If-None-Exist identifier=AA111"
            f.check(r.status_code == m.status_code, case, f"{r.status_code}, but matching nothing gets {m.status_code}")
            f.check(not (found := _shows(arena, adv, r, case, amina)), case, f"answer shows {found}")
            f.check(await arena.row("Patient/pa") == before, case, "Amina changed")
        for ref in adv.targets:
            t, i = ref.split("/")
            res = _neutral(arena.contents[ref])
            before = await arena.row(ref)
            ops = [{"op": "add", "path": "/language", "value": "ar"}]
            for case, hidden, missing in (
                (f"PUT {t}?_id={i}", lambda: c.put(f"/{t}", params={"_id": i}, json=res),
                 lambda: c.put(f"/{t}", params={"_id": _missing()}, json=res)),
                (f"PATCH {t}?_id={i}", lambda: c.patch(f"/{t}", params={"_id": i}, json=ops, headers=JSON_PATCH),
                 lambda: c.patch(f"/{t}", params={"_id": _missing()}, json=ops, headers=JSON_PATCH)),
                (f"DELETE {t}?_id={i}", lambda: c.delete(f"/{t}", params={"_id": i}), lambda: c.delete(f"/{t}", params={"_id": _missing()})),
            ):
                r, m = await hidden(), await missing()
                f.check(await arena.row(ref) == before, case, f"{ref} changed ({_status(r)})")
                f.check(r.status_code == m.status_code, case, f"{r.status_code}, but matching nothing gets {m.status_code}")
                f.check(not (found := _shows(arena, adv, r, case, res)), case, f"answer shows {found}")
    f.assert_none()


@pytest.mark.parametrize("name", sorted(FORGED))
async def test_forging_as_another_organisation(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    async with arena.client(adv) as c:
        for res in FORGED[name]:
            await _refused(f, arena, adv, f"POST {res['resourceType']} as another", lambda: c.post(f"/{res['resourceType']}", json=res), sent=res)
    f.assert_none()

"""Searching for what one must not see: by an indexed value, through chains (``subject.name=``,
``patient.identifier=``) and reverse chains (``_has``), with ``_include``/``_revinclude`` (``*``
and ``:iterate``), and ``Patient/{id}/$everything``.

Each probe of ``EMPTY`` can only match through resources the adversary must not see: it answers
200 with nothing, counting nothing (``_total=accurate`` and ``_summary=count``), or 403 when it
names a type the role may not search.  Each probe of ``INCLUDES`` starts from what the adversary
sees and must bring in none of their targets.  ``test_the_probes_find_what_the_entitled_see``
shows the same probes do find those resources for someone entitled to them.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl

import pytest

from ehr.parsing import is_resource_type
from ehr.security.roles import REFERENCE_TYPES

from .scenario import BY_NAME, CHAMA, CIN, MISSING, NAMES, PHQ9, SEX_CODE, Adversary, Arena, Findings, entry_refs, leaks

A_CIN, B_CIN = f"{CIN}|AA111", f"{CIN}|BB222"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

EMPTY: dict[str, list[str]] = {
    "patient": [
        f"Patient?identifier={A_CIN}", "Patient?name=Alaoui", "Observation?subject.name=Alaoui", f"Observation?patient.identifier={A_CIN}",
        "Condition?code=F32", "Claim?insurer=Organization/cnss", "Coverage?payor=Organization/cnss", "MedicationRequest?subject.name=Alaoui",
        f"Observation?code={PHQ9}", "Patient?_has:Observation:subject:_id=obs-a", "Patient?_has:Condition:subject:code=F32",
        "Patient?_has:Claim:patient:insurer=Organization/cnss", "Practitioner?_has:Observation:performer:subject=Patient/pa",
    ],
    "guardian": [
        "Patient?name=Bennani", f"Patient?identifier={B_CIN}", "Observation?subject.name=Bennani", f"Observation?patient.identifier={B_CIN}",
        "Claim?insurer=Organization/cnops", "Coverage?payor=Organization/cnops", f"Observation?code={SEX_CODE}",
        f"Observation?_security={ACT}|SEX", f"Patient?_has:Observation:subject:code={SEX_CODE}", "Patient?_has:Claim:patient:insurer=Organization/cnops",
    ],
    "doctor-unrelated": [
        "Patient?name=Alaoui", f"Patient?identifier={A_CIN}", "Patient?name=Bennani", "Observation?subject.name=Alaoui",
        f"Observation?patient.identifier={A_CIN}", "MedicationRequest?requester=Practitioner/d1", "Claim?patient.name=Alaoui",
        "Condition?code=F32", "Patient?_has:Observation:subject:code=8867-4", "Patient?_has:Encounter:subject:participant=Practitioner/d1",
        "Practitioner?_has:Encounter:participant:subject=Patient/pa",
    ],
    "doctor-denied": [
        "Patient?name=Bennani", f"Patient?identifier={B_CIN}", "Observation?subject.name=Bennani", f"Observation?patient.identifier={B_CIN}",
        "Encounter?participant=Practitioner/d2", "Claim?provider=Practitioner/d2", f"Encounter?subject.identifier={B_CIN}",
        "Patient?_has:Encounter:subject:participant=Practitioner/d2",
    ],
    "doctor-hidden-label": [
        "Condition?code=F32", "Condition?subject=Patient/pa", f"Condition?patient.identifier={A_CIN}", f"Observation?code={PHQ9}",
        "Observation?performer=Practitioner/psy-doc", "Observation?performer.name=Tazi", f"Observation?_security={ACT}|PSY",
        f"Condition?_security={ACT}|PSY", "Patient?_has:Condition:subject:code=F32",
        "Patient?_has:Observation:subject:performer=Practitioner/psy-doc", "Organization?_has:Observation:performer:subject=Patient/pa",
        "Practitioner?_id=psy-doc&_has:Observation:performer:subject=Patient/pa",
    ],
    "pharmacist": [
        "MedicationRequest?subject=Patient/pa", "MedicationRequest?requester=Practitioner/d1", "MedicationRequest?_id=mr-a,mr-b",
        "MedicationRequest?status=active", "MedicationRequest?subject.name=Bennani", "Claim?patient.name=Alaoui",
        f"Claim?patient.identifier={A_CIN}", "ClaimResponse?patient.name=Alaoui", "Coverage?beneficiary=Patient/pb",
        "Coverage?payor=Organization/cnops",
    ],
    "insurer-other-fund": [
        "Claim?patient=Patient/pa", "Claim?insurer=Organization/cnss", "Claim?provider=Organization/ph-org", "Claim?patient.name=Alaoui",
        "ClaimResponse?insurer=Organization/cnss", "ClaimResponse?request=Claim/claim-a", "Coverage?payor=Organization/cnss",
        "Patient?name=Alaoui", f"Patient?identifier={A_CIN}", "Patient?_has:Coverage:beneficiary:payor=Organization/cnss",
        "Patient?_has:Claim:patient:insurer=Organization/cnss", "DocumentReference?related=Claim/claim-a",
        "PaymentReconciliation?payment-issuer=Organization/cnss", "ExplanationOfBenefit?patient=Patient/pa",
    ],
    "paper-agent": [
        "Patient?name=Alaoui", "Patient?name=Bennani", f"Patient?identifier={A_CIN}", "Observation?subject=Patient/pb",
        "Observation?subject.name=Bennani", "Claim?patient=Patient/pa", "DocumentReference?subject=Patient/pa",
        "Patient?_has:Observation:subject:code=8867-4",
    ],
    "admin": [
        "Patient?name=Alaoui", "Observation?subject=Patient/pa", "Practitioner?_has:Observation:performer:subject=Patient/pa",
        "Organization?_has:Claim:insurer:patient=Patient/pa", "Organization?_has:Coverage:payor:beneficiary=Patient/pa",
    ],
}

EVERYONE_INCLUDES = [
    "Practitioner?_revinclude=*", "Organization?_revinclude=*",
    "Practitioner?_revinclude=*&_revinclude:iterate=*&_include:iterate=*",
]
INCLUDES: dict[str, list[str]] = {
    "patient": [
        "Encounter?_id=enc-b-old&_include=Encounter:participant&_revinclude:iterate=Encounter:participant",
        "Patient?_id=pb&_revinclude=*&_include=*",
        "Practitioner?_id=d1&_revinclude=Observation:performer&_revinclude=MedicationRequest:requester",
    ],
    "guardian": [
        "Patient?_id=pc&_revinclude=Observation:subject", "Patient?_id=pc&_revinclude=*",
        "Patient?_id=pa&_include=Patient:link&_include:iterate=RelatedPerson:patient&_revinclude:iterate=Observation:subject",
        "Organization?_id=cnops&_revinclude=Coverage:payor&_revinclude=Claim:insurer",
    ],
    "doctor-unrelated": [
        "Practitioner?_id=d1&_revinclude=Encounter:participant&_revinclude=Observation:performer&_revinclude=MedicationRequest:requester",
        "Organization?_id=cnss&_revinclude=Coverage:payor",
    ],
    "doctor-denied": [
        "Practitioner?_id=d2&_revinclude=Encounter:participant&_revinclude=Claim:provider",
        "Practitioner?_id=d2&_revinclude=*&_include:iterate=*",
    ],
    "doctor-hidden-label": [
        "Patient?_id=pa&_revinclude=Condition:subject&_revinclude=Observation:subject", "Patient?_id=pa&_revinclude=*&_include=*",
        "Observation?subject=Patient/pa&_include=Observation:performer", "Observation?subject=Patient/pa&_include=*&_include:iterate=*",
        "Encounter?_id=enc-a&_revinclude=Observation:encounter&_include:iterate=Observation:performer",
        "Patient?_id=pa&_revinclude=Observation:subject&_include:iterate=Observation:performer",
    ],
    "pharmacist": [
        "Claim?_id=claim-a&_include=Claim:patient", "Claim?_id=claim-a&_include=*&_include:iterate=*",
        "ClaimResponse?_id=cr-a&_include=ClaimResponse:request&_include:iterate=Claim:patient",
        "Organization?_id=ph-org&_revinclude=Claim:provider&_include:iterate=Claim:patient",
        "Practitioner?_id=d1&_revinclude=MedicationRequest:requester",
    ],
    "insurer-other-fund": [
        "Claim?_id=claim-b&_include=*", "Patient?_id=pb&_revinclude=*&_revinclude:iterate=*",
        "Organization?_id=cnss&_revinclude=Claim:insurer&_revinclude=Coverage:payor&_revinclude=ClaimResponse:insurer",
        "Organization?_id=ph-org&_revinclude=Claim:provider&_revinclude=PaymentReconciliation:requestor",
        "Organization?_id=cnss&_revinclude=*&_include:iterate=*",
    ],
    "paper-agent": ["Practitioner?_id=d1&_revinclude=*", "Organization?_id=cnss&_revinclude=*&_revinclude:iterate=*"],
    "admin": ["Organization?_id=cnss&_revinclude=Claim:insurer", "Organization?_id=cnss&_revinclude=*"],
}
# What the same kinds of probes return to someone entitled: the probes above are not blind.
FOUND = [
    ("D3", "Observation?subject.name=Alaoui", "Observation/obs-a"),
    ("D3", f"Observation?patient.identifier={A_CIN}", "Observation/obs-a-psy"),
    ("D3", "Patient?_has:Condition:subject:code=F32", "Patient/pa"),
    ("D3", f"Patient?identifier={B_CIN}", "Patient/pb"),
    ("D3", "Observation?performer.name=Tazi", "Observation/obs-a-psy"),
    ("AG", "Claim?patient.name=Alaoui", "Claim/claim-a"),
    ("AG", "Patient?_has:Coverage:beneficiary:payor=Organization/cnss", "Patient/pa"),
    (CHAMA, f"Observation?code={SEX_CODE}", "Observation/obs-c-sex"),
    ("D1", "Practitioner?_id=d1&_revinclude=Observation:performer", "Observation/obs-a"),
    ("D3", "Observation?subject=Patient/pa&_include=Observation:performer", "Practitioner/psy-doc"),
    ("D1", "Patient?_id=pa&_revinclude=*", "Observation/obs-a"),
    ("pb", "Encounter?_id=enc-b-old&_include=Encounter:participant", "Practitioner/d1"),
]
_CHAINED_TO_PATIENT = re.compile(r"(?:subject|patient|beneficiary)\.")


def _params(query: str, *extra: tuple[str, str]) -> tuple[str, list[tuple[str, str]]]:
    path, _, qs = query.partition("?")
    return f"/{path}", parse_qsl(qs, keep_blank_values=True) + list(extra)


def _named_types(query: str) -> set[str]:
    named = {w for w in re.findall(r"[A-Z][A-Za-z]+", query) if is_resource_type(w)}
    return named | ({"Patient"} if _CHAINED_TO_PATIENT.search(query) else set())


def _may_refuse(adv: Adversary, query: str) -> bool:
    """403 is a right answer when the probe names a type the role may not search."""
    return any(not adv.may(t, "s") for t in _named_types(query))


def _secrets_for(arena: Arena, adv: Adversary, query: str) -> set[str]:
    on_directory = query.split("?")[0] in REFERENCE_TYPES and "_id=" not in query
    return arena.secrets(adv, linked=not on_directory)


@pytest.mark.parametrize("name", NAMES)
async def test_searches_chains_and_has_find_nothing(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    async with arena.client(adv) as c:
        for query in EMPTY[name]:
            secrets = arena.secrets(adv, linked=True)
            path, params = _params(query, ("_total", "accurate"), ("_count", "100"))
            r = await c.get(path, params=params)
            if r.status_code == 403 and _may_refuse(adv, query):
                continue
            if not f.check(r.status_code == 200, query, f"{r.status_code} {r.text[:200]}"):
                continue
            body = r.json()
            f.check(body.get("total") == 0 and not entry_refs(body), query, f"total {body.get('total')}, entries {entry_refs(body)}")
            f.check(not (found := leaks(r.text, secrets, query)), query, f"answer shows {found}")
            path, params = _params(query, ("_summary", "count"))
            counted = await c.get(path, params=params)
            f.check(counted.status_code == 200 and counted.json().get("total") == 0, f"{query}&_summary=count",
                    f"{counted.status_code} total {counted.json().get('total')}")
    f.assert_none()


@pytest.mark.parametrize("name", NAMES)
async def test_includes_bring_in_nothing_hidden(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    targets = set(adv.targets)
    async with arena.client(adv) as c:
        for query in EVERYONE_INCLUDES + INCLUDES[name]:
            path, params = _params(query, ("_count", "100"))
            r = await c.get(path, params=params)
            if r.status_code == 403 and _may_refuse(adv, query):
                continue
            if not f.check(r.status_code == 200, query, f"{r.status_code} {r.text[:200]}"):
                continue
            f.check(not (shown := targets & set(entry_refs(r.json()))), query, f"includes {sorted(shown)}")
            f.check(not (found := leaks(r.text, _secrets_for(arena, adv, query), query)), query, f"answer shows {found}")
    f.assert_none()


@pytest.mark.parametrize("name", NAMES)
async def test_everything_of_a_hidden_patient_or_hiding_in_a_visible_one(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    secrets = arena.secrets(adv, linked=True)
    async with arena.client(adv) as c:
        for ref in (r for r in adv.targets if r.startswith("Patient/")):
            case = f"GET {ref}/$everything"
            r, missing = await c.get(f"/{ref}/$everything"), await c.get(f"/Patient/{MISSING}/$everything")
            f.check(r.status_code in (403, 404) and r.status_code == missing.status_code, case,
                    f"{r.status_code} (a missing id: {missing.status_code})")
            f.check(not (found := leaks(r.text, secrets, case)), case, f"answer shows {found}")
        for pid in adv.sees:  # their own patients' files: without what is hidden from them
            case = f"GET Patient/{pid}/$everything"
            r = await c.get(f"/Patient/{pid}/$everything", params={"_count": 500})
            if r.status_code == 403:  # a role that may not call $everything at all
                continue
            if not f.check(r.status_code == 200, case, f"{r.status_code} {r.text[:200]}"):
                continue
            f.check(not (shown := set(adv.targets) & set(entry_refs(r.json()))), case, f"includes {sorted(shown)}")
            f.check(not (found := leaks(r.text, secrets, case)), case, f"answer shows {found}")
    f.assert_none()


async def test_the_probes_find_what_the_entitled_see(arena: Arena):
    f = Findings("entitled callers")
    for user, query, ref in FOUND:
        async with arena.client(user) as c:
            path, params = _params(query, ("_count", "100"))
            r = await c.get(path, params=params)
            f.check(r.status_code == 200 and ref in entry_refs(r.json()), f"{user} {query}", f"{r.status_code}, no {ref}")
    async with arena.client("D3") as c:  # D3 sees all of Amina's file, PSY label included
        r = await c.get("/Patient/pa/$everything", params={"_count": 500})
        f.check(r.status_code == 200 and {"Observation/obs-a-psy", "Practitioner/psy-doc"} <= set(entry_refs(r.json())),
                "D3 Patient/pa/$everything", r.status_code)
    f.assert_none()

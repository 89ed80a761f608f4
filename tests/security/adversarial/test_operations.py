"""Every registered operation (``ehr.operations.registry.registered()``: a new one is covered
without editing this file) aimed at what the adversary must not reach, and the paper letters.

* Instance level, on an invisible target of a type the operation serves: 403 or 404 — exactly
  the answer a missing id gets — never a 2xx; the answer shows nothing of the target and, for an
  operation that changes state, the database is unchanged.  An operation that grants access by
  design with a justification (break-the-glass, a doctor's declared emergency) is called without
  one: it must grant nothing, answering as for a missing id.  Operations that change state are
  posted a proof of presence that fits nobody (the walk-in operations answer 404 to it).
* Type and system level, without parameters: whatever the answer, nothing of the adversary's
  targets, and nothing changed.
* The fund's business: another fund's review queue and its 48-hour figures are refused (403).
"""
from __future__ import annotations

import pytest

from ehr.operations.registry import Operation, registered
from ehr.plugins import load_plugins
from ehr.security.roles import REFERENCE_TYPES

from .scenario import ADVERSARIES, BY_NAME, MISSING, NAMES, NOBODY, Adversary, Arena, Findings, issue_code, leaks

JUSTIFIED = {"break-glass"}  # grants access by design when a doctor gives a reason: called without one
# A proof of presence that fits nobody (the walk-in operations: $start-care, $assist), no reason.
WRONG_PROOF = {"resourceType": "Parameters", "parameter": [
    {"name": "identifier", "valueIdentifier": {"system": "https://fhir.sijill.ma/sid/cin", "value": "ZZ999"}},
    {"name": "birthDate", "valueDate": "1901-01-01"},
]}


def _aims(op: Operation, adv: Adversary) -> list[str]:
    """The invisible targets an instance-level operation is aimed at (one per type it serves)."""
    if "instance" not in op.levels:
        return []
    chosen: dict[str, str] = {}
    for ref in (*adv.targets, *NOBODY):
        t = ref.split("/")[0]
        if (op.types is None or t in op.types) and t not in REFERENCE_TYPES:
            chosen.setdefault(t, ref)
    return sorted(chosen.values()) if op.types is not None else sorted(chosen.values())[:1]


async def _call(c, op: Operation, path: str):
    headers = {"Accept": sorted(op.produces)[0]} if op.produces else {}
    if op.affects_state:
        return await c.post(path, json=WRONG_PROOF, headers=headers)
    return await c.get(path, headers=headers)


async def _called(f: Findings, arena: Arena, c, op: Operation, path: str, secrets: set[str]):
    """Call the operation: its answer shows none of ``secrets`` and the database is unchanged."""
    case = f"{'POST' if op.affects_state else 'GET'} {path}"
    before = await arena.snapshot()
    r = await _call(c, op, path)
    f.check(not (found := leaks(r.text, secrets, case)), case, f"answer shows {found}")
    f.check(await arena.snapshot() == before, case, "the database changed")
    return case, r


@pytest.mark.parametrize("name", NAMES)
async def test_every_instance_operation_on_an_invisible_target(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    secrets = arena.secrets(adv, linked=True)
    async with arena.client(adv) as c:
        for op in registered():
            for ref in _aims(op, adv):
                case, r = await _called(f, arena, c, op, f"/{ref}/${op.name}", secrets)
                missing = await _call(c, op, f"/{ref.split('/')[0]}/{MISSING}/${op.name}")
                allowed = {400, 403, 404, 422} if op.name in JUSTIFIED else {403, 404}
                f.check(r.status_code in allowed, case, f"{r.status_code} {r.text[:160]}")
                f.check((r.status_code, issue_code(r)) == (missing.status_code, issue_code(missing)), case,
                        f"{r.status_code}/{issue_code(r)}, but a missing id gets {missing.status_code}/{issue_code(missing)}")
    f.assert_none()


@pytest.mark.parametrize("name", NAMES)
async def test_type_and_system_operations_show_nothing_hidden(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    secrets = arena.secrets(adv, linked=True)
    async with arena.client(adv) as c:
        for op in registered():
            paths = []
            if "system" in op.levels:
                paths.append(f"/${op.name}")
            if "type" in op.levels:
                types = op.types if op.types is not None else {r.split("/")[0] for r in adv.targets}
                paths += [f"/{t}/${op.name}" for t in sorted(types)]
            for path in paths:
                case, r = await _called(f, arena, c, op, path, secrets)
                f.check(r.status_code < 500, case, f"{r.status_code} {r.text[:160]}")
    f.assert_none()


@pytest.mark.parametrize("name", NAMES)
async def test_another_funds_queue_and_figures_are_refused(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    async with arena.client(adv) as c:
        r = await c.get("/Claim/$review-queue", params={"fund": "Organization/cnss"})
        f.check(r.status_code == 403, "GET Claim/$review-queue?fund=Organization/cnss", f"{r.status_code} {r.text[:160]}")
        f.check("claim-a" not in r.text, "GET Claim/$review-queue?fund=Organization/cnss", "lists claim-a")
        if adv.name != "admin":  # the admin watches every fund's deadlines
            r = await c.get("/Organization/cnss/$sla")
            f.check(r.status_code == 403, "GET Organization/cnss/$sla", f"{r.status_code} {r.text[:160]}")
    f.assert_none()


def test_every_operation_is_aimed_at_something_hidden():
    """A new operation on a type the scenario hides nowhere would go untested: the scenario must grow."""
    load_plugins()
    unaimed = [
        f"${op.name} on {sorted(op.types or ['*'])}" for op in registered()
        if "instance" in op.levels and not (op.types and op.types <= REFERENCE_TYPES)
        and not any(_aims(op, adv) for adv in ADVERSARIES)
    ]
    assert unaimed == [], "add an invisible target of these types to the scenario"

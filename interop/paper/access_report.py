"""The access report ("who looked at my file"), on paper.

``GET Patient/{id}/$access-report[?_since=YYYY-MM-DD]`` prints what the patient's app shows:
the same query as ``AuditEvent?patient=Patient/{id}&date=ge…`` (``ehr.security.audit_api``,
after sealing the inbox), with the same rule for whose trail a caller may see — the patient
role sees themselves and their dependants.  The counter agent acting for the patient (one who
reads the patient's record: they registered it, or who serves them in person: ``$assist``)
prints it for them; no other role reads anyone's trail (403).  Each line says when, who (name, role, organisation), what, and why:
care, the fund's business, a step at the counter, or a break-the-glass emergency.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import orjson

from claims.clock import day_bounds, to_instant
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError
from ehr.security.audit import ASSISTED, seal_pending
from ehr.security.audit_api import search_events
from ehr.security.roles import Role
from ehr.store.db import read_connection
from interop.paper.access import USER_ROLE, request_security, require_patient
from interop.paper.catalogue import TEXTS, Bilingual, formatted, kind, text
from interop.paper.directory import Actor, Party, actor, load, party
from interop.paper.formatting import instant_us, local
from interop.paper.letter import deliver, printed, timezone
from interop.paper.rendering import HTML, PDF, negotiate

BREAK_GLASS = "BTG"
_ACTIONS = {"read": "read", "vread": "read", "search-type": "search", "search-system": "search",
            "search-compartment": "search", "history-instance": "history", "history-type": "history",
            "history-system": "history", "create": "create", "update": "update", "patch": "update", "delete": "delete"}
_PRINTS = ("$letter", "$access-report")
_WHY_BY_ROLE = {"role.patient": "why.own", "role.guardian": "why.own", "role.insurer": "why.insurance",
                "role.paper-agent": "why.counter", "role.unknown": "why.unknown", "role.admin": "why.unknown"}


@dataclass(frozen=True)
class Access:
    at: datetime
    who: Actor
    what: Bilingual
    kind: Bilingual | None
    why: str  # catalogue key
    refused: bool


@dataclass(frozen=True)
class AccessReport:
    patient: Party
    since: date | None
    accesses: list[Access]
    total: int


@operation("access-report", levels={"instance"}, types={"Patient"}, produces={HTML, PDF}, checks_target=True,
           callers={Role.PATIENT, Role.PAPER_AGENT},
           definition="https://fhir.sijill.ma/OperationDefinition/Patient-access-report")
async def access_report(inv: Invocation):
    media = negotiate(inv.request)
    since = _since(inv)
    allowed = await _trail_patients(inv)
    await seal_pending(inv.engine)
    s = inv.settings
    params = [("patient", f"Patient/{inv.res_id}"), ("_count", str(s.max_page_size))]
    if since:  # from the start of that Moroccan day
        params.append(("date", f"ge{to_instant(day_bounds(since, timezone())[0])}"))
    async with read_connection(inv.engine) as conn:
        page = orjson.loads((await search_events(conn, params, base_url=s.base_url, allowed=allowed,
                                                 default_count=s.default_page_size, max_count=s.max_page_size)).body)
        events = [e["resource"] for e in page.get("entry") or []]
        people = {}
        for ref, role in dict.fromkeys((_who(e), _recorded_role(e)) for e in events):
            people[(ref, role)] = await actor(conn, ref, role, inv.res_id)
        patient = (await load(conn, [f"Patient/{inv.res_id}"])).get(f"Patient/{inv.res_id}")
        report = AccessReport(party(patient, identify=True), since, [_access(e, people) for e in events],
                              page.get("total") or len(events))
        stamp = await printed(conn, inv, inv.res_id)
    return await deliver(inv, media, "access_report.html", patients=[f"Patient/{inv.res_id}"], report=report, printed=stamp)


def _since(inv: Invocation) -> date | None:
    value = inv.first("_since")
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise FHIRError.of(400, "invalid", f"_since est une date AAAA-MM-JJ, pas « {value} »", "http._since") from None


async def _trail_patients(inv: Invocation) -> set[str] | None:
    """Whose trail the caller may see, as the AuditEvent search decides it (None: anyone's)."""
    security = request_security(inv)
    if security.role is Role.UNRESTRICTED:
        return None
    async with read_connection(inv.engine) as conn:
        await require_patient(conn, inv, inv.res_id)  # as a read of the Patient, or the patient at the counter
    if security.role is Role.PATIENT:
        security.guard.require("AuditEvent", "s")
        return await security.policy.acting_for()
    if security.role is Role.PAPER_AGENT:
        return {inv.res_id}
    raise FHIRError.of(403, "forbidden", "Le relevé des accès est remis au patient (ou à son représentant), "
                       "ou imprimé pour lui au guichet")


def _who(event: dict) -> str | None:
    return ((event.get("agent") or [{}])[0].get("who") or {}).get("reference")


def _recorded_role(event: dict) -> str | None:
    roles = (event.get("agent") or [{}])[0].get("role") or []
    return next((c.get("code") for r in roles for c in r.get("coding") or [] if c.get("system") == USER_ROLE), None)


def _codes(concepts: list) -> set[str]:
    return {c.get("code") for x in concepts or [] for c in (x.get("coding") or [])}


def _action(interaction: str | None, operation: str | None, who: Actor) -> tuple[Bilingual, bool]:
    """What was done, and whether the kind of record touched adds anything to it."""
    if operation in _PRINTS:
        counter = "_counter" if who.role == "role.paper-agent" else ""
        return text(f"action.{operation[1:]}{counter}"), operation == "$letter"
    if operation:
        known = TEXTS.get(f"action.{operation[1:]}")
        return (known, False) if known else (formatted("action.operation", operation=operation), True)
    return text(f"action.{_ACTIONS.get(interaction or '', 'read')}"), True


def _access(event: dict, people: dict) -> Access:
    who = people[(_who(event), _recorded_role(event))]
    subtype = [c.get("code") for c in event.get("subtype") or []]
    action, with_kind = _action(subtype[0] if subtype else None, subtype[1] if len(subtype) > 1 else None, who)
    # the record touched: the entity that is not the patient (a resource, or the searched type)
    entity = next((e for e in event.get("entity") or [] if (e.get("role") or {}).get("code") != "1"), {})
    what = entity.get("what") or {}
    res_type = (what.get("reference") or what.get("display") or "").split("/", 1)[0] or None
    purposes = _codes(event.get("purposeOfEvent"))
    emergency = BREAK_GLASS in purposes
    return Access(
        at=local(instant_us(event["recorded"]), timezone()),
        who=who,
        what=action,
        kind=kind(res_type) if with_kind else None,
        why="why.emergency" if emergency else "why.assisted" if ASSISTED in purposes else _WHY_BY_ROLE.get(who.role, "why.care"),
        refused=event.get("outcome", "0") != "0",
    )

"""AuditEvent builder in the style of IHE Basic Audit Log Patterns (BALP), FHIR R4B shape.

One event per patient whose data an interaction touched (``audit_events``), so that each
patient finds every access to their record by searching their own trail.  Events hold
references and codes only: no resource content, no diagnostics that could quote clinical data.
The public API is re-exported by ``ehr.security.audit``.
"""
from __future__ import annotations

import base64
from typing import Iterable

from ehr.security.principal import BreakGlassGrant, Principal
from ehr.store.clock import now_us, to_instant

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

SERVER_NAME = "Sijill FHIR server"

# restful-interaction code → AuditEvent.action (BALP: queries and operations are Execute).
ACTIONS = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "history": "R",
    "history-instance": "R",
    "history-type": "R",
    "history-system": "R",
    "capabilities": "R",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "search": "E",
    "search-type": "E",
    "search-system": "E",
    "search-compartment": "E",
    "operation": "E",
    "transaction": "E",
    "batch": "E",
}

_REST = {"system": EVENT_TYPE, "code": "rest", "display": "RESTful Operation"}
_BREAK_GLASS = {"system": ACT_REASON, "code": "BTG", "display": "break the glass"}
_PATIENT_ROLE = {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}


def outcome_for_status(status: int) -> str:
    """R4B AuditEvent.outcome: 0 success, 4 minor failure (client error), 8 serious failure."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def _coding(system: str, code: str, display: str) -> dict:
    return {"system": system, "code": code, "display": display}


def _user_agent(principal: Principal, action: str, address: str | None, break_glass: bool) -> dict:
    who: dict = {"identifier": {"value": principal.subject}}
    if principal.issuer:
        who["identifier"]["system"] = principal.issuer
    if principal.fhir_user:
        who["reference"] = principal.fhir_user
    # Readers receive information; writers author it (BALP user agent type).
    kind = ("IRCP", "information recipient") if action in ("R", "E") else ("AUT", "author")
    agent: dict = {
        "type": {"coding": [_coding(PARTICIPATION, *kind)]},
        "who": who,
        "requestor": True,
    }
    if principal.client_id:
        agent["altId"] = principal.client_id
    if principal.token_id:
        agent["policy"] = [principal.token_id]  # BALP: the token id ties the event to the grant
    if address:
        agent["network"] = {"address": address, "type": "2"}  # 2 = IP address
    if break_glass:
        agent["purposeOfUse"] = [{"coding": [_BREAK_GLASS]}]
    return agent


def _anonymous_agent(address: str | None, subject: str | None) -> dict:
    agent: dict = {
        "type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
        "who": {"identifier": {"value": subject or "anonymous"}},
        "requestor": True,
    }
    if address:
        agent["network"] = {"address": address, "type": "2"}
    return agent


def _server_agent() -> dict:
    return {
        "type": {"coding": [_coding(DCM, "110152", "Destination Role ID")]},
        "who": {"display": SERVER_NAME},
        "requestor": False,
    }


def _source(site: str | None) -> dict:
    source: dict = {"observer": {"display": SERVER_NAME}, "type": [_coding(SOURCE_TYPE, "4", "Application Server")]}
    if site:
        source["site"] = site
    return source


def patient_entity(patient: str) -> dict:
    return {
        "what": {"reference": patient},
        "type": _coding(ENTITY_TYPE, "1", "Person"),
        "role": _PATIENT_ROLE,
    }


def _data_entity(what: str | None, query: str | None) -> dict | None:
    if what is None and query is None:
        return None
    entity: dict = {"type": _coding(ENTITY_TYPE, "2", "System Object")}
    if query is not None:
        entity["role"] = _coding(OBJECT_ROLE, "24", "Query")
        entity["query"] = base64.b64encode(query.encode()).decode()
        if what:
            entity["what"] = {"display": what}  # the searched type or compartment
    else:
        entity["role"] = _coding(OBJECT_ROLE, "4", "Domain Resource")
        entity["what"] = {"reference": what}
    return entity


def audit_event(
    interaction: str,
    principal: Principal | None,
    *,
    status: int = 200,
    patient: str | None = None,
    what: str | None = None,
    query: str | None = None,
    operation: str | None = None,
    address: str | None = None,
    site: str | None = None,
    description: str | None = None,
    recorded_us: int | None = None,
) -> dict:
    """One BALP RESTful event.

    ``what``: the resource touched ("Observation/1/_history/2") or, with ``query``, the searched
    type; ``patient``: the one patient this event is about; ``operation``: "$everything" …;
    ``description``: a failure reason without clinical data.
    """
    if interaction not in ACTIONS:
        raise ValueError(f"unknown restful interaction {interaction!r}")
    action = ACTIONS[interaction]
    recorded = recorded_us if recorded_us is not None else now_us()
    break_glass = bool(principal and patient and principal.break_glass_for(patient, recorded))
    subtype = [_coding(INTERACTION, interaction, interaction)]
    if operation:
        subtype.append({"system": "urn:sijill:operation", "code": operation, "display": operation})
    event: dict = {
        "resourceType": "AuditEvent",
        "type": _REST,
        "subtype": subtype,
        "action": action,
        "recorded": to_instant(recorded),
        "outcome": outcome_for_status(status),
        "agent": [
            _user_agent(principal, action, address, break_glass) if principal else _anonymous_agent(address, None),
            _server_agent(),
        ],
        "source": _source(site),
    }
    if description and status >= 400:
        event["outcomeDesc"] = description
    if break_glass:
        event["purposeOfEvent"] = [{"coding": [_BREAK_GLASS]}]
    entities = [patient_entity(patient)] if patient else []
    data = _data_entity(what, query)
    if data:
        entities.append(data)
    if entities:
        event["entity"] = entities
    return event


def audit_events(interaction: str, principal: Principal | None, *, patients: Iterable[str] = (), **kwargs) -> list[dict]:
    """One event per distinct patient (or a single patient-less event): BALP's rule for queries."""
    distinct = list(dict.fromkeys(p for p in patients if p))
    if not distinct:
        return [audit_event(interaction, principal, **kwargs)]
    recorded = kwargs.pop("recorded_us", None) or now_us()
    return [audit_event(interaction, principal, patient=p, recorded_us=recorded, **kwargs) for p in distinct]


def login_failure_event(
    description: str, *, address: str | None = None, subject: str | None = None, site: str | None = None, recorded_us: int | None = None
) -> dict:
    """A rejected token or client authentication (DICOM User Authentication / Login, minor failure)."""
    return {
        "resourceType": "AuditEvent",
        "type": _coding(DCM, "110114", "User Authentication"),
        "subtype": [_coding(DCM, "110122", "Login")],
        "action": "E",
        "recorded": to_instant(recorded_us if recorded_us is not None else now_us()),
        "outcome": "4",
        "outcomeDesc": description,
        "agent": [_anonymous_agent(address, subject), _server_agent()],
        "source": _source(site),
    }


def break_glass_event(principal: Principal, grant: BreakGlassGrant, *, address: str | None = None, site: str | None = None) -> dict:
    """The moment emergency access is granted; later accesses carry purposeOfUse BTG too."""
    event = audit_event("operation", principal, patient=grant.patient, operation="$break-glass", address=address, site=site, recorded_us=grant.granted_at)
    if "purposeOfEvent" not in event:  # granted_at may precede the grant being attached to the principal
        event["purposeOfEvent"] = [{"coding": [_BREAK_GLASS]}]
        event["agent"][0]["purposeOfUse"] = [{"coding": [_BREAK_GLASS]}]
    event["entity"].append({"type": _coding(ENTITY_TYPE, "2", "System Object"), "what": {"display": "break-the-glass grant"}, "description": grant.reason[:1000]})
    return event


USER_ROLE = "https://fhir.sijill.ma/CodeSystem/user-role"  # agent.role: the user's Sijill role
ACCESS_PURPOSE = "https://fhir.sijill.ma/CodeSystem/access-purpose"
ASSISTED = "assisted"
_ASSISTED = [{"coding": [_coding(ACT_REASON, "PATADMIN", "patient administration"),
                         _coding(ACCESS_PURPOSE, ASSISTED, "at the counter, with the patient present")]}]


def assisted_access(event: dict) -> dict:
    """The event of a counter agent serving the patient in front of them (``$assist``): the
    patient's report says "at the counter, with the patient present", by the counter agent."""
    agent = event["agent"][0]
    agent["role"] = [{"coding": [{"system": USER_ROLE, "code": "paper-agent"}]}]
    agent["purposeOfUse"] = _ASSISTED
    event["purposeOfEvent"] = _ASSISTED
    return event


def event_patient(event: dict) -> str | None:
    """The patient an event is about (the entity whose role is Patient)."""
    for entity in event.get("entity", ()):
        role = entity.get("role") or {}
        if role.get("system") == OBJECT_ROLE and role.get("code") == "1":
            ref = (entity.get("what") or {}).get("reference")
            if isinstance(ref, str):
                return ref
    return None


# The retention purge states its anchor in these entity details, for ``verify`` to check.
ANCHOR_SEQ, ANCHOR_HASH = "anchor-seq", "anchor-hash"


def retention_purge_event(anchor_seq: int, anchor_hash_hex: str, deleted: int, cutoff_us: int) -> dict:
    """The purge, recorded in the chain it shortens (DICOM "Audit Log Used", action Delete)."""
    return {
        "resourceType": "AuditEvent",
        "type": _coding(DCM, "110101", "Audit Log Used"),
        "subtype": [_coding("urn:sijill:audit", "retention-purge", "retention purge")],
        "action": "D",
        "recorded": to_instant(now_us()),
        "outcome": "0",
        "agent": [{"who": {"display": "sijill audit purge"}, "requestor": True}, _server_agent()],
        "source": _source(None),
        "entity": [
            {
                "what": {"display": "audit_log"},
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "description": f"{deleted} events recorded before {to_instant(cutoff_us)} removed",
                "detail": [
                    {"type": ANCHOR_SEQ, "valueString": str(anchor_seq)},
                    {"type": ANCHOR_HASH, "valueString": anchor_hash_hex},
                ],
            }
        ],
    }


def purge_anchor(event: dict) -> tuple[int, str] | None:
    """(anchor seq, anchor hash hex) if ``event`` is a retention purge."""
    if event.get("type", {}).get("code") != "110101":
        return None
    for entity in event.get("entity", ()):
        details = {d.get("type"): d.get("valueString") for d in entity.get("detail", ())}
        if ANCHOR_SEQ in details and ANCHOR_HASH in details:
            return int(details[ANCHOR_SEQ]), details[ANCHOR_HASH]
    return None

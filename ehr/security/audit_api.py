"""The audit trail as FHIR ``AuditEvent``s, served straight from ``audit_log``.

``AuditEvent/<seq>`` is a primary-key lookup; ``AuditEvent?patient=…&date=…`` walks
``ix_audit_patient_seq`` newest first (keyset ``_cursor`` on seq) and filters ``recorded``.
There is no second copy of the trail, so no update or delete path: the events are returned as
hashed (their ``id`` is their sequence number).  A patient sees the events about themselves and
their dependants: "who saw my file, when, why".  ``AuditEvent`` ids that are not sequence numbers
are ordinary stored resources (imported from other systems) and go through the normal read.
Events still in the audit inbox are not here: the endpoint seals the inbox before a search
(``audit_sealer.seal_pending``), so a search sees every event committed before it.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr import bundle
from ehr.outcome import FHIRError
from ehr.parsing import bigint
from ehr.search.params import parse_date, prefixed
from ehr.security.tables import audit_log

# What the trail can be searched by without reading the events' JSON: the indexed columns
# (``patient_ref``, ``recorded``, ``seq``).  The CapabilityStatement declares exactly these.
DECLARED_PARAMS = ("_id", "date", "patient")
SEARCH_PARAMS = {*DECLARED_PARAMS, "_count", "_cursor", "_format", "_pretty", "_total"}


def _patient_id(value: str) -> str:
    value = value.strip()
    if "/" in value:
        head, _, pid = value.rstrip("/").rpartition("/")
        if not head.endswith("Patient"):
            raise FHIRError.of(400, "invalid", f"patient must reference a Patient, not {value!r}", "http.patient")
        return pid
    return value


def _date_clause(value: str) -> ColumnElement[bool]:
    prefix, rest = prefixed("date", value)
    low, high = parse_date("date", rest)
    col = audit_log.c.recorded
    return {
        "eq": and_(col >= low, col <= high),
        "ne": or_(col < low, col > high),
        "gt": col > high,
        "sa": col > high,
        "ge": col >= low,
        "lt": col < low,
        "eb": col < low,
        "le": col <= high,
    }.get(prefix, and_(col >= low, col <= high))


@dataclass
class TrailPage:
    body: bytes
    patients: list[str]  # "Patient/<id>" whose events were returned (the search's own audit)


async def read_event(conn: AsyncConnection, seq: int, allowed: set[str] | None) -> bytes | None:
    """The event, if it exists and concerns one of ``allowed`` patient ids (None: anyone)."""
    row = (await conn.execute(select(audit_log.c.event, audit_log.c.patient_ref).where(audit_log.c.seq == seq))).first()
    if row is None:
        return None
    if allowed is not None and (row.patient_ref is None or row.patient_ref.split("/", 1)[1] not in allowed):
        return None
    return bytes(row.event)


async def search_events(
    conn: AsyncConnection, params: list[tuple[str, str]], *, base_url: str, allowed: set[str] | None,
    default_count: int, max_count: int,
) -> TrailPage:
    for name, _ in params:
        if name not in SEARCH_PARAMS:
            raise FHIRError.of(
                400, "not-supported",
                f"Le journal d'audit se recherche par _id, patient et date, pas par {name}. "
                f"يُبحث في سجل التدقيق حسب _id والمريض والتاريخ، لا حسب {name}.",
                f"http.{name}",
            )
    wanted: set[str] | None = None
    cond: list[ColumnElement[bool]] = []
    count = default_count
    cursor: int | None = None
    for name, value in params:
        if name == "patient":
            ids = {_patient_id(v) for v in value.split(",") if v.strip()}
            wanted = ids if wanted is None else wanted & ids
        elif name == "date":
            cond.append(_date_clause(value))
        elif name == "_id":  # an id that is not a sequence number names no event of the trail
            seqs = [n for n in (bigint(v.strip()) for v in value.split(",")) if n is not None]
            cond.append(audit_log.c.seq.in_(seqs))
        elif name == "_count":
            asked = bigint(value)
            if asked is None:
                raise FHIRError.of(400, "invalid", "_count must be a non-negative integer", "http._count")
            count = min(asked, max_count)
        elif name == "_cursor":
            cursor = bigint(value)
            if cursor is None:
                raise FHIRError.of(400, "invalid", "Malformed _cursor", "http._cursor")
    if allowed is not None:
        wanted = set(allowed) if wanted is None else wanted & allowed
    if wanted is not None:
        cond.append(audit_log.c.patient_ref.in_(sorted(f"Patient/{p}" for p in wanted)) if wanted else audit_log.c.seq < 0)
    page = cond + ([audit_log.c.seq < cursor] if cursor is not None else [])
    rows = (
        await conn.execute(
            select(audit_log.c.seq, audit_log.c.event, audit_log.c.patient_ref)
            .where(and_(True, *page)).order_by(audit_log.c.seq.desc()).limit(count + 1)
        )
    ).all()
    total = None
    if cursor is None:
        total = len(rows) if len(rows) <= count else (
            await conn.execute(select(func.count()).select_from(audit_log).where(and_(True, *cond)))
        ).scalar_one()
    entries = [bundle.entry(f"{base_url}/AuditEvent/{seq}", bytes(event), search={"mode": "match"}) for seq, event, _ in rows[:count]]
    url = f"{base_url}/AuditEvent"
    keep = [(k, v) for k, v in params if k != "_cursor"]
    links = [("self", url + ("?" + urlencode(params) if params else ""))]
    if len(rows) > count and count:
        links.append(("next", url + "?" + urlencode(keep + [("_cursor", str(rows[count - 1][0]))])))
    patients = sorted({ref for _, _, ref in rows[:count] if ref})
    return TrailPage(bundle.bundle("searchset", entries, total=total, links=links), patients)

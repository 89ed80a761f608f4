"""Patient/$everything: the patient's compartment plus the resources it references.

The compartment comes from ``idx_compartment`` (filled at write time from the spec's
CompartmentDefinition), the referenced resources from ``idx_reference`` of the members the caller
sees (a hidden resource names nobody): one indexed query per page whatever the patient's size,
keyset-paged on rid.  Audited with the patients of every resource returned.

``start``/``end`` restrict by care date, not record date: a resource of a type with a clinical
date (its ``date`` search parameter, or the first of ``CARE_DATE_PARAMS`` it has) is kept when
one of its ``idx_date`` ranges overlaps [start, end]; resources of types without one (Coverage,
Practitioner, Medication...) are kept, and only what the kept members refer to is pulled in.
The Patient itself is always there.  ``_since`` (record date), ``_type`` and ``_count`` too.
"""
from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy import and_, func, or_, select

from ehr import bundle
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError, not_found
from ehr.parsing import bigint, is_resource_type
from ehr.rest.http import fhir_response
from ehr.search.access import AccessFilter
from ehr.search.criteria import current
from ehr.search.dates import MAX_US, MIN_US
from ehr.search.params import parse_date
from ehr.search.registry import get_registry
from ehr.security.roles import Role
from ehr.store import repository
from ehr.store.clock import parse_instant_bounds
from ehr.store.db import read_connection
from ehr.store.schema import idx_compartment, idx_date, idx_reference, resource

# The clinical date of a type, in order of preference, when it has no ``date`` parameter.
CARE_DATE_PARAMS = (
    "date", "authoredon", "authored", "onset-date", "recorded-date", "created", "effective", "effective-time",
    "whenhandedover", "occurrence", "issued", "collected", "period",
)


def _care_date_params() -> dict[str, int]:
    """Resource type -> hash of its clinical date parameter (types without one are absent)."""
    registry = get_registry()
    found = registry.cache.get("care-date-params")
    if found is None:
        found = {}
        for res_type in registry.resource_types:
            params = registry.for_type(res_type)
            code = next((c for c in CARE_DATE_PARAMS if c in params and params[c].type == "date"), None)
            if code is not None:
                found[res_type] = params[code].hash
        registry.cache["care-date-params"] = found
    return found


def _cared_for(rows, start: int, end: int):
    """``rows`` (a ``resource`` alias) of an undated type, or with a care date in [start, end]."""
    dated = _care_date_params()
    in_range = select(idx_date.c.rid).where(
        idx_date.c.param.in_(sorted(set(dated.values()))), idx_date.c.high >= start, idx_date.c.low <= end,
    )
    return or_(rows.c.res_type.not_in(sorted(dated)), rows.c.rid.in_(in_range))


def _members(patient_id: str, patient_rid: int, access: AccessFilter | None, care: tuple[int, int] | None):
    in_compartment = select(idx_compartment.c.rid).where(
        idx_compartment.c.comp_type == "Patient", idx_compartment.c.comp_id == patient_id
    )
    # Only what the caller sees refers: a Practitioner named by a hidden Condition alone stays out.
    source = resource.alias("source")
    visible_sources = select(source.c.rid).where(source.c.rid.in_(in_compartment), *current(source, access))
    if care is not None:
        visible_sources = visible_sources.where(_cared_for(source, *care))
    referenced = (
        select(resource.c.rid)
        .select_from(idx_reference.join(resource, and_(
            resource.c.res_type == idx_reference.c.target_type, resource.c.res_id == idx_reference.c.target_id
        )))
        .where(
            idx_reference.c.rid.in_(visible_sources.union(select(func.cast(patient_rid, resource.c.rid.type)))),
            idx_reference.c.target_type != "Patient",  # never pull other patients' records in
        )
    )
    members = or_(resource.c.rid.in_(in_compartment), resource.c.rid.in_(referenced))
    if care is not None:
        members = and_(members, _cared_for(resource, *care))
    return or_(resource.c.rid == patient_rid, members)


def _care_period(inv: Invocation) -> tuple[int, int] | None:
    """[start, end] in epoch µs from ``start``/``end`` (either may be absent), or None."""
    start, end = inv.first("start"), inv.first("end")
    if start is None and end is None:
        return None
    low = parse_date("start", str(start))[0] if start is not None else MIN_US
    high = parse_date("end", str(end))[1] if end is not None else MAX_US
    return low, high


@operation("everything", levels={"instance"}, types={"Patient"}, callers={Role.PATIENT, Role.DOCTOR}, definition="http://hl7.org/fhir/OperationDefinition/Patient-everything")
async def everything(inv: Invocation):
    s = inv.settings
    count_param = inv.first("_count")
    count = bigint(str(count_param)) if count_param is not None else s.max_page_size
    if count is None:
        raise FHIRError.of(400, "invalid", "_count must be a non-negative integer", "http._count")
    count = min(count, s.max_page_size)
    cond = [resource.c.deleted.is_(False)]
    if (since := inv.first("_since")) is not None:
        try:
            cond.append(resource.c.last_updated >= parse_instant_bounds(str(since))[0])
        except ValueError as exc:
            raise FHIRError.of(400, "invalid", f"_since: {exc}", "http._since") from None
    types = [t for v in inv.all("_type") for t in str(v).split(",") if t]
    for t in types:
        if not is_resource_type(t):
            raise FHIRError.of(400, "invalid", f"Unknown resource type {t!r} in _type", "http._type")
    if types:
        cond.append(resource.c.res_type.in_(types))
    care = _care_period(inv)
    if inv.access is not None and (clause := inv.access.clause(resource)) is not None:
        cond.append(clause)
    cursor_param = inv.first("_cursor")
    cursor = bigint(str(cursor_param)) if cursor_param is not None else None
    if cursor_param is not None and cursor is None:
        raise FHIRError.of(400, "invalid", "Malformed _cursor", "http._cursor")
    async with read_connection(inv.engine) as conn:
        patient = await repository.current(conn, "Patient", inv.res_id, access=inv.access)
        if patient is None or patient.deleted:
            raise not_found("Patient", inv.res_id)
        cond.append(_members(inv.res_id, patient.rid, inv.access, care))
        page = cond + ([resource.c.rid > cursor] if cursor is not None else [])
        rows = (
            await conn.execute(
                select(resource.c.rid, resource.c.res_type, resource.c.res_id, resource.c.content)
                .where(*page).order_by(resource.c.rid).limit(count + 1)
            )
        ).all()
        total = None
        if cursor is None:
            total = (await conn.execute(select(func.count()).select_from(resource).where(*cond))).scalar_one()
    entries = [
        bundle.entry(f"{s.base_url}/{t}/{i}", content, search={"mode": "match"}) for _, t, i, content in rows[:count]
    ]
    inv.returning(rids=[rid for rid, *_ in rows[:count]])
    self_url = f"{s.base_url}/Patient/{inv.res_id}/$everything"
    keep = [(k, str(v)) for k, v in inv.params if k != "_cursor" and isinstance(v, (str, int))]
    links = [("self", self_url + ("?" + urlencode(keep) if keep else ""))]
    if len(rows) > count and count:
        links.append(("next", self_url + "?" + urlencode(keep + [("_cursor", str(rows[count - 1][0]))])))
    return fhir_response(bundle.bundle("searchset", entries, total=total, links=links))

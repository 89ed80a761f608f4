"""Patient/$everything: the patient's compartment plus the resources it references.

The compartment comes from ``idx_compartment`` (filled at write time from the spec's
CompartmentDefinition), the referenced resources from ``idx_reference`` of the members the caller
sees (a hidden resource names nobody): one indexed query per page whatever the patient's size,
keyset-paged on rid.  Audited with the patients of every resource returned.
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
from ehr.security.roles import Role
from ehr.store import repository
from ehr.store.clock import parse_instant_bounds
from ehr.store.db import read_connection
from ehr.store.schema import idx_compartment, idx_reference, resource


def _members(patient_id: str, patient_rid: int, access: AccessFilter | None):
    in_compartment = select(idx_compartment.c.rid).where(
        idx_compartment.c.comp_type == "Patient", idx_compartment.c.comp_id == patient_id
    )
    # Only what the caller sees refers: a Practitioner named by a hidden Condition alone stays out.
    source = resource.alias("source")
    visible_sources = select(source.c.rid).where(source.c.rid.in_(in_compartment), *current(source, access))
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
    return or_(resource.c.rid == patient_rid, resource.c.rid.in_(in_compartment), resource.c.rid.in_(referenced))


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
        cond.append(_members(inv.res_id, patient.rid, inv.access))
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

"""Indexed reads of the store the exchange needs, each one query for a whole batch.

They read the store's own tables (``resource``, ``idx_compartment``, ``idx_token``) rather than
go through FHIR search: a batch of claims costs the same handful of queries whatever its size.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import orjson
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from claims.uris import FUND, INPE
from ehr.search.registry import param_hash
from ehr.store.schema import idx_compartment, idx_token, resource


async def resources_by_id(conn: AsyncConnection, refs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Current, non-deleted resources by (type, id)."""
    by_type: dict[str, set[str]] = defaultdict(set)
    for t, i in refs:
        by_type[t].add(i)
    if not by_type:
        return {}
    cond = or_(*(and_(resource.c.res_type == t, resource.c.res_id.in_(sorted(ids))) for t, ids in by_type.items()))
    rows = await conn.execute(
        select(resource.c.res_type, resource.c.res_id, resource.c.content).where(cond, resource.c.deleted.is_(False))
    )
    return {(t, i): orjson.loads(c) for t, i, c in rows if c}


async def patient_records(
    conn: AsyncConnection, patient_ids: Iterable[str], types: Iterable[str]
) -> dict[str, list[dict]]:
    """The patients' resources of ``types`` from the Patient compartment index, by patient id."""
    ids = sorted(set(patient_ids))
    out: dict[str, list[dict]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = await conn.execute(
        select(idx_compartment.c.comp_id, resource.c.content)
        .select_from(idx_compartment.join(resource, resource.c.rid == idx_compartment.c.rid))
        .where(
            idx_compartment.c.comp_type == "Patient",
            idx_compartment.c.comp_id.in_(ids),
            resource.c.res_type.in_(sorted(set(types))),
            resource.c.deleted.is_(False),
        )
    )
    for pid, content in rows:
        if content:
            out[pid].append(orjson.loads(content))
    return out


_IDENTIFIER_PARAMS = {t: param_hash(t, "identifier") for t in ("Practitioner", "Organization", "PractitionerRole", "Patient")}


async def patients_by_identifier(conn: AsyncConnection, system: str, value: str) -> list[str]:
    """Ids of the current Patients carrying this identifier (CIN, RNP, insurance number)."""
    rows = await conn.execute(
        select(resource.c.res_id).select_from(idx_token.join(resource, resource.c.rid == idx_token.c.rid)).where(
            idx_token.c.param == _IDENTIFIER_PARAMS["Patient"], idx_token.c.system == system, idx_token.c.code == value,
            resource.c.res_type == "Patient", resource.c.deleted.is_(False),
        )
    )
    return sorted(set(rows.scalars()))


async def providers_by_inpe(conn: AsyncConnection, inpes: Iterable[str]) -> dict[str, dict]:
    """Practitioners and Organizations carrying each INPE (a registered provider), by INPE."""
    values = sorted({v for v in inpes if v})
    if not values:
        return {}
    rows = await conn.execute(
        select(idx_token.c.code, resource.c.res_type, resource.c.content)
        .select_from(idx_token.join(resource, resource.c.rid == idx_token.c.rid))
        .where(
            idx_token.c.param.in_([_IDENTIFIER_PARAMS["Practitioner"], _IDENTIFIER_PARAMS["Organization"]]),
            idx_token.c.code.in_(values),
            idx_token.c.system == INPE,
            resource.c.deleted.is_(False),
        )
    )
    found: dict[str, dict] = {}
    for code, _t, content in rows:
        res = orjson.loads(content)
        # An active registration wins over an inactive one for the same number.
        if code not in found or (res.get("active") is not False and found[code].get("active") is False):
            found[code] = res
    return found


def identifier_value(res: dict, system: str) -> str | None:
    for ident in res.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == system and isinstance(ident.get("value"), str):
            return ident["value"]
    return None


def fund_code(org: dict | None, org_id: str) -> str:
    """A fund's code: its ``sid/fund`` identifier (CNSS, CNOPS…), else its id."""
    code = identifier_value(org, FUND) if org else None
    return (code or org_id).upper()

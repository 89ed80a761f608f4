"""Referential integrity for patients: what a caller writes about a patient names one that exists.

A written version is in the Patient compartment of every patient it refers to (subject, patient,
beneficiary, sender, recipient...): a compartment row whose patient is not a current Patient is
a reference to nobody.  Inside a Bundle the check runs after every entry is written, so an entry
referring to a Patient created by another entry of the same Bundle is fine.
"""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.store.schema import idx_compartment, resource


async def patients_of(conn: AsyncConnection, rids: list[int]) -> dict[int, dict[str, bool]]:
    """rid -> {id of each patient it refers to: whether that Patient exists (current, not deleted)}."""
    c, p = idx_compartment, resource.alias("pat")
    known = exists().where(and_(p.c.res_type == "Patient", p.c.res_id == c.c.comp_id, ~p.c.deleted))
    stmt = select(c.c.rid, c.c.comp_id, known.label("known")).where(c.c.rid.in_(rids), c.c.comp_type == "Patient")
    found: dict[int, dict[str, bool]] = {}
    for rid, pid, is_known in (await conn.execute(stmt)).all():
        found.setdefault(rid, {})[pid] = bool(is_known)
    return found


def reference_path(value: Any, patient_id: str, path: str = "") -> str | None:
    """The FHIRPath (relative to the resource: ``subject``, ``recipient[1]``) of the first
    reference to ``Patient/<patient_id>`` in ``value``, or None."""
    target = re.compile(rf"(?:^|/)Patient/{re.escape(patient_id)}(?:/_history/[^/]+)?$")
    return _find(value, target, path)


def _find(value: Any, target: re.Pattern, path: str) -> str | None:
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and target.search(ref):
            return path
        for key, item in value.items():
            if key in ("resourceType", "id", "meta", "text", "contained"):
                continue
            found = _find(item, target, f"{path}.{key}" if path else key)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _find(item, target, f"{path}[{i}]")
            if found is not None:
                return found
    return None

"""Write-side enforcement for one request, called by the interactions through ``Context.guard``.

* ``require``: the role ceiling narrowed by the token's scopes, per type and interaction (403:
  it depends on the type only, so it tells nothing about any resource's existence).
* ``check_write``: what no caller may write (the audit trail's ids) and, for restricted callers,
  Consents the policy could not enforce.
* ``wrote``: records who entered each version (``entered_by``); for a paper-channel agent also a
  ``Provenance`` saying the record was entered on the patient's behalf.
* ``check_prior`` / ``refused``: the write rules (``ehr.security.write_rules``) on the version
  an update, patch or delete replaces (before it is replaced) and on each version written (after
  its index rows are there, inside the same transaction), then the patients it refers to must
  exist (``ehr.security.referential``, 422).  A refusal is 403 ``forbidden`` whether or not the
  patient exists: a patient you may not write to answers as one who is not there.
* ``may_choose_id``: only the unrestricted caller (and an admin, for reference data) creates
  with an id of its choosing (update-as-create).

Rows a caller may not see are handled by the interactions themselves: they read through the
policy, so an invisible resource is absent (404, a PUT refused as on a missing id, or the no-op
of deleting what does not exist).
"""
from __future__ import annotations

import uuid

from functools import cached_property

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ehr.hooks import refuse_rewrite
from ehr.interactions.context import Refusal
from ehr.outcome import FHIRError
from ehr.search.indexer import extract
from ehr.security.consent import check_enforceable
from ehr.security.policy import AccessPolicy
from ehr.security.referential import patients_of, reference_path
from ehr.security.roles import REFERENCE_TYPES, Role
from ehr.security.tables import entered_by
from ehr.security.write_rules import WritePolicy, Written
from ehr.store import repository
from ehr.store.clock import now_us, to_instant
from ehr.store.schema import resource

PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PAPER_CHANNEL = "https://fhir.sijill.ma/CodeSystem/entry-channel"
_ACTIVITY = {"POST": "CREATE", "PUT": "UPDATE", "PATCH": "UPDATE", "DELETE": "DELETE"}


def reserved_audit_id(res_type: str, res_id: str | None) -> bool:
    """``AuditEvent/<digits>`` are the server's own trail (served from the audit log)."""
    return res_type == "AuditEvent" and res_id is not None and res_id.isdigit()


class RequestGuard:
    def __init__(self, policy: AccessPolicy, identities=None):
        self.policy = policy
        self.principal = policy.principal
        self.identities = identities  # IdentityDirectory: its cached sets follow what is written
        # What this request's checks learnt: compartments of replaced versions (kept by an update
        # that passed the check on the old content), rows it replaced, rows it created or moved.
        self._kept: set[str] = set()
        self._replaced: set[int] = set()
        self._fresh: set[int] = set()

    @cached_property
    def writes(self) -> WritePolicy:
        return WritePolicy(self.policy)

    @property
    def restricted(self) -> bool:
        return not self.policy.unrestricted

    def require(self, res_type: str, interaction: str) -> None:
        if self.restricted:
            self.principal.require(res_type, interaction)
            if interaction in ("u", "d"):
                refuse_rewrite(res_type)  # 405: a submitted care sheet is corrected by a new one

    def check_write(self, res_type: str, res_id: str | None, res: dict | None) -> None:
        if reserved_audit_id(res_type, res_id):
            raise FHIRError.of(
                422, "business-rule", "AuditEvent ids made of digits belong to the server's audit trail", "AuditEvent.id"
            )
        if self.restricted and res_type == "Consent" and res is not None:
            check_enforceable(res)

    async def wrote(self, ctx, stored, res: dict | None, method: str) -> None:
        if self.identities is not None:
            if stored.res_type == "Consent":  # whoever wrote it: every cached consent set is stale
                self.identities.consents_changed()
            self.identities.forget(self.principal)  # a relationship they just recorded counts at once
        if not self.restricted:
            return
        await self._entered(ctx.conn, [stored.rid])
        if self.principal.role is Role.PAPER_AGENT:
            await self._provenance(ctx, stored, res, method)

    def may_choose_id(self, res_type: str) -> bool:
        return not self.restricted or (self.principal.role is Role.ADMIN and res_type in REFERENCE_TYPES)

    async def check_prior(self, ctx, priors: list) -> Refusal | None:
        """The first of the versions about to be replaced the caller may not write (old content)."""
        live = [s for s in priors if s is not None and not s.deleted]
        if not live or not self.restricted:
            return None
        rids = sorted({s.rid for s in live})
        patients = await patients_of(ctx.conn, rids)
        inside = await self._inside(ctx, rids, Written(fresh=frozenset(self._fresh)))
        for s in live:
            if s.rid not in inside:
                return Refusal(s, 403, "forbidden", f"{s.res_type}/{s.res_id} is in records you may not write to: it can be neither changed nor moved")
        for rid in rids:
            self._replaced.add(rid)
            self._kept.update(f"{rid}|{pid}" for pid in patients.get(rid, ()))
        return None

    async def refused(self, ctx, written: list) -> Refusal | None:
        """The first written version the caller may not write there, or that names no patient."""
        live = [s for s in written if not s.deleted]
        if not live or not self.restricted:
            return None
        rids = sorted({s.rid for s in live})
        patients = await patients_of(ctx.conn, rids)
        for rid in rids:  # new, or moved into another record: vouches for no beneficiary
            if rid not in self._replaced or any(f"{rid}|{pid}" not in self._kept for pid in patients.get(rid, ())):
                self._fresh.add(rid)
        inside = await self._inside(ctx, rids, Written(frozenset(self._kept), frozenset(self._fresh)))
        for s in live:
            if s.rid not in inside:
                return Refusal(s, 403, "forbidden", f"{s.res_type}/{s.res_id} would be outside the records you may write to")
        for s in live:
            unknown = [pid for pid, known in patients.get(s.rid, {}).items() if not known]
            if unknown:
                return Refusal(s, 422, "not-found", f"Patient/{unknown[0]} is not known: {s.res_type} must refer to an existing patient",
                               reference_path(s.resource(), unknown[0]))
        return None

    async def _inside(self, ctx, rids: list[int], written: Written) -> set[int]:
        rule = self.writes.clause(resource, written)
        stmt = select(resource.c.rid).where(resource.c.rid.in_(rids))
        return set((await ctx.conn.execute(stmt if rule is None else stmt.where(rule))).scalars())

    async def _entered(self, conn, rids: list[int]) -> None:
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        at = now_us()
        stmt = dialect_insert(entered_by).on_conflict_do_nothing(index_elements=["agent", "rid"])
        await conn.execute(stmt, [{"agent": self.policy.agent, "rid": rid, "entered_at": at} for rid in rids])

    async def _provenance(self, ctx, stored, res: dict | None, method: str) -> None:
        """Recorded as such: who entered this version at the counter, for which patient."""
        patients = sorted({row["comp_id"] for row in extract(res).get("compartment", []) if row["comp_type"] == "Patient"}) if res else []
        agent: dict = {
            "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "enterer", "display": "Enterer"}]},
            "who": {"reference": self.principal.fhir_user} if self.principal.fhir_user else {"display": self.principal.subject},
        }
        if patients:
            agent["onBehalfOf"] = {"reference": f"Patient/{patients[0]}"}
        provenance = {
            "resourceType": "Provenance",
            "target": [{"reference": f"{stored.res_type}/{stored.res_id}/_history/{stored.version_id}"}],
            "recorded": to_instant(stored.last_updated),
            "activity": {"coding": [{"system": DATA_OPERATION, "code": _ACTIVITY.get(method, "UPDATE")}]},
            "reason": [{"coding": [{"system": ACT_REASON, "code": "PATADMIN", "display": "patient administration"}]}],
            "policy": [f"{PAPER_CHANNEL}#paper"],
            "agent": [agent],
        }
        written = await repository.write(
            ctx.conn, "Provenance", str(uuid.uuid4()), provenance, method="POST", prior=None, index_later=ctx.pending_index
        )
        await self._entered(ctx.conn, [written.rid])

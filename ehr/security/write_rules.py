"""What a restricted caller may write: one SQL condition on a written (or overwritten) row.

Writes mirror reads.  The condition is checked on the index rows of each version a caller
writes, inside the write's transaction (a refusal rolls the whole request or Bundle back), and
on the version an update, patch or delete replaces, before it is replaced: nothing moves into or
out of a record the caller may not write to.  It has two parts.

* **Whose records** — every Patient compartment the row is in must be one the caller may write
  to (a compartment the replaced version was already in, and that passed the same check then,
  counts as kept):

  - doctor: patients in their care, or whose Consent permits them, or under a running
    break-the-glass grant; never a patient whose Consent denies them (unless the glass is
    broken).  Not "what they entered", not their own Practitioner compartment: writing is no
    way to open a record;
  - patient: their own record and their dependants' (and the row must be in one of them);
  - pharmacist: the patients of prescriptions presented to them;
  - insurer: the fund's beneficiaries, as vouched for by a Coverage of the fund that this request
    did not itself create or move (an agent cannot make a citizen a beneficiary by writing a
    Coverage: only the fund's registry feed — a system client of the fund — brings new
    beneficiaries in);
  - paper-channel agent: any patient (they enter paper sheets for whoever comes to the counter);
  - admin: none (reference data only).

  A doctor writes no row carrying a security label a patient's Consent hides from them (unless
  the glass is broken for that patient): what they could not read, they do not write.

  ``patient/`` scopes held outside the patient role confine the types they grant to the launch
  patient, as for reads.  A row in no Patient compartment follows the role table only.

* **As whom** — who the row says wrote it must be the caller:

  - insurer: ClaimResponse / ExplanationOfBenefit / CoverageEligibilityResponse ``insurer``,
    PaymentReconciliation ``paymentIssuer``, every Coverage ``payor`` is their fund; the Claim a
    ClaimResponse (or EOB) answers and the request an eligibility response answers are the fund's;
    a PaymentNotice notifies a payment of the fund; Communications (Requests) are sent (requested)
    by the agent or the fund;
  - pharmacist: their Claims and eligibility requests name them or their pharmacy as provider or
    enterer, their dispenses as performer;
  - doctor: their Claims name them as provider or enterer, their prescriptions as requester;
  - patient: a Communication they send is sent by them (or a dependant), or says no sender.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

from sqlalchemy import ColumnElement, FromClause

from ehr.search.registry import get_registry, param_hash as H
from ehr.security import rules
from ehr.security.policy import AccessPolicy, launch_confined_types
from ehr.security.roles import Role
from ehr.security.sqltext import OUTER, Q, Row, literal, probe_int, probe_str

IdCondition = Callable[[str], str]


@dataclass(frozen=True)
class Written:
    """What a check knows about the request's writes so far."""

    kept: frozenset[str] = frozenset()  # "<rid>|<patient id>": compartments the replaced version was in
    fresh: frozenset[int] = frozenset()  # rows this request created or moved into another record


class WritePolicy:
    def __init__(self, policy: AccessPolicy):
        self.policy = policy
        self.principal = policy.principal
        self.identity = policy.identity

    def clause(self, row: FromClause, written: Written) -> ColumnElement[bool] | None:
        """The condition a written ``row`` must meet; None for the unrestricted caller."""
        if self.policy.unrestricted:
            return None
        q = Q()
        return q.fragment(row, self.sql(q, OUTER, written))

    def sql(self, q: Q, row: Row, written: Written) -> str:
        conditions = [self._whose(q, row, written)]
        if self.principal.role is Role.DOCTOR:  # a label a Consent hides from them is not theirs to write either
            glass = self.identity.glass_patients(self.policy.now_us)
            labels = frozenset(h for h in self.identity.hidden if h.split("|", 1)[0] not in glass)
            conditions.append(f"NOT {rules.hidden(q, row, labels)}")
        forged = _AS_WHOM.get(self.principal.role)
        if forged is not None:
            conditions.extend(f"(NOT {row.res_type} = {literal(t)} OR {cond})" for t, cond in forged(self, q, row).items())
        return _all(*conditions)

    # -- whose records ----------------------------------------------------------------------------
    def _whose(self, q: Q, row: Row, written: Written) -> str:
        writable = self._writable(q, row, written)
        patient_role = self.principal.role is Role.PATIENT  # (their own patient/ scopes cover their dependants)
        confined = frozenset() if patient_role else launch_confined_types(self.principal.role, self.principal.scopes)
        if confined:
            launch = self.principal.patient_context
            launch_id = launch.split("/", 1)[1] if launch else None
            in_type = rules.type_in(row, confined, get_registry().resource_types)

            def narrowed(col: str, inner: IdCondition = writable) -> str:
                in_launch = f"{col} = {q.bind(launch_id)}" if launch_id else "1 = 0"
                return f"({inner(col)} AND (NOT {in_type} OR {in_launch}))"

            writable = narrowed
        c = q.alias("cmp")
        pair = f"(CAST({c}.rid AS VARCHAR(20)) || '|' || {c}.comp_id)"
        kept = q.one_of(pair, written.kept)
        outside = (f"NOT EXISTS (SELECT 1 FROM idx_compartment {c} WHERE {c}.rid = {row.rid}"
                   f" AND {probe_str(c + '.comp_type')} = 'Patient' AND NOT ({writable(c + '.comp_id')}) AND NOT ({kept}))")
        if patient_role:  # what a patient writes concerns a patient: them
            return f"({outside} AND {rules.in_patient_compartment(q, row, lambda col: '1 = 1')})"
        return outside

    def _writable(self, q: Q, row: Row, written: Written) -> IdCondition:
        role = self.principal.role
        ident = self.identity
        if role is Role.PAPER_AGENT:
            return lambda col: "1 = 1"
        if role is Role.DOCTOR:
            glass = ident.glass_patients(self.policy.now_us)
            allowed = sorted(((ident.care | ident.permitted) - ident.denied) | glass)
            return lambda col: q.one_of(col, allowed)
        if role is Role.PATIENT:
            mine = sorted(ident.mine)
            return lambda col: q.one_of(col, mine)
        if role is Role.PHARMACIST:
            _, patients = ident.presented_now(self.policy.now_us)
            return lambda col: q.one_of(col, sorted(patients))
        if role is Role.INSURER:
            beneficiary = self._beneficiary(q, written)
            if self.principal.is_system:  # the fund's registry feed brings new beneficiaries in
                return lambda col: f"({row.res_type} = 'Coverage' OR {beneficiary(col)})"
            return beneficiary
        return lambda col: "1 = 0"

    def _beneficiary(self, q: Q, written: Written) -> IdCondition:
        """A beneficiary of one of the fund's Coverages this request did not create or move."""
        cov, payor = q.alias("ref"), q.alias("ref")
        fresh = q.one_of(f"{cov}.rid", sorted(written.fresh))
        return lambda col: (
            f"EXISTS (SELECT 1 FROM idx_reference {cov} WHERE {cov}.param = {H('Coverage', 'beneficiary')}"
            f" AND {cov}.target_type = 'Patient' AND {cov}.target_id = {col} AND NOT ({fresh})"
            f" AND EXISTS (SELECT 1 FROM idx_reference {payor} WHERE {payor}.rid = {cov}.rid"
            f" AND {probe_int(payor + '.param')} = {H('Coverage', 'payor')} AND {rules.refs_match(q, payor, self._fund, probing=True)}))"
        )

    # -- as whom ------------------------------------------------------------------------------------
    @cached_property
    def _fund(self) -> list[tuple[str, str]]:
        if not self.principal.fund:
            return []
        res_type, _, res_id = self.principal.fund.partition("/")
        return [(res_type, res_id)]

    def _names(self, q: Q, row: Row, res_type: str, codes: tuple[str, ...], refs) -> str:
        return rules.references(q, row, [H(res_type, c) for c in codes], refs)

    def _says_nothing(self, q: Q, row: Row, res_type: str, code: str) -> str:
        r = q.alias("ref")
        return f"NOT EXISTS (SELECT 1 FROM idx_reference {r} WHERE {r}.rid = {row.rid} AND {probe_int(r + '.param')} = {H(res_type, code)})"

    def _only(self, q: Q, row: Row, res_type: str, code: str, refs) -> str:
        """Every ``code`` reference of the row is one of ``refs`` (and there is one)."""
        r = q.alias("ref")
        other = (f"EXISTS (SELECT 1 FROM idx_reference {r} WHERE {r}.rid = {row.rid} AND {probe_int(r + '.param')} = {H(res_type, code)}"
                 f" AND NOT {rules.refs_match(q, r, refs, probing=True)})")
        return _all(self._names(q, row, res_type, (code,), refs), f"NOT {other}")

    def _answers_fund(self, q: Q, row: Row, res_type: str, code: str, target: str) -> str:
        """The row's ``code`` reference is a ``target`` of the fund (its ``insurer``)."""
        return rules.references_where(q, row, [H(res_type, code)], target,
                                      lambda t: rules.references(q, t, [H(target, "insurer")], self._fund))

    def _insurer(self, q: Q, row: Row) -> dict[str, str]:
        fund, me = self._fund, self.identity.refs
        eob_claim = _any(self._says_nothing(q, row, "ExplanationOfBenefit", "claim"),
                         self._answers_fund(q, row, "ExplanationOfBenefit", "claim", "Claim"))
        return {
            "ClaimResponse": _all(self._only(q, row, "ClaimResponse", "insurer", fund),
                                  self._answers_fund(q, row, "ClaimResponse", "request", "Claim")),
            "ExplanationOfBenefit": _all(self._only(q, row, "ExplanationOfBenefit", "insurer", fund), eob_claim),
            "CoverageEligibilityResponse": _all(
                self._only(q, row, "CoverageEligibilityResponse", "insurer", fund),
                self._answers_fund(q, row, "CoverageEligibilityResponse", "request", "CoverageEligibilityRequest")),
            "PaymentReconciliation": self._only(q, row, "PaymentReconciliation", "payment-issuer", fund),
            "PaymentNotice": rules.references_where(
                q, row, [H("PaymentNotice", "payment")], "PaymentReconciliation",
                lambda t: rules.references(q, t, [H("PaymentReconciliation", "payment-issuer")], fund)),
            "Coverage": self._only(q, row, "Coverage", "payor", fund),
            "Communication": self._only(q, row, "Communication", "sender", me),
            "CommunicationRequest": _any(self._only(q, row, "CommunicationRequest", "sender", me),
                                         self._only(q, row, "CommunicationRequest", "requester", me)),
        }

    def _pharmacist(self, q: Q, row: Row) -> dict[str, str]:
        me = self.identity.refs
        presented, _ = self.identity.presented_now(self.policy.now_us)
        return {
            "Claim": self._names(q, row, "Claim", ("provider", "enterer"), me),
            "CoverageEligibilityRequest": self._names(q, row, "CoverageEligibilityRequest", ("provider", "enterer"), me),
            "MedicationDispense": self._names(q, row, "MedicationDispense", ("performer",), me),
            # a message to the prescriber about a presented prescription line, sent as themselves
            "Communication": _all(self._only(q, row, "Communication", "sender", me),
                                  rules.references_where(q, row, [H("Communication", "based-on")], "MedicationRequest",
                                                         lambda t: q.one_of(t.rid, sorted(presented)))),
        }

    def _doctor(self, q: Q, row: Row) -> dict[str, str]:
        me = self.identity.refs
        return {
            "Claim": self._names(q, row, "Claim", ("provider", "enterer"), me),
            "MedicationRequest": self._only(q, row, "MedicationRequest", "requester", me),
            "Communication": self._only(q, row, "Communication", "sender", me),
        }

    def _patient(self, q: Q, row: Row) -> dict[str, str]:
        senders = {("Patient", p) for p in self.identity.mine} | ({self.identity.own} if self.identity.own else set())
        return {"Communication": _any(self._says_nothing(q, row, "Communication", "sender"), self._only(q, row, "Communication", "sender", senders))}


def _all(*conditions: str) -> str:
    return "(" + " AND ".join(conditions) + ")"


def _any(*conditions: str) -> str:
    return "(" + " OR ".join(conditions) + ")"


_AS_WHOM: dict[Role, Callable[[WritePolicy, Q, Row], dict[str, str]]] = {
    Role.INSURER: WritePolicy._insurer,
    Role.PHARMACIST: WritePolicy._pharmacist,
    Role.DOCTOR: WritePolicy._doctor,
    Role.PATIENT: WritePolicy._patient,
}

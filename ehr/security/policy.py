"""The caller's row-level access policy, as one SQL condition the query engine ANDs everywhere.

``AccessPolicy.clause(row)`` is the ``AccessFilter`` of ``ehr.search.access``: the search engine
applies it to matches, totals, includes, revincludes, chains and ``_has``; the repository to
reads, vreads and the rows a write may touch; history to ``resource_version`` rows; and
``$everything`` to the compartment it returns.  A resource the condition rejects does not
exist for the caller: reads answer 404, searches neither return nor count it.

The condition is an OR of branches, each limited to the types the role may read narrowed by
the token's scopes (``Principal.allows(type, "r")``):

* reference data (directories, terminology, conformance): everyone who may read the type;
* patient: their compartment and their dependants' (``Patient.link`` -> ``RelatedPerson`` of a
  guardian), minus labels a dependant's Consent hides; the PaymentNotices reimbursing them;
* doctor: compartments of patients with a care relationship (Encounter participant, CareTeam
  member, EpisodeOfCare care manager, not void, not ended before the care window) or a Consent
  that permits them; their own Practitioner compartment; what they entered; never a patient
  whose Consent denies them; never a security label a Consent hides from them; any patient
  they hold an active break-the-glass grant for (which overrides denies and labels); the
  payments made to them or their organisation (a PaymentReconciliation's ``requestor`` or a
  line's ``payee``, and those payments' PaymentNotices);
* pharmacist: prescriptions presented to them (by number, recorded), those patients and
  coverages, the dispenses, claims and eligibility exchanges they are party to, and the
  payments made to them or their pharmacy (as doctors);
* insurer: their fund's claims, responses, coverages, eligibility, EOBs, payments, claim
  attachments, communications and beneficiaries;
* paper-channel agent: what they entered;
* admin: reference data only;
and everyone may read what they entered and a Binary whose ``securityContext`` they may read.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import Callable

from sqlalchemy import ColumnElement, FromClause

from ehr.search.registry import get_registry, param_hash as H
from ehr.security import rules
from ehr.security.identity import Identity, ref_text  # noqa: F401  (ref_text: re-exported)
from ehr.security.prescription_number import SYSTEM as PRESCRIPTION_SYSTEM
from ehr.security.principal import Principal
from ehr.security.roles import REFERENCE_TYPES, Role
from ehr.security.scopes import ScopeSet
from ehr.security.sqltext import OUTER, Q, Row, literal, probe_int, probe_str

_MR_GROUP = H("MedicationRequest", "group-identifier")  # the prescription number
_MR_SUBJECT = H("MedicationRequest", "subject")
_BINARY_CONTEXT = H("Binary", "security-context")


@lru_cache(maxsize=256)
def permitted_types(role: Role, scopes: ScopeSet, interaction: str) -> frozenset[str]:
    """Types the role and the scopes both allow for ``interaction``."""
    probe = Principal(subject="-", role=role, scopes=scopes)
    return frozenset(t for t in get_registry().resource_types if probe.allows(t, interaction))


@lru_cache(maxsize=256)
def launch_confined_types(role: Role, scopes: ScopeSet) -> frozenset[str]:
    """Clinical types only patient/ scopes grant: limited to the launch patient's compartment."""
    return frozenset(t for t in permitted_types(role, scopes, "r") - REFERENCE_TYPES if scopes.patient_only(t, "r"))


def agent_key(principal: Principal) -> str:
    """Who "entered" a resource: the fhirUser, else the token subject."""
    return principal.fhir_user or f"sub:{principal.subject}"


def _any(parts: list[str]) -> str:
    kept = [p for p in parts if p]
    return "(" + " OR ".join(kept) + ")" if kept else "1 = 0"


@dataclass
class AccessPolicy:
    principal: Principal
    identity: Identity
    now_us: int
    # The prescription number presented in this request (pharmacist looking it up).
    presented_numbers: tuple[str, ...] = ()
    # Whether Binary rows can be in this request's results: their rule (the securityContext's
    # own visibility) doubles the condition, so requests that cannot return one leave it out —
    # which can only hide a Binary, never show one.
    binaries: bool = True
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    # -- public ---------------------------------------------------------------------------------
    @property
    def unrestricted(self) -> bool:
        return self.principal.role is Role.UNRESTRICTED

    @property
    def role(self) -> Role:
        return self.principal.role

    @property
    def agent(self) -> str:
        return agent_key(self.principal)

    def presenting(self, numbers: tuple[str, ...]) -> "AccessPolicy":
        """The same policy, also letting through the prescriptions with these numbers."""
        return replace(self, presented_numbers=tuple(sorted(set(numbers))), _memo={})

    def without_binaries(self) -> "AccessPolicy":
        return replace(self, binaries=False, _memo={})

    def clause(self, row: FromClause) -> ColumnElement[bool] | None:
        """The AccessFilter hook: a condition on ``row``, or None for the unrestricted caller."""
        if self.unrestricted:
            return None
        hit = self._memo.get(id(row))
        if hit is None or hit[0] is not row:
            q = Q()
            hit = (row, q.fragment(row, self.sql(q, OUTER)))
            self._memo[id(row)] = hit
        return hit[1]

    def sql(self, q: Q, row: Row, *, binary: bool = True) -> str:
        """The whole condition on ``row``, as SQL text."""
        branches: list[str] = []
        reference = self._readable & REFERENCE_TYPES
        if reference:
            branches.append(rules.type_in(row, reference, self._universe))
        builder = _ROLE_RULES.get(self.role)
        if builder is not None:
            branches.extend(builder(self, q, row))
        if self._clinical and self.role not in (Role.ADMIN, Role.DOCTOR):  # (doctors: within their rules, under denies)
            branches.append(f"({rules.type_in(row, self._clinical, self._universe)} AND {rules.entered(q, row, self.agent)})")
        if binary and self.binaries and self._is_readable("Binary"):
            branches.append(self._binary(q, row))
        return self._launch_context(q, row, _any(branches))

    # -- shared pieces ----------------------------------------------------------------------------
    @property
    def _universe(self) -> frozenset[str]:
        return get_registry().resource_types

    @cached_property
    def _readable(self) -> frozenset[str]:
        return permitted_types(self.role, self.principal.scopes, "r")

    @cached_property
    def _clinical(self) -> frozenset[str]:
        return self._readable - REFERENCE_TYPES

    def _is_readable(self, res_type: str) -> bool:
        return res_type in self._readable

    @property
    def _refs(self) -> frozenset[tuple[str, str]]:
        return self.identity.refs

    def _typed(self, row: Row, res_type: str, cond: str) -> str:
        return f"({row.res_type} = {literal(res_type)} AND {cond})" if self._is_readable(res_type) else ""

    def _binary(self, q: Q, row: Row) -> str:
        """A Binary is readable when the resource its securityContext names is."""
        b, ctx = q.alias("ref"), q.alias("res")
        inner = self.sql(q, Row.alias(ctx), binary=False)
        return (f"({row.res_type} = 'Binary' AND EXISTS (SELECT 1 FROM idx_reference {b} JOIN resource {ctx}"
                f" ON {ctx}.res_type = {b}.target_type AND {ctx}.res_id = {b}.target_id"
                f" WHERE {b}.rid = {row.rid} AND {probe_int(b + '.param')} = {_BINARY_CONTEXT} AND NOT {ctx}.deleted AND {inner}))")

    def _launch_context(self, q: Q, row: Row, clause: str) -> str:
        """patient/ scopes (outside the patient role) confine clinical data to the launch patient."""
        if self.role is Role.PATIENT:
            return clause  # a patient's own patient/ scopes cover them and their dependants
        confined = launch_confined_types(self.role, self.principal.scopes)
        if not confined:
            return clause
        launch = self.principal.patient_context
        in_launch = rules.in_compartment_of(q, row, "Patient", [launch.split("/", 1)[1]]) if launch else "1 = 0"
        return f"({clause} AND (NOT ({rules.type_in(row, confined, self._universe)}) OR {in_launch}))"

    # -- patients ---------------------------------------------------------------------------------
    def _patients(self, q: Q) -> Callable[[str], str]:
        """For the patient role: a condition on a patient id column (own record + dependants)."""
        mine = sorted(self.identity.mine)
        return lambda col: q.one_of(col, mine)

    async def acting_for(self, conn=None) -> set[str]:
        """Patient role: the ids of the patients the user acts for (themselves, dependants)."""
        return set(self.identity.mine)

    def _patient_rules(self, q: Q, row: Row) -> list[str]:
        # what was paid to them (a reimbursement): PaymentNotice is in no patient compartment
        payees = self._refs | {("Patient", p) for p in self.identity.mine}
        return [
            f"({rules.type_in(row, self._clinical, self._universe)} AND {rules.in_patient_compartment(q, row, self._patients(q))}"
            f" AND NOT {rules.hidden(q, row, self.identity.hidden)})",
            self._typed(row, "PaymentNotice", rules.references(q, row, [H("PaymentNotice", "payee")], payees)),
        ]

    # -- payments to providers ----------------------------------------------------------------------
    def _payments_to(self, q: Q, row: Row) -> list[str]:
        """Doctors and pharmacists: the reconciliations paying them or an organisation they act
        for (``requestor`` or a line's ``payee``), and the notices of those payments."""
        refs = self._refs

        def paid(target: Row) -> str:
            return rules.references(q, target, [H("PaymentReconciliation", "requestor"), H("PaymentReconciliation", "payee")], refs)

        return [
            self._typed(row, "PaymentReconciliation", paid(row)),
            self._typed(row, "PaymentNotice", _any([
                rules.references(q, row, [H("PaymentNotice", "payee")], refs),
                rules.references_where(q, row, [H("PaymentNotice", "payment")], "PaymentReconciliation", paid),
            ])),
        ]

    # -- doctors ----------------------------------------------------------------------------------
    def _doctor_rules(self, q: Q, row: Row) -> list[str]:
        ident = self.identity
        glass = ident.glass_patients(self.now_us)
        denied = ident.denied - glass
        allowed = (ident.care | ident.permitted) - ident.denied
        clinical = rules.type_in(row, self._clinical, self._universe)
        related = [rules.in_patient_compartment(q, row, lambda col: q.one_of(col, allowed))] if allowed else []
        practitioners = sorted(i for t, i in self._refs if t == "Practitioner")
        if practitioners:  # their own records: participant, performer, requester...
            related.append(rules.in_compartment_of(q, row, "Practitioner", practitioners))
        related.append(rules.entered(q, row, self.agent))
        # a label hidden from them stays hidden, except on a patient they broke the glass for
        labels = frozenset(h for h in ident.hidden if h.split("|", 1)[0] not in glass)
        conditions = [clinical, _any(related)]
        if denied:
            conditions.append(f"NOT {rules.in_patient_compartment(q, row, lambda col: q.one_of(col, denied))}")
        if labels:
            conditions.append(f"NOT {rules.hidden(q, row, labels)}")
        branches = ["(" + " AND ".join(conditions) + ")", *self._payments_to(q, row)]
        if glass:  # break-the-glass: the whole record, denies and labels included
            branches.append(f"({clinical} AND {rules.in_patient_compartment(q, row, lambda col: q.one_of(col, glass))})")
        return branches

    # -- pharmacists --------------------------------------------------------------------------------
    def _presented(self, q: Q) -> tuple[str, str]:
        """(condition on a MedicationRequest rid column, condition on a patient id column): the
        lines presented earlier, and those whose ``groupIdentifier`` is the number presented now."""
        rids, patients = self.identity.presented_now(self.now_us)
        if not self.presented_numbers:
            return (lambda col: q.one_of(col, rids)), (lambda col: q.one_of(col, patients))
        t, s = q.alias("tok"), q.alias("ref")
        by_number = (f"SELECT {t}.rid FROM idx_token {t} WHERE {t}.param = {_MR_GROUP}"
                     f" AND {t}.system = {literal(PRESCRIPTION_SYSTEM)} AND {q.one_of(t + '.code', self.presented_numbers)}")
        their_patients = (f"SELECT {s}.target_id FROM idx_reference {s} WHERE {s}.rid IN ({by_number})"
                          f" AND {probe_int(s + '.param')} = {_MR_SUBJECT} AND {probe_str(s + '.target_type')} = 'Patient'")
        return (
            (lambda col: f"({q.one_of(col, rids)} OR {col} IN ({by_number}))"),
            (lambda col: f"({q.one_of(col, patients)} OR {col} IN ({their_patients}))"),
        )

    def _pharmacist_rules(self, q: Q, row: Row) -> list[str]:
        refs = self._refs
        prescription, patient = self._presented(q)
        b = q.alias("ref")
        coverage = (f"EXISTS (SELECT 1 FROM idx_reference {b} WHERE {b}.rid = {row.rid} AND {probe_int(b + '.param')} = {H('Coverage', 'beneficiary')}"
                    f" AND {probe_str(b + '.target_type')} = 'Patient' AND {patient(probe_str(b + '.target_id'))})")
        claim_params = [H("Claim", "provider"), H("Claim", "enterer")]
        request_params = [H("CoverageEligibilityRequest", "provider"), H("CoverageEligibilityRequest", "enterer")]
        return [
            *self._payments_to(q, row),
            self._typed(row, "MedicationRequest", prescription(row.rid)),
            self._typed(row, "Patient", patient(row.res_id)),
            self._typed(row, "Coverage", coverage),
            self._typed(row, "MedicationDispense", rules.references(q, row, [H("MedicationDispense", "performer")], refs)),
            self._typed(row, "Communication", rules.references(q, row, [H("Communication", "sender"), H("Communication", "recipient")], refs)),
            self._typed(row, "Claim", rules.references(q, row, claim_params, refs)),
            self._typed(row, "ClaimResponse", _any([
                rules.references(q, row, [H("ClaimResponse", "requestor")], refs),
                rules.references_where(q, row, [H("ClaimResponse", "request")], "Claim", lambda t: rules.references(q, t, claim_params, refs)),
            ])),
            self._typed(row, "CoverageEligibilityRequest", rules.references(q, row, request_params, refs)),
            self._typed(row, "CoverageEligibilityResponse", _any([
                rules.references(q, row, [H("CoverageEligibilityResponse", "requestor")], refs),
                rules.references_where(q, row, [H("CoverageEligibilityResponse", "request")], "CoverageEligibilityRequest",
                                       lambda t: rules.references(q, t, request_params, refs)),
            ])),
        ]

    # -- insurers -----------------------------------------------------------------------------------
    def _insurer_rules(self, q: Q, row: Row) -> list[str]:
        fund = [tuple(self.principal.fund.split("/", 1))] if self.principal.fund else []
        me = self._refs

        def of_fund(target: Row, res_type: str, code: str) -> str:
            return rules.references(q, target, [H(res_type, code)], fund)

        def typed(res_type: str, code: str) -> str:
            return self._typed(row, res_type, of_fund(row, res_type, code))

        cov, payor = q.alias("ref"), q.alias("ref")
        # a beneficiary of one of the fund's coverages: from the patient's id, then the coverage's payor
        covered = (
            f"EXISTS (SELECT 1 FROM idx_reference {cov} WHERE {cov}.param = {H('Coverage', 'beneficiary')}"
            f" AND {cov}.target_type = 'Patient' AND {cov}.target_id = {row.res_id}"
            f" AND EXISTS (SELECT 1 FROM idx_reference {payor} WHERE {payor}.rid = {cov}.rid"
            f" AND {probe_int(payor + '.param')} = {H('Coverage', 'payor')} AND {rules.refs_match(q, payor, fund, probing=True)}))"
        )
        return [
            typed("Claim", "insurer"),
            typed("ClaimResponse", "insurer"),
            typed("Coverage", "payor"),
            typed("CoverageEligibilityRequest", "insurer"),
            typed("CoverageEligibilityResponse", "insurer"),
            typed("ExplanationOfBenefit", "insurer"),
            typed("PaymentReconciliation", "payment-issuer"),
            self._typed(row, "PaymentNotice", rules.references_where(
                q, row, [H("PaymentNotice", "payment")], "PaymentReconciliation",
                lambda t: of_fund(t, "PaymentReconciliation", "payment-issuer"),
            )),
            self._typed(row, "DocumentReference", rules.references_where(
                q, row, [H("DocumentReference", "related")], "Claim", lambda t: of_fund(t, "Claim", "insurer"),
            )),
            self._typed(row, "Communication", rules.references(q, row, [H("Communication", "sender"), H("Communication", "recipient")], me)),
            self._typed(row, "CommunicationRequest", rules.references(
                q, row, [H("CommunicationRequest", c) for c in ("sender", "recipient", "requester")], me
            )),
            self._typed(row, "Patient", covered),
        ]


_ROLE_RULES: dict[Role, Callable[[AccessPolicy, Q, Row], list[str]]] = {
    Role.PATIENT: AccessPolicy._patient_rules,
    Role.DOCTOR: AccessPolicy._doctor_rules,
    Role.PHARMACIST: AccessPolicy._pharmacist_rules,
    Role.INSURER: AccessPolicy._insurer_rules,
    # Paper-channel agents see what they entered (the shared branch); admins reference data only.
}


"""What adjudication reads (facts) and what it returns (a decision): plain values, no I/O."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from claims.caresheet import CareSheet
from claims.ports import LongTermCondition


@dataclass(frozen=True)
class Exemption:
    """An ALD/ALC the fund has granted: lines linked to it are paid at the ALD rate."""

    code: str
    start: date | None
    end: date | None

    def on(self, d: date) -> bool:
        return (self.start is None or self.start <= d) and (self.end is None or d <= self.end)


@dataclass(frozen=True)
class Cliff:
    """A coverage ended by a registry feed because the household's RSU index crossed its
    programme's threshold (the Coverage's ``coverage-cliff`` extension, see claims/transition.py)."""

    next_regime: str | None  # the regime the patient should join (AMO-TNS …)
    transition_until: date | None  # ALD patients: the last day their long-term illness stays covered


@dataclass(frozen=True)
class CoverageFacts:
    id: str
    fund_ref: str  # Organization/<id>
    fund_code: str
    status: str
    start: date | None
    end: date | None
    regime: str | None
    relationship: str | None  # self | child | spouse | …: dependants are covered through a subscriber
    subscriber_id: str | None  # when the subscriber is a Patient
    subscriber_ref: str | None  # Patient/… or RelatedPerson/…: who is reimbursed
    beneficiary_id: str | None
    order: int | None
    exemptions: tuple[Exemption, ...] = ()
    cliff: Cliff | None = None

    def in_force(self, d: date) -> bool:
        return self.status == "active" and (self.start is None or self.start <= d) and (self.end is None or d <= self.end)


@dataclass(frozen=True)
class ProviderFacts:
    ref: str | None  # the resource found, "Practitioner/x" / "Organization/y"
    inpe: str | None
    active: bool
    public_hospital: bool  # a CHU/CHR/CHP: hospital care there is paid at the public rate


@dataclass(frozen=True)
class PriorLine:
    """A line already decided for the same patient (duplicates, frequency limits, ceilings)."""

    ledger_id: int
    provider_inpe: str
    code: str | None
    service_date: date
    benefit: Decimal
    fund_code: str


@dataclass(frozen=True)
class Preauthorization:
    ref: str
    patient_id: str
    start: date
    end: date
    codes: frozenset[str]  # approved act codes
    care_setting: str


@dataclass(frozen=True)
class Dispense:
    id: str
    codes: frozenset[str]  # every coding of the medication: the pack (EAN-13), its ATC substance
    day: date | None
    quantity: Decimal | None
    prescription_id: str | None
    status: str


@dataclass(frozen=True)
class Prescription:
    id: str
    status: str
    authored: date | None
    codes: frozenset[str]


@dataclass
class ClaimFacts:
    """Everything one claim's decision depends on, loaded in bounded batched queries."""

    sheet: CareSheet
    ledger_id: int
    fund_code: str
    received: date  # day of receipt (Moroccan time): the submission deadline is measured to it
    coverage: CoverageFacts | None
    provider: ProviderFacts
    prices: dict[tuple[str, date], Decimal]  # (code, date of care) -> TNR or reimbursement base
    exemptions: tuple[Exemption, ...] = ()
    prior_lines: list[PriorLine] = field(default_factory=list)
    preauthorizations: dict[str, Preauthorization] = field(default_factory=dict)
    dispenses: list[Dispense] = field(default_factory=list)
    prescriptions: dict[str, Prescription] = field(default_factory=dict)
    conditions: dict[str, LongTermCondition] = field(default_factory=dict)  # the ALD/ALC list in force
    complementary: list[CoverageFacts] = field(default_factory=list)  # insurers paying after the AMO


@dataclass
class LineDecision:
    sequence: int
    system: str
    code: str
    service_date: date
    quantity: Decimal
    submitted: Decimal
    eligible: Decimal
    rate: Decimal
    benefit: Decimal
    reasons: list[str] = field(default_factory=list)
    ald: bool = False

    @property
    def patient_share(self) -> Decimal:
        return self.submitted - self.benefit

    @property
    def copay(self) -> Decimal:
        """Ticket modérateur: the part of the eligible amount the fund leaves to the patient."""
        return self.eligible - self.benefit

    @property
    def payable(self) -> bool:
        return self.benefit > 0


@dataclass(frozen=True)
class Pend:
    code: str  # a ``review`` reason
    detail: str


@dataclass
class Decision:
    lines: list[LineDecision]
    ruleset_version: str
    payee: str  # provider (tiers payant) | insured
    pend: Pend | None = None
    preauth_period: tuple[date, date] | None = None

    @property
    def submitted(self) -> Decimal:
        return sum((ln.submitted for ln in self.lines), Decimal(0))

    @property
    def benefit(self) -> Decimal:
        return sum((ln.benefit for ln in self.lines), Decimal(0))

    @property
    def patient_share(self) -> Decimal:
        return self.submitted - self.benefit

    @property
    def outcome(self) -> str:
        paid = [ln for ln in self.lines if ln.payable]
        if not paid:
            return "rejected"
        from claims.reasons import REASONS

        reduced = any(
            REASONS[r].rejects or r in ("ceiling-reached", "late-penalty") for ln in self.lines for r in ln.reasons
        )
        return "partial" if len(paid) < len(self.lines) or reduced else "approved"

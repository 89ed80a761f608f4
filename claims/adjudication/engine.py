"""The pure adjudication core: ``adjudicate(facts, ruleset) -> Decision``.

No I/O and no clock: the same facts and rule set always give the same decision, which is what
lets a decision be replayed, explained and tested line by line.  Rules apply in the order a
fund's liquidator applies them: who (coverage, provider), when (deadline), what (coding,
tariff, authorisation, prescription), how often (duplicates, frequency), how much (rate,
ceilings, penalty) — a line rejected early is not examined further.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from claims.adjudication.model import ClaimFacts, Decision, LineDecision, Pend, PriorLine
from claims.adjudication.ruleset import RulesetVersion
from claims.caresheet import Line
from claims.money import ZERO, round_cent
from claims.transition import cover_on
from claims.uris import ACTS, MEDICINE


def adjudicate(facts: ClaimFacts, rules: RulesetVersion) -> Decision:
    sheet = facts.sheet
    care_setting = sheet.care_setting
    if care_setting == "hospital" and facts.provider.public_hospital:
        care_setting = "hospital_public"
    regime = facts.coverage.regime if facts.coverage else None
    history = list(facts.prior_lines)  # grows with this claim's accepted lines
    used_dispenses: set[str] = set()
    decided: list[LineDecision] = []
    suspected: list[int] = []

    for line in sorted(sheet.lines, key=lambda ln: ln.sequence):
        d = LineDecision(line.sequence, line.system, line.code, line.service_date, line.quantity, line.submitted,
                         ZERO, ZERO, ZERO)
        decided.append(d)
        reject = _first_rejection(facts, rules, line, care_setting, used_dispenses, history)
        if reject:
            d.reasons.append(reject)
            continue
        price = facts.prices[(line.code, line.service_date)]
        d.eligible = min(line.submitted, round_cent(price * line.quantity))
        if d.eligible < line.submitted:
            d.reasons.append("above-tariff")
        d.ald = _linked_to_ald(facts, line)
        d.rate = rules.ald_rate if d.ald else rules.rate(care_setting, regime)
        d.benefit = round_cent(d.eligible * d.rate)
        if sheet.use == "claim":
            _apply_ceilings(rules, line, d, history)
            if _late_days(facts, line, rules) and rules.late.action == "penalty":
                d.benefit = round_cent(d.benefit * (1 - rules.late.penalty_rate))
                d.reasons.append("late-penalty")
            if rules.pend.suspected_duplicate and _other_provider_same_act(facts, line, history):
                suspected.append(line.sequence)
            history.append(PriorLine(facts.ledger_id, _inpe(facts), line.code, line.service_date, d.benefit, facts.fund_code))

    payee = "provider" if care_setting in rules.tiers_payant or (
        "ald" in rules.tiers_payant and any(d.ald and d.payable for d in decided)
    ) else "insured"
    decision = Decision(decided, rules.version, payee)
    decision.pend = _pend(facts, rules, decision, care_setting, suspected)
    if sheet.use == "preauthorization" and any(d.payable for d in decided):
        start = facts.received
        decision.preauth_period = (start, start + timedelta(days=rules.preauthorization.validity_days - 1))
    return decision


def _inpe(facts: ClaimFacts) -> str:
    return facts.provider.inpe or facts.sheet.provider_inpe or ""


def _first_rejection(facts, rules, line: Line, care_setting, used_dispenses, history) -> str | None:
    cov = facts.coverage
    if cov is None:
        return "not-covered"
    cover = cover_on(cov, line.service_date)  # an ended coverage's ALD transition pays ALD care only
    if cover.state == "ended" or (cover.covers_ald_only and not _linked_to_ald(facts, line)):
        return "not-covered"
    if facts.provider.ref is None:
        return "provider-unknown"
    if not facts.provider.active:
        return "provider-inactive"
    use_claim = facts.sheet.use == "claim"
    if use_claim and _late_days(facts, line, rules) and rules.late.action == "reject":
        return "late-rejected"
    if line.system not in (ACTS, MEDICINE):
        return "unknown-code"
    if (line.code, line.service_date) not in facts.prices:
        return "no-tariff" if line.system == ACTS else "not-in-basket"
    if use_claim and rules.preauthorization.required(care_setting if care_setting != "hospital_public" else "hospital", line.code):
        problem = _preauthorization_problem(facts, line, care_setting)
        if problem:
            return problem
    if use_claim and line.system == MEDICINE and not _matching_dispense(facts, line, used_dispenses):
        return "prescription-unmatched"
    if use_claim and _duplicate(facts, line, history):
        return "duplicate"
    if use_claim and _over_frequency(rules, line, history):
        return "frequency-limit"
    return None


def _late_days(facts: ClaimFacts, line: Line, rules: RulesetVersion) -> bool:
    return rules.late is not None and (facts.received - line.service_date).days > rules.late.after_days


def _preauthorization_problem(facts: ClaimFacts, line: Line, care_setting: str) -> str | None:
    refs = facts.sheet.preauth_refs
    if not refs:
        return "preauth-missing"
    for ref in refs:
        pa = facts.preauthorizations.get(ref)
        if (
            pa is not None
            and pa.patient_id == facts.sheet.patient_id
            and pa.start <= line.service_date <= pa.end
            and (line.code in pa.codes or (not pa.codes and pa.care_setting == facts.sheet.care_setting))
        ):
            return None
    return "preauth-invalid"


def _matching_dispense(facts: ClaimFacts, line: Line, used: set[str]) -> bool:
    """A pharmacy line is paid only against a real dispense of a real, valid prescription."""
    for disp in facts.dispenses:
        if disp.id in used or line.code not in disp.codes or disp.day != line.service_date:
            continue
        if disp.status not in ("completed", "in-progress"):
            continue
        if disp.quantity is not None and disp.quantity < line.quantity:
            continue
        rx = facts.prescriptions.get(disp.prescription_id or "")
        # The prescription names the substance (ATC) or the pack; the dispense carries both.
        if rx is None or rx.status in ("cancelled", "entered-in-error", "draft") or not (rx.codes & disp.codes):
            continue
        if rx.authored is not None and rx.authored > line.service_date:
            continue
        if facts.sheet.prescription_id is not None and facts.sheet.prescription_id != rx.id:
            continue
        used.add(disp.id)
        return True
    return False


def _duplicate(facts: ClaimFacts, line: Line, history: list[PriorLine]) -> bool:
    inpe = _inpe(facts)
    return any(
        p.ledger_id != facts.ledger_id and p.code == line.code and p.service_date == line.service_date
        and p.provider_inpe == inpe and p.benefit > 0 and p.fund_code == facts.fund_code
        for p in history
    )


def _other_provider_same_act(facts: ClaimFacts, line: Line, history: list[PriorLine]) -> bool:
    inpe = _inpe(facts)
    return any(
        p.code == line.code and p.service_date == line.service_date and p.provider_inpe != inpe and p.benefit > 0
        for p in history
    )


def _window(line: Line, days: int, history: list[PriorLine], codes) -> list[PriorLine]:
    start = line.service_date - timedelta(days=days - 1)
    return [p for p in history if p.code in codes and start <= p.service_date <= line.service_date and p.benefit > 0]


def _over_frequency(rules: RulesetVersion, line: Line, history: list[PriorLine]) -> bool:
    for limit in rules.frequency_limits:
        if line.code in limit.codes and len(_window(line, limit.window_days, history, limit.codes)) >= limit.max:
            return True
    return False


def _apply_ceilings(rules: RulesetVersion, line: Line, d: LineDecision, history: list[PriorLine]) -> None:
    for ceiling in rules.ceilings:
        if line.code not in ceiling.codes:
            continue
        used = sum((p.benefit for p in _window(line, ceiling.window_days, history, ceiling.codes)), Decimal(0))
        left = max(ceiling.amount - used, ZERO)
        if d.benefit > left:
            d.benefit = left
            d.reasons.append("ceiling-reached")


def _linked_to_ald(facts: ClaimFacts, line: Line) -> bool:
    held = cover_on(facts.coverage, line.service_date).exemptions if facts.coverage else ()
    exemptions = {*(e for e in facts.exemptions if e.on(line.service_date)), *held}
    granted = [facts.conditions[e.code] for e in exemptions if e.code in facts.conditions]
    return any(cond.covers(icd) for icd in line.diagnoses for cond in granted)


def _pend(facts: ClaimFacts, rules: RulesetVersion, decision: Decision, care_setting: str, suspected: list[int]) -> Pend | None:
    """Why an agent must look before the decision is final (first reason wins, all are listed)."""
    if not any(d.payable for d in decision.lines):
        return None  # nothing to pay: the rejection stands without a human
    reasons: list[tuple[str, str]] = []
    if suspected:
        reasons.append(("suspected-duplicate", f"lignes {', '.join(map(str, suspected))} : même acte le même jour chez un autre prestataire"))
    setting = "hospital" if care_setting == "hospital_public" else care_setting
    for doc in rules.pend.documents if facts.sheet.use == "claim" else ():  # documents follow the care
        if (setting in doc.care_settings or care_setting in doc.care_settings) and doc.category not in facts.sheet.document_categories:
            reasons.append(("missing-document", f"pièce manquante : {doc.label_fr} (supportingInfo.category = {doc.category})"))
    if rules.pend.amount_above is not None and decision.submitted > rules.pend.amount_above:
        reasons.append(("high-amount", f"montant {decision.submitted} MAD au-delà du seuil de {rules.pend.amount_above} MAD"))
    if not reasons:
        return None
    return Pend(reasons[0][0], "; ".join(text for _, text in reasons))


def adjudicate_complementary(primary: list[LineDecision], rules: RulesetVersion, covered: bool) -> Decision:
    """A complementary insurer's share of what the AMO fund left to the patient."""
    lines = []
    for p in primary:
        d = LineDecision(p.sequence, p.system, p.code, p.service_date, p.quantity, p.patient_share, ZERO, ZERO, ZERO)
        if not covered:
            d.reasons.append("not-covered")
        elif p.copay > 0:
            d.eligible = p.copay
            d.rate = rules.complementary.copay_rate
            d.benefit = round_cent(p.copay * d.rate)
        lines.append(d)
    return Decision(lines, rules.version, "insured")

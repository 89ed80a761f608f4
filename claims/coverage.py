"""A patient's Coverages read as facts, and which fund a claim goes to on a date.

Conventions (documented in docs/claims.md): ``Coverage.payor[0]`` is the fund's Organization;
the regime is the ``class`` of type ``plan`` (value = https://fhir.sijill.ma/CodeSystem/amo-regime
code); ALD/ALC exemptions the fund granted are ``costToBeneficiary.exception`` whose type is
coded in https://fhir.sijill.ma/CodeSystem/ald, with their validity period; ``order`` 1 (or
absent) is the AMO coverage, higher orders complementary insurers.
"""
from __future__ import annotations

from datetime import date
from typing import Iterable

from claims.adjudication.model import Cliff, CoverageFacts, Exemption
from claims.adjudication.ruleset import Rulesets
from claims.caresheet import any_reference, local_reference_id
from claims.lookups import fund_code
from claims.uris import ALD, COVERAGE_CLASS, EXT_COVERAGE_CLIFF, REGIME


def _day(value: object) -> date | None:
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def payor_id(cov: dict) -> str | None:
    for p in cov.get("payor") or []:
        pid = local_reference_id(p, "Organization")
        if pid:
            return pid
    return None


def _regime(cov: dict) -> str | None:
    for cls in cov.get("class") or []:
        if not isinstance(cls, dict):
            continue
        codings = (cls.get("type") or {}).get("coding") or []
        if any(c.get("system") == REGIME or (c.get("system") == COVERAGE_CLASS and c.get("code") == "plan") for c in codings):
            return cls.get("value")
    return None


def _exemptions(cov: dict) -> tuple[Exemption, ...]:
    out = []
    for cost in cov.get("costToBeneficiary") or []:
        for exc in (cost or {}).get("exception") or []:
            for c in ((exc or {}).get("type") or {}).get("coding") or []:
                if c.get("system") == ALD and c.get("code"):
                    period = exc.get("period") or {}
                    out.append(Exemption(c["code"], _day(period.get("start")), _day(period.get("end"))))
    return tuple(out)


def _cliff(cov: dict) -> Cliff | None:
    for ext in cov.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == EXT_COVERAGE_CLIFF:
            parts = {e.get("url"): e for e in ext.get("extension") or [] if isinstance(e, dict)}
            return Cliff((parts.get("nextRegime") or {}).get("valueCoding", {}).get("code"),
                         _day((parts.get("transitionUntil") or {}).get("valueDate")))
    return None


def coverage_facts(cov: dict, orgs: dict[tuple[str, str], dict]) -> CoverageFacts | None:
    pid = payor_id(cov)
    if pid is None:
        return None
    period = cov.get("period") or {}
    rel = None
    for c in (cov.get("relationship") or {}).get("coding") or []:
        rel = c.get("code")
        break
    order = cov.get("order") if isinstance(cov.get("order"), int) else None
    return CoverageFacts(
        id=cov.get("id", ""),
        fund_ref=f"Organization/{pid}",
        fund_code=fund_code(orgs.get(("Organization", pid)), pid),
        status=cov.get("status", ""),
        start=_day(period.get("start")),
        end=_day(period.get("end")),
        regime=_regime(cov),
        relationship=rel,
        subscriber_id=local_reference_id(cov.get("subscriber"), "Patient"),
        subscriber_ref=any_reference(cov.get("subscriber"), ("Patient", "RelatedPerson")),
        beneficiary_id=local_reference_id(cov.get("beneficiary"), "Patient"),
        order=order,
        exemptions=_exemptions(cov),
        cliff=_cliff(cov),
    )


def payor_refs(coverages: Iterable[dict]) -> set[tuple[str, str]]:
    return {("Organization", pid) for cov in coverages if (pid := payor_id(cov))}


def beneficiary_coverages(patient_id: str, coverages: Iterable[CoverageFacts]) -> list[CoverageFacts]:
    """Coverages whose beneficiary is the patient (not those where they only subscribe for others)."""
    return [c for c in coverages if c.beneficiary_id == patient_id]


def route(
    patient_id: str, focal: CoverageFacts | None, coverages: list[CoverageFacts], on: date, rulesets: Rulesets
) -> tuple[CoverageFacts | None, list[CoverageFacts]]:
    """The AMO coverage that pays on ``on`` and the complementary ones in force, in order.

    The sheet's focal coverage wins when it is an AMO coverage in force; otherwise the
    patient's AMO coverage in force that day (they may have changed fund); failing both the
    focal coverage, which adjudication will then reject as not in force.
    """

    def kind(c: CoverageFacts) -> str | None:
        fund = rulesets.fund(c.fund_code)
        return fund.kind if fund else None

    mine = beneficiary_coverages(patient_id, coverages)
    primaries = sorted(
        (c for c in mine if kind(c) == "primary" and c.in_force(on)), key=lambda c: (c.order or 1, c.id)
    )
    if focal is not None and any(c.id == focal.id for c in primaries):
        primary = focal
    elif primaries:
        primary = primaries[0]
    else:
        primary = focal
    complementary = sorted(
        (c for c in mine if kind(c) == "complementary" and c.in_force(on)), key=lambda c: (c.order or 2, c.id)
    )
    return primary, complementary

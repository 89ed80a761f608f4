"""The pure core: rule sets validated on load, adjudication line by line, money to the centime,
and every resource the exchange writes valid against the base FHIR R4B structure."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from claims.adjudication.engine import adjudicate, adjudicate_complementary
from claims.adjudication.model import ClaimFacts, CoverageFacts, Exemption, Preauthorization, PriorLine, ProviderFacts
from claims.ports import LongTermCondition
from claims.adjudication.ruleset import load_rulesets, parse_ruleset
from claims.caresheet import read_care_sheet
from claims.ledger import LedgerRow
from claims.money import money, round_cent
from claims.reasons import REASONS, code_system
from claims.responses import decided_response, explanation_of_benefit, queued_response
from claims.settings import RULESETS_DIR
from ehr.parsing import check_structure
from tests.claims import builders as b

DAY = date.today() - timedelta(days=2)
RULES = load_rulesets(RULESETS_DIR)


def facts(items, *, coverage=True, provider_active=True, prices=None, prior=(), exemptions=(), received=None, **sheet_kw):
    claim = b.claim("p1", "c1", items, provider={"reference": "Practitioner/d1", "identifier": {"system": "https://fhir.sijill.ma/sid/inpe", "value": "101234567"}}, **sheet_kw)
    sheet, issues = read_care_sheet(claim)
    assert not issues, issues
    cov = CoverageFacts("c1", "Organization/cnss", "CNSS", "active", date(2020, 1, 1), None, "salaries", "self",
                        "p1", "Patient/p1", "p1", 1, tuple(exemptions)) if coverage else None
    default = {("C", DAY): Decimal("80.00"), ("CS", DAY): Decimal("150.00"), ("D4011", DAY): Decimal("1500.00")}
    return ClaimFacts(sheet, 7, "CNSS", received or date.today(), cov,
                      ProviderFacts("Practitioner/d1", "101234567", provider_active, False), prices or default,
                      exemptions=tuple(exemptions), prior_lines=list(prior),
                      conditions={"ALD09": LongTermCondition("ALD09", "Diabète", None, (("E10", "E14"),))}), claim


def cnss():
    return RULES.version("CNSS", DAY)


def test_rule_sets_load_and_pick_the_version_in_force():
    assert set(RULES.codes()) >= {"CNSS", "CNOPS", "AMO-TADAMON", "MGPAP"}
    assert RULES.version("cnss", date(2024, 6, 1)).version == "cnss-2023.1"
    assert RULES.version("CNSS", date(2025, 1, 1)).version == "cnss-2025.1"
    assert RULES.version("CNSS", date(2022, 12, 31)) is None
    assert RULES.version("CNSS", DAY).rate("ambulatory", "salaries") == Decimal("0.70")


@pytest.mark.parametrize("broken, message", [
    ({"rates": {"ambulatory": "1.7"}}, "between 0 and 1"),
    ({"rates": {"dentistry": "0.7"}}, "unknown care setting"),
    ({"effective_to": "2022-01-01"}, "before effective_from"),
    ({"surprise": 1}, "Extra inputs"),
])
def test_invalid_rule_sets_are_refused_on_load(broken, message):
    version = {"version": "x-1", "effective_from": "2023-01-01", "rates": {"ambulatory": "0.7"}, **broken}
    with pytest.raises(ValueError, match=message):
        parse_ruleset({"fund": "X", "name": "X", "kind": "primary", "versions": [version]})


def test_overlapping_versions_are_refused():
    v1 = {"version": "a", "effective_from": "2023-01-01", "rates": {"ambulatory": "0.7"}}
    v2 = {"version": "b", "effective_from": "2023-06-01", "rates": {"ambulatory": "0.8"}}
    with pytest.raises(ValueError, match="overlap"):
        parse_ruleset({"fund": "X", "name": "X", "kind": "primary", "versions": [v1, v2]})


def test_money_rounds_half_up_to_the_centime():
    assert round_cent(Decimal("10.005")) == Decimal("10.01")
    assert round_cent(Decimal("18.615")) == Decimal("18.62")
    assert money(Decimal("56.00")) == {"value": 56, "currency": "MAD"}


def test_line_by_line_decision():
    f, _ = facts([b.act("C", 100, DAY), b.act("XYZ", 50, DAY)])
    d = adjudicate(f, cnss())
    c, unknown = d.lines
    assert (c.eligible, c.rate, c.benefit, c.copay, c.patient_share) == (
        Decimal("80.00"), Decimal("0.70"), Decimal("56.00"), Decimal("24.00"), Decimal("44.00"))
    assert unknown.reasons == ["no-tariff"] and unknown.benefit == 0
    assert d.outcome == "partial" and d.benefit == Decimal("56.00") and d.patient_share == Decimal("94.00")


def test_whole_claim_rejections_come_first():
    f, _ = facts([b.act("C", 80, DAY)], coverage=False)
    assert adjudicate(f, cnss()).lines[0].reasons == ["not-covered"]
    f, _ = facts([b.act("C", 80, DAY)], provider_active=False)
    assert adjudicate(f, cnss()).lines[0].reasons == ["provider-inactive"]


def test_ald_rate_only_for_lines_linked_to_a_granted_exemption():
    granted = [Exemption("ALD09", date(2020, 1, 1), None)]
    f, _ = facts([b.act("CS", 150, DAY, diagnosis=[1]), b.act("C", 80, DAY)], exemptions=granted, diagnoses=["E11.9"])
    linked, other = adjudicate(f, cnss()).lines
    assert linked.ald and linked.benefit == Decimal("150.00")
    assert not other.ald
    expired = [Exemption("ALD09", date(2020, 1, 1), DAY - timedelta(days=1))]
    f, _ = facts([b.act("CS", 150, DAY, diagnosis=[1])], exemptions=expired, diagnoses=["E11"])
    assert adjudicate(f, cnss()).lines[0].benefit == Decimal("105.00")


def test_ceiling_limits_what_is_left_in_the_window():
    prior = [PriorLine(1, "101234567", "D4012", DAY - timedelta(days=300), Decimal("2500.00"), "CNSS")]
    pa = Preauthorization("PA-1", "p1", DAY - timedelta(days=5), DAY + timedelta(days=60), frozenset({"D4011"}), "ambulatory")
    f, _ = facts([b.act("D4011", 1500, DAY)], prior=prior, preauth=["PA-1"])
    f.preauthorizations = {"PA-1": pa}
    line = adjudicate(f, cnss()).lines[0]
    # dental prostheses: 3,000 MAD per two years, 2,500 already paid; 70 % of 1,500 would be 1,050
    assert line.benefit == Decimal("500.00") and "ceiling-reached" in line.reasons


def test_suspected_duplicate_at_another_provider_pends():
    prior = [PriorLine(1, "109999999", "CS", DAY, Decimal("105.00"), "CNSS")]
    rules = cnss()
    f, _ = facts([b.act("CS", 150, DAY)], prior=prior)
    d = adjudicate(f, rules)
    # one specialist consultation a day: the frequency limit rejects it, no agent needed
    assert d.lines[0].reasons == ["frequency-limit"] and d.pend is None
    prior = [PriorLine(1, "109999999", "B1013", DAY, Decimal("46.20"), "CNSS")]
    f, _ = facts([b.act("B1013", 66, DAY)], prior=prior, prices={("B1013", DAY): Decimal("66.00")})
    d = adjudicate(f, rules)
    assert d.pend is not None and d.pend.code == "suspected-duplicate"


def test_complementary_pays_its_share_of_the_copay():
    f, _ = facts([b.act("C", 100, DAY)])
    primary = adjudicate(f, cnss())
    comp = adjudicate_complementary(primary.lines, RULES.version("MGPAP", DAY), covered=True)
    line = comp.lines[0]
    assert line.submitted == Decimal("44.00") and line.eligible == Decimal("24.00") and line.benefit == Decimal("19.20")
    assert adjudicate_complementary(primary.lines, RULES.version("MGPAP", DAY), covered=False).outcome == "rejected"


def test_reasons_have_french_and_arabic_and_form_a_code_system():
    for r in REASONS.values():
        assert r.fr and r.ar and any("\u0600" <= ch <= "\u06ff" for ch in r.ar)
    check_structure(code_system(), "CodeSystem")


def test_every_resource_written_is_valid_fhir():
    f, claim = facts([b.act("C", 100, DAY), b.act("XYZ", 50, DAY)])
    decision = adjudicate(f, cnss())
    row = LedgerRow(7, "101234567", "FSE-TEST-1", 1, "claim-1", "resp-1", None, "p1", "Practitioner/d1",
                    "Organization/cnss", "CNSS", "c1", "claim", "ambulatory", DAY.isoformat(), "x", None, None,
                    1_700_000_000_000_000, 1_700_172_800_000_000, "queued", None, None, None, None, 15000, None, None,
                    None, None, None, None, None)
    check_structure(queued_response(claim, row, 1_700_000_000_000_000, "K7QM-4RZ9"), "ClaimResponse")
    check_structure(decided_response(claim, row, decision, 1_700_000_100_000_000, "system", None, "K7QM-4RZ9"), "ClaimResponse")
    check_structure(explanation_of_benefit(claim, row, decision, 1_700_000_100_000_000, "resp-1"), "ExplanationOfBenefit")

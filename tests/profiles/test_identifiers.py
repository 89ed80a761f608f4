"""Moroccan identifier systems: format checks with messages that name the identifier."""
import pytest

from fhir.resources.R4B.namingsystem import NamingSystem
from profiles.identifiers import BY_NAME, SID, SYSTEMS, check, identifier_issue, naming_systems

GOOD = {
    "cin": ["BE123456", "A12345", "JA1", "Z999999"],
    "rnp": ["1234567890", "0000000001"],
    "rsu": ["512345678"],
    "cnss": ["112345678", "000000001"],
    "cnops": ["123456", "20123456", "1234567890"],
    "amo-tadamon": ["912345678"],
    "mutuelle": ["MGPAP-123456", "A1/2024", "123"],
    "inpe": ["101234567"],
    "claim": ["FSE-2024-000123", "ABC123"],
    "prescription": ["7SE7-N65P-TKS7", "2GA1-850M-2GAY"],
}
BAD = {
    "cin": ["123456", "ABC12345", "AB1234567", "ab123456", "AB 123456", "AB", "AB000000", ""],
    "rnp": ["123456789", "12345678901", "12345A7890", "0000000000"],
    "rsu": ["51234567", "5123456789", "000000000"],
    "cnss": ["11234567", "1123456789", "11234567X", "000000000"],
    "cnops": ["12345", "12345678901", "AB123456"],
    "amo-tadamon": ["91234567", "ABCDEFGHI"],
    "mutuelle": ["ab", "-123", "MGPAP 123", "X" * 21],
    "inpe": ["10123456", "1012345678", "INPE12345", "000000000"],
    "claim": ["FSE", "fse-2024-1", "-FSE2024"],
    "prescription": ["ORD 2024", "ORD-2024-000456", "7SE7-N65P-TKS8", "7se7-n65p-tks7", "7SE7N65PTKS7", "7SE7-N65P-TKSU"],
}


def test_every_system_is_covered():
    assert set(BY_NAME) == set(GOOD) == set(BAD)
    assert all(url == SID + s.name for url, s in SYSTEMS.items())
    for s in SYSTEMS.values():
        assert s.label_fr and s.label_ar and check(s.url, s.example) is None, s.name


@pytest.mark.parametrize("name, value", [(n, v) for n, values in GOOD.items() for v in values])
def test_good_values(name, value):
    assert check(SID + name, value) is None


@pytest.mark.parametrize("name, value", [(n, v) for n, values in BAD.items() for v in values])
def test_bad_values_name_the_identifier(name, value):
    message = check(SID + name, value)
    assert message is not None
    assert message.startswith(BY_NAME[name].label_fr)
    if value:
        assert f"« {value} »" in message


def test_message_states_the_rule_and_suggests_a_fix():
    message = check(SID + "cin", "ab 123456")
    assert "une ou deux lettres majuscules" in message
    assert "« AB123456 »" in message  # the corrected form
    assert "uniquement de zéros" in check(SID + "cnss", "000000000")


def test_unknown_system_is_not_judged():
    assert check("http://example.org/ids", "anything") is None


def test_identifier_issue_points_at_the_value():
    issue = identifier_issue({"system": SID + "inpe", "value": "12"}, "Practitioner.identifier[0]")
    assert issue.code == "value"
    assert issue.expression == ("Practitioner.identifier[0].value",)
    assert "INPE" in issue.diagnostics
    assert identifier_issue({"system": SID + "inpe", "value": "101234567"}, "X.identifier[0]") is None
    assert identifier_issue({"system": "urn:other", "value": "?"}, "X.identifier[0]") is None


def test_naming_systems_are_valid_fhir():
    resources = naming_systems()
    assert len(resources) == len(SYSTEMS)
    for r in resources:
        NamingSystem.model_validate(r)
        assert r["uniqueId"][0]["value"] in SYSTEMS
        assert SYSTEMS[r["uniqueId"][0]["value"]].pattern in r["description"]

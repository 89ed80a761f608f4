"""Shipped conformance content: every resource is valid R4B, references resolve, the profiles
compile in the validator, the examples conform and broken instances are caught."""
import copy
import re

import pytest
from fhir.resources.R4B import get_fhir_model_class

from profiles.content import examples, implementation_guide, iter_content, structure_definitions
from profiles.identifiers import SYSTEMS
from profiles.terminology import get_terminology
from profiles.validator import Validator

SD = "https://fhir.sijill.ma/StructureDefinition/"
CORE = "http://hl7.org/fhir/StructureDefinition/"


@pytest.fixture(scope="module")
def validator() -> Validator:
    from profiles import identifiers

    v = Validator(get_terminology(), identifiers)
    for sd in structure_definitions():
        problems = [i for i in v.add_profile(sd) if i.severity in ("error", "fatal")]
        assert problems == [], (sd["url"], problems)
    return v


def errors(issues):
    return [i for i in issues if i.severity in ("error", "fatal")]


def example(resource_type: str, id_: str) -> dict:
    return copy.deepcopy(next(e for e in examples() if e["resourceType"] == resource_type and e["id"] == id_))


def test_every_content_resource_parses_as_r4b():
    resources = list(iter_content())
    assert {r["resourceType"] for r in resources} == {
        "NamingSystem", "CodeSystem", "ValueSet", "ConceptMap", "StructureDefinition", "ImplementationGuide"}
    for r in [*resources, *examples()]:
        get_fhir_model_class(r["resourceType"]).model_validate(r)
    keys = [(r["resourceType"], r["id"]) for r in resources]
    assert len(keys) == len(set(keys))
    urls = [r["url"] for r in resources if r["resourceType"] != "NamingSystem"]
    assert len(urls) == len(set(urls))


def test_profiles_are_differential_constraints_on_r4b():
    sds = structure_definitions()
    assert {sd["type"] for sd in sds} >= {
        "Patient", "Practitioner", "PractitionerRole", "Organization", "Coverage", "Claim", "ClaimResponse",
        "MedicationRequest", "MedicationDispense", "CoverageEligibilityRequest", "CoverageEligibilityResponse",
        "ExplanationOfBenefit", "Extension"}
    for sd in sds:
        assert sd["url"] == SD + sd["id"] and sd["derivation"] == "constraint" and sd["fhirVersion"] == "4.3.0"
        assert "snapshot" not in sd and sd["differential"]["element"]
        assert all(e["path"].split(".")[0] == sd["type"] for e in sd["differential"]["element"])


def test_every_binding_and_profile_reference_resolves():
    tx = get_terminology()
    shipped = {sd["url"] for sd in structure_definitions()}
    for sd in structure_definitions():
        for e in sd["differential"]["element"]:
            if "binding" in e:
                assert tx.valueset(e["binding"]["valueSet"]) is not None, (sd["id"], e["id"])
            for t in e.get("type", []):
                for url in [*t.get("targetProfile", []), *t.get("profile", [])]:
                    assert url in shipped or url.startswith(CORE), (sd["id"], e["id"], url)


def test_identifier_constraints_use_the_identifier_module_patterns():
    """The regexes written in the profiles are exactly those of profiles.identifiers."""
    found = 0
    for sd in structure_definitions():
        for e in sd["differential"]["element"]:
            for c in e.get("constraint", []):
                if c["key"].startswith("sij-id-"):
                    name = c["key"][len("sij-id-"):]
                    system = "https://fhir.sijill.ma/sid/" + name
                    assert re.search(r"matches\('(.*)'\)", c["expression"]).group(1) == SYSTEMS[system].pattern
                    found += 1
    assert found >= 10


def test_implementation_guide_lists_everything():
    ig = implementation_guide()
    refs = {r["reference"]["reference"] for r in ig["definition"]["resource"]}
    for sd in structure_definitions():
        assert f"StructureDefinition/{sd['id']}" in refs
    assert sum(1 for r in ig["definition"]["resource"] if "exampleCanonical" in r) == len(examples())


def test_every_profile_has_a_conforming_example(validator):
    profiled = {e["meta"]["profile"][0] for e in examples()}
    assert profiled == {sd["url"] for sd in structure_definitions() if sd["type"] != "Extension"}
    for e in examples():
        assert errors(validator.validate(e)) == [], (e["resourceType"], e["id"])


def test_bad_identifier_is_named(validator):
    patient = example("Patient", "amina-el-idrissi")
    patient["identifier"][0]["value"] = "123456"
    found = errors(validator.validate(patient))
    assert found and any(i.expression[0].startswith("Patient.identifier[0]") for i in found)
    assert any("CIN" in i.diagnostics for i in found)


def test_patient_without_cin_or_rnp(validator):
    patient = example("Patient", "youssef-el-idrissi")
    patient["identifier"] = [{"system": "https://fhir.sijill.ma/sid/rsu", "value": "512345678"}]
    assert any(i.expression == ("Patient",) and "sij-pat-1" in i.diagnostics for i in errors(validator.validate(patient)))


def test_coverage_rules(validator):
    coverage = example("Coverage", "youssef-cnss")
    coverage["class"] = []  # no regime
    del coverage["subscriber"]  # a child without the insured
    coverage["relationship"]["coding"][0]["code"] = "voisin"  # not a relationship
    found = errors(validator.validate(coverage))
    assert any(i.expression == ("Coverage.class",) and "regime" in i.diagnostics for i in found)
    assert any(i.expression == ("Coverage.relationship",) for i in found)
    assert any(i.expression == ("Coverage",) and "sij-cov-2" in i.diagnostics for i in found)


def test_claim_rules(validator):
    claim = example("Claim", "fse-2024-000123")
    claim["item"][0]["productOrService"]["coding"][0]["code"] = "NOT-AN-ACT"
    claim["item"][0]["net"]["currency"] = "EUR"
    claim["identifier"][0]["value"] = "x"
    found = errors(validator.validate(claim))
    paths = {i.expression[0] for i in found}
    assert any(p.startswith("Claim.item[0].productOrService") for p in paths)
    assert any(p.startswith("Claim.item[0].net") for p in paths)
    assert any(p.startswith("Claim.identifier[0]") for p in paths)


def test_prescription_line_needs_its_prescription_number(validator):
    line = example("MedicationRequest", "ord-2024-000456-1")
    del line["groupIdentifier"]
    assert any(i.expression == ("MedicationRequest.groupIdentifier",) for i in errors(validator.validate(line)))


def test_implementation_guide_page_lists_every_resource():
    from pathlib import Path

    from profiles.terminology import moroccan_resources

    page = (Path(__file__).resolve().parents[2] / "docs" / "implementation-guide.md").read_text(encoding="utf-8")
    for url in [*(sd["url"] for sd in structure_definitions()), *(r["url"] for r in moroccan_resources()), *SYSTEMS]:
        assert f"`{url}`" in page, url


def test_regime_constraint_lists_exactly_the_regime_codes():
    from profiles.terminology.content import codes_of

    coverage = next(sd for sd in structure_definitions() if sd["id"] == "sijill-coverage")
    rule = next(c for e in coverage["differential"]["element"] for c in e.get("constraint", []) if c["key"] == "sij-cov-4")
    assert set(re.findall(r"'([^']+)'", rule["expression"])) == codes_of("regime")


def test_regime_outside_the_list_is_refused(validator):
    coverage = example("Coverage", "amina-cnss")
    coverage["class"][0]["value"] = "AMO-INCONNU"
    assert any("sij-cov-4" in i.diagnostics for i in errors(validator.validate(coverage)))

"""The shipped definitions and runtime registration of (Moroccan) SearchParameters."""
import pytest

from ehr.definitions import load
from ehr.outcome import FHIRError
from ehr.search.registry import Registry, get_registry, narrow, param_hash


def fresh_registry() -> Registry:
    return Registry(load("search-parameters"), load("compartments"), load("resources"))


def test_param_hash_is_stable_and_fits_a_signed_bigint():
    h = param_hash("Patient", "name")
    assert h == param_hash("Patient", "name")
    assert h != param_hash("Practitioner", "name")
    assert 0 <= h < 2**63
    # pinned: stored index rows depend on it never changing
    assert param_hash("Patient", "name") == 3202007423355327323


def test_registry_covers_every_concrete_type_with_resource_level_params():
    reg = get_registry()
    assert len(reg.resource_types) == 141 and "Patient" in reg.resource_types
    assert "Resource" not in reg.resource_types
    for t in ("Patient", "Binary", "Parameters", "Claim"):
        params = reg.for_type(t)
        for code in ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"):
            assert code in params, (t, code)
    assert reg.get("Patient", "birthdate").type == "date"
    assert reg.get("Patient", "nonsense") is None
    assert reg.get("Patient", "near") is None  # special: not searchable
    assert reg.get("Location", "near") is None


def test_multi_base_parameters_are_narrowed_to_each_type():
    reg = get_registry()
    assert reg.get("Observation", "patient").expression == "Observation.subject.where(resolve() is Patient)"
    assert reg.get("AllergyIntolerance", "patient").expression == "AllergyIntolerance.patient"
    assert reg.get("Observation", "code").expression == "Observation.code"
    assert narrow("A.x | B.y | (A.z as Quantity)", "A") == "A.x | (A.z as Quantity)"
    assert narrow("name | alias", "InsurancePlan") == "name | alias"
    assert narrow("A.x", "B") is None


def test_composites_carry_resolved_component_types():
    p = get_registry().get("Observation", "code-value-quantity")
    assert p.type == "composite"
    assert [(c.type, c.expression) for c in p.components] == [("token", "code"), ("quantity", "value.as(Quantity)")]


def test_compartments_and_summary_elements():
    reg = get_registry()
    assert reg.compartment_params("Observation")["Patient"] == ("performer", "subject")
    assert reg.compartment_params("Patient")["Patient"] == ("link",)
    assert "birthDate" in reg.summary_elements("Patient")
    assert "photo" not in reg.summary_elements("Patient")
    assert "status" in reg.required_elements("Observation")


def test_add_registers_a_moroccan_parameter_and_bumps_generation():
    reg = fresh_registry()
    before = reg.generation
    reg.add(
        {
            "resourceType": "SearchParameter",
            "url": "https://fhir.sijill.ma/SearchParameter/Patient-cin",
            "code": "cin",
            "base": ["Patient"],
            "type": "token",
            "expression": "Patient.identifier.where(system='https://fhir.sijill.ma/sid/cin')",
        }
    )
    p = reg.get("Patient", "cin")
    assert p.url == "https://fhir.sijill.ma/SearchParameter/Patient-cin"
    assert p.hash == param_hash("Patient", "cin")
    assert reg.generation == before + 1
    assert "cin" in reg.for_type("Patient")
    assert get_registry().get("Patient", "cin") is None  # another registry untouched


def test_add_composite_resolves_components_by_url():
    reg = fresh_registry()
    reg.add(
        {
            "resourceType": "SearchParameter",
            "code": "coverage-class",
            "base": ["Coverage"],
            "type": "composite",
            "expression": "Coverage.class",
            "component": [
                {"definition": "http://hl7.org/fhir/SearchParameter/Coverage-class-type", "expression": "type"},
                {"definition": "http://hl7.org/fhir/SearchParameter/Coverage-class-value", "expression": "value"},
            ],
        }
    )
    p = reg.get("Coverage", "coverage-class")
    assert [c.type for c in p.components] == ["token", "string"]
    assert p.url == "https://fhir.sijill.ma/SearchParameter/Coverage-coverage-class"


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"resourceType": "Patient"}, "SearchParameter.resourceType"),
        ({"resourceType": "SearchParameter", "code": "a.b", "base": ["Patient"], "type": "token", "expression": "Patient.x"}, "SearchParameter.code"),
        ({"resourceType": "SearchParameter", "code": "x", "base": ["Nope"], "type": "token", "expression": "Nope.x"}, "SearchParameter.base"),
        ({"resourceType": "SearchParameter", "code": "x", "base": ["Patient"], "type": "weird", "expression": "Patient.x"}, "SearchParameter.type"),
        ({"resourceType": "SearchParameter", "code": "x", "base": ["Patient"], "type": "token"}, "SearchParameter.expression"),
        ({"resourceType": "SearchParameter", "code": "x", "base": ["Patient"], "type": "token", "expression": "Patient.x.where("}, "SearchParameter.expression"),
        ({"resourceType": "SearchParameter", "code": "x", "base": ["Patient"], "type": "token", "expression": "Observation.code"}, "SearchParameter.expression"),
        ({"resourceType": "SearchParameter", "code": "x", "base": ["Patient"], "type": "composite", "expression": "Patient",
          "component": [{"definition": "http://nowhere", "expression": "x"}]}, "SearchParameter.component[0]"),
    ],
)
def test_add_rejects_bad_definitions(bad, where):
    with pytest.raises(FHIRError) as err:
        fresh_registry().add(bad)
    assert err.value.status == 400
    assert err.value.issues[0].expression == (where,)

"""The validator against the base specification: one targeted failing case per check kind,
with the exact FHIRPath expression of the problem."""
from __future__ import annotations

import copy

import pytest

from profiles.validator import Validator

CIN = "https://fhir.sijill.ma/sid/cin"
GENDER_VS = "http://hl7.org/fhir/ValueSet/administrative-gender"
OBS_INTERPRETATION_VS = "http://hl7.org/fhir/ValueSet/observation-interpretation"


class FakeTerminology:
    """Knows two value sets; anything else is unknown (None)."""

    def __init__(self):
        self.calls = []

    def validate_code(self, valueset_url, system, code):
        self.calls.append((valueset_url, system, code))
        if valueset_url == GENDER_VS:
            return code in ("male", "female", "other", "unknown")
        if valueset_url == "http://hl7.org/fhir/ValueSet/narrative-status":
            return code in ("generated", "extensions", "additional", "empty")
        if valueset_url == "http://hl7.org/fhir/ValueSet/observation-status":
            return code in ("registered", "preliminary", "final", "amended")
        if valueset_url == OBS_INTERPRETATION_VS:
            return system == "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation" and code in ("H", "L", "N")
        return None


class FakeIdentifiers:
    def check(self, system, value):
        if system != CIN:
            return None
        if not isinstance(value, str) or not (value[:1].isalpha() and value[-1:].isdigit()):
            return "CIN invalide : lettres puis chiffres attendus"
        return None


@pytest.fixture(scope="module")
def terminology():
    return FakeTerminology()


@pytest.fixture(scope="module")
def v(terminology):
    return Validator(terminology, FakeIdentifiers())


PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Amina</div>"},
    "identifier": [{"system": CIN, "value": "BE123456"}],
    "name": [{"family": "El Idrissi", "given": ["Amina"]}],
    "gender": "female",
    "birthDate": "1990-04-12",
    "managingOrganization": {"reference": "Organization/cnss"},
}


def errors(issues):
    return [(i.code, i.expression[0]) for i in issues if i.severity == "error"]


def patient(**changes):
    p = copy.deepcopy(PATIENT)
    for k, val in changes.items():
        if val is None:
            p.pop(k, None)
        else:
            p[k] = val
    return p


def test_valid_patient_has_no_issue(v):
    assert v.validate(patient()) == []


# -- structure -------------------------------------------------------------------------------
def test_unknown_element(v):
    assert errors(v.validate(patient(nickname="Mina"))) == [("structure", "Patient.nickname")]


def test_unknown_element_in_data_type_and_backbone(v):
    p = patient(name=[{"family": "X", "middle": "Y"}], contact=[{"name": {"family": "Y"}, "phone": "1"}])
    assert errors(v.validate(p)) == [("structure", "Patient.name[0].middle"), ("structure", "Patient.contact[0].phone")]


def test_array_expected_and_unexpected(v):
    assert errors(v.validate(patient(name={"family": "X"}))) == [("structure", "Patient.name")]
    assert errors(v.validate(patient(gender=["female"]))) == [("structure", "Patient.gender")]


def test_not_an_object(v):
    assert errors(v.validate(patient(managingOrganization="Organization/1"))) == [
        ("structure", "Patient.managingOrganization")]


def test_missing_required_elements(v):
    issues = v.validate({"resourceType": "Observation", "valueString": "x"})
    assert errors(issues) == [("required", "Observation.status"), ("required", "Observation.code")]


def test_empty_array_and_null(v):
    assert errors(v.validate(patient(name=[]))) == [("structure", "Patient.name")]
    assert errors(v.validate(patient(birthDate=None, active=None) | {"active": None})) == [("structure", "Patient.active")]


def test_element_without_value_or_children(v):
    assert errors(v.validate(patient(name=[{}]))) == [("invariant", "Patient.name[0]")]
    assert errors(v.validate(patient(name=[{"id": "n1"}]))) == [("invariant", "Patient.name[0]")]


# -- primitive extensions (_x) ----------------------------------------------------------------
def test_primitive_extension_without_value_is_valid(v):
    ext = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]}
    assert errors(v.validate(patient(birthDate=None, _birthDate=ext))) == []
    given = {"family": "X", "given": ["A", None], "_given": [None, ext]}
    assert errors(v.validate(patient(name=[given]))) == []


def test_primitive_extension_problems(v):
    assert errors(v.validate(patient(birthDate=None, _birthDate={"id": "b"}))) == [("invariant", "Patient.birthDate")]
    assert errors(v.validate(patient(_birthDate={"foo": 1}))) == [("structure", "Patient.birthDate.foo")]
    assert errors(v.validate(patient(_name={"id": "x"}))) == [("structure", "Patient._name")]
    mismatch = {"family": "X", "given": ["A", "B"], "_given": [None]}
    assert errors(v.validate(patient(name=[mismatch]))) == [("structure", "Patient.name[0].given")]
    assert errors(v.validate(patient(name=[{"given": ["A", None]}]))) == [("structure", "Patient.name[0].given[1]")]


# -- primitive formats -----------------------------------------------------------------------
@pytest.mark.parametrize("field,value", [
    ("birthDate", "1990-13-01"),
    ("birthDate", "1990-02-30"),
    ("birthDate", "12/04/1990"),
    ("deceasedDateTime", "2020-01-01T10:00"),
    ("active", "true"),
    ("gender", " female"),
    ("id", "a" * 65),
    ("id", "p_1"),
    ("multipleBirthInteger", 1.5),
    ("multipleBirthInteger", 2**31),
    ("implicitRules", "http://exemple.ma/a b"),
    ("language", ""),
])
def test_invalid_primitive_values(v, field, value):
    issues = errors(v.validate(patient(**{field: value})))
    expected = {"deceasedDateTime": "Patient.deceased.ofType(dateTime)",
                "multipleBirthInteger": "Patient.multipleBirth.ofType(integer)"}.get(field, f"Patient.{field}")
    assert len(issues) == 1 and issues[0][1] == expected, issues
    assert issues[0][0] in ("value", "structure")


def test_valid_primitive_edge_values(v):
    ok = patient(birthDate="2000-02-29", deceasedDateTime="2020-01-01T10:00:00.123+01:00",
                 multipleBirthInteger=-2147483648)
    assert errors(v.validate(ok)) == []
    assert errors(v.validate(patient(birthDate="1900"))) == []
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": 1e3},
           "issued": "2020-01-01T10:00:00Z", "text": PATIENT["text"]}
    assert errors(v.validate(obs)) == []
    obs["issued"] = "2020-01-01T10:00:00"           # instant needs a time zone
    assert errors(v.validate(obs)) == [("value", "Observation.issued")]


@pytest.mark.parametrize("element_id", ["n:1", "Patient.name:officiel", "nom 1 (copie)", "x" * 100])
def test_element_ids_are_strings_only_the_resource_id_is_an_id(v, element_id):
    """Element ids are strings ("n:1", slice names...); the 64-character id pattern is the
    resource's own ``id`` alone."""
    absent = {"id": element_id, "extension": [{"id": element_id, "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                                "valueCode": "unknown"}]}
    named = patient(name=[{"id": element_id, "family": "El Idrissi", "period": {"id": element_id, "start": "2020"}}],
                    birthDate=None, _birthDate=absent)
    assert errors(v.validate(named)) == []
    assert errors(v.validate(patient(id=element_id))) == [("value", "Patient.id")]


def test_an_empty_element_id_is_refused(v):
    assert errors(v.validate(patient(name=[{"id": "", "family": "X"}]))) == [("value", "Patient.name[0].id")]


def test_non_breaking_space_is_a_valid_string_character(v):
    assert errors(v.validate(patient(name=[{"text": "Amina\u00a0El Idrissi"}]))) == []


def test_positive_int(v):
    claim_item = {"resourceType": "Claim", "status": "active", "type": {"text": "x"}, "use": "claim",
                  "patient": {"reference": "Patient/1"}, "created": "2025-01-01", "provider": {"reference": "Organization/1"},
                  "priority": {"text": "normal"}, "insurance": [{"sequence": 1, "focal": True,
                                                                 "coverage": {"reference": "Coverage/1"}}],
                  "item": [{"sequence": 0, "productOrService": {"text": "C"}}]}
    assert errors(v.validate(claim_item)) == [("value", "Claim.item[0].sequence")]


# -- choice types ----------------------------------------------------------------------------
def test_choice_type_with_two_types(v):
    issues = errors(v.validate(patient(deceasedBoolean=False, deceasedDateTime="2020-01-01")))
    assert issues == [("structure", "Patient.deceased")]


def test_choice_type_unknown_suffix(v):
    assert errors(v.validate(patient(deceasedString="non"))) == [("structure", "Patient.deceasedString")]


# -- bindings --------------------------------------------------------------------------------
def test_required_binding(v):
    issues = v.validate(patient(gender="F"))
    assert errors(issues) == [("code-invalid", "Patient.gender")]


def test_extensible_binding_is_a_warning(v):
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "glycémie"}, "text": PATIENT["text"],
           "interpretation": [{"coding": [{"system": "http://exemple.ma/cs", "code": "HAUT"}]}]}
    issues = v.validate(obs)
    assert errors(issues) == []
    assert [(i.severity, i.code, i.expression[0]) for i in issues] == [
        ("warning", "code-invalid", "Observation.interpretation[0]")]
    obs["interpretation"][0]["coding"].append(
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H"})
    assert v.validate(obs) == []


def test_unknown_value_set_is_one_warning(v):
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "text": PATIENT["text"],
           "component": [{"code": {"text": "a"}, "valueQuantity": {"value": 1, "comparator": "<"}},
                         {"code": {"text": "b"}, "valueQuantity": {"value": 2, "comparator": ">"}}]}
    issues = v.validate(obs)
    assert errors(issues) == []
    assert [(i.severity, i.code) for i in issues] == [("warning", "not-found")]
    assert "quantity-comparator" in issues[0].diagnostics


def test_without_terminology_bindings_are_not_checked():
    assert Validator().validate(patient(gender="F")) == []


# -- invariants ------------------------------------------------------------------------------
def test_period_invariant(v):
    p = patient(name=[{"family": "X", "period": {"start": "2020-02-01", "end": "2020-01-01"}}])
    issues = v.validate(p)
    assert errors(issues) == [("invariant", "Patient.name[0].period")]
    assert "per-1" in issues[0].diagnostics
    # different precisions, equal as far as they go: unknown, not a failure
    p["name"][0]["period"] = {"start": "2020-01-01T10:00:00Z", "end": "2020-01-01"}
    assert errors(v.validate(p)) == []


def test_invariant_through_fhirpath(v):
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "poids"}, "text": PATIENT["text"],
           "valueQuantity": {"value": 70, "code": "kg"}}
    issues = v.validate(obs)
    assert errors(issues) == [("invariant", "Observation.value.ofType(Quantity)")]
    assert "qty-3" in issues[0].diagnostics


def test_contained_resource_invariants(v):
    org = {"resourceType": "Organization", "id": "o1", "name": "CNSS"}
    nested = {"resourceType": "Organization", "id": "o2", "contained": [org], "name": "x"}
    p = patient(contained=[nested], managingOrganization={"reference": "#o2"})
    found = [(i.diagnostics.split()[1], i.expression[0]) for i in v.validate(p) if i.code == "invariant"]
    # o1 is contained in a contained resource (dom-2), where nothing refers to it (dom-3)
    assert sorted(found) == [("dom-2", "Patient"), ("dom-3", "Patient.contained[0]")]
    unreferenced = patient(contained=[org], managingOrganization={"reference": "Organization/cnss"})
    issues = v.validate(unreferenced)
    assert errors(issues) == [("invariant", "Patient")] and "dom-3" in issues[0].diagnostics
    dangling = patient(managingOrganization={"reference": "#nope"})
    issues = v.validate(dangling)
    assert errors(issues) == [("invariant", "Patient.managingOrganization")] and "ref-1" in issues[0].diagnostics


def test_missing_narrative_is_a_warning(v):
    issues = v.validate(patient(text=None))
    assert [(i.severity, i.code, i.expression[0]) for i in issues] == [("warning", "invariant", "Patient")]


def test_bad_narrative(v):
    p = patient(text={"status": "generated",
                      "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>x()</script></div>"})
    assert sorted(errors(v.validate(p))) == [("invariant", "Patient.text.div"), ("invariant", "Patient.text.div")]
    p["text"]["div"] = "<div xmlns=\"http://www.w3.org/1999/xhtml\"> </div>"
    assert len(errors(v.validate(p))) == 2


# -- references ------------------------------------------------------------------------------
@pytest.mark.parametrize("reference,ok", [
    ("Organization/cnss", True),
    ("https://fhir.sijill.ma/fhir/Organization/cnss/_history/2", True),
    ("urn:uuid:8d3d3c1a-7a4c-4a3a-9e4e-3a1d2b2f9c11", True),
    ("Practitioner/inpe-1", False),
    ("https://fhir.sijill.ma/fhir/Patient/p2", False),
])
def test_reference_targets(v, reference, ok):
    issues = errors(v.validate(patient(managingOrganization={"reference": reference})))
    assert issues == ([] if ok else [("structure", "Patient.managingOrganization.reference")])


def test_contained_reference_target_and_type(v):
    prac = {"resourceType": "Practitioner", "id": "d1", "name": [{"family": "Alaoui"}]}
    p = patient(contained=[prac], managingOrganization={"reference": "#d1"})
    assert errors(v.validate(p)) == [("structure", "Patient.managingOrganization.reference")]
    p = patient(generalPractitioner=[{"reference": "Practitioner/d1", "type": "Organization"}])
    assert errors(v.validate(p)) == [("structure", "Patient.generalPractitioner[0].type")]
    p = patient(managingOrganization={"type": "Patient", "display": "?"})
    assert errors(v.validate(p)) == [("structure", "Patient.managingOrganization")]


# -- identifiers -----------------------------------------------------------------------------
def test_identifier_format(v):
    p = patient(identifier=[{"system": "http://autre"}, {"system": CIN, "value": "123"}])
    issues = v.validate(p)
    assert errors(issues) == [("value", "Patient.identifier[1].value")]
    assert "lettres puis chiffres" in issues[0].diagnostics
    ref = {"reference": "Organization/cnss", "identifier": {"system": CIN, "value": "x"}}
    assert errors(v.validate(patient(managingOrganization=ref))) == [
        ("value", "Patient.managingOrganization.identifier.value")]


# -- resources -------------------------------------------------------------------------------
def test_resource_type_problems(v):
    assert errors(v.validate({"id": "x"})) == [("structure", "Resource")]
    assert errors(v.validate({"resourceType": "Patiente"})) == [("structure", "Patiente")]
    assert errors(v.validate({"resourceType": "DomainResource"})) == [("structure", "DomainResource")]
    assert errors(v.validate(["not", "a", "resource"])) == [("structure", "Resource")]


def test_nested_resources_have_full_paths(v):
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": "urn:uuid:8d3d3c1a-7a4c-4a3a-9e4e-3a1d2b2f9c11", "resource": patient(foo=1)},
                        {"resource": {"resourceType": "Nope"}}]}
    assert errors(v.validate(bundle)) == [("structure", "Bundle.entry[0].resource.foo"),
                                          ("structure", "Bundle.entry[1].resource")]
    contained = patient(contained=[{"resourceType": "Organization", "id": "o", "name": 3}],
                        managingOrganization={"reference": "#o"})
    assert errors(v.validate(contained)) == [("structure", "Patient.contained[0].name")]


def test_extension_checked_against_its_definition(v):
    birth_place = {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "valueString": "Fès"}
    issues = v.validate(patient(extension=[birth_place]))
    assert ("structure", "Patient.extension[0].value.ofType(string)") in errors(issues)
    birth_place = {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "valueAddress": {"city": "Fès"}}
    assert errors(v.validate(patient(extension=[birth_place]))) == []
    unknown = {"url": "https://fhir.sijill.ma/StructureDefinition/inconnue", "valueString": "x"}
    assert errors(v.validate(patient(extension=[unknown]))) == []
    assert errors(v.validate(patient(extension=[{"url": "https://x"}]))) == [("invariant", "Patient.extension[0]")]


def test_input_is_not_modified(v):
    p = patient(contained=[{"resourceType": "Organization", "id": "o", "name": "x"}],
                managingOrganization={"reference": "#o"})
    before = copy.deepcopy(p)
    v.validate(p)
    assert p == before


def test_check_raises_422_with_every_issue(v):
    from ehr.outcome import FHIRError

    assert v.check(patient()) == []
    with pytest.raises(FHIRError) as err:
        v.check(patient(nickname="Mina", gender="F", text=None))
    assert err.value.status == 422
    assert sorted((i.severity, i.expression[0]) for i in err.value.issues) == [
        ("error", "Patient.gender"), ("error", "Patient.nickname"), ("warning", "Patient")]


def test_type_profile_of_an_element(v):
    """Claim.item.quantity is a SimpleQuantity: no comparator."""
    claim = {"resourceType": "Claim", "status": "active", "type": {"text": "x"}, "use": "claim",
             "patient": {"reference": "Patient/1"}, "created": "2025-01-01", "provider": {"reference": "Organization/1"},
             "priority": {"text": "normal"}, "text": PATIENT["text"],
             "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/1"}}],
             "item": [{"sequence": 1, "productOrService": {"text": "C"}, "quantity": {"value": 1}}]}
    assert errors(v.validate(claim)) == []
    claim["item"][0]["quantity"]["comparator"] = "<"
    assert errors(v.validate(claim)) == [("invariant", "Claim.item[0].quantity"),
                                         ("structure", "Claim.item[0].quantity.comparator")]

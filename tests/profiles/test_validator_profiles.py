"""Profiles: differential-only and snapshot StructureDefinitions loaded with add_profile --
slicing, fixed and pattern values, required bindings, profile invariants, type and target
narrowing, extension profiles, profiles on profiles, rejected profiles."""
from __future__ import annotations

import copy

import pytest

from profiles.validator import Validator

SJ = "https://fhir.sijill.ma/"
PROFILE = SJ + "StructureDefinition/test-patient"
MARITAL_VS = SJ + "ValueSet/test-marital"
MARITAL_CS = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
CORE = "http://hl7.org/fhir/StructureDefinition/"


class FakeTerminology:
    """The value sets these tests touch; any other is unknown (None)."""

    CODES = {
        MARITAL_VS: {(MARITAL_CS, c) for c in ("M", "S", "D", "W")},
        "http://hl7.org/fhir/ValueSet/marital-status": {(MARITAL_CS, c) for c in ("M", "S", "D", "W", "U")},
        "http://hl7.org/fhir/ValueSet/narrative-status": {(None, "generated"), (None, "empty")},
        "http://hl7.org/fhir/ValueSet/identifier-use": {(None, "official"), (None, "usual")},
        "http://hl7.org/fhir/ValueSet/administrative-gender": {(None, "female"), (None, "male")},
        "http://hl7.org/fhir/ValueSet/observation-status": {(None, "final")},
    }

    def validate_code(self, valueset_url, system, code):
        codes = self.CODES.get(valueset_url)
        return None if codes is None else (system, code) in codes


def sd(url, elements, base=CORE + "Patient", type_="Patient", part="differential", **extra):
    return {"resourceType": "StructureDefinition", "url": url, "name": url.rsplit("/", 1)[-1].replace("-", ""),
            "status": "draft", "kind": "resource", "abstract": False, "type": type_, "baseDefinition": base,
            "derivation": "constraint", part: {"element": elements}, **extra}


PATIENT_PROFILE = sd(PROFILE, [
    {"id": "Patient", "path": "Patient", "constraint": [{
        "key": "sj-pat-1", "severity": "error", "human": "Un patient doit avoir un nom ou une date de naissance",
        "expression": "name.exists() or birthDate.exists()"}]},
    {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1,
     "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
    {"id": "Patient.identifier:cin", "path": "Patient.identifier", "sliceName": "cin", "min": 1, "max": "1"},
    {"id": "Patient.identifier:cin.use", "path": "Patient.identifier.use", "fixedCode": "official"},
    {"id": "Patient.identifier:cin.system", "path": "Patient.identifier.system", "min": 1,
     "fixedUri": SJ + "sid/cin"},
    {"id": "Patient.identifier:cin.value", "path": "Patient.identifier.value", "min": 1},
    {"id": "Patient.identifier:cnss", "path": "Patient.identifier", "sliceName": "cnss", "max": "1"},
    {"id": "Patient.identifier:cnss.system", "path": "Patient.identifier.system", "fixedUri": SJ + "sid/cnss"},
    {"id": "Patient.extension:birthPlace", "path": "Patient.extension", "sliceName": "birthPlace", "max": "1",
     "type": [{"code": "Extension", "profile": [BIRTH_PLACE]}]},
    {"id": "Patient.gender", "path": "Patient.gender", "min": 1},
    {"id": "Patient.maritalStatus", "path": "Patient.maritalStatus",
     "binding": {"strength": "required", "valueSet": MARITAL_VS}},
    {"id": "Patient.deceased[x]", "path": "Patient.deceased[x]", "type": [{"code": "boolean"}]},
    {"id": "Patient.communication.language", "path": "Patient.communication.language",
     "patternCodeableConcept": {"coding": [{"system": "urn:ietf:bcp:47"}]}},
    {"id": "Patient.generalPractitioner", "path": "Patient.generalPractitioner",
     "type": [{"code": "Reference", "targetProfile": [CORE + "Practitioner"]}]},
])

GOOD = {
    "resourceType": "Patient",
    "meta": {"profile": [PROFILE]},
    "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Amina</div>"},
    "identifier": [{"use": "official", "system": SJ + "sid/cin", "value": "BE123456"},
                   {"system": SJ + "sid/cnss", "value": "123456789"},
                   {"system": "http://hopital.ma/ipp", "value": "42"}],
    "extension": [{"url": BIRTH_PLACE, "valueAddress": {"city": "Fès"}}],
    "name": [{"family": "El Idrissi"}],
    "gender": "female",
    "maritalStatus": {"coding": [{"system": MARITAL_CS, "code": "M"}]},
    "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "ar-MA"}]}}],
    "generalPractitioner": [{"reference": "Practitioner/inpe-1"}],
}


@pytest.fixture(scope="module")
def v():
    validator = Validator(FakeTerminology())
    assert validator.add_profile(copy.deepcopy(PATIENT_PROFILE)) == []
    return validator


def errors(issues):
    return [(i.code, i.expression[0]) for i in issues if i.severity == "error"]


def good(**changes):
    p = copy.deepcopy(GOOD)
    for k, val in changes.items():
        if val is None:
            p.pop(k, None)
        else:
            p[k] = val
    return p


def test_conforming_patient(v):
    assert v.validate(good()) == []


def test_profile_only_applies_when_claimed_or_asked(v):
    bare = good(meta=None, identifier=None, gender=None)
    assert v.validate(bare) == []
    assert errors(v.validate(bare, [PROFILE])) == [
        ("required", "Patient.identifier"), ("required", "Patient.identifier"), ("required", "Patient.gender")]


def test_slice_cardinality(v):
    p = good(identifier=[{"system": SJ + "sid/cnss", "value": "1"}])
    issues = v.validate(p)
    assert errors(issues) == [("required", "Patient.identifier")]
    assert "cin" in issues[0].diagnostics
    two_cin = good(identifier=[GOOD["identifier"][0], GOOD["identifier"][0]])
    issues = v.validate(two_cin)
    assert errors(issues) == [("structure", "Patient.identifier")]
    assert "« cin »" in issues[0].diagnostics


def test_slice_children_and_fixed_value(v):
    p = good()
    p["identifier"][0] = {"use": "usual", "system": SJ + "sid/cin"}
    issues = v.validate(p)
    assert errors(issues) == [("value", "Patient.identifier[0].use"), ("required", "Patient.identifier[0].value")]
    assert "official" in issues[0].diagnostics


def test_pattern_value(v):
    p = good(communication=[{"language": {"coding": [{"system": "urn:iso:std:iso:639", "code": "ar"}]}}])
    issues = v.validate(p)
    assert errors(issues) == [("value", "Patient.communication[0].language")]
    p = good(communication=[{"language": {"text": "arabe", "coding": [
        {"system": "urn:iso:std:iso:639", "code": "ar"}, {"system": "urn:ietf:bcp:47", "code": "ar"}]}}])
    assert errors(v.validate(p)) == []


def test_required_binding_added_by_profile(v):
    p = good(maritalStatus={"coding": [{"system": MARITAL_CS, "code": "X"}]})
    issues = v.validate(p)
    # the profile's required binding is an error; the base extensible one only a warning
    assert errors(issues) == [("code-invalid", "Patient.maritalStatus")]
    assert [MARITAL_VS in i.diagnostics for i in issues if i.severity == "error"] == [True]
    assert [i.severity for i in issues if "marital-status" in i.diagnostics] == ["warning"]


def test_profile_invariant(v):
    issues = v.validate(good(name=None))
    assert errors(issues) == [("invariant", "Patient")]
    assert "sj-pat-1" in issues[0].diagnostics
    assert errors(v.validate(good(name=None, birthDate="1990-01-01"))) == []


def test_type_narrowing(v):
    assert errors(v.validate(good(deceasedDateTime="2020-01-01"))) == [
        ("structure", "Patient.deceased.ofType(dateTime)")]
    assert errors(v.validate(good(deceasedBoolean=False))) == []


def test_reference_target_narrowing(v):
    p = good(generalPractitioner=[{"reference": "Organization/cnss"}])
    assert errors(v.validate(p)) == [("structure", "Patient.generalPractitioner[0].reference")]


def test_extension_slice_with_profile(v):
    p = good(extension=[{"url": BIRTH_PLACE, "valueString": "Fès"}])
    assert ("structure", "Patient.extension[0].value.ofType(string)") in errors(v.validate(p))
    two = good(extension=[GOOD["extension"][0], GOOD["extension"][0]])
    assert errors(v.validate(two)) == [("structure", "Patient.extension")]


def test_closed_slicing_and_order():
    v = Validator()
    url = SJ + "StructureDefinition/test-closed"
    assert v.add_profile(sd(url, [
        {"id": "Patient.identifier", "path": "Patient.identifier", "slicing": {
            "discriminator": [{"type": "value", "path": "system"}], "rules": "closed", "ordered": True}},
        {"id": "Patient.identifier:cin", "path": "Patient.identifier", "sliceName": "cin"},
        {"id": "Patient.identifier:cin.system", "path": "Patient.identifier.system", "fixedUri": SJ + "sid/cin"},
        {"id": "Patient.identifier:rnp", "path": "Patient.identifier", "sliceName": "rnp"},
        {"id": "Patient.identifier:rnp.system", "path": "Patient.identifier.system", "fixedUri": SJ + "sid/rnp"},
    ])) == []
    p = {"resourceType": "Patient", "identifier": [{"system": SJ + "sid/rnp", "value": "1"},
                                                   {"system": SJ + "sid/cin", "value": "A1"},
                                                   {"system": "http://autre", "value": "2"}]}
    assert errors(v.validate(p, [url])) == [("structure", "Patient.identifier[1]"), ("structure", "Patient.identifier[2]")]


def test_pattern_discriminator_on_category():
    v = Validator()
    url = SJ + "StructureDefinition/test-obs"
    lab = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
    assert v.add_profile(sd(url, [
        {"id": "Observation.category", "path": "Observation.category", "slicing": {
            "discriminator": [{"type": "pattern", "path": "$this"}], "rules": "open"}},
        {"id": "Observation.category:lab", "path": "Observation.category", "sliceName": "lab", "min": 1,
         "patternCodeableConcept": lab},
        {"id": "Observation.value[x]", "path": "Observation.value[x]", "type": [{"code": "Quantity"}]},
        {"id": "Observation.valueQuantity.system", "path": "Observation.valueQuantity.system",
         "min": 1, "fixedUri": "http://unitsofmeasure.org"},
    ], base=CORE + "Observation", type_="Observation")) == []
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "glycémie"},
           "category": [{"text": "labo", "coding": lab["coding"]}],
           "valueQuantity": {"value": 1.1, "unit": "g/L", "system": "http://unitsofmeasure.org", "code": "g/L"}}
    assert errors(v.validate(obs, [url])) == []
    wrong = copy.deepcopy(obs)
    wrong["category"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs"}]}]
    wrong["valueQuantity"].pop("system")
    wrong["valueQuantity"].pop("code")
    assert errors(v.validate(wrong, [url])) == [("required", "Observation.category"),
                                                ("required", "Observation.value.ofType(Quantity).system")]
    as_string = copy.deepcopy(obs)
    as_string["valueString"] = as_string.pop("valueQuantity") and "1,1 g/L"
    assert errors(v.validate(as_string, [url])) == [("structure", "Observation.value.ofType(string)")]


def test_core_vitalsigns_profile_from_meta():
    v = Validator()
    obs = {"resourceType": "Observation", "meta": {"profile": [CORE + "bodyweight"]}, "status": "final",
           "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">70 kg</div>"},
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                     "code": "vital-signs"}]}],
           "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
           "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2025-03-14",
           "valueQuantity": {"value": 70, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}
    assert errors(v.validate(obs)) == []
    bad = copy.deepcopy(obs)
    bad["code"]["coding"][0]["code"] = "8302-2"          # body height
    bad["valueQuantity"].pop("unit")
    assert errors(v.validate(bad)) == [("required", "Observation.code.coding"),
                                       ("required", "Observation.value.ofType(Quantity).unit")]


def test_profile_on_a_profile(v):
    child = SJ + "StructureDefinition/test-patient-adult"
    assert v.add_profile(sd(child, [
        {"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1},
        {"id": "Patient.identifier:cnss", "path": "Patient.identifier", "sliceName": "cnss", "min": 1},
    ], base=PROFILE)) == []
    p = good(meta={"profile": [child]})
    p["identifier"] = [GOOD["identifier"][0]]
    # the child's own rules and those it inherits from test-patient (gender is required there)
    p.pop("gender")
    assert errors(v.validate(p)) == [("required", "Patient.identifier"), ("required", "Patient.gender"),
                                     ("required", "Patient.birthDate")]


def test_snapshot_profile():
    v = Validator()
    url = SJ + "StructureDefinition/test-snapshot"
    snapshot = [
        {"id": "Organization", "path": "Organization", "min": 0, "max": "*"},
        {"id": "Organization.identifier", "path": "Organization.identifier", "min": 1, "max": "*",
         "base": {"path": "Organization.identifier", "min": 0, "max": "*"}, "type": [{"code": "Identifier"}]},
        {"id": "Organization.active", "path": "Organization.active", "min": 0, "max": "1",
         "base": {"path": "Organization.active", "min": 0, "max": "1"}, "type": [{"code": "boolean"}]},
        {"id": "Organization.name", "path": "Organization.name", "min": 1, "max": "1",
         "base": {"path": "Organization.name", "min": 0, "max": "1"}, "type": [{"code": "string"}]},
    ]
    assert v.add_profile(sd(url, snapshot, base=CORE + "Organization", type_="Organization", part="snapshot")) == []
    # org-1 (name or identifier) from the base specification, then the profile's two minimums
    assert errors(v.validate({"resourceType": "Organization", "active": True}, [url])) == [
        ("invariant", "Organization"), ("required", "Organization.identifier"), ("required", "Organization.name")]


# -- profiles that are rejected --------------------------------------------------------------
@pytest.mark.parametrize("element,word", [
    ({"id": "Patient.nickname", "path": "Patient.nickname", "min": 1}, "Patient.nickname"),
    ({"id": "Patient.gender", "path": "Patient.gender", "max": "2"}, "Cardinalité"),
    ({"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 2, "max": "1"}, "Cardinalité"),
    ({"id": "Patient.deceased[x]", "path": "Patient.deceased[x]", "type": [{"code": "string"}]}, "string"),
    ([{"id": "Patient.name:x", "path": "Patient.name", "sliceName": "x"},
      {"id": "Patient.name:y", "path": "Patient.name", "sliceName": "y"}], "découpage"),
])
def test_bad_profile_is_rejected_and_previous_version_stays(element, word):
    v = Validator()
    url = SJ + "StructureDefinition/test-versions"
    assert v.add_profile(sd(url, [{"id": "Patient.gender", "path": "Patient.gender", "min": 1}])) == []
    extra = element if isinstance(element, list) else [element]
    problems = v.add_profile(sd(url, [{"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1}, *extra]))
    assert [p.severity for p in problems] == ["error"]
    assert word in problems[0].diagnostics
    assert problems[0].expression == (f"StructureDefinition.differential.element[{len(extra)}]",)
    # version 1 still in force: gender required, birthDate not
    assert errors(v.validate({"resourceType": "Patient", "birthDate": "2000-01-01"}, [url])) == [
        ("required", "Patient.gender")]


def test_lone_slice_without_slicing_constrains_the_element():
    v = Validator()
    url = SJ + "StructureDefinition/test-lone-slice"
    problems = v.add_profile(sd(url, [
        {"id": "Patient.name:official", "path": "Patient.name", "sliceName": "official", "min": 1},
        {"id": "Patient.name:official.family", "path": "Patient.name.family", "min": 1},
    ]))
    assert [p.severity for p in problems] == ["warning"]
    assert errors(v.validate({"resourceType": "Patient", "name": [{"given": ["A"]}]}, [url])) == [
        ("required", "Patient.name[0].family")]
    assert errors(v.validate({"resourceType": "Patient"}, [url])) == [("required", "Patient.name")]


def test_malformed_structure_definitions():
    v = Validator()
    assert v.add_profile({"resourceType": "Patient"})[0].severity == "error"
    no_base = sd(SJ + "StructureDefinition/x", [{"id": "Patient", "path": "Patient"}], base=SJ + "nowhere")
    assert "nowhere" in v.add_profile(no_base)[0].diagnostics
    wrong_type = sd(SJ + "StructureDefinition/y", [{"id": "Patient", "path": "Patient"}], type_="Observation")
    assert v.add_profile(wrong_type)[0].severity == "error"
    specialization = sd(SJ + "StructureDefinition/z", [{"id": "Patient", "path": "Patient"}], derivation="specialization")
    assert v.add_profile(specialization)[0].severity == "error"


def test_profile_replacement_recompiles_derived_profiles():
    v = Validator()
    parent, child = SJ + "StructureDefinition/p1", SJ + "StructureDefinition/p2"
    assert v.add_profile(sd(parent, [{"id": "Patient.gender", "path": "Patient.gender", "min": 1}])) == []
    assert v.add_profile(sd(child, [{"id": "Patient.active", "path": "Patient.active", "min": 1}], base=parent)) == []
    assert errors(v.validate({"resourceType": "Patient"}, [child])) == [
        ("required", "Patient.active"), ("required", "Patient.gender")]
    assert v.add_profile(sd(parent, [{"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1}])) == []
    assert errors(v.validate({"resourceType": "Patient"}, [child])) == [
        ("required", "Patient.active"), ("required", "Patient.birthDate")]


def test_uncompilable_profile_invariant_is_a_warning_and_recorded():
    v = Validator()
    url = SJ + "StructureDefinition/test-inv"
    problems = v.add_profile(sd(url, [{"id": "Patient", "path": "Patient", "constraint": [{
        "key": "sj-bad", "severity": "error", "human": "?", "expression": "name.where(("}]}]))
    assert [(p.severity, "sj-bad" in p.diagnostics) for p in problems] == [("warning", True)]
    assert any(k.startswith("sj-bad") for k in v.skipped_invariants)
    assert v.validate({"resourceType": "Patient", "text": {"status": "empty", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">-</div>"}}, [url]) == []


def test_unknown_profiles(v):
    p = good(meta={"profile": [SJ + "StructureDefinition/absent"]})
    issues = v.validate(p)
    assert [(i.severity, i.code) for i in issues] == [("warning", "not-found")]
    issues = v.validate(good(meta=None), [SJ + "StructureDefinition/absent"])
    assert [(i.severity, i.code) for i in issues] == [("error", "not-found")]
    issues = v.validate({"resourceType": "Organization", "name": "x"}, [PROFILE])
    assert errors(issues) == [("structure", "Organization")]


def test_type_and_profile_discriminators(v):
    url = SJ + "StructureDefinition/test-bundle"
    assert v.add_profile(sd(url, [
        {"id": "Bundle.entry", "path": "Bundle.entry", "slicing": {
            "discriminator": [{"type": "type", "path": "resource"}], "rules": "closed"}},
        {"id": "Bundle.entry:patient", "path": "Bundle.entry", "sliceName": "patient", "min": 1, "max": "1"},
        {"id": "Bundle.entry:patient.resource", "path": "Bundle.entry.resource", "type": [{"code": "Patient"}]},
        {"id": "Bundle.entry:org", "path": "Bundle.entry", "sliceName": "org"},
        {"id": "Bundle.entry:org.resource", "path": "Bundle.entry.resource", "type": [{"code": "Organization"}]},
    ], base=CORE + "Bundle", type_="Bundle")) == []
    org = {"resourceType": "Organization", "name": "CNSS"}
    patient = copy.deepcopy(GOOD)
    patient.pop("meta")
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": org}, {"resource": patient}]}
    assert errors(v.validate(bundle, [url])) == []
    bundle["entry"] = [{"resource": org}, {"resource": {"resourceType": "Basic", "code": {"text": "x"}}}]
    assert errors(v.validate(bundle, [url])) == [("required", "Bundle.entry"), ("structure", "Bundle.entry[1]")]

    by_profile = SJ + "StructureDefinition/test-bundle-profile"
    assert v.add_profile(sd(by_profile, [
        {"id": "Bundle.entry", "path": "Bundle.entry", "slicing": {
            "discriminator": [{"type": "profile", "path": "resource"}], "rules": "open"}},
        {"id": "Bundle.entry:insured", "path": "Bundle.entry", "sliceName": "insured", "min": 1},
        {"id": "Bundle.entry:insured.resource", "path": "Bundle.entry.resource",
         "type": [{"code": "Patient", "profile": [PROFILE]}]},
    ], base=CORE + "Bundle", type_="Bundle")) == []
    bundle["entry"] = [{"resource": patient}]
    assert errors(v.validate(bundle, [by_profile])) == []
    anonymous = {k: val for k, val in patient.items() if k != "identifier"}
    bundle["entry"] = [{"resource": anonymous}]
    # the patient is no longer an "insured" (it does not conform to test-patient)
    assert ("required", "Bundle.entry") in errors(v.validate(bundle, [by_profile]))


def test_exists_discriminator():
    v = Validator()
    url = SJ + "StructureDefinition/test-exists"
    assert v.add_profile(sd(url, [
        {"id": "Patient.telecom", "path": "Patient.telecom", "slicing": {
            "discriminator": [{"type": "exists", "path": "period"}], "rules": "open"}},
        {"id": "Patient.telecom:current", "path": "Patient.telecom", "sliceName": "current", "min": 1, "max": "1"},
        {"id": "Patient.telecom:current.period", "path": "Patient.telecom.period", "max": "0"},
        {"id": "Patient.telecom:current.system", "path": "Patient.telecom.system", "min": 1},
        {"id": "Patient.telecom:past", "path": "Patient.telecom", "sliceName": "past"},
        {"id": "Patient.telecom:past.period", "path": "Patient.telecom.period", "min": 1},
    ])) == []
    past = {"system": "phone", "value": "0522000000", "period": {"end": "2020-01-01"}}
    ok = {"resourceType": "Patient", "telecom": [past, {"system": "phone", "value": "0661000000"}]}
    assert errors(v.validate(ok, [url])) == []
    assert errors(v.validate({"resourceType": "Patient", "telecom": [past]}, [url])) == [("required", "Patient.telecom")]
    no_system = {"resourceType": "Patient", "telecom": [{"value": "0661000000"}]}
    # cpt-2 of the base specification, and the slice's own minimum
    assert errors(v.validate(no_system, [url])) == [("invariant", "Patient.telecom[0]"),
                                                    ("required", "Patient.telecom[0].system")]

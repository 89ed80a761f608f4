"""The shipped base definitions and the compact form they share with loaded profiles."""
from __future__ import annotations

from profiles.validator.definitions import BASE_FILE, compact_structure, element_ids, load_base


def test_base_file_is_small_and_complete():
    assert BASE_FILE.stat().st_size < 1_000_000
    base = load_base()
    core = "http://hl7.org/fhir/StructureDefinition/"
    for name in ("Patient", "Claim", "Coverage", "Bundle", "HumanName", "Reference", "date", "Extension",
                 "SimpleQuantity", "vitalsigns", "patient-birthPlace"):
        assert core + name in base, name
    assert base[core + "Patient"]["part"] == "snapshot"
    assert base[core + "vitalsigns"]["part"] == "differential"
    assert base[core + "date"]["regex"].startswith("([0-9]")
    assert not any(s["kind"] == "logical" for s in base.values())


def test_compact_element_keeps_what_validation_needs():
    sd = {"url": "u", "type": "Patient", "kind": "resource", "derivation": "constraint", "baseDefinition": "b",
          "differential": {"element": [
              {"id": "Patient.id", "path": "Patient.id", "min": 0, "max": "1", "base": {"path": "Resource.id", "max": "1"},
               "definition": "dropped", "type": [{"code": "http://hl7.org/fhirpath/System.String", "extension": [
                   {"url": "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type", "valueUrl": "id"}]}]},
              {"id": "Patient.identifier", "path": "Patient.identifier", "slicing": {
                  "discriminator": [{"type": "value", "path": "system"}], "rules": "closed"}},
              {"id": "Patient.identifier:cin", "path": "Patient.identifier", "sliceName": "cin",
               "binding": {"strength": "required", "valueSet": "vs"}, "patternIdentifier": {"system": "s"},
               "constraint": [{"key": "k", "severity": "error", "human": "h", "expression": "x.exists()"}]},
          ]}}
    out = compact_structure(sd, "differential")
    assert out["elements"] == [
        {"id": "Patient.id", "min": 0, "max": "1", "bmax": "1", "t": [{"c": "id"}]},
        {"id": "Patient.identifier", "sl": {"d": [["value", "system"]], "r": "closed", "o": False}},
        {"id": "Patient.identifier:cin", "sn": "cin", "ptt": "Identifier", "pt": {"system": "s"},
         "b": ["required", "vs"], "k": [["k", "error", "h", "x.exists()"]]},
    ]


def test_ids_of_elements_without_id_follow_open_slices():
    els = element_ids([{"path": "Patient.identifier"},
                       {"path": "Patient.identifier", "sliceName": "cin"},
                       {"path": "Patient.identifier.system"},
                       {"path": "Patient.gender"}])
    assert [e["id"] for e in els] == ["Patient.identifier", "Patient.identifier:cin",
                                      "Patient.identifier:cin.system", "Patient.gender"]

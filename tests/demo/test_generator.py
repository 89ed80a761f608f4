"""The synthetic population: valid FHIR, reproducible, Moroccan, referentially whole."""
from __future__ import annotations

import hashlib
import inspect
import re
import statistics
import subprocess
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from ehr.demo import (
    heavy_patient_ids,
    iter_resources,
    patient_bundles,
    patient_id,
    patient_resources,
    reference_bundle,
)
from ehr.demo.places import CITY_BY_NAME
from ehr.demo.reference import FUNDS
from ehr.demo.systems import INPE
from ehr.security.prescription_number import is_valid

REPO = Path(__file__).resolve().parents[2]
CIN_SYSTEM = "https://fhir.sijill.ma/sid/cin"
ARABIC = re.compile(r"[\u0600-\u06FF]")
LANGUAGE_EXT = "http://hl7.org/fhir/StructureDefinition/language"


@lru_cache(maxsize=None)
def _model(res_type: str):
    return get_fhir_model_class(res_type)


def _references(node, out: list[str]) -> list[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                out.append(v)
            else:
                _references(v, out)
    elif isinstance(node, list):
        for v in node:
            _references(v, out)
    return out


@pytest.fixture(scope="module")
def population() -> list[dict]:
    return list(patient_bundles(200, seed=3, heavy_every=100))


@pytest.fixture(scope="module")
def reference() -> dict:
    return reference_bundle(3)


def test_every_resource_validates_against_r4b(population, reference):
    _model("Bundle").model_validate(population[1])  # a transaction Bundle as a whole, once
    count = 0
    for bundle in [reference, *population]:
        for entry in bundle["entry"]:
            res = entry["resource"]
            _model(res["resourceType"]).model_validate(res)
            count += 1
    assert count > 200 * 15


def test_transaction_entries_are_idempotent_puts(population, reference):
    for bundle in [reference, *population]:
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
        full_urls = [e["fullUrl"] for e in bundle["entry"]]
        assert len(set(full_urls)) == len(full_urls)
        for e in bundle["entry"]:
            res = e["resource"]
            assert e["request"] == {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}
            assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", e["fullUrl"])
            assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", res["id"])


def test_same_seed_same_bytes_even_in_another_process():
    here = hashlib.sha256(b"".join(orjson.dumps(b) for b in patient_bundles(25, seed=11, heavy_every=20))).hexdigest()
    again = hashlib.sha256(b"".join(orjson.dumps(b) for b in patient_bundles(25, seed=11, heavy_every=20))).hexdigest()
    assert here == again
    code = (
        "import hashlib, orjson\n"
        "from ehr.demo import patient_bundles\n"
        "print(hashlib.sha256(b''.join(orjson.dumps(b) for b in patient_bundles(25, seed=11, heavy_every=20)))"
        ".hexdigest())\n"
    )
    # A different hash seed must not change anything (no set/dict-order dependence).
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == here
    assert orjson.dumps(reference_bundle(11)) == orjson.dumps(reference_bundle(11))


def test_different_seeds_differ():
    a = [orjson.dumps(b) for b in patient_bundles(10, seed=1)]
    b = [orjson.dumps(b) for b in patient_bundles(10, seed=2)]
    assert all(x != y for x, y in zip(a, b, strict=True))
    names_a = {p["name"][1]["text"] for p in (patient_resources(i, 1)[0] for i in range(50))}
    names_b = {p["name"][1]["text"] for p in (patient_resources(i, 2)[0] for i in range(50))}
    assert names_a != names_b
    assert patient_id(1, 0) != patient_id(2, 0)


def test_streaming_and_prefix_stability():
    gen = patient_bundles(10_000_000, seed=5)
    assert inspect.isgenerator(gen)
    first = [next(gen) for _ in range(3)]  # a huge population costs nothing until consumed
    assert [orjson.dumps(b) for b in first] == [orjson.dumps(b) for b in patient_bundles(3, seed=5)]


def test_patients_have_arabic_and_french_names(population):
    given_fr_by_ar: dict[str, set[str]] = {}
    for bundle in population:
        patient = bundle["entry"][0]["resource"]
        assert patient["resourceType"] == "Patient"
        by_lang = {n["extension"][0]["valueCode"]: n for n in patient["name"]
                   if n["extension"][0]["url"] == LANGUAGE_EXT}
        assert set(by_lang) == {"ar", "fr"}
        ar, fr = by_lang["ar"], by_lang["fr"]
        assert ar["family"] and ar["given"] and fr["family"] and fr["given"]
        assert ARABIC.search(ar["family"]) and ARABIC.search(ar["given"][0])
        assert not ARABIC.search(fr["family"] + fr["given"][0])
        given_fr_by_ar.setdefault(ar["given"][0], set()).add(fr["given"][0])
    # One Arabic name, several civil-registry spellings (Mohammed / Mohamed / Mhamed...).
    assert any(len(spellings) >= 2 for spellings in given_fr_by_ar.values())


def test_cin_format_region_letters_and_uniqueness():
    cins = []
    adults = 0
    for index in range(1000):
        resources = patient_resources(index, seed=4)
        patient = resources[0]
        values = [i["value"] for i in patient["identifier"] if i["system"] == CIN_SYSTEM]
        age = 2025 - int(patient["birthDate"][:4])
        if age >= 19:
            assert len(values) == 1, patient["identifier"]
        if values:
            adults += 1
            cin = values[0]
            assert re.fullmatch(r"[A-Z]{1,2}[0-9]{1,6}", cin)
            city = CITY_BY_NAME[patient["address"][0]["city"]]
            assert re.match(r"[A-Z]+", cin).group(0) in city.cin_letters  # the issuing city's series
        cins += values
        for r in resources[1:]:
            if r["resourceType"] == "RelatedPerson":
                cins += [i["value"] for i in r["identifier"] if i["system"] == CIN_SYSTEM]
    assert adults > 500
    assert len(cins) == len(set(cins)), "CIN numbers must be unique"


def test_references_resolve_within_bundle_or_to_reference_population(population, reference):
    shared = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in reference["entry"]}
    for e in reference["entry"]:
        for ref in _references(e["resource"], []):
            assert ref in shared, ref
    for bundle in population:
        local = {e["fullUrl"] for e in bundle["entry"]}
        for e in bundle["entry"]:
            for ref in _references(e["resource"], []):
                if ref.startswith("urn:uuid:"):
                    assert ref in local, ref
                else:
                    assert ref in shared, ref


def test_flat_stream_is_the_same_resources_with_type_id_references(population):
    flat = list(iter_resources(200, seed=3, heavy_every=100, include_reference=False))
    in_bundles = [e["resource"] for b in population for e in b["entry"]]
    assert [(r["resourceType"], r["id"]) for r in flat] == [(r["resourceType"], r["id"]) for r in in_bundles]
    ids = {f"{r['resourceType']}/{r['id']}" for r in flat} | {
        f"{r['resourceType']}/{r['id']}" for r in iter_resources(0, seed=3)}
    for r in flat:
        for ref in _references(r, []):
            assert not ref.startswith("urn:"), ref
            assert ref in ids, ref


def test_heavy_patients_are_chronic_and_about_500_resources(population):
    heavy = heavy_patient_ids(200, 3, 100)
    assert heavy == [patient_id(3, 0), patient_id(3, 100)]
    for bundle in population:
        pid = bundle["entry"][0]["resource"]["id"]
        if pid in heavy:
            resources = [e["resource"] for e in bundle["entry"]]
            assert 430 <= len(resources) <= 520
            codes = {r["code"]["coding"][0]["code"] for r in resources if r["resourceType"] == "Condition"}
            assert {"E11", "I10"} <= codes
            kinds = Counter(r["resourceType"] for r in resources)
            assert kinds["Encounter"] >= 30 and kinds["Observation"] >= 150 and kinds["MedicationRequest"] >= 30


def test_average_size_follows_the_setting():
    small = statistics.mean(len(patient_resources(i, 9, per_patient=20)) for i in range(300))
    large = statistics.mean(len(patient_resources(i, 9, per_patient=40)) for i in range(300))
    assert 15 <= small <= 27
    assert 32 <= large <= 50


def test_clinical_content_is_moroccan_and_coded(population):
    kinds: Counter = Counter()
    systems: Counter = Counter()
    for bundle in population:
        for e in bundle["entry"]:
            r = e["resource"]
            kinds[r["resourceType"]] += 1
            if r["resourceType"] == "Observation":
                systems[r["code"]["coding"][0]["system"]] += 1
                q = r.get("valueQuantity") or r["component"][0]["valueQuantity"]
                assert q["system"] == "http://unitsofmeasure.org" and q["code"]
            elif r["resourceType"] == "MedicationRequest":
                number = r["groupIdentifier"]
                assert number["system"] == "https://fhir.sijill.ma/sid/prescription" and is_valid(number["value"])
                assert all(i.get("system") != number["system"] for i in r.get("identifier", ()))
                assert r["medicationCodeableConcept"]["coding"][0]["system"] == "http://www.whocc.no/atc"
            elif r["resourceType"] == "Coverage":
                assert r["payor"][0]["reference"] in {f"Organization/{f.id}" for f in FUNDS}
            elif r["resourceType"] == "Patient":
                assert r["address"][0]["country"] == "MA"
                assert r["address"][0]["_city"]["extension"][0]["extension"][1]["valueString"]  # Arabic city
                phones = [t["value"] for t in r.get("telecom", [])]
                assert all(re.fullmatch(r"\+212[67][0-9]{8}", p) for p in phones)
    assert systems == Counter({"http://loinc.org": systems["http://loinc.org"]})
    for kind in ("Encounter", "Condition", "Observation", "AllergyIntolerance", "Immunization", "MedicationRequest",
                 "Coverage", "RelatedPerson"):
        assert kinds[kind] > 0, kind


def test_reference_population_has_funds_facilities_and_inpe(reference):
    resources = [e["resource"] for e in reference["entry"]]
    ids = {r["id"] for r in resources}
    assert {"cnss", "cnops", "amo-tadamon"} <= ids
    inpe = [i["value"] for r in resources if r["resourceType"] in ("Organization", "Practitioner")
            for i in r.get("identifier", []) if i["system"] == INPE]
    assert all(re.fullmatch(r"[0-9]{9}", v) for v in inpe)
    assert len(inpe) == len(set(inpe)) > 500
    kinds = Counter(r["type"][1]["coding"][0]["code"] for r in resources if r["resourceType"] == "Organization")
    for kind in ("chu", "chr", "clinique", "pharmacie", "laboratoire"):
        assert kinds[kind] > 0, kind
    specialties = {r["specialty"][0].get("text") for r in resources if r["resourceType"] == "PractitionerRole"}
    assert {"Médecine générale", "Pédiatrie", "Cardiologie", "Gynécologie-obstétrique"} <= specialties


def test_bundles_can_be_mutated_without_affecting_later_ones():
    # The server rewrites resources in place (ids, meta, references): the generator must hand
    # out fresh objects every time.
    first = reference_bundle(6)
    first["entry"][0]["resource"].clear()
    assert reference_bundle(6)["entry"][0]["resource"]["resourceType"] == "Organization"

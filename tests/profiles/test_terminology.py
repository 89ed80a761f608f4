"""Terminology service: $expand (autocomplete in French and Arabic), $lookup, $validate-code,
:in expansions, ConceptMap translation, and all-or-nothing loading of new resources."""
import copy
import statistics
import time

import pytest

from ehr.outcome import FHIRError
from profiles.terminology import TerminologyService, base_resources, get_terminology, moroccan_resources
from profiles.terminology.normalise import fold

CS = "https://fhir.sijill.ma/CodeSystem/"
VS = "https://fhir.sijill.ma/ValueSet/"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
T = "http://example.org/fhir/CodeSystem/t"  # outside the Moroccan namespace: no fr/ar rule


@pytest.fixture(scope="module")
def tx() -> TerminologyService:
    return get_terminology()


def codes(expansion: dict) -> list[str]:
    return [c["code"] for c in expansion["expansion"].get("contains", [])]


def params(parameters: dict) -> dict:
    return {p["name"]: next((v for k, v in p.items() if k.startswith("value")), None) for p in parameters["parameter"]}


# ---------------------------------------------------------------- folding


@pytest.mark.parametrize("typed, indexed", [
    ("hopital", "Hôpital"),
    ("OEIL", "œil"),
    ("مستشفي", "مُسْتَشْفَى"),  # harakat, final ى typed ي
    ("مستشفى", "مستشفـــى"),  # tatweel
    ("امراض", "أمراض"),  # hamza on alef
    ("اسعاف", "إسعاف"),
    ("صيدليه", "صيدلية"),  # ة typed ه
    ("34", "٣٤"),  # Arabic-Indic digits
])
def test_fold_makes_typed_and_indexed_forms_meet(typed, indexed):
    assert fold(typed) == fold(indexed)


# ---------------------------------------------------------------- $expand


def test_expand_filter_french_without_accents(tx):
    out = tx.expand(VS + "type-etablissement", filter="hopital")
    assert codes(out) == ["hopital-public"]
    assert out["expansion"]["total"] == 1


def test_expand_filter_arabic_typed_without_harakat_or_hamza(tx):
    # "أمراض القلب والشرايين" (cardiologie) typed as people do on a phone keyboard.
    out = tx.expand(VS + "specialite", filter="امراض القلب", display_language="ar")
    assert codes(out) == ["CARD"]
    assert out["expansion"]["contains"][0]["display"] == "أمراض القلب والشرايين"


def test_expand_filter_arabic_teh_marbuta_and_alef_maksura(tx):
    by_heh = codes(tx.expand(VS + "type-etablissement", filter="صيدليه"))
    assert by_heh == ["pharmacie"]
    assert codes(tx.expand(VS + "type-etablissement", filter="مستشفي عمومي")) == ["hopital-public"]


def test_expand_filter_matches_word_prefixes_of_every_word(tx):
    out = tx.expand(VS + "medicament", filter="amox 1 g", count=100)
    names = [c["display"] for c in out["expansion"]["contains"]]
    assert names and all("1 g" in n or "500 mg" in n for n in names)
    # the DCI (a text property) is searched too: Clamoxyl is amoxicillin
    assert any(n.startswith("Clamoxyl 1 g") for n in names)
    # displays starting with the query come first
    assert names[0].startswith("Amox")
    assert tx.expand(VS + "medicament", filter="xyz-nothing")["expansion"]["total"] == 0


def test_expand_exact_code_ranks_first(tx):
    out = tx.expand(VS + "acte", filter="cs")
    assert codes(out)[0] == "CS"


def test_expand_display_language(tx):
    fr = tx.expand(VS + "organisme-amo", display_language="fr")
    ar = tx.expand(VS + "organisme-amo", display_language="ar")
    assert codes(fr) == codes(ar) == ["CNSS", "CNOPS", "AMO-TADAMON"]
    assert fr["expansion"]["contains"][0]["display"] == "Caisse Nationale de Sécurité Sociale"
    assert ar["expansion"]["contains"][0]["display"] == "الصندوق الوطني للضمان الاجتماعي"
    assert {"name": "displayLanguage", "valueCode": "ar"} in ar["expansion"]["parameter"]
    with_designations = tx.expand(VS + "organisme-amo", include_designations=True)
    langs = {d["language"] for d in with_designations["expansion"]["contains"][0]["designation"]}
    assert langs == {"fr", "ar"}


def test_expand_paging_is_stable_and_complete(tx):
    first = tx.expand(VS + "acte", offset=0, count=100)
    total = first["expansion"]["total"]
    assert total > 250
    seen: list[str] = []
    for offset in range(0, total, 100):
        page = tx.expand(VS + "acte", offset=offset, count=100)
        assert page["expansion"]["offset"] == offset
        seen.extend(codes(page))
    assert len(seen) == total == len(set(seen))
    assert codes(tx.expand(VS + "acte", offset=total, count=10)) == []
    with pytest.raises(FHIRError) as err:
        tx.expand(VS + "acte", offset=-1)
    assert err.value.status == 400


def test_expand_filters_of_the_shipped_value_sets(tx):
    assert codes(tx.expand(VS + "organisme-amo")) == ["CNSS", "CNOPS", "AMO-TADAMON"]
    complementary = codes(tx.expand(VS + "organisme-complementaire", count=100))
    assert "MGPAP" in complementary and "CMIM" in complementary and "CNSS" not in complementary
    medical = codes(tx.expand(VS + "specialite-medicale", count=100))
    assert "CARD" in medical and "MED" not in medical and "KINE" not in medical
    assert "pharmacie" not in codes(tx.expand(VS + "type-feuille-soins"))
    lab = tx.expand(VS + "acte-biologie", count=1000)
    assert lab["expansion"]["total"] > 100 and all(c.startswith("B") for c in codes(lab))
    reimbursable = set(codes(tx.expand(VS + "medicament-remboursable", count=1000)))
    everything = set(codes(tx.expand(VS + "medicament", count=1000)))
    assert reimbursable < everything


def test_expand_marks_abstract_families(tx):
    out = tx.expand(VS + "motif-rejet", count=100)
    family = next(c for c in out["expansion"]["contains"] if c["code"] == "ELIG")
    assert family.get("abstract") is True


def test_expand_unknown_or_open_value_set(tx):
    with pytest.raises(FHIRError) as err:
        tx.expand(VS + "does-not-exist")
    assert err.value.status == 404
    with pytest.raises(FHIRError) as err:
        tx.expand(VS + "cim-10")  # the whole ICD-10 is not held here
    assert err.value.status == 422 and err.value.issues[0].code == "too-costly"


def test_expand_with_filter_is_fast_over_thousands_of_concepts():
    concepts = [
        {"code": f"X{i:05d}", "display": f"Médicament numéro {i} comprimé pelliculé {i % 97} mg",
         "designation": [{"language": "fr", "value": f"Médicament numéro {i}"},
                         {"language": "ar", "value": f"دواء رقم {i} أقراص مغلفة"}]}
        for i in range(5000)
    ]
    service = TerminologyService()
    service.install([
        {"resourceType": "CodeSystem", "url": CS + "big", "status": "active", "content": "complete", "concept": concepts},
        {"resourceType": "ValueSet", "url": VS + "big", "status": "active", "compose": {"include": [{"system": CS + "big"}]}},
    ])
    service.expand(VS + "big", filter="x")  # first use builds the index
    timings = []
    for query in ("medicament 12", "اقراص 49", "compr pell 3", "numero 4999", "دواء"):
        for _ in range(10):
            # CPU time of this process: other jobs on a busy machine do not count against us.
            start = time.process_time()
            out = service.expand(VS + "big", filter=query, count=20, display_language="ar")
            timings.append(time.process_time() - start)
        assert out["expansion"]["total"] > 0
    assert statistics.median(timings) < 0.005, f"median $expand {statistics.median(timings) * 1000:.2f} ms"


# ---------------------------------------------------------------- $lookup


def test_lookup_with_designations_properties_and_hierarchy(tx):
    out = tx.lookup(CS + "motif-rejet", "ELIG-02", display_language="ar")
    p = params(out)
    assert p["display"] == "الحقوق مغلقة في تاريخ العلاج"
    assert p["name"] == "MotifRejet"
    parents = [x["part"][1]["valueCode"] for x in out["parameter"] if x["name"] == "property"
               and x["part"][0]["valueCode"] == "parent"]
    assert parents == ["ELIG"]
    langs = sorted(x["part"][0]["valueCode"] for x in out["parameter"] if x["name"] == "designation")
    assert langs == ["ar", "fr"]
    med = tx.lookup(CS + "organisme", "AMO-TADAMON")
    props = {x["part"][0]["valueCode"]: x["part"][1] for x in med["parameter"] if x["name"] == "property"}
    assert props["gestionnaire"] == {"name": "value", "valueCode": "CNSS"}


def test_lookup_unknown(tx):
    assert tx.lookup(CS + "organisme", "NOPE") is None
    assert tx.lookup(CS + "nothing", "CNSS") is None
    with pytest.raises(FHIRError) as err:
        tx.require_lookup(CS + "organisme", "NOPE")
    assert err.value.status == 404 and "NOPE" in err.value.issues[0].diagnostics
    with pytest.raises(FHIRError) as err:
        tx.require_lookup(CS + "nothing", "CNSS")
    assert "Système de codes inconnu" in err.value.issues[0].diagnostics


def test_lookup_base_code_system(tx):
    assert params(tx.lookup("http://hl7.org/fhir/administrative-gender", "female"))["display"] == "Female"


# ---------------------------------------------------------------- $validate-code


def test_validate_code(tx):
    assert tx.validate_code(VS + "organisme-amo", CS + "organisme", "CNOPS") is True
    assert tx.validate_code(VS + "organisme-amo", CS + "organisme", "MGPAP") is False
    assert tx.validate_code(VS + "organisme-amo", None, "CNSS") is True
    assert tx.validate_code(VS + "unknown", CS + "organisme", "CNSS") is None
    # base REQUIRED binding
    gender = "http://hl7.org/fhir/ValueSet/administrative-gender"
    assert tx.validate_code(gender, "http://hl7.org/fhir/administrative-gender", "male") is True
    assert tx.validate_code(gender, "http://hl7.org/fhir/administrative-gender", "M") is False


def test_validate_code_in_an_external_system_checks_the_form_only(tx):
    assert tx.validate_code(VS + "cim-10", ICD10, "E11.9") is None  # well formed, cannot be confirmed
    assert tx.validate_code(VS + "cim-10", ICD10, "diabete") is False
    # currencies = all of ISO 4217, of which only a fragment is held: MAD is known, others undecided
    currencies = "http://hl7.org/fhir/ValueSet/currencies"
    assert tx.validate_code(currencies, None, "MAD") is True
    assert tx.validate_code(currencies, "urn:iso:std:iso:4217", "JPY") is None


def test_validate_explains(tx):
    ok = params(tx.validate(VS + "regime", CS + "regime", "AMO-PUB", display_language="ar"))
    assert ok["result"] is True and ok["display"].startswith("التأمين")
    wrong_display = params(tx.validate(VS + "regime", CS + "regime", "AMO-PUB", display="Salariés du privé"))
    assert wrong_display["result"] is False and "AMO-PUB" in wrong_display["message"]
    unknown = params(tx.validate(VS + "regime", CS + "regime", "AMO-XYZ"))
    assert unknown["result"] is False and "n'existe pas dans le système" in unknown["message"]
    outside = params(tx.validate(VS + "organisme-amo", CS + "organisme", "CMIM"))
    assert outside["result"] is False and "n'appartient pas" in outside["message"]


# ---------------------------------------------------------------- :in / $translate


def test_codes_in_feeds_the_in_modifier(tx):
    pairs = tx.codes_in(VS + "organisme-amo")
    assert pairs == [(CS + "organisme", "CNSS"), (CS + "organisme", "CNOPS"), (CS + "organisme", "AMO-TADAMON")]
    with pytest.raises(FHIRError) as err:
        tx.codes_in(VS + "nothing")
    assert err.value.status == 404
    with pytest.raises(FHIRError):
        tx.codes_in(VS + "cim-10")


def test_translate(tx):
    out = tx.translate(CS + "lien-parente", "conjoint")
    assert out == [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "spouse",
                    "display": None, "equivalence": "equivalent"}]
    regimes = tx.translate(CS + "regime", "AMO-PENS", target_system=CS + "organisme")
    assert [t["code"] for t in regimes] == ["CNSS", "CNOPS"]
    icd = [t["code"] for t in tx.translate(CS + "ald", "ALD09")]
    assert icd == ["E10-E14"]


# ---------------------------------------------------------------- filters


@pytest.fixture
def small() -> TerminologyService:
    service = TerminologyService()
    service.install([{
        "resourceType": "CodeSystem", "url": T, "status": "active", "content": "complete",
        "property": [{"code": "colour", "type": "string"}, {"code": "big", "type": "boolean"}],
        "concept": [
            {"code": "A", "display": "a", "property": [{"code": "colour", "valueString": "red"}], "concept": [
                {"code": "A1", "display": "a1", "property": [{"code": "colour", "valueString": "blue"},
                                                               {"code": "big", "valueBoolean": True}]},
                {"code": "A2", "display": "a2", "concept": [{"code": "A21", "display": "a21"}]},
            ]},
            {"code": "B", "display": "b", "property": [{"code": "colour", "valueString": "red"}]},
        ],
    }])
    return service


@pytest.mark.parametrize("flt, expected", [
    ({"property": "concept", "op": "is-a", "value": "A2"}, ["A2", "A21"]),
    ({"property": "concept", "op": "descendent-of", "value": "A"}, ["A1", "A2", "A21"]),
    ({"property": "concept", "op": "is-not-a", "value": "A"}, ["B"]),
    ({"property": "concept", "op": "generalizes", "value": "A21"}, ["A", "A2", "A21"]),
    ({"property": "colour", "op": "=", "value": "red"}, ["A", "B"]),
    ({"property": "colour", "op": "in", "value": "blue,red"}, ["A", "A1", "B"]),
    ({"property": "colour", "op": "not-in", "value": "red"}, ["A1", "A2", "A21"]),
    ({"property": "big", "op": "exists", "value": "true"}, ["A1"]),
    ({"property": "code", "op": "regex", "value": "A[0-9]+"}, ["A1", "A2", "A21"]),
    ({"property": "parent", "op": "=", "value": "A"}, ["A1", "A2"]),
])
def test_filter_operators(small, flt, expected):
    issues = small.add({"resourceType": "ValueSet", "url": VS + "f", "status": "active",
                        "compose": {"include": [{"system": T, "filter": [flt]}]}})
    assert issues == []
    assert codes(small.expand(VS + "f")) == expected


# ---------------------------------------------------------------- add: all or nothing


def test_bad_value_set_rejected_with_every_problem_and_previous_kept(small):
    assert small.add({"resourceType": "ValueSet", "url": VS + "v", "status": "active",
                      "compose": {"include": [{"system": T, "concept": [{"code": "A"}, {"code": "B"}]}]}}) == []
    bad = {"resourceType": "ValueSet", "url": VS + "v", "status": "active", "compose": {"include": [
        {"system": T, "concept": [{"code": "A"}, {"code": "Z9"}]},
        {"system": T, "filter": [{"property": "weight", "op": "=", "value": "1"}]},
        {"system": T, "filter": [{"property": "concept", "op": "is-a", "value": "Q"}]},
        {"valueSet": [VS + "missing"]},
    ]}}
    issues = small.add(bad)
    found = {(i.code, i.expression) for i in issues}
    assert ("code-invalid", ("ValueSet.compose.include[0].concept[1].code",)) in found
    assert ("invalid", ("ValueSet.compose.include[1].filter[0].property",)) in found
    assert ("code-invalid", ("ValueSet.compose.include[2].filter[0].value",)) in found
    assert ("not-found", ("ValueSet.compose.include[3].valueSet[0]",)) in found
    assert len(issues) == 4
    assert codes(small.expand(VS + "v")) == ["A", "B"]  # previous version still in force


def test_structurally_invalid_resource_rejected(small):
    issues = small.add({"resourceType": "ValueSet", "url": VS + "x", "status": "not-a-status", "foo": 1})
    assert issues and all(i.severity == "error" for i in issues)
    assert any(i.expression and i.expression[0].startswith("ValueSet.") for i in issues)
    assert small.valueset(VS + "x") is None
    assert small.add({"resourceType": "Patient"})[0].code == "invalid"


def test_code_system_change_that_breaks_a_value_set_is_rejected(small):
    small.add({"resourceType": "ValueSet", "url": VS + "uses-b", "status": "active",
               "compose": {"include": [{"system": T, "concept": [{"code": "B"}]}]}})
    without_b = copy.deepcopy(small.codesystem(T).resource)
    without_b["concept"] = without_b["concept"][:1]
    issues = small.add(without_b)
    assert issues and "uses-b" in issues[0].diagnostics and "B" in issues[0].diagnostics
    assert small.codesystem(T).get("B") is not None


def test_code_system_rules(small):
    cs = {"resourceType": "CodeSystem", "url": CS + "bad", "status": "active", "content": "complete",
          "property": [{"code": "n", "type": "integer"}],
          "concept": [
              {"code": "X", "designation": [{"language": "fr", "value": "x"}],
               "property": [{"code": "n", "valueString": "1"}, {"code": "undeclared", "valueString": "?"}]},
              {"code": "X", "designation": [{"language": "fr", "value": "x"}, {"language": "ar", "value": "س"}]},
          ]}
    issues = small.add(cs)
    messages = " | ".join(i.diagnostics for i in issues)
    assert "en double" in messages  # duplicate code
    assert "non déclarée" in messages  # undeclared property
    assert "valueInteger attendu" in messages  # wrong property type
    assert "désignation en ar" in messages  # Moroccan concept without Arabic
    assert {i.expression for i in issues} >= {("CodeSystem.concept[1].code",), ("CodeSystem.concept[0].designation",)}
    assert small.codesystem(CS + "bad") is None


def test_good_update_replaces_and_refreshes_expansions(small):
    updated = copy.deepcopy(small.codesystem(T).resource)
    updated["concept"].append({"code": "C", "display": "c"})
    small.add({"resourceType": "ValueSet", "url": VS + "all", "status": "active", "compose": {"include": [{"system": T}]}})
    assert "C" not in codes(small.expand(VS + "all"))
    assert small.add(updated) == []
    assert "C" in codes(small.expand(VS + "all"))


def test_every_shipped_moroccan_resource_passes_the_checks():
    service = TerminologyService()
    service.install(base_resources())
    problems = {}
    for resource in moroccan_resources():
        issues = service.add(resource)
        if issues:
            problems[resource["url"]] = [i.diagnostics for i in issues]
    assert problems == {}
    loaded = {r["url"] for r in service.resources()}
    assert {r["url"] for r in moroccan_resources()} <= loaded


def test_every_moroccan_concept_is_bilingual():
    for resource in moroccan_resources():
        if resource["resourceType"] != "CodeSystem":
            continue
        stack = list(resource["concept"])
        while stack:
            c = stack.pop()
            langs = {d["language"] for d in c.get("designation", [])}
            assert {"fr", "ar"} <= langs, (resource["url"], c["code"])
            stack.extend(c.get("concept", []))


async def test_search_hook_for_in_above_below(tx):
    from profiles.terminology.search_hook import SearchTerminology

    hook = SearchTerminology(tx)
    assert list(await hook.expand(None, VS + "organisme-amo")) == tx.codes_in(VS + "organisme-amo")
    below = list(await hook.related(None, CS + "motif-rejet", "ELIG", "below"))
    assert below[0] == (CS + "motif-rejet", "ELIG") and (CS + "motif-rejet", "ELIG-02") in below and len(below) == 7
    assert list(await hook.related(None, CS + "specialite", "CARD", "above")) == [(CS + "specialite", "CARD"), (CS + "specialite", "MED")]
    with pytest.raises(FHIRError) as err:
        await hook.related(None, CS + "specialite", "NOPE", "below")
    assert err.value.status == 400

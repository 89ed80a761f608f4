"""Invariant evaluation: native twins agree with fhirpathpy, the absence guard is sound,
syntax errors are caught, and FHIR functions missing from fhirpathpy are provided."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import fhirpathpy
import pytest
from fhirpathpy.engine.nodes import ResourceNode

from profiles.validator import Validator
from profiles.validator import walker as walker_module
from profiles.validator.fastpath import Fallback
from profiles.validator.invariants import (
    MODEL,
    NATIVE,
    OPTIONS,
    InvariantCompiler,
    absence_guard,
    check_syntax,
)
from profiles.validator.narrative import html_checks

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples.ndjson.gz"


def native(key: str):
    return next(fn for (k, _), fn in NATIVE.items() if k == key)


def expression(key: str) -> str:
    return next(x for (k, x) in NATIVE if k == key)


def fhirpath(key: str, focus, type_path: str, root: dict) -> bool:
    result = fhirpathpy.compile(expression(key), MODEL, OPTIONS)(
        ResourceNode.create_node(focus, type_path), {"resource": root, "rootResource": root})
    return not (len(result) == 1 and result[0] is False)


def walk(value, found: list):
    if isinstance(value, dict):
        found.append(value)
        for v in value.values():
            walk(v, found)
    elif isinstance(value, list):
        for v in value:
            walk(v, found)


@pytest.fixture(scope="module")
def examples():
    with gzip.open(EXAMPLES, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_ref_1_twin_agrees_with_fhirpathpy(examples):
    checked = 0
    for example in examples:
        nodes: list = []
        walk(example, nodes)
        for node in nodes:
            if isinstance(node.get("reference"), str):
                assert native("ref-1")(node, example, example) == fhirpath("ref-1", node, "Reference", example)
                checked += 1
    assert checked > 1000
    contained = {"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o"}]}
    for ref, ok in (("#o", True), ("#x", False), ("Organization/o", True)):
        node = {"reference": ref}
        assert native("ref-1")(node, contained, contained) is ok
        assert fhirpath("ref-1", node, "Reference", contained) is ok


def test_per_1_twin_agrees_with_fhirpathpy_at_equal_precision(examples):
    periods = [{"start": "2020-01-01", "end": "2020-01-02"}, {"start": "2020-01-02", "end": "2020-01-01"},
               {"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T09:00:00Z"},
               {"start": "2020-01-01T10:00:00+02:00", "end": "2020-01-01T09:00:00Z"},
               {"start": "2020-01", "end": "2019-12"}, {"start": "2020"}, {"end": "2020"}]
    for example in examples:
        nodes: list = []
        walk(example, nodes)
        periods += [n for n in nodes if set(n) <= {"start", "end", "id", "extension"} and "start" in n and "end" in n
                    and isinstance(n["start"], str) and isinstance(n["end"], str)]
    assert len(periods) > 50
    for p in periods:
        if len(p.get("start", "")) == len(p.get("end", "")) or "start" not in p or "end" not in p:
            assert native("per-1")(p, {}, {}) == fhirpath("per-1", p, "Period", {}), p


def test_per_1_precision_rule():
    # fhirpathpy says false here; FHIRPath says unknown (equal up to the shared precision)
    assert native("per-1")({"start": "2020-01-01T10:00:00Z", "end": "2020-01-01"}, {}, {}) is True
    assert native("per-1")({"start": "2020-01-02T10:00:00Z", "end": "2020-01-01"}, {}, {}) is False
    assert native("per-1")({"start": "2021", "end": "2020-12-31"}, {}, {}) is False


def test_dom_6_twin_agrees_with_fhirpathpy(examples):
    for example in examples:
        assert native("dom-6")(example, example, example) == fhirpath("dom-6", example, example["resourceType"], example)
    assert native("dom-6")({"resourceType": "Patient"}, {}, {}) is False


def test_dom_3_twin():
    dom3 = native("dom-3")
    org = {"resourceType": "Organization", "id": "o"}
    assert dom3({"resourceType": "Patient"}, {}, {})
    assert dom3({"resourceType": "Patient", "contained": [org], "managingOrganization": {"reference": "#o"}}, {}, {})
    assert not dom3({"resourceType": "Patient", "contained": [org]}, {}, {})
    # a contained resource referring to its container is fine
    back = {"resourceType": "Provenance", "id": "pv", "target": [{"reference": "#"}]}
    assert dom3({"resourceType": "Patient", "contained": [back]}, {}, {})
    # canonical references count too
    q = {"resourceType": "Questionnaire", "id": "q"}
    assert dom3({"resourceType": "QuestionnaireResponse", "contained": [q], "questionnaire": "#q"}, {}, {})


def test_narrative_checks():
    ns = 'xmlns="http://www.w3.org/1999/xhtml"'
    assert html_checks(f'<div {ns}><p>Bonjour <b>Amina</b></p><table><tr><td>1</td></tr></table></div>')
    assert html_checks(f'<div {ns}><img src="#logo" alt=""/></div>')
    assert not html_checks(f'<div {ns}>   </div>')                       # txt-2: no content
    assert not html_checks(f'<div {ns}><script>alert(1)</script>x</div>')
    assert not html_checks(f'<div {ns}><p onclick="x()">x</p></div>')
    assert not html_checks(f'<div {ns}><a href="javascript:x()">x</a></div>')
    assert not html_checks('<div>pas de namespace</div>')
    assert not html_checks(f'<p {ns}>x</p>')
    assert not html_checks(f'<div {ns}>non fermé')


def test_examples_narratives_pass(examples):
    for example in examples:
        div = (example.get("text") or {}).get("div")
        if div:
            assert html_checks(div), example["id"]


def test_absence_guard():
    assert absence_guard("contained.contained.empty()") == ("contained",)
    assert absence_guard("code.empty() or system.exists()") == ("code", "system")
    assert absence_guard("start.hasValue().not() or end.hasValue().not() or (start <= end)") == ("end", "start")
    # a lambda's argument is evaluated on items of a present child, so %resource is fine there
    assert absence_guard("component.where(code = %resource.code).exists()") == ("component",)
    for unguarded in ("hasValue() or (children().count() > id.count())", "%resource.text.exists()",
                      "$this.name.exists()", "Patient.name.exists()", "today() > birthDate",
                      "iif(a.exists(), b, c)"):
        assert absence_guard(unguarded) is None, unguarded


def test_guarded_invariant_matches_full_evaluation():
    compiler = InvariantCompiler(frozenset({"value"}), frozenset({"string", "Quantity"}))
    inv = compiler.compile("obs-6", "error", "", "dataAbsentReason.empty() or value.empty()", "test")
    assert inv.evaluate({"status": "final"}, "Observation", {}, {}) is True
    assert inv.evaluate({"valueString": "x", "dataAbsentReason": {"text": "?"}}, "Observation", {}, {}) is False
    assert inv.evaluate({"_valueString": {"extension": []}, "dataAbsentReason": {"text": "?"}},
                        "Observation", {}, {}) is False
    dom6 = compiler.compile("x-1", "warning", "", "text.exists()", "test")
    assert dom6.evaluate({"id": "1"}, "Patient", {}, {}) is False


def test_has_value_is_provided():
    compiler = InvariantCompiler()
    inv = compiler.compile("x-2", "error", "", "birthDate.hasValue()", "test")
    assert inv.evaluate({"birthDate": "2000-01-01"}, "Patient", {}, {}) is True
    assert inv.evaluate({"_birthDate": {"extension": [{"url": "u", "valueCode": "x"}]}}, "Patient", {}, {}) is False


def test_syntax_errors_are_caught_and_skipped():
    for bad in ("name.where((", "name..family", "a b"):
        with pytest.raises(SyntaxError):
            check_syntax(bad)
    compiler = InvariantCompiler()
    inv = compiler.compile("x-3", "error", "", "name.where((", "test")
    assert inv.evaluate is None
    assert list(compiler.skipped) == ["x-3: name.where(("]


def test_fast_evaluator_agrees_with_fhirpathpy_on_the_examples(examples, monkeypatch):
    """Every invariant evaluation made while validating the official examples, run by both
    engines: where both give an answer, they give the same one."""
    compared, fast_subset, mismatches = 0, set(), []
    original = walker_module.Walker.invariant

    def both(self, run, inv, focus, fp_type, path):
        fast = getattr(inv.evaluate, "fast", None)
        if fast is not None:
            fast_subset.add(inv.key)
            try:
                a = fast(focus, run.resource, run.root)
            except Fallback:
                a = None
            try:
                b = inv.evaluate.slow(focus, fp_type, run.resource, run.root)
            except Exception:
                b = None
            if a is not None and b is not None:
                nonlocal compared
                compared += 1
                if a != b:
                    mismatches.append((inv.key, path))
        return original(self, run, inv, focus, fp_type, path)

    monkeypatch.setattr(walker_module.Walker, "invariant", both)
    validator = Validator()
    for example in examples:
        validator.validate(example)
    assert mismatches == []
    assert compared > 5000
    assert len(fast_subset) > 60


def test_fast_evaluator_semantics():
    compiler = InvariantCompiler(frozenset({"value"}), frozenset({"string", "Quantity", "boolean"}))

    def check(expression, focus, expected):
        inv = compiler.compile("t", "error", "", expression, "test")
        assert inv.evaluate.fast is not None, expression
        assert inv.evaluate.fast(focus, focus, focus) is expected, expression
        assert inv.evaluate.slow(focus, "Observation", focus, focus) is expected, expression

    obs = {"resourceType": "Observation", "status": "final", "valueQuantity": {"value": 3, "unit": "mg"},
           "component": [{"code": {"text": "a"}}, {"code": {"text": "b"}}],
           "identifier": [{"value": "FSE-2024-1"}]}
    check("status = 'final' and value.exists()", obs, True)
    check("status != 'final' implies component.empty()", obs, True)
    check("component.count() = 2 and component.code.text.isDistinct()", obs, True)
    check("component.where(code.text = 'b').exists() and component.all(code.exists())", obs, True)
    check("identifier.value.matches('^[A-Z0-9-]{6,32}$')", obs, True)
    check("identifier.value.matches('^[a-z]+$')", obs, False)
    check("value.value > 5", obs, False)
    check("(value.unit | 'g') contains 'mg'", obs, True)
    check("value.unit.startsWith('m') xor status.exists()", obs, False)
    check("iif(status = 'final', true, false)", obs, True)
    check("note.empty() or note.text.exists()", obs, True)
    check("Observation.status.exists()", obs, True)
    # dates compare with precision rules: left to fhirpathpy
    dates = compiler.compile("t", "error", "", "issued >= start", "test").evaluate
    with pytest.raises(Fallback):
        dates.fast({"issued": "2020-01-01", "start": "2020"}, {}, {})
    # primitive extensions too
    with pytest.raises(Fallback):
        compiler.compile("t", "error", "", "status.exists()", "test").evaluate.fast(
            {"_status": {"extension": []}}, {}, {})
    # outside the subset: fhirpathpy only
    assert compiler.compile("t", "error", "", "value is Quantity", "test").evaluate.fast is None


def test_care_sheet_validation_never_reaches_fhirpathpy(monkeypatch):
    """The throughput target holds only if the care sheet's invariants all run on the
    native twins, the absence guard or the fast evaluator."""
    from fhirpathpy.engine.invocations.constants import constants

    from bench.validator_bench import CARE_SHEET, care_sheet
    from profiles.validator import get_validator

    validator = get_validator()
    claim = care_sheet(8)
    if validator.has_profile(CARE_SHEET):
        claim["meta"]["profile"] = [CARE_SHEET]
    calls = []
    original = constants.reset                 # fhirpathpy runs it at every evaluation
    monkeypatch.setattr(constants, "reset", lambda: calls.append(1) or original())
    issues = validator.validate(claim)
    assert [i for i in issues if i.severity == "error"] == []
    assert calls == []
    # the probe works: que-2 uses descendants(), outside the fast subset
    validator.validate({"resourceType": "Questionnaire", "status": "draft", "item": [
        {"linkId": "1", "type": "display", "text": "x"}]})
    assert calls

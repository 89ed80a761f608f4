"""The fast FHIRPath evaluator agrees with fhirpathpy (the semantic reference)."""
from decimal import Decimal

import orjson
import pytest

from ehr.search.fhirpath import compile_path, compile_reference
from ehr.search.registry import get_registry
from tests.search.helpers import official_examples


def _canonical(values: list) -> set[bytes]:
    # fhirpathpy returns Decimal for decimals and dedupes unions; compare as sets of JSON
    def default(o):
        if isinstance(o, Decimal):
            return float(o)
        raise TypeError

    return {orjson.dumps(v, option=orjson.OPT_SORT_KEYS, default=default) for v in values}


def test_every_base_expression_compiles_to_the_fast_path_but_two():
    registry = get_registry()
    slow = set()
    for t in registry.resource_types:
        for p in registry.for_type(t).values():
            for expr in [p.expression] + [c.expression for c in p.components]:
                if expr and not compile_path(expr).fast:
                    slow.add(expr)
    # ``exists() and != false`` and ``where(extension(...).exists())`` go to fhirpathpy
    assert slow == {
        "Patient.deceased.exists() and Patient.deceased != false",
        "QuestionnaireResponse.item.where(extension('http://hl7.org/fhir/StructureDefinition/"
        "questionnaireresponse-isSubject').exists()).answer.value.ofType(Reference)",
    }


def test_fast_path_matches_fhirpathpy_on_all_official_examples():
    registry = get_registry()
    compiled: dict[tuple[str, str], tuple] = {}
    compared = 0
    mismatches = []
    for res in official_examples():
        rtype = res["resourceType"]
        for p in registry.for_type(rtype).values():
            if not p.expression:
                continue
            key = (rtype, p.expression)
            if key not in compiled:
                # fhirpathpy does not treat a concrete type as a "Resource": name it instead
                compiled[key] = (compile_path(p.expression), compile_reference(p.expression.replace("Resource.", f"{rtype}.")))
            fast, reference = compiled[key]
            if not fast.fast:
                continue
            try:
                expected = reference(orjson.loads(orjson.dumps(res)), None)
            except ValueError as exc:
                # fhirpathpy refuses ``as`` on a collection (``useContext.value as Quantity``
                # with several useContexts); the fast path applies it to each item, as servers do
                assert "singleton" in str(exc)
                continue
            compared += 1
            if _canonical(fast(res, res)) != _canonical(expected):
                mismatches.append((rtype, res["id"], p.code, p.expression))
    assert compared > 10_000
    assert mismatches == []


@pytest.mark.parametrize(
    "expression, resource, expected",
    [
        ("Observation.value as Quantity", {"resourceType": "Observation", "valueQuantity": {"value": 1}}, [{"value": 1}]),
        ("(Observation.value as Quantity)", {"resourceType": "Observation", "valueString": "x"}, []),
        ("Condition.onset.as(Age)", {"resourceType": "Condition", "onsetAge": {"value": 3}}, [{"value": 3}]),
        ("Observation.effective", {"resourceType": "Observation", "effectivePeriod": {"start": "2020"}}, [{"start": "2020"}]),
        (
            "Account.subject.where(resolve() is Patient)",
            {"resourceType": "Account", "subject": [{"reference": "Patient/1"}, {"reference": "Group/2"}, {"reference": "http://x/fhir/Patient/3/_history/1"}]},
            [{"reference": "Patient/1"}, {"reference": "http://x/fhir/Patient/3/_history/1"}],
        ),
        (
            "Patient.telecom.where(system='email')",
            {"resourceType": "Patient", "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}]},
            [{"system": "email", "value": "a@b"}],
        ),
        (
            "Patient.extension('http://x/ext')",
            {"resourceType": "Patient", "extension": [{"url": "http://x/ext", "valueString": "v"}, {"url": "other"}]},
            [{"url": "http://x/ext", "valueString": "v"}],
        ),
        ("Bundle.entry[0].resource", {"resourceType": "Bundle", "entry": [{"resource": {"id": "a"}}, {"resource": {"id": "b"}}]}, [{"id": "a"}]),
        ("Patient.name.given | Patient.name.family", {"resourceType": "Patient", "name": [{"given": ["A", None], "family": "F"}]}, ["A", "F"]),
        ("Observation.code", {"resourceType": "Patient", "code": {"text": "wrong type"}}, []),
    ],
)
def test_fast_path_cases(expression, resource, expected):
    path = compile_path(expression)
    assert path.fast
    assert path(resource, resource) == expected


def test_relative_and_percent_resource_expressions():
    obs = {"resourceType": "Observation", "code": {"text": "c"}, "component": [{"code": {"text": "k"}}]}
    assert compile_path("code")(obs["component"][0], obs) == [{"text": "k"}]
    assert compile_path("%resource.code")(obs["component"][0], obs) == [{"text": "c"}]


def test_fallback_evaluates_with_fhirpathpy():
    path = compile_path("Patient.deceased.exists() and Patient.deceased != false")
    assert not path.fast
    assert path({"resourceType": "Patient", "deceasedDateTime": "2020-01-01"}) == [True]
    assert path({"resourceType": "Patient", "deceasedBoolean": False}) == [False]

"""The FHIR XML converter against every official R4B example (742, all resource types): JSON →
XML → JSON gives back the same resource — decimals with the digits they were written with,
primitive extensions, contained resources, Bundles and Parameters, narratives — and the XML
follows the rules of http://hl7.org/fhir/R4B/xml.html."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from lxml import etree

from interop.fhirxml.reader import xml_to_json
from interop.fhirxml.structure import FHIR_NS, XHTML_NS, definitions
from interop.fhirxml.writer import json_to_xml

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples.ndjson.gz"
F = "{" + FHIR_NS + "}"


def _examples() -> list[bytes]:
    with gzip.open(EXAMPLES, "rb") as f:
        return [line for line in f.read().splitlines() if line.strip()]


def _exact(text: bytes | str) -> object:
    """JSON read with decimals as their text, and narratives as canonical XML (``&quot;`` or ``"``,
    ``<br/>`` or ``<br></br>`` are the same XHTML)."""
    return _canonical_divs(json.loads(text, parse_float=lambda s: ("decimal", s)))


def _canonical_divs(value: object, key: str | None = None) -> object:
    if isinstance(value, dict):
        return {k: _canonical_divs(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical_divs(v) for v in value]
    if key == "div" and isinstance(value, str):
        return etree.tostring(etree.fromstring(value.encode()), method="c14n")
    return value


def _walk(value: object):
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def test_every_official_example_survives_json_to_xml_to_json():
    lines = _examples()
    assert len(lines) == 742
    lost = [line[:80] for line in lines if _exact(xml_to_json(json_to_xml(line))) != _exact(line)]
    assert lost == []
    # what the sample holds, so that it keeps covering the hard parts of the rules
    resources = [json.loads(line) for line in lines]
    nodes = [n for r in resources for n in _walk(r)]
    assert len({r["resourceType"] for r in resources}) == 127
    assert sum("contained" in n for n in nodes) == 143
    assert sum(any(k.startswith("_") for k in n) for n in nodes) == 30  # primitive ids/extensions
    assert sum("div" in n for n in nodes) == 1300
    assert sum(r["resourceType"] in ("Bundle", "Parameters") for r in resources) == 43
    decimals: list[str] = []
    for line in lines:
        json.loads(line, parse_float=decimals.append)
    assert len(decimals) == 433 and sum(d.endswith("0") and "." in d for d in decimals) == 207  # 1.50, 0.10, 37.0…


def test_elements_follow_their_definitions_order_and_primitives_are_value_attributes():
    for line in _examples():
        root = etree.fromstring(json_to_xml(line))
        assert root.tag.startswith(F)
        _check_order(root, definitions().content(root.tag[len(F):]))


def _check_order(el: etree._Element, content) -> None:
    order = [c.name for c in content.children]
    seen = [order.index(child.tag.rsplit("}", 1)[1]) for child in el]
    assert seen == sorted(seen), (el.tag, [c.tag for c in el])
    for child in el:
        name = child.tag.rsplit("}", 1)[1]
        spec = content.by_name[name]
        if child.tag == "{" + XHTML_NS + "}div":
            continue
        assert child.tag == F + name
        if spec.kind == "primitive":
            assert set(child.attrib) <= {"value", "id"}
            _check_order(child, definitions().content("Element"))
        elif spec.kind == "resource":
            assert len(child) == 1 and child[0].tag.startswith(F)  # wrapped in an element named by its type
            _check_order(child[0], definitions().content(child[0].tag[len(F):]))
        else:
            assert "value" not in child.attrib
            _check_order(child, definitions().content(spec.content))


def test_the_xml_of_the_specification_reads_as_its_json():
    # From the R4B specification (json.html / xml.html): a primitive extension inside an array,
    # a choice type, a decimal's precision, a contained resource.
    xml = b"""<Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
                       xsi:schemaLocation="http://hl7.org/fhir ../../schema/patient.xsd">
      <id value="pat1"/>
      <contained><Organization><id value="org1"/><name value="ACME"/></Organization></contained>
      <extension url="http://example.org/weight"><valueDecimal value="72.50"/></extension>
      <name>
        <given value="Karim"/>
        <given id="g2"><extension url="http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier">
          <valueCode value="CL"/></extension></given>
        <given value="Ali"/>
      </name>
      <deceasedBoolean value="false"/>
      <managingOrganization><reference value="#org1"/></managingOrganization>
    </Patient>"""
    assert json.loads(xml_to_json(xml), parse_float=str) == {
        "resourceType": "Patient", "id": "pat1",
        "contained": [{"resourceType": "Organization", "id": "org1", "name": "ACME"}],
        "extension": [{"url": "http://example.org/weight", "valueDecimal": "72.50"}],
        "name": [{"given": ["Karim", None, "Ali"], "_given": [None, {"id": "g2", "extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier", "valueCode": "CL"}]}, None]}],
        "deceasedBoolean": False,
        "managingOrganization": {"reference": "#org1"},
    }
    assert b'<valueDecimal value="72.50"/>' in json_to_xml(xml_to_json(xml))

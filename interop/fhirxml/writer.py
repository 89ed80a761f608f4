"""FHIR JSON → FHIR XML (http://hl7.org/fhir/R4B/xml.html).

Children in the order of their definition; primitives as ``value`` attributes, their JSON
``_name`` (id, extensions) on the same element; ``Element.id`` and ``Extension.url`` as
attributes; a resource inside another (``contained``, ``Bundle.entry.resource``,
``Parameters.parameter.resource``) wrapped in an element named by its type; the narrative's
``div`` as XHTML in its own namespace.  Decimals keep the text they had in the JSON.
"""
from __future__ import annotations

import json

from lxml import etree

from interop.fhirxml.structure import FHIR_NS, PRIMITIVE_EXTRAS, XHTML_NS, Child, Content, definitions

_F = "{" + FHIR_NS + "}"
_XHTML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class Decimal(str):
    """A JSON number with a fraction or exponent, as written (``1.50`` stays ``1.50``)."""


class NotRepresentable(ValueError):
    """JSON that FHIR XML cannot carry (an element the definitions do not know)."""


def loads(body: bytes | str) -> object:
    """JSON with its decimals' text kept (orjson would make them floats)."""
    return json.loads(body, parse_float=Decimal)


def json_to_xml(body: bytes) -> bytes:
    resource = loads(body)
    if not isinstance(resource, dict):
        raise NotRepresentable("not a resource")
    return etree.tostring(resource_element(resource), xml_declaration=True, encoding="UTF-8")


def resource_element(resource: dict, parent: etree._Element | None = None) -> etree._Element:
    res_type = resource.get("resourceType")
    if not isinstance(res_type, str) or not definitions().is_resource(res_type):
        raise NotRepresentable(f"unknown resourceType {res_type!r}")
    if parent is None:
        el = etree.Element(_F + res_type, nsmap={None: FHIR_NS})
    else:
        el = etree.SubElement(parent, _F + res_type)
    _write(el, resource, definitions().content(res_type), res_type, 1)
    return el


def _write(el: etree._Element, obj: dict, content: Content, path: str, known: int = 0) -> None:
    """The children of ``obj`` under ``el``; ``known`` counts keys handled elsewhere (resourceType)."""
    if not isinstance(obj, dict):
        raise NotRepresentable(f"{path} is not an object")
    for child in content.children:
        name = child.name
        value = obj.get(name)
        extras = obj.get("_" + name) if child.kind == "primitive" else None
        if value is None and extras is None:
            continue
        known += (name in obj) + (extras is not None)
        if child.attr:
            el.set(name, _lexical(value))
        elif child.array:
            values, more = _listed(value, path, name), _listed(extras, path, "_" + name)
            for i in range(max(len(values), len(more))):
                _item(el, child, values[i] if i < len(values) else None, more[i] if i < len(more) else None,
                      f"{path}.{name}[{i}]")
        else:
            _item(el, child, value, extras, f"{path}.{name}")
    if known != len(obj):
        unknown = sorted(k for k in obj if k != "resourceType" and k.lstrip("_") not in content.by_name)
        raise NotRepresentable(f"{path}: unknown or misplaced elements {unknown}")


def _listed(value: object, path: str, name: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise NotRepresentable(f"{path}.{name} repeats: it must be an array")
    return value


def _item(parent: etree._Element, child: Child, value: object, extras: object, path: str) -> None:
    if child.kind == "xhtml":
        parent.append(_xhtml(value, path))
        return
    el = etree.SubElement(parent, _F + child.name)
    if child.kind == "primitive":
        if extras is not None:
            _write(el, extras, definitions().content(PRIMITIVE_EXTRAS), path)  # type: ignore[arg-type]
        if value is not None:
            if isinstance(value, (dict, list)):
                raise NotRepresentable(f"{path} is a {child.type}: it takes a single value")
            el.set("value", _lexical(value))
    elif child.kind == "resource":
        if not isinstance(value, dict):
            raise NotRepresentable(f"{path} must be a resource")
        resource_element(value, el)
    else:
        _write(el, value, definitions().content(child.content), path)  # type: ignore[arg-type]


def _lexical(value: object) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _xhtml(value: object, path: str) -> etree._Element:
    try:
        div = etree.fromstring(str(value).encode("utf-8"), _XHTML_PARSER)
    except etree.XMLSyntaxError as exc:
        raise NotRepresentable(f"{path} is not XHTML: {exc}") from None
    if div.tag != "{" + XHTML_NS + "}div":
        raise NotRepresentable(f"{path} is not an XHTML div")
    return div

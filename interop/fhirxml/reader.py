"""FHIR XML → FHIR JSON, refusing (400, with the element's FHIRPath and line) what is not FHIR XML.

The parser is hardened: no DTD (a DOCTYPE is refused outright, so no entity is ever declared or
expanded: no XXE, no "billion laughs"), no network, no huge trees; comments and processing
instructions are dropped (JSON has no place for them).  Elements may come in any order (JSON has
none); an element of max cardinality > 1 becomes an array, primitives become JSON booleans,
numbers (decimals written as they were in the XML) or strings.
"""
from __future__ import annotations

import re

import orjson
from lxml import etree

from interop.fhirxml.messages import refused
from interop.fhirxml.structure import BOOLEAN, DECIMAL, FHIR_NS, INTEGER, PRIMITIVE_EXTRAS, XHTML_NS, Child, Content, definitions
from interop.fhirxml.writer import Decimal

_F = "{" + FHIR_NS + "}"
# Attributes any element may carry that mean nothing to FHIR (xsi:schemaLocation in the spec's examples).
_IGNORED_ATTRIBUTE_NS = ("{http://www.w3.org/2001/XMLSchema-instance}",)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                          huge_tree=False, remove_comments=True, remove_pis=True)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
MAX_DEPTH = 100   # as for JSON bodies (ehr.parsing.MAX_JSON_DEPTH)


def xml_to_json(body: bytes) -> bytes:
    """The JSON text of the resource an XML body holds."""
    return dumps(parse(body))


def parse(body: bytes) -> dict:
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise refused("doctype", None, None)
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else None
        raise refused("malformed", None, line, detail=exc.msg) from None
    if root.getroottree().docinfo.doctype:  # declared in an encoding the byte test cannot see
        raise refused("doctype", None, root.sourceline)
    return _resource(root, None, 1)


def _local(el: etree._Element, path: str | None) -> str:
    tag = el.tag
    if not isinstance(tag, str) or not tag.startswith(_F):
        name = etree.QName(el).localname if isinstance(tag, str) else str(tag)
        raise refused("namespace", path, el.sourceline, name=name)
    return tag[len(_F):]


def _resource(el: etree._Element, path: str | None, depth: int) -> dict:
    res_type = _local(el, path)
    if not definitions().is_resource(res_type):
        raise refused("unknown-type", path, el.sourceline, name=res_type)
    out: dict = {"resourceType": res_type}
    _read(el, definitions().content(res_type), res_type, out, depth)
    return out


def _read(el: etree._Element, content: Content, path: str, out: dict, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise refused("depth", path.split(".", 1)[0], el.sourceline, depth=MAX_DEPTH)
    for name, value in el.attrib.items():
        child = content.by_name.get(name)
        if child is not None and child.attr:
            out[name] = value
        elif not name.startswith(_IGNORED_ATTRIBUTE_NS) and not (name == "value" and content is _extras()):
            raise refused("unknown-attribute", f"{path}.{name}", el.sourceline, name=name)
    if el.text and el.text.strip():
        raise refused("text", path, el.sourceline, name=path.rsplit(".", 1)[-1])
    values: dict[str, list] = {}
    extras: dict[str, list] = {}
    for sub in el:
        if sub.tail and sub.tail.strip():
            raise refused("text", path, sub.sourceline, name=path.rsplit(".", 1)[-1])
        child = _child(sub, content, path)
        seen = values.setdefault(child.name, [])
        where = f"{path}.{child.name}" + (f"[{len(seen)}]" if child.array else "")
        if seen and not child.array:
            raise refused("repeats", where, sub.sourceline, name=child.name)
        if child.kind == "primitive":
            value, more = _primitive(sub, child, where, depth)
            seen.append(value)
            extras.setdefault(child.name, []).append(more)
        elif child.kind == "xhtml":
            seen.append(_xhtml(sub, where))
        elif child.kind == "resource":
            inner = list(sub)
            if len(inner) != 1 or sub.attrib or (sub.text and sub.text.strip()):
                raise refused("resource", where, sub.sourceline, name=child.name)
            seen.append(_resource(inner[0], where, depth + 1))
        else:
            obj: dict = {}
            _read(sub, definitions().content(child.content), where, obj, depth + 1)
            if not obj:
                raise refused("empty", where, sub.sourceline, name=child.name)
            seen.append(obj)
    for name, found in values.items():
        array = content.by_name[name].array
        if any(v is not None for v in found):
            out[name] = found if array else found[0]
        aside = extras.get(name)
        if aside and any(m is not None for m in aside):
            out["_" + name] = aside if array else aside[0]


def _child(sub: etree._Element, content: Content, path: str) -> Child:
    if sub.tag == "{" + XHTML_NS + "}div" and "div" in content.by_name:
        return content.by_name["div"]
    name = _local(sub, path)
    child = content.by_name.get(name)
    if child is None or child.attr:
        raise refused("unknown-element", f"{path}.{name}", sub.sourceline, name=name)
    return child


def _extras() -> Content:
    return definitions().content(PRIMITIVE_EXTRAS)


def _primitive(el: etree._Element, child: Child, path: str, depth: int) -> tuple[object, dict | None]:
    more: dict = {}
    _read(el, _extras(), path, more, depth + 1)
    raw = el.get("value")
    if raw is None and not more:
        raise refused("empty", path, el.sourceline, name=child.name)
    return (None if raw is None else _typed(raw, child, path, el.sourceline)), (more or None)


def _typed(raw: str, child: Child, path: str, line: int | None) -> object:
    if child.type in BOOLEAN:
        if raw not in ("true", "false"):
            raise refused("value", path, line, value=raw, type=child.type)
        return raw == "true"
    if child.type in INTEGER:
        if not _INTEGER.fullmatch(raw):
            raise refused("value", path, line, value=raw, type=child.type)
        return int(raw)
    if child.type in DECIMAL:
        if not _DECIMAL.fullmatch(raw):
            raise refused("value", path, line, value=raw, type=child.type)
        return Decimal(raw)
    return raw


def _xhtml(el: etree._Element, path: str) -> str:
    if el.tag != "{" + XHTML_NS + "}div":
        raise refused("xhtml", path, el.sourceline)
    div = etree.fromstring(etree.tostring(el, with_tail=False), _PARSER)  # a copy: no namespaces it does not use
    etree.cleanup_namespaces(div)
    return etree.tostring(div, encoding="unicode", with_tail=False)


def dumps(value: object) -> bytes:
    """JSON text with each decimal written as it was read (orjson has no raw numbers)."""
    out: list[bytes] = []
    _emit(value, out)
    return b"".join(out)


def _emit(value: object, out: list[bytes]) -> None:
    if isinstance(value, Decimal):
        out.append(value.encode())
    elif isinstance(value, dict):
        out.append(b"{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(b",")
            out.append(orjson.dumps(key) + b":")
            _emit(item, out)
        out.append(b"}")
    elif isinstance(value, list):
        out.append(b"[")
        for i, item in enumerate(value):
            if i:
                out.append(b",")
            _emit(item, out)
        out.append(b"]")
    else:
        out.append(orjson.dumps(value))

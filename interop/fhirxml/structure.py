"""What the XML rules need to know of each type, read from the shipped base StructureDefinitions.

For every element that holds children (a type's root, a backbone element, the target of a
``contentReference``) a ``Content``: its children in definition order — the order FHIR XML
requires — each with its JSON/XML name (one per type of a choice ``value[x]``), its type, whether
it repeats (a JSON array) and whether XML carries it as an attribute (``Element.id``,
``Extension.url``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from profiles.validator.definitions import load_base

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
# JSON types of the primitives that are not strings (FHIR JSON rules).
BOOLEAN = frozenset({"boolean"})
INTEGER = frozenset({"integer", "positiveInt", "unsignedInt", "integer64"})
DECIMAL = frozenset({"decimal"})
# The extras of a primitive (``_name`` in JSON): its id and extensions, as on any Element.
PRIMITIVE_EXTRAS = "Element"


@dataclass(frozen=True, slots=True)
class Child:
    name: str       # the JSON property and XML element name (``valueString`` for a choice)
    type: str       # its type code
    kind: str       # primitive | complex | resource | xhtml
    array: bool     # repeats: a JSON array
    attr: bool      # an XML attribute
    content: str    # path of its children's Content (complex kinds), else ""


@dataclass(slots=True)
class Content:
    children: list[Child] = field(default_factory=list)
    by_name: dict[str, Child] = field(default_factory=dict)


class Definitions:
    """The Contents of the base specification, built on first use of each."""

    def __init__(self, structures: dict[str, dict]):
        self.kinds: dict[str, str] = {}
        self.elements: dict[str, list[dict]] = {}   # parent path -> its child elements, in order
        self.resources: set[str] = set()
        for sd in structures.values():
            if sd["derivation"] != "specialization":
                continue
            kind = sd["kind"]
            self.kinds[sd["type"]] = "primitive" if kind == "primitive-type" else "complex"
            if kind == "resource":
                self.resources.add(sd["type"])
            for el in sd["elements"][1:]:
                self.elements.setdefault(el["id"].rsplit(".", 1)[0], []).append(el)
        self.kinds["xhtml"] = "xhtml"
        self._contents: dict[str, Content] = {}

    def is_resource(self, name: str) -> bool:
        return name in self.resources and name not in ("Resource", "DomainResource")

    def content(self, path: str) -> Content:
        found = self._contents.get(path)
        if found is None:
            found = self._contents[path] = self._build(path)
        return found

    def _build(self, path: str) -> Content:
        content = Content()
        for el in self.elements.get(path, ()):
            name = el["id"].rsplit(".", 1)[-1]
            array = el.get("bmax", el.get("max")) != "1"
            attr = bool(el.get("attr"))
            codes = [t["c"] for t in el.get("t", ())]
            if name.endswith("[x]"):
                variants = [(name[:-3] + code[0].upper() + code[1:], code) for code in codes]
            else:
                variants = [(name, codes[0] if codes else "")]
            for json_name, code in variants:
                if el["id"] in self.elements:           # a backbone element: its children are inline
                    kind, sub = "complex", el["id"]
                elif "cr" in el:                          # the same content as another element
                    kind, sub = "complex", el["cr"].partition("#")[2]
                elif code in self.resources:
                    kind, sub = "resource", ""
                else:
                    kind = self.kinds.get(code, "complex")
                    sub = code if kind == "complex" else ""
                child = Child(json_name, code, kind, array, attr, sub)
                content.children.append(child)
                content.by_name[json_name] = child
        return content


@lru_cache(maxsize=1)
def definitions() -> Definitions:
    return Definitions(load_base())

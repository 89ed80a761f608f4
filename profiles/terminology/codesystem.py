"""A CodeSystem resource turned into lookup tables, built once and then only read.

Concepts are flattened from the nested ``concept.concept`` tree; the hierarchy also comes
from ``parent``/``subsumedBy`` properties (the v3 code systems use those), so ``is-a``
filters and ``$lookup`` see one consistent tree whichever way a code system was written.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# How a concept's property values are compared in filters: all as strings.
_VALUE_KEYS = (
    "valueCode",
    "valueString",
    "valueBoolean",
    "valueInteger",
    "valueDecimal",
    "valueDateTime",
    "valueCoding",
)
HIERARCHY_PROPERTIES = ("parent", "subsumedBy")
# content values whose concept list is not the whole system: codes outside it may still exist.
PARTIAL_CONTENT = ("not-present", "example", "fragment")


def property_value(prop: dict):
    """(typed value, string form) of a concept property."""
    for key in _VALUE_KEYS:
        if key in prop:
            value = prop[key]
            if key == "valueCoding":
                return value, value.get("code", "")
            if key == "valueBoolean":
                return value, "true" if value else "false"
            return value, str(value)
    return None, ""


def display_in(display: str | None, designations: list[dict], language: str | None) -> str | None:
    """The designation in ``language`` (``ar`` matches ``ar-MA``), else the display."""
    if language:
        lang = language.lower().split("-")[0]
        for d in designations:
            if (d.get("language") or "").lower().split("-")[0] == lang and d.get("value"):
                return d["value"]
    return display


@dataclass(slots=True)
class Concept:
    code: str
    display: str | None
    definition: str | None
    designations: list[dict]  # [{"language", "use"?, "value"}]
    properties: list[dict]  # the raw CodeSystem.concept.property entries
    parents: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    abstract: bool = False
    inactive: bool = False

    def display_in(self, language: str | None) -> str | None:
        return display_in(self.display, self.designations, language)

    def property_strings(self, name: str) -> list[str]:
        return [property_value(p)[1] for p in self.properties if p.get("code") == name]


class CodeSystemIndex:
    def __init__(self, resource: dict):
        self.resource = resource
        self.url: str = resource.get("url", "")
        self.version: str | None = resource.get("version")
        self.name: str | None = resource.get("name") or resource.get("title")
        self.content: str = resource.get("content", "complete")
        self.case_sensitive: bool = resource.get("caseSensitive", True) is not False
        self.concepts: dict[str, Concept] = {}
        self.order: list[str] = []  # definition order, the order of expansions
        self.declared_properties = {p.get("code"): p.get("type") for p in resource.get("property", [])}
        self._folded: dict[str, str] | None = None
        self._flatten(resource.get("concept", []), None)
        for concept in self.concepts.values():
            for parent in concept.properties:
                if parent.get("code") in HIERARCHY_PROPERTIES:
                    code = property_value(parent)[1]
                    if code in self.concepts and code not in concept.parents:
                        concept.parents.append(code)
                        self.concepts[code].children.append(concept.code)

    def _flatten(self, concepts: list[dict], parent: str | None) -> None:
        for raw in concepts:
            code = raw.get("code")
            if code is None:
                continue
            concept = self.concepts.get(code)
            if concept is None:
                props = raw.get("property", [])
                concept = Concept(
                    code=code,
                    display=raw.get("display"),
                    definition=raw.get("definition"),
                    designations=raw.get("designation", []),
                    properties=props,
                    abstract=any(
                        p.get("code") in ("notSelectable", "abstract") and p.get("valueBoolean") is True
                        for p in props
                    ),
                    inactive=any(
                        (p.get("code") == "status" and p.get("valueCode") in ("retired", "inactive"))
                        or (p.get("code") == "inactive" and p.get("valueBoolean") is True)
                        for p in props
                    ),
                )
                self.concepts[code] = concept
                self.order.append(code)
            if parent is not None and parent not in concept.parents:
                concept.parents.append(parent)
                self.concepts[parent].children.append(code)
            self._flatten(raw.get("concept", []), code)

    @property
    def is_complete(self) -> bool:
        return self.content not in PARTIAL_CONTENT

    def get(self, code: str) -> Concept | None:
        concept = self.concepts.get(code)
        if concept is None and not self.case_sensitive:
            if self._folded is None:
                self._folded = {c.lower(): c for c in self.concepts}
            real = self._folded.get(code.lower())
            concept = self.concepts.get(real) if real else None
        return concept

    def descendants(self, code: str) -> list[str]:
        """Every code below ``code`` (not ``code`` itself), depth-first, each once."""
        seen: set[str] = set()
        out: list[str] = []
        stack = list(reversed(self.concepts[code].children)) if code in self.concepts else []
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            out.append(c)
            stack.extend(reversed(self.concepts[c].children))
        return out

    def ancestors(self, code: str) -> list[str]:
        seen: set[str] = set()
        stack = list(self.concepts[code].parents) if code in self.concepts else []
        out: list[str] = []
        while stack:
            c = stack.pop()
            if c not in seen:
                seen.add(c)
                out.append(c)
                stack.extend(self.concepts[c].parents)
        return out

    def subsumes(self, ancestor: str, code: str) -> bool:
        return ancestor == code or ancestor in self.ancestors(code)

    def merge_supplement(self, supplement: dict) -> None:
        """Add a supplement's designations (e.g. Arabic displays of base codes) to our concepts."""
        def walk(concepts: list[dict]) -> None:
            for raw in concepts:
                target = self.concepts.get(raw.get("code", ""))
                if target is not None:
                    target.designations = [*target.designations, *raw.get("designation", [])]
                    if raw.get("display"):
                        lang = supplement.get("language")
                        if lang:
                            target.designations.append({"language": lang, "value": raw["display"]})
                walk(raw.get("concept", []))

        walk(supplement.get("concept", []))

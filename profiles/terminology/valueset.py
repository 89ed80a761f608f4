"""A ValueSet's compose evaluated once into an ``Expansion``: ordered entries, a membership
table for ``$validate-code`` and ``:in``, and prebuilt search keys for ``$expand?filter=``.

Some value sets cannot be listed: they take in a whole external system (SNOMED CT, LOINC,
ICD-10…) that the server does not hold.  Such a system stays *open* in the expansion: a code
of it is neither confirmed nor refused (``contains`` answers None), except that ``regex``
filters on the code still refuse malformed codes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable

from ehr.outcome import Issue
from profiles.terminology.codesystem import CodeSystemIndex, display_in, property_value
from profiles.terminology.normalise import fold, search_key

ANY_SYSTEM = "*"  # in open_systems: an import that could not be resolved, any code may belong
SUPPORTED_OPS = ("=", "is-a", "descendent-of", "is-not-a", "generalizes", "regex", "in", "not-in", "exists")


class CompileError(Exception):
    def __init__(self, issues: list[Issue]):
        super().__init__("; ".join(i.diagnostics for i in issues))
        self.issues = issues


@dataclass(slots=True)
class Entry:
    system: str
    code: str
    display: str | None
    designations: list[dict]
    version: str | None = None
    abstract: bool = False
    inactive: bool = False
    # Text properties (a medicine's DCI…) that autocomplete also matches on.
    extra: tuple[str, ...] = ()

    def display_in(self, language: str | None) -> str | None:
        return display_in(self.display, self.designations, language)


@dataclass
class Expansion:
    url: str
    resource: dict
    entries: list[Entry]
    # system -> None (any code may belong) or the regexes a member code must match
    open_systems: dict[str, list[re.Pattern] | None] = field(default_factory=dict)
    timestamp: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    _index: dict[tuple[str, str], int] | None = None
    _by_code: dict[str, list[int]] | None = None
    _keys: list[str] | None = None
    _folded_codes: dict[str, list[int]] | None = None

    @property
    def index(self) -> dict[tuple[str, str], int]:
        if self._index is None:
            self._index = {(e.system, e.code): i for i, e in enumerate(self.entries)}
        return self._index

    @property
    def keys(self) -> list[str]:
        """Folded code + display + every designation of each entry, for word-prefix search."""
        if self._keys is None:
            self._keys = [
                search_key(e.code, e.display, *(d.get("value") for d in e.designations), *e.extra)
                for e in self.entries
            ]
        return self._keys

    def find(self, system: str | None, code: str) -> Entry | None:
        if system is not None:
            i = self.index.get((system, code))
            return self.entries[i] if i is not None else None
        if self._by_code is None:
            by_code: dict[str, list[int]] = {}
            for i, e in enumerate(self.entries):
                by_code.setdefault(e.code, []).append(i)
            self._by_code = by_code
        hits = self._by_code.get(code)
        return self.entries[hits[0]] if hits else None

    def by_folded_code(self, folded: str) -> list[int]:
        """Entries whose code, folded like a query, is ``folded`` (autocomplete exact match)."""
        if self._folded_codes is None:
            table: dict[str, list[int]] = {}
            for i, e in enumerate(self.entries):
                table.setdefault(fold(e.code), []).append(i)
            self._folded_codes = table
        return self._folded_codes.get(folded, [])

    def contains(self, system: str | None, code: str) -> bool | None:
        """True/False when the answer is known; None when ``code`` may be in an open system."""
        if self.find(system, code) is not None:
            return True
        candidates = [system] if system is not None else list(self.open_systems)
        undecided = ANY_SYSTEM in self.open_systems
        for s in candidates:
            if s not in self.open_systems:
                continue
            patterns = self.open_systems[s]
            if patterns is None or any(p.fullmatch(code) for p in patterns):
                undecided = True
        return None if undecided else False

    def search(self, words: list[str]) -> list[int]:
        """Indices of the entries where every query word starts some word of the entry."""
        keys = self.keys
        if not words:
            return list(range(len(keys)))
        first, rest = words[0], words[1:]
        hits = [i for i, k in enumerate(keys) if first in k]
        for w in rest:
            hits = [i for i in hits if w in keys[i]]
        return hits


Resolver = Callable[[str], "CodeSystemIndex | None"]


class Compiler:
    """Evaluates one ValueSet's compose; ``expand_ref`` compiles the value sets it imports."""

    def __init__(self, codesystem: Resolver, expand_ref: Callable[[str], Expansion], strict: bool = False):
        self.codesystem = codesystem
        self.expand_ref = expand_ref
        # strict: an imported value set that cannot be built is an error (checking a new
        # resource); otherwise it only makes this one open (the shipped base definitions
        # import a few value sets HL7 publishes elsewhere).
        self.strict = strict

    def compile(self, vs: dict) -> Expansion:
        url = vs.get("url", "")
        if "compose" not in vs and "expansion" in vs:
            return self._from_expansion(vs)
        compose = vs.get("compose") or {}
        issues: list[Issue] = []
        result: dict[tuple[str, str], Entry] = {}
        open_systems: dict[str, list[re.Pattern] | None] = {}
        for i, inc in enumerate(compose.get("include", [])):
            path = f"ValueSet.compose.include[{i}]"
            try:
                entries, opens = self._include(inc, path)
            except CompileError as exc:
                issues.extend(exc.issues)
                continue
            for e in entries:
                result.setdefault((e.system, e.code), e)
            for s, pats in opens.items():
                # None (any code may belong) absorbs; pattern lists add up.
                if pats is None or (s in open_systems and open_systems[s] is None):
                    open_systems[s] = None
                else:
                    open_systems[s] = [*open_systems.get(s, []), *pats]
        for i, exc_ in enumerate(compose.get("exclude", [])):
            path = f"ValueSet.compose.exclude[{i}]"
            try:
                entries, _ = self._include(exc_, path)
            except CompileError as exc:
                issues.extend(exc.issues)
                continue
            for e in entries:
                result.pop((e.system, e.code), None)
        if issues:
            raise CompileError(issues)
        if compose.get("inactive") is False:
            result = {k: e for k, e in result.items() if not e.inactive}
        return Expansion(url=url, resource=vs, entries=list(result.values()), open_systems=open_systems)

    def _from_expansion(self, vs: dict) -> Expansion:
        entries: list[Entry] = []

        def walk(items: list[dict]) -> None:
            for c in items:
                if c.get("code") and c.get("system"):
                    entries.append(
                        Entry(c["system"], c["code"], c.get("display"), c.get("designation", []), c.get("version"))
                    )
                walk(c.get("contains", []))

        walk(vs["expansion"].get("contains", []))
        return Expansion(url=vs.get("url", ""), resource=vs, entries=entries)

    def _include(self, inc: dict, path: str) -> tuple[list[Entry], dict[str, list[re.Pattern] | None]]:
        system = inc.get("system")
        entries: list[Entry] | None = None
        opens: dict[str, list[re.Pattern] | None] = {}
        if system:
            entries, opens = self._from_system(system, inc, path)
        imported = inc.get("valueSet", [])
        issues: list[Issue] = []
        for j, ref in enumerate(imported):
            try:
                exp = self.expand_ref(ref.split("|")[0])
            except CompileError as exc:
                if self.strict:
                    issues.append(
                        Issue("not-found", f"Jeu de valeurs importé « {ref} » inutilisable : {exc}",
                              expression=(f"{path}.valueSet[{j}]",))
                    )
                else:
                    opens[ANY_SYSTEM] = None
                continue
            if entries is None:
                entries = list(exp.entries)
                opens = dict(exp.open_systems)
            else:
                members = exp.index
                entries = [e for e in entries if (e.system, e.code) in members]
        if issues:
            raise CompileError(issues)
        return entries or [], opens

    def _from_system(self, system: str, inc: dict, path: str):
        cs = self.codesystem(system)
        listed = inc.get("concept")
        filters = inc.get("filter", [])
        if listed is not None:
            return self._listed(cs, system, inc, listed, path), {}
        if cs is None or not cs.is_complete:
            # Not enumerable here: members are decided by regex filters at best.
            patterns: list[re.Pattern] | None = []
            for k, f in enumerate(filters):
                if f.get("op") == "regex" and f.get("property") in ("code", "concept"):
                    try:
                        patterns.append(re.compile(f.get("value", "")))
                    except re.error as exc:
                        raise CompileError([Issue("invalid", f"Expression régulière invalide : {exc}",
                                                  expression=(f"{path}.filter[{k}].value",))]) from None
                else:
                    patterns = None
                    break
            known = []
            if cs is not None and not filters:  # an example/fragment system: list what we know
                known = [self._entry(cs, cs.concepts[c]) for c in cs.order]
            return known, {system: patterns if patterns else None}
        codes: set[str] | None = None
        for k, f in enumerate(filters):
            selected = self._filter(cs, f, f"{path}.filter[{k}]")
            codes = selected if codes is None else codes & selected
        order = cs.order if codes is None else [c for c in cs.order if c in codes]
        return [self._entry(cs, cs.concepts[c]) for c in order], {}

    def _listed(self, cs: CodeSystemIndex | None, system: str, inc: dict, listed: list[dict], path: str) -> list[Entry]:
        out: list[Entry] = []
        issues: list[Issue] = []
        for k, item in enumerate(listed):
            code = item.get("code", "")
            concept = cs.get(code) if cs is not None else None
            if cs is not None and cs.is_complete and concept is None:
                issues.append(
                    Issue("code-invalid", f"Le code « {code} » n'existe pas dans le système {system}",
                          expression=(f"{path}.concept[{k}].code",))
                )
                continue
            designations = [*(concept.designations if concept else []), *item.get("designation", [])]
            out.append(
                Entry(system, concept.code if concept else code, item.get("display") or (concept.display if concept else None),
                      designations, inc.get("version") or (cs.version if cs else None),
                      concept.abstract if concept else False, concept.inactive if concept else False,
                      _text_properties(concept) if concept else ())
            )
        if issues:
            raise CompileError(issues)
        return out

    @staticmethod
    def _entry(cs: CodeSystemIndex, c) -> Entry:
        return Entry(cs.url, c.code, c.display, c.designations, cs.version, c.abstract, c.inactive, _text_properties(c))

    def _filter(self, cs: CodeSystemIndex, f: dict, path: str) -> set[str]:
        op, prop, value = f.get("op"), f.get("property"), f.get("value", "")
        if op not in SUPPORTED_OPS:
            raise CompileError([Issue("not-supported", f"Opérateur de filtre « {op} » non pris en charge",
                                      expression=(f"{path}.op",))])
        if op in ("is-a", "descendent-of", "is-not-a", "generalizes"):
            if cs.get(value) is None:
                raise CompileError([Issue("code-invalid", f"Le code « {value} » n'existe pas dans le système {cs.url}",
                                          expression=(f"{path}.value",))])
            value = cs.get(value).code
            if op == "is-a":
                return {value, *cs.descendants(value)}
            if op == "descendent-of":
                return set(cs.descendants(value))
            if op == "is-not-a":
                return set(cs.order) - {value, *cs.descendants(value)}
            return {value, *cs.ancestors(value)}
        getter = self._property_getter(cs, prop, path)
        if op == "=":
            return {c for c in cs.order if value in getter(cs.concepts[c])}
        if op in ("in", "not-in"):
            wanted = {v.strip() for v in value.split(",")}
            inside = {c for c in cs.order if wanted & set(getter(cs.concepts[c]))}
            return inside if op == "in" else set(cs.order) - inside
        if op == "exists":
            has = {c for c in cs.order if getter(cs.concepts[c])}
            return has if value == "true" else set(cs.order) - has
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise CompileError([Issue("invalid", f"Expression régulière invalide : {exc}",
                                      expression=(f"{path}.value",))]) from None
        return {c for c in cs.order if any(pattern.fullmatch(v) for v in getter(cs.concepts[c]))}

    @staticmethod
    def _property_getter(cs: CodeSystemIndex, prop: str | None, path: str) -> Callable[[object], list[str]]:
        if prop in ("concept", "code"):
            return lambda c: [c.code]
        if prop == "display":
            return lambda c: [c.display] if c.display else []
        if prop == "parent":
            return lambda c: list(c.parents)
        if prop == "child":
            return lambda c: list(c.children)
        used = prop in cs.declared_properties or any(
            p.get("code") == prop for c in cs.concepts.values() for p in c.properties
        )
        if not used:
            raise CompileError([Issue("invalid", f"La propriété « {prop} » n'est pas définie par le système {cs.url}",
                                      expression=(f"{path}.property",))])
        return lambda c: [property_value(p)[1] for p in c.properties if p.get("code") == prop]


def _text_properties(concept) -> tuple[str, ...]:
    return tuple(p["valueString"] for p in concept.properties if "valueString" in p)


def referenced_systems(vs: dict) -> Iterable[str]:
    compose = vs.get("compose") or {}
    for part in ("include", "exclude"):
        for inc in compose.get(part, []):
            if inc.get("system"):
                yield inc["system"]


def referenced_valuesets(vs: dict) -> Iterable[str]:
    compose = vs.get("compose") or {}
    for part in ("include", "exclude"):
        for inc in compose.get(part, []):
            for ref in inc.get("valueSet", []):
                yield ref.split("|")[0]

"""The terminology service: CodeSystems, ValueSets and ConceptMaps held in memory.

Resources are kept raw and turned into indexes (``CodeSystemIndex``) and expansions
(``Expansion``) on first use, then cached: startup only parses JSON, and an ``$expand`` of an
already used value set is a scan of prebuilt search keys.  ``add`` never changes the service
unless the new resource, and every value set depending on it, still compiles: a rejected
resource leaves the previous version in force.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ehr.outcome import FHIRError, Issue
from profiles.terminology.codesystem import CodeSystemIndex, property_value
from profiles.terminology.normalise import fold, query_words
from profiles.terminology.valueset import (
    CompileError,
    Compiler,
    Expansion,
    referenced_systems,
    referenced_valuesets,
)

SIJILL = "https://fhir.sijill.ma/"
MAX_COUNT = 1000
TERMINOLOGY_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")
_VALUE_TYPE_KEYS = {
    "code": "valueCode",
    "Coding": "valueCoding",
    "string": "valueString",
    "integer": "valueInteger",
    "boolean": "valueBoolean",
    "dateTime": "valueDateTime",
    "decimal": "valueDecimal",
}


@dataclass
class _State:
    """Everything the service knows; replaced whole by ``add`` so a failed add changes nothing."""

    codesystems: dict[str, dict] = field(default_factory=dict)
    supplements: dict[str, list[dict]] = field(default_factory=dict)
    valuesets: dict[str, dict] = field(default_factory=dict)
    conceptmaps: dict[str, dict] = field(default_factory=dict)
    implicit: dict[str, str] = field(default_factory=dict)  # CodeSystem.valueSet -> system url
    cs_index: dict[str, CodeSystemIndex] = field(default_factory=dict)
    expansions: dict[str, Expansion] = field(default_factory=dict)
    display_keys: dict[tuple[str, str | None], list[str]] = field(default_factory=dict)

    def derive(self) -> "_State":
        """A copy sharing the raw resources, with the caches dropped."""
        return _State(
            dict(self.codesystems),
            {k: list(v) for k, v in self.supplements.items()},
            dict(self.valuesets),
            dict(self.conceptmaps),
            dict(self.implicit),
        )

    def put(self, resource: dict) -> None:
        url = resource["url"].split("|")[0]
        kind = resource["resourceType"]
        if kind == "CodeSystem":
            if resource.get("content") == "supplement":
                target = resource.get("supplements", "").split("|")[0]
                self.supplements[target] = [
                    s for s in self.supplements.get(target, []) if s.get("url") != resource["url"]
                ] + [resource]
            else:
                self.codesystems[url] = resource
                if resource.get("valueSet"):
                    self.implicit[resource["valueSet"].split("|")[0]] = url
        elif kind == "ValueSet":
            self.valuesets[url] = resource
        else:
            self.conceptmaps[url] = resource


class TerminologyService:
    def __init__(self, resources: Iterable[dict] = ()):
        self._state = _State()
        for r in resources:
            self._state.put(r)

    # ---------------------------------------------------------------- loading

    def install(self, resources: Iterable[dict]) -> None:
        """Load trusted resources (the shipped definitions) without checking them."""
        state = self._state.derive()
        for r in resources:
            state.put(r)
        self._state = state

    def add(self, resource: dict) -> list[Issue]:
        """Check and load one CodeSystem/ValueSet/ConceptMap.  Returns every problem found;
        when any is an error the resource is not loaded and the previous version stays."""
        issues = self._static_checks(resource)
        if issues:
            return issues
        candidate = self._state.derive()
        candidate.put(resource)
        issues = _Checker(candidate, self).dynamic_checks(resource)
        if not issues:
            self._state = candidate
        return issues

    def resources(self, prefix: str = "") -> list[dict]:
        """Every loaded resource whose url starts with ``prefix``."""
        s = self._state
        out = [*s.codesystems.values(), *(x for v in s.supplements.values() for x in v),
               *s.valuesets.values(), *s.conceptmaps.values()]
        return [r for r in out if r.get("url", "").startswith(prefix)]

    # ---------------------------------------------------------------- indexes

    def codesystem(self, url: str, state: _State | None = None) -> CodeSystemIndex | None:
        s = state or self._state
        url = url.split("|")[0]
        idx = s.cs_index.get(url)
        if idx is None:
            raw = s.codesystems.get(url)
            if raw is None:
                return None
            idx = CodeSystemIndex(raw)
            for sup in s.supplements.get(url, []):
                idx.merge_supplement(sup)
            s.cs_index[url] = idx
        return idx

    def valueset(self, url: str) -> dict | None:
        url = url.split("|")[0]
        s = self._state
        if url in s.valuesets:
            return s.valuesets[url]
        system = s.implicit.get(url)
        if system is not None:
            return _implicit_valueset(url, s.codesystems[system])
        return None

    def expansion(self, url: str, state: _State | None = None) -> Expansion:
        """The compiled value set; FHIRError 404 if unknown, 422 if it does not compile."""
        s = state or self._state
        try:
            return self._compile(url.split("|")[0], s, ())
        except CompileError as exc:
            raise FHIRError(422, exc.issues) from None

    def _compile(self, url: str, s: _State, stack: tuple[str, ...], strict: bool = False) -> Expansion:
        cached = s.expansions.get(url)
        if cached is not None:
            return cached
        if url in stack:
            raise CompileError([Issue("invalid", "Import circulaire de jeux de valeurs : " + " -> ".join((*stack, url)),
                                      expression=("ValueSet.compose",))])
        vs = s.valuesets.get(url)
        if vs is None and url in s.implicit:
            vs = _implicit_valueset(url, s.codesystems[s.implicit[url]])
        if vs is None:
            if not stack:
                raise FHIRError.of(404, "not-found", f"Jeu de valeurs inconnu : {url}", "ValueSet.url")
            raise CompileError([Issue("not-found", f"Jeu de valeurs inconnu : {url}")])
        compiler = Compiler(lambda u: self.codesystem(u, s), lambda u: self._compile(u, s, (*stack, url)), strict)
        exp = compiler.compile(vs)
        s.expansions[url] = exp
        return exp

    # ---------------------------------------------------------------- operations

    def validate_code(self, valueset_url: str, system: str | None, code: str) -> bool | None:
        """Is ``code`` in the value set?  None when it cannot be told: unknown or broken value
        set, or a code of a whole external system that the server does not hold."""
        try:
            exp = self.expansion(valueset_url)
        except FHIRError:
            return None
        return exp.contains(system, code)

    def validate(self, valueset_url: str, system: str | None, code: str, *, display: str | None = None,
                 display_language: str | None = None) -> dict:
        """``$validate-code`` result as a Parameters resource (result, message, display)."""
        exp = self.expansion(valueset_url)
        entry = exp.find(system, code)
        params: list[dict] = []
        if entry is not None:
            shown = entry.display_in(display_language)
            result = True
            if display is not None and fold(display) not in {fold(x) for x in _all_displays(entry)}:
                result = False
                params.append({"name": "message", "valueString":
                               f"Le libellé « {display} » ne correspond pas au code {code} (attendu « {shown} »)"})
            params.insert(0, {"name": "result", "valueBoolean": result})
            if shown:
                params.append({"name": "display", "valueString": shown})
            return {"resourceType": "Parameters", "parameter": params}
        verdict = exp.contains(system, code)
        where = f"du système {system}" if system else "sans système"
        if verdict is None:
            message = (f"Le code « {code} » {where} ne peut pas être vérifié : ce serveur ne détient pas "
                       f"ce système de codes (jeu de valeurs {valueset_url})")
        else:
            known = self.codesystem(system) if system else None
            if known is not None and known.is_complete and known.get(code) is None:
                message = f"Le code « {code} » n'existe pas dans le système {system}"
            else:
                message = f"Le code « {code} » {where} n'appartient pas au jeu de valeurs {valueset_url}"
        return {"resourceType": "Parameters", "parameter": [
            {"name": "result", "valueBoolean": False},
            {"name": "message", "valueString": message},
        ]}

    def expand(self, valueset_url: str, *, filter: str | None = None, offset: int = 0, count: int = 50,
               display_language: str | None = None, include_designations: bool = False,
               active_only: bool = False) -> dict:
        """The value set with an ``expansion`` page: ``filter`` matches word prefixes of the
        code, display and every designation (accents, case and Arabic variants folded)."""
        if offset < 0 or count < 0:
            raise FHIRError.of(400, "invalid", "offset et count doivent être positifs", "offset" if offset < 0 else "count")
        count = min(count, MAX_COUNT)
        exp = self.expansion(valueset_url)
        if exp.open_systems:
            systems = ", ".join(sorted(exp.open_systems))
            raise FHIRError.of(422, "too-costly", f"Le jeu de valeurs {valueset_url} inclut des systèmes de codes que "
                               f"ce serveur ne détient pas en entier ({systems}) : il ne peut pas être énuméré")
        words = query_words(filter)
        hits = exp.search(words)
        if active_only:
            hits = [i for i in hits if not exp.entries[i].inactive]
        if words:
            hits = self._ranked(exp, hits, words, display_language)
        page = hits[offset:offset + count]
        contains = [self._contains(exp.entries[i], display_language, include_designations) for i in page]
        parameters: list[dict] = [{"name": "offset", "valueInteger": offset}, {"name": "count", "valueInteger": count}]
        if filter:
            parameters.append({"name": "filter", "valueString": filter})
        if display_language:
            parameters.append({"name": "displayLanguage", "valueCode": display_language})
        vs = exp.resource
        out = {k: vs[k] for k in ("resourceType", "id", "url", "version", "name", "title", "status") if k in vs}
        out.setdefault("resourceType", "ValueSet")
        out["expansion"] = {
            "identifier": f"urn:sijill:expansion:{valueset_url}",
            "timestamp": exp.timestamp,
            "total": len(hits),
            "offset": offset,
            "parameter": parameters,
            "contains": contains,
        }
        if not contains:
            del out["expansion"]["contains"]
        return out

    def _ranked(self, exp: Expansion, hits: list[int], words: list[str], language: str | None) -> list[int]:
        # Autocomplete order: the exact code, then displays starting with the query, then
        # displays starting with its first word, then the rest; stable within each group.
        key = (exp.url, language)
        displays = self._state.display_keys.get(key)
        if displays is None or len(displays) != len(exp.entries):
            displays = [" " + fold(e.display_in(language) or "") for e in exp.entries]
            self._state.display_keys[key] = displays
        query = "".join(words)
        first = words[0]
        top: list[int] = []
        second: list[int] = []
        rest: list[int] = []
        for i in hits:
            d = displays[i]
            if d.startswith(query):
                top.append(i)
            elif d.startswith(first):
                second.append(i)
            else:
                rest.append(i)
        candidates = exp.by_folded_code(query.strip()) if len(words) == 1 else []
        exact = [i for i in candidates if i in set(hits)] if candidates else []
        if exact:
            chosen = set(exact)
            return exact + [i for i in top + second + rest if i not in chosen]
        return top + second + rest

    @staticmethod
    def _contains(e, language: str | None, designations: bool) -> dict:
        item: dict = {"system": e.system, "code": e.code}
        if e.version:
            item["version"] = e.version
        shown = e.display_in(language)
        if shown:
            item["display"] = shown
        if e.abstract:
            item["abstract"] = True
        if e.inactive:
            item["inactive"] = True
        if designations and e.designations:
            item["designation"] = [{k: d[k] for k in ("language", "use", "value") if k in d} for d in e.designations]
        return item

    def lookup(self, system: str, code: str, *, display_language: str | None = None) -> dict | None:
        """``$lookup`` result as Parameters, or None when the system or the code is unknown."""
        cs = self.codesystem(system)
        concept = cs.get(code) if cs is not None else None
        if concept is None:
            return None
        params: list[dict] = [{"name": "name", "valueString": cs.name or cs.url}]
        if cs.version:
            params.append({"name": "version", "valueString": cs.version})
        shown = concept.display_in(display_language)
        if shown:
            params.append({"name": "display", "valueString": shown})
        if concept.definition:
            params.append({"name": "definition", "valueString": concept.definition})
        if concept.abstract:
            params.append({"name": "abstract", "valueBoolean": True})
        for d in concept.designations:
            part = [{"name": "language", "valueCode": d["language"]}] if d.get("language") else []
            if d.get("use"):
                part.append({"name": "use", "valueCoding": d["use"]})
            part.append({"name": "value", "valueString": d.get("value", "")})
            params.append({"name": "designation", "part": part})
        for p in concept.properties:
            value, _ = property_value(p)
            if value is None:
                continue
            key = next(k for k in p if k.startswith("value"))
            params.append({"name": "property", "part": [{"name": "code", "valueCode": p.get("code")}, {"name": "value", key: value}]})
        for rel, codes in (("parent", concept.parents), ("child", concept.children)):
            for c in codes:
                if not any(p.get("code") == rel and property_value(p)[1] == c for p in concept.properties):
                    params.append({"name": "property", "part": [{"name": "code", "valueCode": rel}, {"name": "value", "valueCode": c}]})
        return {"resourceType": "Parameters", "parameter": params}

    def require_lookup(self, system: str, code: str, *, display_language: str | None = None) -> dict:
        """``lookup`` that names precisely what is unknown (404)."""
        found = self.lookup(system, code, display_language=display_language)
        if found is not None:
            return found
        if self.codesystem(system) is None:
            raise FHIRError.of(404, "not-found", f"Système de codes inconnu : {system}", "system")
        raise FHIRError.of(404, "not-found", f"Le code « {code} » n'existe pas dans le système {system}", "code")

    def codes_in(self, valueset_url: str) -> list[tuple[str, str]]:
        """Every (system, code) of the value set, for the ``:in``/``:not-in`` search modifiers."""
        exp = self.expansion(valueset_url)
        if exp.open_systems:
            systems = ", ".join(sorted(exp.open_systems))
            raise FHIRError.of(422, "too-costly", f"Le jeu de valeurs {valueset_url} ne peut pas être énuméré "
                               f"(systèmes non détenus : {systems})")
        return [(e.system, e.code) for e in exp.entries]

    def translate(self, system: str, code: str, *, target_system: str | None = None,
                  conceptmap_url: str | None = None) -> list[dict]:
        """The targets of ``code`` in the ConceptMaps (one named, or all), as
        ``{"system", "code", "display", "equivalence"}``."""
        maps = [self._state.conceptmaps[conceptmap_url]] if conceptmap_url in self._state.conceptmaps else (
            [] if conceptmap_url else list(self._state.conceptmaps.values()))
        out: list[dict] = []
        for cm in maps:
            for group in cm.get("group", []):
                if group.get("source") != system or (target_system and group.get("target") != target_system):
                    continue
                for element in group.get("element", []):
                    if element.get("code") != code:
                        continue
                    for target in element.get("target", []):
                        out.append({"system": group.get("target"), "code": target.get("code"),
                                    "display": target.get("display"), "equivalence": target.get("equivalence")})
        return out

    # ---------------------------------------------------------------- checks

    def _static_checks(self, resource: dict) -> list[Issue]:
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if kind not in TERMINOLOGY_TYPES:
            return [Issue("invalid", f"Type de ressource « {kind} » : attendu CodeSystem, ValueSet ou ConceptMap")]
        from ehr.parsing import check_structure

        issues: list[Issue] = []
        try:
            check_structure(resource, kind)
        except FHIRError as exc:
            issues.extend(exc.issues)
        if not resource.get("url"):
            issues.append(Issue("required", f"{kind}.url est obligatoire pour une ressource de terminologie",
                                expression=(f"{kind}.url",)))
        if kind == "CodeSystem":
            issues.extend(_codesystem_issues(resource))
        return issues


class _Checker:
    """Checks that need the candidate state: references resolve, value sets compile."""

    def __init__(self, state: _State, service: TerminologyService):
        self.state = state
        self.service = service

    def dynamic_checks(self, resource: dict) -> list[Issue]:
        kind = resource["resourceType"]
        url = resource["url"].split("|")[0]
        if kind == "ValueSet":
            return self._compile_issues(url, "", strict=True)
        if kind == "ConceptMap":
            return self._conceptmap_issues(resource)
        if resource.get("content") == "supplement":
            target = resource.get("supplements", "").split("|")[0]
            if target not in self.state.codesystems:
                return [Issue("not-found", f"Le système supplémenté « {target} » est inconnu",
                              expression=("CodeSystem.supplements",))]
            return []
        # A changed code system must not break a value set that uses it.
        issues: list[Issue] = []
        for vs_url, vs in self.state.valuesets.items():
            if url in referenced_systems(vs) or any(self.state.implicit.get(r) == url for r in referenced_valuesets(vs)):
                issues.extend(self._compile_issues(vs_url, f"Le jeu de valeurs {vs_url} ne se construit plus : "))
        return issues

    def _compile_issues(self, url: str, prefix: str, strict: bool = False) -> list[Issue]:
        try:
            self.service._compile(url, self.state, (), strict)
        except CompileError as exc:
            return [Issue(i.code, prefix + i.diagnostics, i.severity, i.expression) for i in exc.issues]
        except FHIRError as exc:
            return list(exc.issues)
        return []

    def _conceptmap_issues(self, cm: dict) -> list[Issue]:
        issues: list[Issue] = []
        for g, group in enumerate(cm.get("group", [])):
            for side in ("source", "target"):
                system = group.get(side)
                if not system:
                    continue
                cs = self.service.codesystem(system, self.state)
                if cs is None or not cs.is_complete:
                    continue
                for e, element in enumerate(group.get("element", [])):
                    codes = [(f"ConceptMap.group[{g}].element[{e}].code", element.get("code"))] if side == "source" else [
                        (f"ConceptMap.group[{g}].element[{e}].target[{t}].code", target.get("code"))
                        for t, target in enumerate(element.get("target", []))
                    ]
                    for path, code in codes:
                        if code is not None and cs.get(code) is None:
                            issues.append(Issue("code-invalid", f"Le code « {code} » n'existe pas dans le système {system}",
                                                expression=(path,)))
        return issues


def _codesystem_issues(cs: dict) -> list[Issue]:
    issues: list[Issue] = []
    declared = {p.get("code"): p.get("type") for p in cs.get("property", [])}
    seen: dict[str, str] = {}
    bilingual = cs.get("url", "").startswith(SIJILL) and cs.get("content") != "supplement"
    all_codes: set[str] = set()
    parents: list[tuple[str, str]] = []

    def walk(concepts: list[dict], path: str) -> None:
        for i, c in enumerate(concepts):
            here = f"{path}[{i}]"
            code = c.get("code")
            if code in seen:
                issues.append(Issue("duplicate", f"Code « {code} » en double (déjà défini en {seen[code]})",
                                    expression=(f"{here}.code",)))
            elif code is not None:
                seen[code] = here
                all_codes.add(code)
            for k, p in enumerate(c.get("property", [])):
                name = p.get("code")
                if name not in declared:
                    issues.append(Issue("invalid", f"Propriété « {name} » non déclarée dans CodeSystem.property",
                                        expression=(f"{here}.property[{k}].code",)))
                    continue
                expected = _VALUE_TYPE_KEYS.get(declared[name])
                if expected and expected not in p:
                    got = next((x for x in p if x.startswith("value")), "aucune valeur")
                    issues.append(Issue("value", f"Propriété « {name} » de type {declared[name]} : {expected} attendu, {got} reçu",
                                        expression=(f"{here}.property[{k}]",)))
                if name in ("parent", "subsumedBy"):
                    parents.append((property_value(p)[1], f"{here}.property[{k}]"))
            if bilingual:
                langs = {(d.get("language") or "").split("-")[0] for d in c.get("designation", [])}
                missing = [lang for lang in ("fr", "ar") if lang not in langs]
                if missing:
                    issues.append(Issue("required", f"Le concept « {code} » n'a pas de désignation en {', '.join(missing)} "
                                        "(chaque concept marocain en porte une en français et en arabe)",
                                        expression=(f"{here}.designation",)))
            walk(c.get("concept", []), f"{here}.concept")

    walk(cs.get("concept", []), "CodeSystem.concept")
    for code, path in parents:
        if code not in all_codes:
            issues.append(Issue("code-invalid", f"Le parent « {code} » n'est pas un code de ce système", expression=(path,)))
    return issues


def _implicit_valueset(url: str, cs: dict) -> dict:
    return {"resourceType": "ValueSet", "url": url, "name": cs.get("name"), "status": cs.get("status", "active"),
            "compose": {"include": [{"system": cs["url"]}]}}


def _all_displays(entry) -> list[str]:
    return [x for x in (entry.display, *(d.get("value") for d in entry.designations)) if x]

"""Which search parameters exist, per resource type: the shipped R4B ones plus our own.

Everything the indexer and the query engine do is driven by these definitions; there is no
code per resource type.  A parameter defined on several types (``clinical-patient`` covers 32)
becomes one ``SearchParam`` per type whose expression keeps only that type's union branches,
and Resource-level parameters (``_tag``, ``_profile``...) are copied onto every type, so a
lookup is one dict access and every index row hashes ``"<Type>.<code>"``.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Iterable, Mapping

from ehr.definitions import load
from ehr.outcome import FHIRError

PARAM_TYPES = frozenset({"number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"})
# Types the engine can search on; ``special`` (Location ``near``) is not supported yet.
SEARCHABLE = PARAM_TYPES - {"special"}
ABSTRACT = ("Resource", "DomainResource")
# Parameters the engine answers from the ``resource`` row itself, never indexed.
COLUMN_PARAMS = frozenset({"_id", "_lastUpdated"})
_CODE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")  # no "." or ":" (they chain and modify)


@lru_cache(maxsize=65536)
def param_hash(res_type: str, code: str) -> int:
    """Stable non-negative 63-bit id of ``"<res_type>.<code>"`` for the ``param`` columns."""
    digest = hashlib.blake2b(f"{res_type}.{code}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


@dataclass(frozen=True)
class Component:
    definition: str  # url of the SearchParameter giving the component's type
    type: str
    expression: str  # relative to each value of the composite's expression


@dataclass(frozen=True, eq=False)
class SearchParam:
    res_type: str
    code: str
    type: str
    url: str
    expression: str | None  # narrowed to ``res_type``; None for column params
    targets: tuple[str, ...] = ()
    modifiers: tuple[str, ...] = ()
    comparators: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    description: str = ""
    hash: int = field(default=0)

    def sub_hash(self, suffix: str) -> int:
        """Hash of a derived row family: ``code:identifier``, ``code:of-type``, ``code$0``..."""
        return param_hash(self.res_type, self.code + suffix)


def _split_union(expr: str) -> list[str]:
    parts, depth, cur, quoted = [], 0, "", False
    for ch in expr:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "|" and depth == 0 and not quoted:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def _root(branch: str) -> str:
    m = re.match(r"\(*([A-Za-z%][A-Za-z0-9]*)", branch)
    name = m.group(1) if m else ""
    return name if name[:1].isupper() else ""


def narrow(expression: str, res_type: str) -> str | None:
    """The union branches of ``expression`` that apply to ``res_type`` (None if none)."""
    branches = _split_union(expression)
    kept = [b for b in branches if _root(b) in ("", res_type, *ABSTRACT)]
    if not kept:
        return None
    return expression if len(kept) == len(branches) else " | ".join(kept)


class Registry:
    """Search parameters by resource type; built once from ``ehr/definitions``."""

    def __init__(self, params: Iterable[dict], compartments: Mapping, resources: Mapping):
        self.resource_types: frozenset[str] = frozenset(resources)
        self._resources = resources
        self._by_type: dict[str, dict[str, SearchParam]] = {t: {} for t in self.resource_types}
        self._by_url: dict[str, dict] = {}
        self._views: dict[str, Mapping[str, SearchParam]] = {}
        # Bumped on every ``add``; ``cache`` holds what others derive from the definitions
        # (the indexer's compiled extraction plans) and is emptied by ``add``.
        self.generation = 0
        self.cache: dict = {}
        # compartment type -> member resource type -> codes of the params linking them
        self.compartments: Mapping[str, Mapping[str, tuple[str, ...]]] = {
            comp: {t: tuple(codes) for t, codes in members.items()} for comp, members in compartments.items()
        }
        params = list(params)
        for p in params:
            self._by_url[p["url"]] = p
        for p in params:
            self._install(p)

    # -- lookups -------------------------------------------------------------------------
    def for_type(self, res_type: str) -> Mapping[str, SearchParam]:
        view = self._views.get(res_type)
        if view is None:
            view = self._views[res_type] = MappingProxyType(self._by_type.get(res_type, {}))
        return view

    def get(self, res_type: str, code: str) -> SearchParam | None:
        by_code = self._by_type.get(res_type)
        return by_code.get(code) if by_code else None

    def by_url(self, url: str) -> dict | None:
        return self._by_url.get(url)

    def summary_elements(self, res_type: str) -> tuple[str, ...]:
        return tuple(self._resources.get(res_type, {}).get("summary", ()))

    def required_elements(self, res_type: str) -> tuple[str, ...]:
        return tuple(self._resources.get(res_type, {}).get("required", ()))

    def compartment_params(self, res_type: str) -> dict[str, tuple[str, ...]]:
        """compartment type -> codes of ``res_type``'s params that put it in that compartment."""
        return {comp: members[res_type] for comp, members in self.compartments.items() if res_type in members}

    # -- registration --------------------------------------------------------------------
    def add(self, search_parameter: dict) -> None:
        """Register a SearchParameter resource (e.g. a Moroccan one) for its base types.

        A later definition of the same code on a type replaces the earlier one.  Resources
        already stored are not re-indexed here: that is a reindex job's business.
        """
        p = self._validated(search_parameter)
        self._by_url[p["url"]] = p
        self._install(p)
        self.generation += 1
        self.cache.clear()

    def _validated(self, sp: dict) -> dict:
        def bad(msg: str, where: str) -> FHIRError:
            return FHIRError.of(400, "invalid", msg, f"SearchParameter.{where}")

        if not isinstance(sp, dict) or sp.get("resourceType") != "SearchParameter":
            raise FHIRError.of(400, "invalid", "Not a SearchParameter resource", "SearchParameter.resourceType")
        code = sp.get("code")
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            raise bad(f"Invalid code {code!r}", "code")
        base = sp.get("base")
        if not isinstance(base, list) or not base:
            raise bad("base must list at least one resource type", "base")
        for t in base:
            if t not in self.resource_types and t not in ABSTRACT:
                raise bad(f"Unknown resource type {t!r}", "base")
        ptype = sp.get("type")
        if ptype not in SEARCHABLE:
            raise bad(f"Unsupported search parameter type {ptype!r}", "type")
        expression = sp.get("expression")
        if not isinstance(expression, str) or not expression.strip():
            raise bad("expression is required", "expression")
        from ehr.search.fhirpath import check_expression

        try:
            check_expression(expression)
        except ValueError as exc:
            raise bad(f"Invalid FHIRPath expression: {exc}", "expression") from None
        if not any(narrow(expression, t) for t in self._concrete(base)):
            raise bad("The expression does not start from any of the base types", "expression")
        comps = []
        if ptype == "composite":
            for i, c in enumerate(sp.get("component") or ()):
                ref = self._by_url.get(c.get("definition")) if isinstance(c, dict) else None
                if ref is None or not isinstance(c.get("expression"), str):
                    raise bad(f"component {i} must name a known definition and an expression", f"component[{i}]")
                comps.append({"definition": c["definition"], "type": ref["type"], "expression": c["expression"]})
            if len(comps) < 2:
                raise bad("A composite parameter needs at least two components", "component")
        url = sp.get("url") or f"https://fhir.sijill.ma/SearchParameter/{'-'.join(base)}-{code}"
        out = {"url": url, "code": code, "base": list(base), "type": ptype, "expression": expression}
        for key in ("target", "modifier", "comparator"):
            if sp.get(key):
                out[key] = list(sp[key])
        if comps:
            out["component"] = comps
        if sp.get("description"):
            out["description"] = sp["description"]
        return out

    def _concrete(self, base: Iterable[str]) -> list[str]:
        types: list[str] = []
        for t in base:
            types.extend(sorted(self.resource_types) if t in ABSTRACT else [t])
        return types

    def _install(self, p: dict) -> None:
        code = p["code"]
        comps = tuple(Component(c["definition"], c["type"], c["expression"]) for c in p.get("component", ()))
        for t in self._concrete(p["base"]):
            if t not in self._by_type:
                continue
            expression = None if code in COLUMN_PARAMS else narrow(p["expression"], t)
            if expression is None and code not in COLUMN_PARAMS:
                continue
            if p["type"] not in SEARCHABLE:
                continue
            self._by_type[t][code] = SearchParam(
                res_type=t,
                code=code,
                type=p["type"],
                url=p["url"],
                expression=expression,
                targets=tuple(p.get("target", ())),
                modifiers=tuple(p.get("modifier", ())),
                comparators=tuple(p.get("comparator", ())),
                components=comps,
                description=p.get("description", ""),
                hash=param_hash(t, code),
            )


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    return Registry(load("search-parameters"), load("compartments"), load("resources"))

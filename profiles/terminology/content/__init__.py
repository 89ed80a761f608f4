"""The Moroccan CodeSystems, ValueSets and ConceptMaps shipped as FHIR JSON files here.

The acts, medicines and ALD code systems are not files: they are built from the reference
tables (``profiles.reference.codesystems``) so the codes and their prices never disagree.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import orjson

HERE = Path(__file__).parent
CODESYSTEM = "https://fhir.sijill.ma/CodeSystem/"
VALUESET = "https://fhir.sijill.ma/ValueSet/"


@lru_cache(maxsize=None)
def static_resources() -> tuple[dict, ...]:
    """Every JSON resource of this folder, in a stable order."""
    return tuple(orjson.loads(p.read_bytes()) for p in sorted(HERE.glob("*.json")))


@lru_cache(maxsize=None)
def codes_of(codesystem: str) -> frozenset[str]:
    """The codes of one shipped code system, by its short name (``organisme``, ``lettre-cle``…)."""
    url = CODESYSTEM + codesystem
    for r in static_resources():
        if r.get("resourceType") == "CodeSystem" and r.get("url") == url:
            out: set[str] = set()

            def walk(concepts: list[dict]) -> None:
                for c in concepts:
                    out.add(c["code"])
                    walk(c.get("concept", []))

            walk(r.get("concept", []))
            return frozenset(out)
    raise KeyError(f"no shipped CodeSystem {url}")

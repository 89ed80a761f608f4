"""The Moroccan conformance content stored in the server: profiles and extensions
(StructureDefinition, differential only; the validator builds the snapshots), identifier
systems (NamingSystem), terminology (CodeSystem, ValueSet, ConceptMap) and the
ImplementationGuide that lists them.  ``examples/`` holds one conforming instance per profile.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterator

import orjson

HERE = Path(__file__).parent
EXAMPLES = HERE / "examples"
IG_URL = "https://fhir.sijill.ma/ImplementationGuide/sijill"


@lru_cache(maxsize=None)
def structure_definitions() -> tuple[dict, ...]:
    """Extensions first, then profiles, so a profile's extensions are known when it loads."""
    sds = [orjson.loads(p.read_bytes()) for p in sorted(HERE.glob("StructureDefinition-*.json"))]
    return tuple(sorted(sds, key=lambda sd: (sd["type"] != "Extension", sd["id"])))


@lru_cache(maxsize=None)
def examples() -> tuple[dict, ...]:
    return tuple(orjson.loads(p.read_bytes()) for p in sorted(EXAMPLES.glob("*.json")))


def iter_content() -> Iterator[dict]:
    """Every shipped conformance and terminology resource, in loading order."""
    from profiles.identifiers import naming_systems
    from profiles.terminology import moroccan_resources

    terminology = moroccan_resources()
    yield from naming_systems()
    yield from terminology
    yield from structure_definitions()
    yield implementation_guide(terminology)


def implementation_guide(terminology: list[dict] | None = None) -> dict:
    from profiles.identifiers import naming_systems
    from profiles.terminology import moroccan_resources

    listed = [*naming_systems(), *(terminology if terminology is not None else moroccan_resources()),
              *structure_definitions()]
    resources = [{
        "reference": {"reference": f"{r['resourceType']}/{r['id']}"},
        "name": r.get("title") or r.get("name") or r["id"],
        "exampleBoolean": False,
    } for r in listed]
    resources += [{
        "reference": {"reference": f"{e['resourceType']}/{e['id']}"},
        "name": f"Exemple {e['resourceType']}/{e['id']}",
        "exampleCanonical": e["meta"]["profile"][0],
    } for e in examples()]
    return {
        "resourceType": "ImplementationGuide", "id": "sijill", "url": IG_URL, "version": "1.0.0",
        "name": "SijillAMO", "title": "Sijill — guide d'implémentation AMO Maroc", "status": "active",
        "publisher": "Sijill", "packageId": "ma.sijill.amo", "license": "Apache-2.0", "fhirVersion": ["4.3.0"],
        "jurisdiction": [{"coding": [{"system": "urn:iso:std:iso:3166", "code": "MA"}]}],
        "description": "Identifiants, profils, terminologie et données de référence de l'assurance maladie "
                       "obligatoire marocaine (voir docs/implementation-guide.md).",
        "definition": {"resource": resources},
    }

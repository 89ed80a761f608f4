"""``_summary`` and ``_elements``: the only case where stored bytes are parsed again.

Top-level elements are kept or dropped according to the summary flags of the R4B
StructureDefinitions (``ehr/definitions/resources.json``); the result is tagged SUBSETTED
as the spec requires, so nobody mistakes it for the whole resource.
"""
from __future__ import annotations

from dataclasses import dataclass

import orjson

from ehr.search.params import invalid
from ehr.search.registry import Registry

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "As requested, resource is not fully detailed.",
}
SUMMARY_MODES = ("true", "text", "data", "count", "false")
_ALWAYS = ("resourceType", "id", "meta")


@dataclass(frozen=True)
class Subset:
    summary: str | None  # true | text | data (count and false never reach here)
    elements: frozenset[str] | None


def parse_subset(summary: str | None, elements: str | None) -> Subset | None:
    if summary is not None and summary not in SUMMARY_MODES:
        raise invalid("_summary", f"_summary must be one of {', '.join(SUMMARY_MODES)}", "value")
    if summary is not None and elements is not None and summary not in ("false", "count"):
        raise invalid("_elements", "_elements cannot be combined with _summary")
    if elements is not None:
        names = frozenset(e.strip().split(".")[0] for e in elements.split(",") if e.strip())
        return Subset(None, names) if names else None
    if summary in ("true", "text", "data"):
        return Subset(summary, None)
    return None


def _matches(key: str, names) -> bool:
    if key in names:
        return True
    for name in names:  # choice elements: deceased[x] covers deceasedBoolean
        if name.endswith("[x]") and key.startswith(name[:-3]) and key[len(name) - 3 : len(name) - 2].isupper():
            return True
    return False


def apply_subset(content: bytes, res_type: str, subset: Subset, registry: Registry) -> bytes:
    res = orjson.loads(content)
    if subset.elements is not None:
        keep = set(subset.elements) | set(registry.required_elements(res_type))
        out = {k: v for k, v in res.items() if k in _ALWAYS or _matches(k, keep)}
    elif subset.summary == "true":
        keep = set(registry.summary_elements(res_type))
        out = {k: v for k, v in res.items() if k in _ALWAYS or _matches(k, keep)}
    elif subset.summary == "text":
        keep = {"text", *registry.required_elements(res_type)}
        out = {k: v for k, v in res.items() if k in _ALWAYS or _matches(k, keep)}
    else:  # data
        out = {k: v for k, v in res.items() if k != "text"}
    meta = dict(out.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(t.get("code") == "SUBSETTED" and t.get("system") == SUBSETTED["system"] for t in tags):
        tags.append(SUBSETTED)
    meta["tag"] = tags
    out["meta"] = meta
    # keep resourceType/id/meta first, as stored
    ordered = {k: out[k] for k in _ALWAYS if k in out}
    ordered.update((k, v) for k, v in out.items() if k not in ordered)
    return orjson.dumps(ordered)

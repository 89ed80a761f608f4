"""The compact form of StructureDefinitions the validator works from.

One normaliser serves both the shipped base definitions (written by
``tools/derive_base_profiles.py``) and profiles loaded at run time through
``Validator.add_profile``, so both sources keep exactly the same facts about an
element: cardinality, types, fixed/pattern values, binding, constraints, slicing,
contentReference.  Everything documentary (definitions, mappings, comments) is dropped.

Compact element keys (absent = "inherit" in a differential, default in a snapshot):
  id, sn (sliceName), min, max, bmax (base.max, decides JSON array-ness),
  t  [{"c": code, "p": [profile], "tp": [targetProfile]}],
  cr (contentReference), fx / pt (fixed / pattern value, its type in fxt / ptt),
  b  [strength, valueSet], k [[key, severity, human, expression]],
  sl {"d": [[type, path]], "r": rules, "o": ordered}, attr (XML attribute: no "_x" form).
"""
from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import orjson

BASE_FILE = Path(__file__).resolve().parent.parent / "definitions" / "base" / "r4b-base.json.gz"

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
SYSTEM_PREFIX = "http://hl7.org/fhirpath/System."
# FHIRPath system types used on Element.id / Extension.url / Resource.id without the
# structuredefinition-fhir-type extension, mapped to the FHIR primitive they carry.
_SYSTEM_TYPES = {"String": "string", "Boolean": "boolean", "Integer": "integer", "Decimal": "decimal",
                 "Date": "date", "DateTime": "dateTime", "Time": "time"}


def _type_code(t: dict) -> str:
    code = t.get("code", "")
    if code.startswith(SYSTEM_PREFIX):
        for ext in t.get("extension", ()):
            if ext.get("url") == FHIR_TYPE_EXT:
                return ext.get("valueUrl") or ext.get("valueUri") or code
        return _SYSTEM_TYPES.get(code[len(SYSTEM_PREFIX):], "string")
    return code


def _prefixed(element: dict, prefix: str) -> tuple[str, object] | None:
    """The (type suffix, value) of a fixed[x] / pattern[x] property, if any."""
    for key, value in element.items():
        if key.startswith(prefix) and len(key) > len(prefix) and key[len(prefix)].isupper():
            return key[len(prefix):], value
    return None


def _element_id_type(el: dict, in_resource: bool, code: str) -> str:
    """R4B types ``Element.id`` (and so every data type's ``.id``) as ``id``, but the spec's
    element ids are strings: "n:1", a slice name, any length.  Only a resource's own ``id``
    (``Patient.id``) is the 64-character ``id``."""
    path = el.get("path", el["id"])
    if code == "id" and path.endswith(".id") and (not in_resource or path.count(".") > 1):
        return "string"
    return code


def compact_element(el: dict, in_resource: bool = False) -> dict:
    """``in_resource``: the element belongs to a resource's structure (where ``<Type>.id`` is
    the resource id)."""
    out: dict = {"id": el["id"]}
    if "sliceName" in el:
        out["sn"] = el["sliceName"]
    if "min" in el:
        out["min"] = el["min"]
    if "max" in el:
        out["max"] = el["max"]
    base = el.get("base")
    if base and "max" in base:
        out["bmax"] = base["max"]
    if "type" in el:
        types = []
        for t in el["type"]:
            ct: dict = {"c": _element_id_type(el, in_resource, _type_code(t))}
            if t.get("profile"):
                ct["p"] = list(t["profile"])
            if t.get("targetProfile"):
                ct["tp"] = list(t["targetProfile"])
            types.append(ct)
        out["t"] = types
    if "contentReference" in el:
        out["cr"] = el["contentReference"]
    for prefix, key in (("fixed", "fx"), ("pattern", "pt")):
        found = _prefixed(el, prefix)
        if found is not None:
            out[key + "t"], out[key] = found
    binding = el.get("binding")
    if binding and binding.get("strength"):
        out["b"] = [binding["strength"], binding.get("valueSet")]
    if el.get("constraint"):
        out["k"] = [[c["key"], c.get("severity", "error"), c.get("human", ""), c.get("expression")]
                    for c in el["constraint"]]
    slicing = el.get("slicing")
    if slicing:
        out["sl"] = {"d": [[d.get("type"), d.get("path")] for d in slicing.get("discriminator", ())],
                     "r": slicing.get("rules", "open"), "o": bool(slicing.get("ordered", False))}
    if "xmlAttr" in el.get("representation", ()):
        out["attr"] = 1
    return out


def primitive_regex(sd: dict) -> str | None:
    """The regex HL7 attaches to ``<type>.value`` of a primitive type."""
    for el in sd.get("snapshot", {}).get("element", ()):
        if el["path"] == sd["type"] + ".value":
            for t in el.get("type", ()):
                for ext in t.get("extension", ()):
                    if ext.get("url") == REGEX_EXT:
                        return ext.get("valueString")
    return None


def element_ids(elements: list[dict]) -> list[dict]:
    """Give every element an id, following slices declared earlier for id-less elements
    (the pre-R4 convention: children of a slice follow the element carrying sliceName)."""
    current: dict[str, str] = {}   # path -> id of the slice currently open on that path
    out = []
    for el in elements:
        if "id" in el:
            out.append(el)
            continue
        path = el["path"]
        prefix_id = path
        for sliced_path, sliced_id in sorted(current.items(), key=lambda kv: -len(kv[0])):
            if path == sliced_path or path.startswith(sliced_path + "."):
                prefix_id = sliced_id + path[len(sliced_path):]
                break
        if "sliceName" in el:
            prefix_id = f"{prefix_id}:{el['sliceName']}"
            current[path] = prefix_id
        out.append({**el, "id": prefix_id})
    return out


def compact_structure(sd: dict, part: str) -> dict:
    """Compact a StructureDefinition, keeping its ``part`` ("snapshot" or "differential")."""
    out: dict = {"url": sd["url"], "name": sd.get("name") or sd.get("id"), "type": sd["type"],
                 "kind": sd.get("kind"), "derivation": sd.get("derivation") or "specialization",
                 "abstract": bool(sd.get("abstract", False))}
    if sd.get("baseDefinition"):
        out["base"] = sd["baseDefinition"]
    if sd.get("kind") == "primitive-type":
        rx = primitive_regex(sd)
        if rx:
            out["regex"] = rx
    out["part"] = part
    in_resource = sd.get("kind") == "resource"
    out["elements"] = [compact_element(el, in_resource) for el in element_ids(sd[part]["element"])]
    return out


@lru_cache(maxsize=1)
def load_base() -> dict[str, dict]:
    """The shipped base definitions, by canonical url."""
    with gzip.open(BASE_FILE, "rb") as fh:
        data = orjson.loads(fh.read())
    for st in data["structures"]:
        for el in st["elements"]:
            # An element's id is a FHIR string: the id format (64 letters, digits, "-" and ".")
            # is Resource.id's.  ElementDefinition ids hold slice names ("Patient.identifier:cin")
            # and choice names ("Extension.value[x]"); the HL7 validator takes them, so do writes.
            if el["id"].endswith(".id") and el.get("attr"):  # an element's (an XML attribute), not Resource.id
                el["t"] = [{"c": "string"}]
    return {s["url"]: s for s in data["structures"]}

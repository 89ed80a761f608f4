"""Derive the search definitions the server ships from HL7's R4B package.

Reads ``search-parameters.json``, ``compartment-definitions.json``, ``profiles-resources.json``
and ``profiles-types.json`` from the R4B definitions folder (default ``/work/shared/fhir-r4b``)
and writes compact, deterministic JSON into ``ehr/definitions/``:

* ``search-parameters.json`` - every usable SearchParameter: url, code, base, type,
  expression, target, modifier, comparator, description and components (with the type of the
  referenced definition resolved, so the server never has to look it up);
* ``compartments.json`` - compartment type -> resource type -> the params linking to it;
* ``resources.json`` - per concrete resource type, its summary and mandatory top-level elements
  (for ``_summary``);
* ``datatypes.json`` - the names of the FHIR data types (for choice elements such as
  ``valueQuantity``);
* ``choice-elements.json`` - the names of choice elements (``value``, ``onset``...).

Run: ``python tools/derive_search_definitions.py [SOURCE_DIR]``.
"""
from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "ehr" / "definitions"
GZIP_ABOVE = 1_000_000
ABSTRACT_BASES = {"Resource", "DomainResource"}


def _entries(path: Path) -> list[dict]:
    return [e["resource"] for e in json.loads(path.read_text())["entry"]]


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


def _roots(expr: str) -> set[str]:
    """The leading type name of each union branch (empty for relative branches)."""
    roots = set()
    for part in _split_union(expr):
        m = re.match(r"\(*([A-Za-z%][A-Za-z0-9]*)", part)
        name = m.group(1) if m else ""
        roots.add(name if name[:1].isupper() else "")
    return roots


def _covers_base(param: dict) -> bool:
    """An expression must start from one of the param's base types (or be relative)."""
    roots = _roots(param["expression"])
    base = set(param["base"])
    return all(r == "" or r in base or r in ABSTRACT_BASES for r in roots) and (
        "" in roots or bool(roots & (base | ABSTRACT_BASES))
    )


def derive_search_parameters(src: Path) -> list[dict]:
    raw = [p for p in _entries(src / "search-parameters.json") if p.get("resourceType") == "SearchParameter"]
    by_url = {p["url"]: p for p in raw}
    usable = [p for p in raw if p.get("code") and p.get("base") and p.get("type") and p.get("expression")]
    usable = [p for p in usable if _covers_base(p)]
    # A handful of the package's entries are examples that redefine a standard param
    # (experimental ``example`` for ``_id``...): the standard definition wins.
    taken = {(b, p["code"]) for p in usable if not p.get("experimental") for b in p["base"]}
    out = []
    for p in sorted(usable, key=lambda p: p["url"]):
        if p.get("experimental") and any((b, p["code"]) in taken for b in p["base"]):
            continue
        item = {
            "url": p["url"],
            "code": p["code"],
            "base": sorted(p["base"]),
            "type": p["type"],
            "expression": p["expression"],
        }
        for key in ("target", "modifier", "comparator"):
            if p.get(key):
                item[key] = sorted(p[key])
        if p.get("component"):
            comps = []
            for c in p["component"]:
                ref = by_url.get(c["definition"])
                if ref is None:
                    raise SystemExit(f"{p['url']}: component {c['definition']} is not defined")
                comps.append({"definition": c["definition"], "type": ref["type"], "expression": c["expression"]})
            item["component"] = comps
        if p.get("description"):
            item["description"] = p["description"]
        out.append(item)
    return out


def derive_compartments(src: Path, params: list[dict]) -> dict:
    known = {(b, p["code"]) for p in params for b in p["base"]}
    out: dict[str, dict[str, list[str]]] = {}
    for comp in _entries(src / "compartment-definitions.json"):
        if comp.get("resourceType") != "CompartmentDefinition" or not comp["url"].startswith(
            "http://hl7.org/fhir/CompartmentDefinition/"
        ) or comp["url"].endswith("/example"):
            continue
        members = {}
        for member in comp.get("resource", []):
            # "{def}" means "the resource itself" (a Patient is in its own compartment).
            names = sorted(n for n in member.get("param", []) if (member["code"], n) in known)
            if names:
                members[member["code"]] = names
        out[comp["code"]] = dict(sorted(members.items()))
    return dict(sorted(out.items()))


def derive_resources(src: Path) -> dict:
    out = {}
    for sd in _entries(src / "profiles-resources.json"):
        if sd.get("kind") != "resource" or sd.get("abstract") or sd.get("derivation") != "specialization":
            continue
        rtype = sd["type"]
        summary, required = [], []
        for el in sd["snapshot"]["element"]:
            parts = el["path"].split(".")
            if len(parts) != 2:
                continue
            name = parts[1]
            if el.get("isSummary"):
                summary.append(name)
            if el.get("min", 0) > 0:
                required.append(name)
        out[rtype] = {"summary": summary, "required": required}
    return dict(sorted(out.items()))


def derive_datatypes(src: Path) -> list[str]:
    names = {
        sd["type"]
        for sd in _entries(src / "profiles-types.json")
        if sd.get("kind") in ("primitive-type", "complex-type") and sd.get("derivation") != "constraint"
    }
    # The constraint profiles that are data types in their own right (Age, Duration, ...) are
    # specialisations here already; SimpleQuantity and MoneyQuantity never appear as a suffix.
    return sorted(names)


def derive_choice_elements(src: Path) -> list[str]:
    """Names of choice elements (``value`` of ``value[x]``...) in resources and data types:
    only these may appear in JSON with a type suffix."""
    names = set()
    for file in ("profiles-resources.json", "profiles-types.json"):
        for sd in _entries(src / file):
            if sd.get("derivation") == "constraint" or "snapshot" not in sd:
                continue
            for el in sd["snapshot"]["element"]:
                last = el["path"].split(".")[-1]
                if last.endswith("[x]"):
                    names.add(last[:-3])
    return sorted(names)


def write(name: str, data) -> Path:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=False).encode()
    OUT.mkdir(parents=True, exist_ok=True)
    if len(body) > GZIP_ABOVE:
        path = OUT / f"{name}.json.gz"
        # mtime=0 keeps the gzip bytes identical between runs.
        path.write_bytes(gzip.compress(body, compresslevel=9, mtime=0))
        (OUT / f"{name}.json").unlink(missing_ok=True)
    else:
        path = OUT / f"{name}.json"
        path.write_bytes(body)
        (OUT / f"{name}.json.gz").unlink(missing_ok=True)
    return path


def main(argv: list[str]) -> None:
    src = Path(argv[1]) if len(argv) > 1 else Path("/work/shared/fhir-r4b")
    params = derive_search_parameters(src)
    written = [
        write("search-parameters", params),
        write("compartments", derive_compartments(src, params)),
        write("resources", derive_resources(src)),
        write("datatypes", derive_datatypes(src)),
        write("choice-elements", derive_choice_elements(src)),
    ]
    for path in written:
        print(f"{path.relative_to(OUT.parent.parent)}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(sys.argv)

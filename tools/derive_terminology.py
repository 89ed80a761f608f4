"""Derive the base R4B terminology shipped with Sijill from HL7's definitions.

    python tools/derive_terminology.py [/path/to/shared/fhir-r4b]

Reads ``valuesets.json`` (every base CodeSystem and ValueSet, whose REQUIRED bindings the
validator enforces) and writes ``profiles/definitions/terminology/r4b-terminology.json.gz``:
one compact JSON array, narrative and meta dropped, sorted by url, gzip with a fixed mtime so
the same input always gives the same bytes.
"""
from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "profiles" / "definitions" / "terminology" / "r4b-terminology.json.gz"
DEFAULT_SOURCE = ROOT.parent / "shared" / "fhir-r4b"
DROP = ("text", "meta")


def derive(source: Path) -> list[dict]:
    bundle = orjson.loads((source / "valuesets.json").read_bytes())
    out = []
    for entry in bundle["entry"]:
        resource = {k: v for k, v in entry["resource"].items() if k not in DROP}
        if resource.get("resourceType") in ("CodeSystem", "ValueSet") and resource.get("url"):
            out.append(resource)
    out.sort(key=lambda r: (r["url"], r["resourceType"]))
    return out


def write(resources: list[dict], path: Path = OUT) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(orjson.dumps(resources, option=orjson.OPT_SORT_KEYS))
    path.write_bytes(buf.getvalue())


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE
    resources = derive(source)
    write(resources)
    print(f"{len(resources)} resources -> {OUT.relative_to(ROOT)} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()

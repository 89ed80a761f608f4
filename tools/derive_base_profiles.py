"""Derive the validator's base definitions from the HL7 R4B core package.

Reads ``profiles-resources.json`` and ``profiles-types.json`` (full snapshots, ~41 MB) and
writes ``profiles/definitions/base/r4b-base.json.gz``: every resource and data type as a
compact snapshot, and every core constraint profile (SimpleQuantity, vitalsigns, the core
extensions...) as a compact differential on top of them.  The output is deterministic
(sorted by url, gzip without timestamp) so re-running it produces no diff.

    python tools/derive_base_profiles.py [/work/shared/fhir-r4b]
"""
from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profiles.validator.definitions import BASE_FILE, compact_structure  # noqa: E402

SOURCES = ("profiles-types.json", "profiles-resources.json")


def derive(source_dir: Path) -> dict:
    structures = []
    for name in SOURCES:
        bundle = orjson.loads((source_dir / name).read_bytes())
        for entry in bundle["entry"]:
            sd = entry["resource"]
            if sd.get("resourceType") != "StructureDefinition" or sd.get("kind") == "logical":
                continue
            if sd.get("derivation") == "constraint":
                structures.append(compact_structure(sd, "differential"))
            else:
                structures.append(compact_structure(sd, "snapshot"))
    structures.sort(key=lambda s: s["url"])
    return {"fhirVersion": "4.3.0", "structures": structures}


def write(data: dict, target: Path = BASE_FILE) -> int:
    raw = orjson.dumps(data)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buf.getvalue())
    return len(raw)


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/fhir-r4b")
    data = derive(source)
    size = write(data)
    print(f"{len(data['structures'])} structures, {size} bytes JSON, "
          f"{BASE_FILE.stat().st_size} bytes gzip -> {BASE_FILE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

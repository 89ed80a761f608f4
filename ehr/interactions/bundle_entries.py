"""What the entries of a Bundle say beyond their method and URL: references to other entries'
fullUrls (rewritten to the ids the server assigns), conditional references (``Patient?identifier=…``,
found to be resolved), and the JSON Patch a PATCH entry carries in a Binary."""
from __future__ import annotations

import base64
from typing import Any

from ehr.outcome import FHIRError
from ehr.parsing import parse_json


def patch_operations(entry) -> Any:
    res = entry.resource
    if isinstance(res, dict) and res.get("resourceType") == "Binary" and res.get("data"):
        try:
            operations = base64.b64decode(res["data"])
        except ValueError:
            raise FHIRError.of(400, "structure", "The Binary does not hold a JSON Patch", f"{entry.where}.resource.data") from None
        return parse_json(operations)  # the same checks as a PATCH body's
    raise FHIRError.of(400, "not-supported", "PATCH entries take a Binary holding a JSON Patch", f"{entry.where}.resource")


def rewrite(value: Any, ids: dict[str, str]) -> Any:
    """Replace every reference to a Bundle-local fullUrl by the server's Type/id."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "reference" and isinstance(v, str):
                if v in ids:
                    value[k] = ids[v]
            else:
                rewrite(v, ids)
    elif isinstance(value, list):
        for v in value:
            rewrite(v, ids)
    return value


def conditional_references(value: Any, found: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "reference" and isinstance(v, str) and "?" in v and not v.startswith(("http:", "https:", "urn:")):
                found.append(v)
            else:
                conditional_references(v, found)
    elif isinstance(value, list):
        for v in value:
            conditional_references(v, found)

"""Bundles assembled from stored resource bytes, without parsing them again.

A search or history page is mostly resources already serialised in the store; splicing their
bytes into the Bundle keeps the response cost proportional to its size, not to a JSON
round-trip per resource.
"""
from __future__ import annotations

import uuid
from typing import Iterable

import orjson

from ehr.store.clock import now_us, to_instant


def entry(
    full_url: str | None,
    content: bytes | None = None,
    **fields: dict | None,
) -> bytes:
    """One Bundle entry; ``fields`` are the entry's other elements (search, request, response)."""
    parts = []
    if full_url:
        parts.append(b'"fullUrl":' + orjson.dumps(full_url))
    if content:
        parts.append(b'"resource":' + content)
    for name, value in fields.items():
        if value is not None:
            parts.append(orjson.dumps(name) + b":" + orjson.dumps(value))
    return b"{" + b",".join(parts) + b"}"


def bundle(
    bundle_type: str,
    entries: Iterable[bytes],
    *,
    total: int | None = None,
    links: list[tuple[str, str]] | None = None,
) -> bytes:
    head = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": to_instant(now_us())},
        "type": bundle_type,
    }
    if total is not None:
        head["total"] = total
    if links:
        head["link"] = [{"relation": rel, "url": url} for rel, url in links]
    entries = list(entries)
    if not entries:  # FHIR JSON forbids empty arrays
        return orjson.dumps(head)
    return orjson.dumps(head)[:-1] + b',"entry":[' + b",".join(entries) + b"]}"

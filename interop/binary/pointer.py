"""The extension that replaces ``Binary.data`` by a reference to a stored object.

Only the server may write it: a client-supplied pointer could name another Binary's object and
read it under a weaker securityContext, so every write of a Binary carrying one is refused
unless it is the object the server itself just stored in this request (``server_writes``).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

from ehr.interactions.context import Context
from ehr.outcome import FHIRError

OBJECT_EXT = "https://fhir.sijill.ma/StructureDefinition/binary-object"

_server_key: ContextVar[str | None] = ContextVar("sijill_binary_server_key", default=None)


@dataclass(frozen=True)
class ObjectRef:
    key: str
    size: int
    sha256: str


def data_element(ref: ObjectRef) -> dict:
    """The ``_data`` element of a Binary whose bytes are in ``ref``."""
    parts = [
        {"url": "key", "valueString": ref.key},
        {"url": "size", "valueInteger": ref.size},
        {"url": "sha256", "valueString": ref.sha256},
    ]
    return {"extension": [{"url": OBJECT_EXT, "extension": parts}]}


def object_of(res: dict) -> ObjectRef | None:
    """The stored object a Binary points to, if any."""
    element = res.get("_data")
    if not isinstance(element, dict):
        return None
    for ext in element.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == OBJECT_EXT:
            values = {e.get("url"): next((v for k, v in e.items() if k.startswith("value")), None)
                      for e in ext.get("extension") or () if isinstance(e, dict)}
            return ObjectRef(str(values.get("key")), int(values.get("size") or 0), str(values.get("sha256")))
    return None


def without_pointer(res: dict) -> dict:
    """``res`` minus the pointer extension (other ``_data`` extensions kept)."""
    out = dict(res)
    element = dict(out.pop("_data", None) or {})
    rest = [e for e in element.get("extension") or () if not (isinstance(e, dict) and e.get("url") == OBJECT_EXT)]
    if rest:
        element["extension"] = rest
    else:
        element.pop("extension", None)
    if element:
        out["_data"] = element
    return out


@contextmanager
def server_writes(key: str) -> Iterator[None]:
    """Inside: the write validator accepts a pointer to ``key`` (the object this request stored)."""
    token = _server_key.set(key)
    try:
        yield
    finally:
        _server_key.reset(token)


async def refuse_foreign_pointer(_ctx: Context, res: dict) -> None:
    """Write validator (every write, Bundles included)."""
    if res.get("resourceType") != "Binary":
        return
    ref = object_of(res)
    if ref is not None and ref.key != _server_key.get():
        raise FHIRError.of(
            400, "invalid",
            f"L'extension {OBJECT_EXT} est réservée au serveur : envoyez le contenu (Binary.data ou corps brut)",
            "Binary._data.extension",
        )

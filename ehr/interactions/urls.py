"""Relative request URLs as they appear in Bundle entries (``Patient/1``, ``Patient?name=x``…)."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ehr.outcome import FHIRError
from ehr.parsing import is_resource_type, query_params


@dataclass(frozen=True)
class Target:
    res_type: str | None  # None: the system level (history, search)
    res_id: str | None = None
    version_id: str | None = None
    history: bool = False
    query: str = ""  # the raw query string, for conditional interactions and searches

    @property
    def params(self) -> list[tuple[str, str]]:
        return query_params(self.query)


def parse_target(url: str, base_url: str, where: str) -> Target:
    if url.startswith(base_url + "/"):
        url = url[len(base_url) + 1 :]
    parts = urlsplit(url)
    segments = [s for s in parts.path.strip("/").split("/") if s]
    bad = FHIRError.of(400, "invalid", f"Unsupported request URL {url!r}", where)
    if not segments:
        return Target(None, query=parts.query)
    if segments == ["_history"]:
        return Target(None, history=True, query=parts.query)
    res_type, rest = segments[0], segments[1:]
    if not is_resource_type(res_type):
        raise FHIRError.of(404, "not-supported", f"Unknown resource type {res_type!r}", where)
    if not rest:
        return Target(res_type, query=parts.query)
    if rest == ["_history"]:
        return Target(res_type, history=True, query=parts.query)
    if len(rest) == 1:
        return Target(res_type, rest[0], query=parts.query)
    if len(rest) == 2 and rest[1] == "_history":
        return Target(res_type, rest[0], history=True, query=parts.query)
    if len(rest) == 3 and rest[1] == "_history":
        return Target(res_type, rest[0], rest[2], query=parts.query)
    raise bad

"""The terminology service seen by the search engine, for ``:in``, ``:not-in``, ``:above``
and ``:below`` (``ehr.search.terminology.Terminology``).  Register it once at startup:

    from ehr.search.terminology import set_terminology
    set_terminology(SearchTerminology(get_terminology))

Given the getter rather than the service, it loads the code systems on the first search that
needs them, not while a server process starts.
"""
from __future__ import annotations

from typing import Callable, Iterable, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.outcome import FHIRError
from profiles.terminology.service import TerminologyService

Code = tuple[str | None, str]


class SearchTerminology:
    def __init__(self, service: TerminologyService | Callable[[], TerminologyService]):
        self._service = service

    @property
    def service(self) -> TerminologyService:
        if not isinstance(self._service, TerminologyService):
            self._service = self._service()
        return self._service

    async def expand(self, conn: AsyncConnection, valueset: str) -> Iterable[Code]:
        # Value sets live in memory; ``conn`` is part of the protocol for stores that need it.
        return self.service.codes_in(valueset)

    async def related(self, conn: AsyncConnection, system: str | None, code: str,
                      direction: Literal["above", "below"]) -> Iterable[Code]:
        if system is None:
            raise FHIRError.of(400, "invalid", f":{direction} demande un système de codes (système|code) : « {code} »")
        cs = self.service.codesystem(system)
        if cs is None:
            raise FHIRError.of(400, "not-supported", f":{direction} : système de codes inconnu {system}")
        concept = cs.get(code)
        if concept is None:
            raise FHIRError.of(400, "code-invalid", f":{direction} : le code « {code} » n'existe pas dans le système {system}")
        others = cs.descendants(concept.code) if direction == "below" else cs.ancestors(concept.code)
        return [(system, concept.code), *((system, c) for c in others)]

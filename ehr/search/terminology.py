"""Hook for the token modifiers that need a terminology server: ``:in``, ``:not-in``,
``:above`` and ``:below``.

The search engine does not know ValueSets or code hierarchies; the terminology module
registers a ``Terminology`` here and the engine asks it for the (system, code) pairs to match
before building SQL.  Without one, those modifiers are refused with 400 ``not-supported``
rather than silently ignored (ignoring a filter would return too much).
"""
from __future__ import annotations

from typing import Iterable, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

Code = tuple[str | None, str]  # (system, code)


class Terminology(Protocol):
    async def expand(self, conn: AsyncConnection, valueset: str) -> Iterable[Code]:
        """Every (system, code) in the ValueSet at canonical ``valueset`` (url or url|version)."""
        ...

    async def related(
        self, conn: AsyncConnection, system: str | None, code: str, direction: Literal["above", "below"]
    ) -> Iterable[Code]:
        """``code`` and the codes it subsumes (below) or that subsume it (above)."""
        ...


_terminology: Terminology | None = None


def set_terminology(terminology: Terminology | None) -> None:
    global _terminology
    _terminology = terminology


def get_terminology() -> Terminology | None:
    return _terminology

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncEngine

from ehr.outcome import FHIRError
from ehr.search.access import AccessFilter
from ehr.settings import Settings


@dataclass
class Invocation:
    """One call of an operation: where it was called and with which parameters."""

    request: Request
    engine: AsyncEngine
    settings: Settings
    access: AccessFilter | None
    res_type: str | None
    res_id: str | None
    params: list[tuple[str, object]] = field(default_factory=list)  # query pairs or Parameters.parameter values
    resource: dict | None = None  # a resource posted as the body (e.g. $validate)

    def first(self, name: str) -> object | None:
        return next((v for k, v in self.params if k == name), None)

    def all(self, name: str) -> list[object]:
        return [v for k, v in self.params if k == name]


Handler = Callable[[Invocation], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    name: str
    levels: frozenset[str]  # "system", "type", "instance"
    types: frozenset[str] | None  # None: every resource type
    handler: Handler
    definition: str
    affects_state: bool = False
    # Media types the handler serves instead of FHIR JSON (e.g. text/html): it negotiates Accept itself.
    produces: frozenset[str] = frozenset()
    # The handler decides itself who may act on the instance (and answers 404 out of scope).
    checks_target: bool = False
    # Media types the handler takes as a raw body besides FHIR JSON (e.g. text/csv): param "body".
    consumes: frozenset[str] = frozenset()


_REGISTRY: dict[str, list[Operation]] = {}


def operation(
    name: str, *, levels: set[str], types: set[str] | None = None, definition: str | None = None, affects_state: bool = False,
    produces: set[str] = frozenset(), checks_target: bool = False, consumes: set[str] = frozenset(),
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _REGISTRY.setdefault(name, []).append(
            Operation(
                name,
                frozenset(levels),
                frozenset(types) if types else None,
                handler,
                definition or f"http://hl7.org/fhir/OperationDefinition/Resource-{name}",
                affects_state,
                frozenset(produces),
                checks_target,
                frozenset(consumes),
            )
        )
        return handler

    return register


def registered() -> list[Operation]:
    return [op for ops in _REGISTRY.values() for op in ops]


def resolve(name: str, level: str, res_type: str | None) -> Operation:
    for op in _REGISTRY.get(name, []):
        if level in op.levels and (op.types is None or res_type in op.types):
            return op
    where = f"{res_type}/" if res_type else ""
    raise FHIRError.of(404, "not-supported", f"The operation ${name} is not supported at {level} level on {where or 'the system'}")

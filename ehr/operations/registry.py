"""The operation registry: what each ``$operation`` is, where it applies and who may call it.

Every operation declares its callers, and the dispatcher (``ehr.rest.operations``) refuses
everyone else (403) before the handler runs, at system, type and instance level alike::

    @operation("start-care", levels={"instance"}, types={"Patient"}, callers={Role.DOCTOR})
    @operation("expand", levels={"type"}, types={"ValueSet"}, callers=EVERY_ROLE)
    @operation("sla", levels={"instance"}, types={"Organization"}, callers={Role.ADMIN, own_fund})

A caller is admitted when their role is in ``callers`` or when one of the predicates in it,
``(principal, invocation) -> bool``, admits them (e.g. "an agent of the fund the call names").
Fail closed: an operation registered without ``callers`` (or with an empty set) is refused to
every token role; only the unrestricted in-process caller (``auth_required=False``, the CLI)
passes.  The declaration is the ceiling; handlers still apply the row rules to what they touch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterable, Union

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncEngine

from ehr.outcome import FHIRError
from ehr.search.access import AccessFilter
from ehr.security.principal import Principal
from ehr.security.roles import Role
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

    # What the answer holds of patients' records, for the audit trail (see ``returning``).
    returned_rids: list[int] = field(default_factory=list)
    returned_patients: list[str] = field(default_factory=list)

    def returning(self, *, rids: Iterable[int] = (), patients: Iterable[str] = ()) -> None:
        """The answer carries these resources (``resource.rid``) or these patients' data: the
        operation's AuditEvents name their patients, as a search's name those of its results."""
        self.returned_rids.extend(rids)
        self.returned_patients.extend(patients)

    def first(self, name: str) -> object | None:
        return next((v for k, v in self.params if k == name), None)

    def all(self, name: str) -> list[object]:
        return [v for k, v in self.params if k == name]


Handler = Callable[[Invocation], Awaitable[Response]]
# A role, or a predicate on the principal and the call (both known before the handler runs).
Caller = Union[Role, Callable[[Principal, Invocation], bool]]
EVERY_ROLE: frozenset[Role] = frozenset(r for r in Role if r is not Role.UNRESTRICTED)


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
    callers: frozenset = frozenset()  # of Caller; empty: no token role may call it

    def admits(self, principal: Principal, inv: Invocation) -> bool:
        if principal.role is Role.UNRESTRICTED:
            return True
        return any(c is principal.role if isinstance(c, Role) else c(principal, inv) for c in self.callers)


_REGISTRY: dict[str, list[Operation]] = {}


def operation(
    name: str, *, levels: set[str], types: set[str] | None = None, definition: str | None = None, affects_state: bool = False,
    produces: set[str] = frozenset(), checks_target: bool = False, consumes: set[str] = frozenset(),
    callers: Iterable[Caller] | None = None,
) -> Callable[[Handler], Handler]:
    """Register a handler; ``callers``: the roles and predicates admitted (module docstring)."""
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
                frozenset(callers or ()),
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

"""SMART App Launch scopes (v2, with v1 accepted) and what they let a client do.

``patient/Observation.rs?category=laboratory`` reads as: in the context of one patient, read
and search Observations whose category is laboratory.  Scopes only ever narrow the caller's
role (``ehr.security.roles``); this module answers "does any scope grant this interaction on
this type, and under which search constraints".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qsl

from ehr.parsing import is_resource_type

INTERACTIONS = "cruds"  # create, read, update, delete, search: SMART v2 order
CONTEXTS = ("patient", "user", "system")
# SMART v1 permission names, as mapped by the v2 specification.
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
# Scopes that carry no resource permission but are legitimate in a SMART request.
IDENTITY_SCOPES = frozenset(
    {"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access", "online_access"}
)
_RESOURCE_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(?:\?(.*))?$")


class ScopeError(ValueError):
    """A scope string that looks like a resource scope but is not a valid one."""


Constraint = tuple[tuple[str, str], ...]  # (search parameter, value) pairs, all must match


@dataclass(frozen=True)
class Scope:
    context: str  # patient | user | system
    res_type: str  # a resource type or "*"
    interactions: frozenset[str]  # subset of c r u d s
    constraint: Constraint = ()
    text: str = ""  # as the client wrote it, for echoing back

    def grants(self, res_type: str, interaction: str) -> bool:
        return interaction in self.interactions and self.res_type in ("*", res_type)

    def covers(self, other: "Scope") -> bool:
        """Is everything ``other`` grants also granted by this scope (client-credentials narrowing)?"""
        return (
            self.context == other.context
            and self.res_type in ("*", other.res_type)
            and other.interactions <= self.interactions
            and set(self.constraint) <= set(other.constraint)
        )

    def __str__(self) -> str:
        return self.text or _render(self)


def _render(scope: Scope) -> str:
    perms = "".join(c for c in INTERACTIONS if c in scope.interactions)
    query = "&".join(f"{k}={v}" for k, v in scope.constraint)
    return f"{scope.context}/{scope.res_type}.{perms}" + (f"?{query}" if query else "")


def _permissions(text: str, scope: str) -> frozenset[str]:
    if text in _V1:
        return frozenset(_V1[text])
    # v2: letters from "cruds", each at most once and in that order.
    if not text or not _is_ordered_subset(text):
        raise ScopeError(f"{scope!r}: permissions must be v1 read/write/* or a subset of 'cruds' in order")
    return frozenset(text)


def _is_ordered_subset(text: str) -> bool:
    pos = -1
    for ch in text:
        nxt = INTERACTIONS.find(ch)
        if nxt <= pos:
            return False
        pos = nxt
    return True


@lru_cache(maxsize=4096)
def parse_scope(text: str) -> Scope | None:
    """A resource scope, or None for identity/launch scopes; ScopeError when malformed."""
    if text in IDENTITY_SCOPES or "/" not in text:
        return None
    m = _RESOURCE_SCOPE.match(text)
    if not m:
        if text.split("/", 1)[0] in CONTEXTS:
            raise ScopeError(f"{text!r} is not a SMART resource scope (context/Type.permissions)")
        return None  # some other namespace (e.g. a provider's own scopes): carries no FHIR access
    context, res_type, perms, query = m.groups()
    if res_type != "*" and not is_resource_type(res_type):
        raise ScopeError(f"{text!r}: {res_type!r} is not a FHIR resource type")
    constraint: Constraint = ()
    if query is not None:
        try:
            pairs = parse_qsl(query, keep_blank_values=False, strict_parsing=True)
        except ValueError:
            raise ScopeError(f"{text!r}: the query part must be name=value pairs") from None
        constraint = tuple(sorted(pairs))
    return Scope(context, res_type, _permissions(perms, text), constraint, text)


@dataclass(frozen=True)
class ScopeSet:
    scopes: tuple[Scope, ...] = ()
    identity: frozenset[str] = frozenset()  # openid, fhirUser, launch/patient, ...

    @classmethod
    def parse(cls, text: str | None, *, strict: bool = False) -> "ScopeSet":
        """Space-separated scopes. Non-strict (tokens) drops malformed ones: dropping can only narrow."""
        scopes: list[Scope] = []
        identity: set[str] = set()
        for item in (text or "").split():
            try:
                scope = parse_scope(item)
            except ScopeError:
                if strict:
                    raise
                continue
            if scope is None:
                identity.add(item)
            elif scope not in scopes:
                scopes.append(scope)
        return cls(tuple(scopes), frozenset(identity))

    def grants(self, res_type: str, interaction: str) -> tuple[Scope, ...]:
        return tuple(s for s in self.scopes if s.grants(res_type, interaction))

    def allows(self, res_type: str, interaction: str) -> bool:
        if interaction not in INTERACTIONS:
            raise ValueError(f"interaction must be one of {INTERACTIONS!r}, not {interaction!r}")
        return any(s.grants(res_type, interaction) for s in self.scopes)

    def constraints(self, res_type: str, interaction: str) -> tuple[Constraint, ...] | None:
        """Search constraints to OR together; () means unconstrained, None means not allowed."""
        granting = self.grants(res_type, interaction)
        if not granting:
            return None
        if any(not s.constraint for s in granting):
            return ()
        return tuple(dict.fromkeys(s.constraint for s in granting))

    def patient_only(self, res_type: str, interaction: str) -> bool:
        """True when only patient/ scopes grant this: access is limited to the launch patient."""
        granting = self.grants(res_type, interaction)
        return bool(granting) and all(s.context == "patient" for s in granting)

    def narrowed_to(self, allowed: "ScopeSet") -> "ScopeSet":
        """The requested scopes that some allowed scope covers (the client-credentials grant)."""
        kept = tuple(s for s in self.scopes if any(a.covers(s) for a in allowed.scopes))
        return ScopeSet(kept, self.identity & allowed.identity)

    def __str__(self) -> str:
        return " ".join([*sorted(self.identity), *(str(s) for s in self.scopes)])

    def __bool__(self) -> bool:
        return bool(self.scopes or self.identity)

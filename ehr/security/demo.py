"""The demo identities (``demo_users.json``): users per role, system clients, their resources.

One file serves the built-in issuer (who may get a token, with which claims) and the demo loader
(which Practitioner/Patient/Organization resources must exist for those tokens to mean anything).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import orjson

from ehr.security.roles import TOKEN_ROLES, Role
from ehr.security.scopes import ScopeSet

_FILE = "demo_users.json"


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: Role
    fhir_user: str
    fund: str | None = None


@dataclass(frozen=True)
class SystemClient:
    client_id: str
    role: Role
    allowed_scopes: ScopeSet
    fhir_user: str | None = None
    fund: str | None = None


@dataclass(frozen=True)
class DemoDirectory:
    users: dict[str, DemoUser]
    clients: dict[str, SystemClient]
    resources: tuple[dict, ...]  # Organizations, then users' resources, then PractitionerRoles


def _role(value: str, where: str) -> Role:
    if value not in TOKEN_ROLES:
        raise ValueError(f"{_FILE}: {where} has unknown role {value!r}")
    return Role(value)


def parse_directory(document: dict) -> DemoDirectory:
    users = {}
    for u in document.get("users", []):
        users[u["username"]] = DemoUser(u["username"], _role(u["role"], u["username"]), u["fhirUser"], u.get("fund"))
    clients = {}
    for c in document.get("clients", []):
        clients[c["client_id"]] = SystemClient(
            c["client_id"],
            _role(c["role"], c["client_id"]),
            ScopeSet.parse(c["scopes"], strict=True),
            c.get("fhirUser"),
            c.get("fund"),
        )
    for who in (*users.values(), *clients.values()):
        if who.role is Role.INSURER and not who.fund:
            raise ValueError(f"{_FILE}: insurer {who} must name its fund")
    found = (
        *document.get("organizations", []),
        *(u["resource"] for u in document.get("users", []) if "resource" in u),
        *document.get("roles", []),
    )
    return DemoDirectory(users, clients, tuple(found))


@lru_cache
def demo_directory() -> DemoDirectory:
    raw = resources.files("ehr.security").joinpath(_FILE).read_bytes()
    return parse_directory(orjson.loads(raw))


def demo_resources() -> list[dict]:
    """Resources the demo loader must create (fresh copies: callers may modify them)."""
    return [orjson.loads(orjson.dumps(r)) for r in demo_directory().resources]

"""Everything the security layer knows about one request: who, what they may see, the audit.

Built once per request (``SecurityServices.request_security``) and kept on
``request.state.security``; the REST layer hands ``policy`` to the query engine as its
AccessFilter, ``guard`` to the interactions, and records the trail through ``audit``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.interactions.context import Context
from ehr.search.access import AccessFilter
from ehr.security.guard import RequestGuard
from ehr.security.policy import AccessPolicy
from ehr.security.principal import Principal
from ehr.security.roles import Role
from ehr.security.trail import RequestAudit


@dataclass
class RequestSecurity:
    principal: Principal
    policy: AccessPolicy
    guard: RequestGuard
    audit: RequestAudit

    @property
    def access(self) -> AccessFilter | None:
        """The filter for the engine and repository; None for the unrestricted in-process caller."""
        return None if self.policy.unrestricted else self.policy

    @property
    def role(self) -> Role:
        return self.principal.role

    def context(self, conn: AsyncConnection, base_url: str, pending_index: list | None = None) -> Context:
        return Context(conn, base_url, self.access, pending_index=pending_index, guard=self.guard)

    def for_request(self, res_type: str | None, params: list[tuple[str, str]] = ()) -> "RequestSecurity":
        """Narrowed to what a read, search or history of ``res_type`` can return: no Binary rule
        unless a Binary can be among the results (its type, a system-level request, includes)."""
        if self.policy.unrestricted or res_type is None or res_type == "Binary":
            return self
        if any(name.partition(":")[0] in ("_include", "_revinclude") for name, _ in params):
            return self
        policy = self.policy.without_binaries()
        return replace(self, policy=policy, guard=RequestGuard(policy, self.guard.identities))

    def presenting(self, numbers: tuple[str, ...]) -> "RequestSecurity":
        """A pharmacist presenting prescription numbers: the policy lets those prescriptions through."""
        policy = self.policy.presenting(numbers)
        return replace(self, policy=policy, guard=RequestGuard(policy, self.guard.identities))

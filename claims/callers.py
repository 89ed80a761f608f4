"""Who may call the claims operations beyond a plain role: an agent (or gateway) of one fund.

Predicates for ``@operation(..., callers=...)`` (``ehr.operations.registry``): a fund's queue and
its 48-hour figures are that fund's business only, so an insurer token of another fund is refused
(403) exactly as other roles are, before anything is looked up.
"""
from __future__ import annotations

from typing import Callable

from ehr.operations.registry import Caller, Invocation
from ehr.security.principal import Principal, relative_reference
from ehr.security.roles import Role

_ORGANIZATION = frozenset({"Organization"})


def fund_reference(value: object) -> str | None:
    """``Organization/cnss`` from ``cnss``, ``Organization/cnss``, a full URL or a valueReference."""
    if isinstance(value, dict):
        value = value.get("reference")
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    return relative_reference(value if "/" in value else f"Organization/{value}", _ORGANIZATION) or value


def agent_of_fund(named: Callable[[Invocation], str | None]) -> Caller:
    """Admits the agents and gateways of the fund the call names (its own, when it names none)."""
    def admitted(principal: Principal, inv: Invocation) -> bool:
        fund = named(inv)
        return principal.role is Role.INSURER and fund in (None, principal.fund)

    return admitted


# Claim/$review-queue?fund=…: the fund in the query (or the caller's own).
QUEUE_FUND_AGENT = agent_of_fund(lambda inv: fund_reference(inv.first("fund")))
# Organization/{id}/$sla: the fund is the Organization itself.
FUND_ITSELF_AGENT = agent_of_fund(lambda inv: f"Organization/{inv.res_id}")

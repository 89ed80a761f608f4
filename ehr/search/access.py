"""The hook through which authorisation narrows every search.

The security layer (consent, care relationship, SMART scopes...) supplies an ``AccessFilter``;
the engine ANDs its clause to EVERY select of ``resource`` rows it makes: the matches, the
total, included and revincluded resources, and the resources a chain or ``_has`` goes
through, so a hidden resource can neither be returned nor be used to infer anything.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from sqlalchemy import ColumnElement, FromClause


@runtime_checkable
class AccessFilter(Protocol):
    def clause(self, res: FromClause) -> ColumnElement[bool] | None:
        """A condition on ``res`` (the ``resource`` table or an alias of it); None = no limit."""
        ...


def access_clause(access: AccessFilter | None, res: FromClause) -> list[ColumnElement[bool]]:
    """``access``'s condition on ``res`` as a list ready to splat into ``where()``."""
    if access is None:
        return []
    clause = access.clause(res)
    return [] if clause is None else [clause]

"""Every error becomes a FHIR OperationOutcome, built here and nowhere else.

Code below the REST layer raises ``FHIRError`` (or a subclass) with the HTTP status, the
OperationOutcome issue code (http://hl7.org/fhir/issue-type) and, where it applies, the
FHIRPath ``expression`` of the offending element.  One handler in ``ehr.app`` turns it into
the response body.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import orjson


@dataclass(frozen=True)
class Issue:
    code: str  # issue-type: invalid, structure, required, value, invariant, not-found, ...
    diagnostics: str
    severity: str = "error"  # fatal | error | warning | information
    expression: tuple[str, ...] = ()
    location: tuple[str, ...] = ()  # where in the body's text (an XML body's line)

    def to_json(self) -> dict:
        issue: dict = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.location:
            issue["location"] = list(self.location)
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


@dataclass
class FHIRError(Exception):
    status: int
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    # Resources the outcome carries (the DetectedIssues a refused prescription raised).
    contained: list[dict] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        status: int,
        code: str,
        diagnostics: str,
        expression: str | Iterable[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> "FHIRError":
        if expression is None:
            expr: tuple[str, ...] = ()
        elif isinstance(expression, str):
            expr = (expression,)
        else:
            expr = tuple(expression)
        return cls(status, [Issue(code, diagnostics, expression=expr)], headers or {})

    def __str__(self) -> str:
        return f"{self.status}: " + "; ".join(i.diagnostics for i in self.issues)


def in_entry(err: FHIRError, entry: str, res_type: str | None = None) -> FHIRError:
    """``err`` located in the Bundle entry ``entry`` ("Bundle.entry[3]"): an element of the
    entry's resource, ``Claim.identifier`` (or ``resourceType``), becomes
    ``Bundle.entry[3].resource.identifier``; an error that names no element points to the entry."""
    def place(expression: str) -> str:
        head, dot, rest = expression.partition(".")
        if res_type and head == res_type:
            return f"{entry}.resource" + (dot + rest)
        if expression == "resourceType":
            return f"{entry}.resource.resourceType"
        if head == "http":  # a parameter of the entry's request
            return f"{entry}.request.url"
        return expression

    err.issues = [Issue(i.code, i.diagnostics, i.severity, tuple(place(x) for x in i.expression) or (entry,))
                  for i in err.issues]
    return err


def operation_outcome(issues: Iterable[Issue], contained: list[dict] | None = None) -> dict:
    outcome: dict = {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}
    if contained:
        outcome["contained"] = contained
    return outcome


def outcome_bytes(issues: Iterable[Issue], contained: list[dict] | None = None) -> bytes:
    return orjson.dumps(operation_outcome(issues, contained))


# Shorthands for the errors every interaction raises.
def not_found(res_type: str, res_id: str | None = None) -> FHIRError:
    what = f"{res_type}/{res_id}" if res_id is not None else f"resource type {res_type}"
    return FHIRError.of(404, "not-found", f"{what} is not known")


def bad_request(diagnostics: str, expression: str | None = None, code: str = "invalid") -> FHIRError:
    return FHIRError.of(400, code, diagnostics, expression)

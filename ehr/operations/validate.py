"""$validate: check a resource without storing anything."""
from __future__ import annotations

from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError, Issue, outcome_bytes
from ehr.parsing import check_resource
from ehr.rest.http import fhir_response


def validation_issues(res: object, res_type: str | None, res_id: str | None) -> list[Issue]:
    try:
        check_resource(res, expected_type=res_type, url_id=res_id)
    except FHIRError as err:
        return err.issues
    return []


@operation("validate", levels={"type", "instance"}, definition="http://hl7.org/fhir/OperationDefinition/Resource-validate")
async def validate(inv: Invocation):
    res = inv.resource if inv.resource is not None else inv.first("resource")
    if res is None:
        raise FHIRError.of(400, "required", "$validate needs a resource (the body, or parameter 'resource')", "Parameters.parameter")
    mode = inv.first("mode")
    if mode not in (None, "create", "update", "delete"):
        raise FHIRError.of(400, "value", f"Unknown $validate mode {mode!r}", "Parameters.parameter")
    issues = validation_issues(res, inv.res_type, inv.res_id if mode == "update" else None)
    if not issues:
        issues = [Issue("informational", "No issues detected", severity="information")]
    return fhir_response(outcome_bytes(issues))

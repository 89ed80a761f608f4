"""$validate: check a resource against the base spec and its profiles without storing anything.

The same walk as every write: the base definition (structure, cardinality, types, formats,
bindings, invariants, narrative), then the profiles (``profile`` parameter, or the resource's
``meta.profile``), by the in-house validator.  Messages follow Accept-Language (French, Arabic,
English).
"""
from __future__ import annotations

from ehr.i18n import current_language
from ehr.operations.registry import EVERY_ROLE, Invocation, operation
from ehr.outcome import FHIRError, Issue, outcome_bytes
from ehr.parsing import check_resource
from ehr.rest.http import fhir_response


def validation_issues(res: object, res_type: str | None, res_id: str | None, profile: str | None) -> list[Issue]:
    try:
        check_resource(res, expected_type=res_type, url_id=res_id)
    except FHIRError as err:
        if err.status == 400:  # not a resource of this type at all: nothing more to say
            return err.issues
        contained = err.issues
    else:
        contained = []
    from profiles.validator import get_validator

    return contained + get_validator().validate(res, [profile] if profile else None, lang=current_language())


@operation("validate", levels={"type", "instance"}, callers=EVERY_ROLE, definition="http://hl7.org/fhir/OperationDefinition/Resource-validate")
async def validate(inv: Invocation):
    res = inv.resource if inv.resource is not None else inv.first("resource")
    if res is None:
        raise FHIRError.of(400, "required", "$validate needs a resource (the body, or parameter 'resource')", "Parameters.parameter")
    mode = inv.first("mode")
    if mode not in (None, "create", "update", "delete"):
        raise FHIRError.of(400, "value", f"Unknown $validate mode {mode!r}", "Parameters.parameter")
    profile = inv.first("profile")
    issues = validation_issues(res, inv.res_type, inv.res_id if mode == "update" else None, str(profile) if profile else None)
    if not any(i.severity in ("error", "fatal") for i in issues):
        issues = issues + [Issue("informational", "No errors detected", severity="information")]
    return fhir_response(outcome_bytes(issues))

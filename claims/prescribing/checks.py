"""The write hook: a doctor's (or counter agent's) prescription line or test order is checked
before it is stored, in the same transaction, whichever way it comes (create, update, an entry
of a transaction or batch Bundle).

Lines being cancelled, stopped or completed are not checked (cancelling is never blocked), nor
what the server writes itself (the demo, imports) or other roles write (a pharmacist completing
a line).  A changed line is checked afresh, leaving itself out of the duplicates; what it
already overrode (its ``detectedIssue``s) does not stop it again.
"""
from __future__ import annotations

from claims.prescribing.findings import LINK, Finding, find, override_reason, record_override, refusal
from claims.prescribing.medication import medication_findings
from claims.prescribing.repeat_tests import repeat_test_findings
from claims.settings import get_claims_settings
from claims.caresheet import today
from ehr.hooks import validator
from ehr.interactions.context import Context
from ehr.search.values import parse_reference
from ehr.security.roles import Role

_PRESCRIBERS = {Role.DOCTOR, Role.PAPER_AGENT}
_CHECKED_STATUSES = {"draft", "active", "on-hold"}


@validator
async def check_at_prescribing(ctx: Context, res: dict) -> None:
    res_type = res.get("resourceType")
    if res_type not in ("MedicationRequest", "ServiceRequest") or ctx.guard is None:
        return
    if ctx.guard.principal.role not in _PRESCRIBERS or res.get("status") not in _CHECKED_STATUSES:
        return
    patient = _patient(ctx, res)
    if patient is None:
        return
    on = today(get_claims_settings().timezone)
    if res_type == "MedicationRequest":
        findings = await medication_findings(ctx, res, patient, on)
    else:
        findings = await repeat_test_findings(ctx, res, patient, on, get_claims_settings().duplicate_test_days)
    findings = await _not_overridden(ctx, res, findings)
    if not findings:
        return
    reason = override_reason(res)
    if reason is None:
        raise refusal(res_type, findings, patient)
    await record_override(ctx, res, findings, patient, reason)


def _patient(ctx: Context, res: dict) -> str | None:
    literal = (res.get("subject") or {}).get("reference")
    if not isinstance(literal, str):
        return None
    res_type, res_id, _ = parse_reference(literal, ctx.base_url.rstrip("/"))
    return f"Patient/{res_id}" if res_type == "Patient" and res_id else None


async def _not_overridden(ctx: Context, res: dict, findings: list[Finding]) -> list[Finding]:
    ids = sorted({ref.removeprefix("DetectedIssue/") for r in res.get(LINK[res["resourceType"]]) or ()
                  if isinstance(ref := (r or {}).get("reference"), str) and ref.startswith("DetectedIssue/")})
    if not findings or not ids:
        return findings
    overridden = [i for i in await find(ctx, "DetectedIssue", [("_id", ",".join(ids))]) if i.get("mitigation")]
    return [f for f in findings if not any(f.same_as(i) for i in overridden)]

"""The check of a test order (``ServiceRequest``): the same test done or ordered recently.

"The same test" is the same coding (system and code) of ``ServiceRequest.code`` on an
``Observation`` or ``DiagnosticReport`` of the patient dated, or another ``ServiceRequest``
written, within ``SIJILL_DUPLICATE_TEST_DAYS`` (claims settings, 0: no check).  Each is one
indexed search (subject, code, date) of what the caller may see.
"""
from __future__ import annotations

from datetime import date, timedelta

from claims.prescribing.findings import Finding, find
from ehr.interactions.context import Context

# type -> (its date search parameter, the element it reads, statuses that are no result at all)
_EARLIER = {
    "Observation": ("date", "effectiveDateTime", {"cancelled", "entered-in-error"}),
    "DiagnosticReport": ("date", "effectiveDateTime", {"cancelled", "entered-in-error"}),
    "ServiceRequest": ("authored", "authoredOn", {"revoked", "entered-in-error", "draft"}),
}


async def repeat_test_findings(ctx: Context, order: dict, patient: str, today: date, days: int) -> list[Finding]:
    codings = [c for c in (order.get("code") or {}).get("coding") or ()
               if isinstance(c, dict) and isinstance(c.get("system"), str) and isinstance(c.get("code"), str)]
    if days <= 0 or not codings:
        return []
    token = ",".join(f"{c['system']}|{c['code']}" for c in codings)
    since = (today - timedelta(days=days)).isoformat()
    earlier: list[tuple[str, str]] = []  # (date, "Type/id")
    for res_type, (param, element, void) in _EARLIER.items():
        for r in await find(ctx, res_type, [("subject", patient), ("code", token), (param, f"ge{since}")]):
            if r.get("status") in void or (res_type == "ServiceRequest" and r.get("id") == order.get("id")):
                continue
            when = r.get(element) or (r.get("effectivePeriod") or {}).get("start") or ""
            earlier.append((when[:10], f"{res_type}/{r['id']}"))
    if not earlier:
        return []
    earlier.sort(reverse=True)  # the latest first
    test = (order.get("code") or {}).get("text") or codings[0].get("display") or codings[0]["code"]
    words = {"test": test, "date": earlier[0][0], "days": days}
    return [Finding("duplicate-test", "ServiceRequest.code", tuple(ref for _, ref in earlier), words)]

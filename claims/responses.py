"""The FHIR answers: the ClaimResponse (queued, then decided) and the patient's EOB.

One ClaimResponse per claim and payer: created ``queued`` at submission (its Location is what
the provider keeps) and updated to the decision, so its history is the claim's history.  Every
version carries the sheet's status code as its ``identifier`` (``status_identifier``): the
acknowledgement of a submission already gives the code the patient types to follow the sheet.
"""
from __future__ import annotations

from decimal import Decimal

from claims.adjudication.model import Decision, LineDecision
from claims.clock import to_instant
from claims.ledger import LedgerRow
from claims.money import money
from claims.reasons import REASONS
from claims.uris import (
    ADJUDICATION,
    ADJUDICATION_EXTRA,
    EXT_DEADLINE,
    EXT_DECIDED_BY,
    EXT_ESCALATED,
    EXT_RECEIVED,
    EXT_RULESET,
    PAYEE_TYPE,
    STATUS_CODE,
)

_OUTCOME_TEXT = {
    "approved": ("Prise en charge accordée", "تمت الموافقة على التكفل"),
    "partial": ("Prise en charge accordée partiellement", "تمت الموافقة الجزئية على التكفل"),
    "rejected": ("Prise en charge refusée", "تم رفض التكفل"),
}
_LANG = {"fr": {"coding": [{"system": "urn:ietf:bcp:47", "code": "fr"}]},
         "ar": {"coding": [{"system": "urn:ietf:bcp:47", "code": "ar"}]}}


def _category(code: str, extra: bool = False) -> dict:
    return {"coding": [{"system": ADJUDICATION_EXTRA if extra else ADJUDICATION, "code": code}]}


def _clock_extensions(row: LedgerRow) -> list[dict]:
    ext = [
        {"url": EXT_RECEIVED, "valueDateTime": to_instant(row.received_at)},
        {"url": EXT_DEADLINE, "valueDateTime": to_instant(row.due_at)},
    ]
    if row.escalated_at:
        ext.append({"url": EXT_ESCALATED, "valueDateTime": to_instant(row.escalated_at)})
    return ext


def status_identifier(code: str) -> dict:
    """The care sheet's status code (shown form) as an identifier of its answers."""
    return {"type": {"text": "Code de suivi / رمز التتبع"}, "system": STATUS_CODE, "value": code}


def _base(claim: dict, row: LedgerRow, created_us: int, status_code: str) -> dict:
    res = {
        "resourceType": "ClaimResponse",
        "identifier": [status_identifier(status_code)],
        "status": "active",
        "type": claim.get("type"),
        "use": row.use,
        "patient": {"reference": f"Patient/{row.patient_id}"},
        "created": to_instant(created_us),
        "insurer": {"reference": row.fund_ref},
        "request": {"reference": f"Claim/{row.claim_id}"},
    }
    if isinstance(claim.get("provider"), dict):
        res["requestor"] = claim["provider"]
    return res


def queued_response(claim: dict, row: LedgerRow, now: int, status_code: str, note: str | None = None) -> dict:
    res = _base(claim, row, now, status_code)
    res["extension"] = _clock_extensions(row)
    res["outcome"] = "queued"
    res["disposition"] = note or "Feuille de soins reçue : décision au plus tard à l'échéance indiquée"
    return res


def _adjudications(ln: LineDecision) -> list[dict]:
    benefit = {"category": _category("benefit"), "amount": money(ln.benefit)}
    if ln.reasons:
        benefit["reason"] = REASONS[ln.reasons[0]].concept()
    return [
        {"category": _category("submitted"), "amount": money(ln.submitted)},
        {"category": _category("eligible"), "amount": money(ln.eligible)},
        {"category": _category("eligpercent"), "value": float(ln.rate * 100)},
        benefit,
        {"category": _category("copay"), "amount": money(ln.copay)},
        {"category": _category("patient-share", extra=True), "amount": money(ln.patient_share)},
    ]


def _notes(lines: list[LineDecision]) -> tuple[list[dict], dict[str, list[int]]]:
    """One processNote per reason and language; each line points at its reasons' notes."""
    notes, numbers = [], {}
    for code in dict.fromkeys(r for ln in lines for r in ln.reasons):
        reason = REASONS[code]
        numbers[code] = [len(notes) + 1, len(notes) + 2]
        notes.append({"number": len(notes) + 1, "type": "display", "text": reason.fr, "language": _LANG["fr"]})
        notes.append({"number": len(notes) + 1, "type": "display", "text": reason.ar, "language": _LANG["ar"]})
    return notes, numbers


def _totals(decision: Decision) -> list[dict]:
    eligible = sum((ln.eligible for ln in decision.lines), Decimal(0))
    copay = sum((ln.copay for ln in decision.lines), Decimal(0))
    return [
        {"category": _category("submitted"), "amount": money(decision.submitted)},
        {"category": _category("eligible"), "amount": money(eligible)},
        {"category": _category("benefit"), "amount": money(decision.benefit)},
        {"category": _category("copay"), "amount": money(copay)},
        {"category": _category("patient-share", extra=True), "amount": money(decision.patient_share)},
    ]


def decided_response(claim: dict, row: LedgerRow, decision: Decision, now: int, decided_by: str, preauth_ref: str | None,
                     status_code: str) -> dict:
    res = _base(claim, row, now, status_code)
    res["extension"] = _clock_extensions(row) + [
        {"url": EXT_RULESET, "valueString": decision.ruleset_version},
        {"url": EXT_DECIDED_BY, "valueString": decided_by},
    ]
    res["outcome"] = "complete"
    fr, ar = _OUTCOME_TEXT[decision.outcome]
    res["disposition"] = f"{fr} / {ar}"
    res["payeeType"] = {"coding": [{"system": PAYEE_TYPE, "code": "provider" if decision.payee == "provider" else "subscriber"}]}
    notes, numbers = _notes(decision.lines)
    res["item"] = []
    for ln in decision.lines:
        item = {"itemSequence": ln.sequence, "adjudication": _adjudications(ln)}
        nums = [n for r in ln.reasons for n in numbers[r]]
        if nums:
            item["noteNumber"] = nums
        res["item"].append(item)
    res["total"] = _totals(decision)
    if notes:
        res["processNote"] = notes
    if preauth_ref and decision.preauth_period:
        res["preAuthRef"] = preauth_ref
        start, end = decision.preauth_period
        res["preAuthPeriod"] = {"start": start.isoformat(), "end": end.isoformat()}
    return res


def explanation_of_benefit(claim: dict, row: LedgerRow, decision: Decision, now: int, response_id: str) -> dict:
    """What the patient reads: the same lines and totals, addressed to them."""
    fr, ar = _OUTCOME_TEXT[decision.outcome]
    provider = claim.get("provider") if isinstance(claim.get("provider"), dict) else {"display": row.provider_inpe}
    items = []
    by_seq = {it.get("sequence"): it for it in claim.get("item") or [] if isinstance(it, dict)}
    notes, numbers = _notes(decision.lines)
    for ln in decision.lines:
        src = by_seq.get(ln.sequence, {})
        item = {
            "sequence": ln.sequence,
            "productOrService": src.get("productOrService") or {"coding": [{"system": ln.system, "code": ln.code}]},
            "servicedDate": ln.service_date.isoformat(),
            "adjudication": _adjudications(ln),
        }
        nums = [n for r in ln.reasons for n in numbers[r]]
        if nums:
            item["noteNumber"] = nums
        items.append(item)
    eob = {
        "resourceType": "ExplanationOfBenefit",
        "status": "active",
        "type": claim.get("type"),
        "use": row.use,
        "patient": {"reference": f"Patient/{row.patient_id}"},
        "created": to_instant(now),
        "insurer": {"reference": row.fund_ref},
        "provider": provider,
        "outcome": "complete",
        "disposition": f"{fr} / {ar}",
        "claim": {"reference": f"Claim/{row.claim_id}"},
        "claimResponse": {"reference": f"ClaimResponse/{response_id}"},
        "insurance": [{"focal": True, "coverage": {"reference": f"Coverage/{row.coverage_id}"}}],
        "payee": {"type": {"coding": [{"system": PAYEE_TYPE, "code": "provider" if decision.payee == "provider" else "subscriber"}]}},
        "item": items,
        "total": _totals(decision),
    }
    if notes:
        eob["processNote"] = notes
    return eob

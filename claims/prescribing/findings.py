"""What the checks at prescribing found, as DetectedIssues: the refusal and the override.

A finding names its kind (a v3-ActCode or a Sijill code), the element it is about, the earlier
resources it implicates and the words of its message; the message is written in the caller's
language (``Accept-Language``: French, Arabic, English).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson

from claims.uris import CS, SD
from ehr.i18n import current_language
from ehr.interactions.context import Context
from ehr.outcome import FHIRError, Issue
from ehr.search.engine import search

OVERRIDE = SD + "override-reason"
ACTCODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SIJILL_ISSUES = CS + "detected-issue"  # what v3-ActCode has no code for
# Where a request links its DetectedIssues (R4 ServiceRequest has no detectedIssue: supportingInfo).
LINK = {"MedicationRequest": "detectedIssue", "ServiceRequest": "supportingInfo"}
_MANAGEMENT = {"system": ACTCODE, "code": "1", "display": "Therapy Appropriate"}  # ActDetectedIssueManagementCode

# kind -> (system, severity, {language: message template})
_KINDS: dict[str, tuple[str, str, dict[str, str]]] = {
    "DUPTHPY": (ACTCODE, "moderate", {
        "fr": "Thérapie en double : {substance} est déjà prescrit à ce patient et en cours ({implicated})",
        "ar": "علاج مكرر: {substance} موصوف لهذا المريض وما زال ساري المفعول ({implicated})",
        "en": "Duplicate therapy: {substance} is already prescribed to this patient and still running ({implicated})",
    }),
    "ALGY": (ACTCODE, "high", {
        "fr": "Allergie ou intolérance enregistrée pour {substance} ({implicated})",
        "ar": "حساسية أو عدم تحمل مسجل لهذا المريض تجاه {substance} ({implicated})",
        "en": "An allergy or intolerance to {substance} is recorded ({implicated})",
    }),
    "DOSEHINDA": (ACTCODE, "high", {
        "fr": "Dose journalière de {dose} au-dessus de la dose usuelle de {product} (au plus {limit} par jour)",
        "ar": "الجرعة اليومية {dose} أعلى من الجرعة المعتادة لـ {product} (على الأكثر {limit} في اليوم)",
        "en": "Daily dose of {dose} above the usual dose of {product} (at most {limit} a day)",
    }),
    "DOSELINDA": (ACTCODE, "moderate", {
        "fr": "Dose journalière de {dose} en dessous de la dose usuelle de {product} (au moins {limit} par jour)",
        "ar": "الجرعة اليومية {dose} أقل من الجرعة المعتادة لـ {product} (على الأقل {limit} في اليوم)",
        "en": "Daily dose of {dose} below the usual dose of {product} (at least {limit} a day)",
    }),
    "not-listed": (SIJILL_ISSUES, "moderate", {
        "fr": "Médicament {medicine} inconnu de la liste nationale des médicaments",
        "ar": "الدواء {medicine} غير موجود في اللائحة الوطنية للأدوية",
        "en": "Medicine {medicine} is not on the national medicines list",
    }),
    "not-reimbursed": (SIJILL_ISSUES, "moderate", {
        "fr": "{product} n'est pas remboursé par {fund}, l'organisme du patient",
        "ar": "{product} غير قابل للاسترجاع من طرف {fund}، هيئة تأمين المريض",
        "en": "{product} is not reimbursed by {fund}, the patient's fund",
    }),
    "duplicate-test": (SIJILL_ISSUES, "moderate", {
        "fr": "Examen en double : {test} déjà fait ou prescrit le {date} ({implicated}), il y a moins de {days} jours",
        "ar": "فحص مكرر: {test} أُجري أو وُصف بتاريخ {date} ({implicated})، منذ أقل من {days} يومًا",
        "en": "Duplicate test: {test} already done or ordered on {date} ({implicated}), less than {days} days ago",
    }),
}
_HINT = {
    "fr": "Pour passer outre, renvoyez la demande avec l'extension {url} (valueString : la raison)",
    "ar": "لتجاوز هذه التنبيهات، أعد إرسال الطلب مع الامتداد {url} (valueString: السبب)",
    "en": "To override, send the request again with the extension {url} (valueString: the reason)",
}


@dataclass(frozen=True)
class Finding:
    kind: str  # a key of _KINDS
    expression: str  # the element the finding is about
    implicated: tuple[str, ...] = ()  # "Type/id" of the earlier resources
    words: dict = field(default_factory=dict)  # the message's values

    def detail(self, lang: str) -> str:
        templates = _KINDS[self.kind][2]
        return templates.get(lang, templates["fr"]).format(implicated=", ".join(self.implicated), **self.words)

    def same_as(self, issue: dict) -> bool:
        """An earlier DetectedIssue of the line already saying this (overridden before)."""
        codes = {c.get("code") for c in (issue.get("code") or {}).get("coding") or []}
        refs = {(r or {}).get("reference") for r in issue.get("implicated") or []}
        return self.kind in codes and set(self.implicated) <= refs


async def find(ctx: Context, res_type: str, params: list[tuple[str, str]]) -> list[dict]:
    """What the caller may see of a search (the index answers it: patient, code, status, date)."""
    found = await search(ctx.conn, res_type, [*params, ("_count", "1000")], base_url=ctx.base_url,
                         access=ctx.access, default_count=1000, max_count=1000)
    return [e["resource"] for e in orjson.loads(found.bundle).get("entry") or [] if "resource" in e]


def override_reason(res: dict) -> str | None:
    for ext in res.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == OVERRIDE:
            reason = ext.get("valueString")
            if not isinstance(reason, str) or not reason.strip():
                raise FHIRError.of(422, "required", "La raison de passer outre (valueString) est vide",
                                   f"{res['resourceType']}.extension")
            return reason.strip()
    return None


def detected_issue(finding: Finding, patient: str | None, lang: str) -> dict:
    system, severity, _ = _KINDS[finding.kind]
    issue = {
        "resourceType": "DetectedIssue", "status": "preliminary",
        "code": {"coding": [{"system": system, "code": finding.kind}]}, "severity": severity,
        "identifiedDateTime": _now(), "implicated": [{"reference": r} for r in finding.implicated],
        "detail": finding.detail(lang),
    }
    if patient:
        issue["patient"] = {"reference": patient}
    return issue


def refusal(res_type: str, findings: list[Finding], patient: str | None) -> FHIRError:
    """409: one issue per finding, the DetectedIssues contained, and how to override."""
    lang = current_language()
    contained = [{**detected_issue(f, patient, lang), "id": f"issue-{n}"} for n, f in enumerate(findings, 1)]
    issues = [Issue("business-rule", f.detail(lang), "error", (f.expression,)) for f in findings]
    hint = _HINT.get(lang, _HINT["fr"]).format(url=OVERRIDE)
    issues.append(Issue("business-rule", hint, "information", (f"{res_type}.extension",)))
    return FHIRError(409, issues, contained=contained)


async def record_override(ctx: Context, res: dict, findings: list[Finding], patient: str | None, reason: str) -> None:
    """Store the DetectedIssues with the doctor's mitigation and link them from the request."""
    from ehr.interactions.create import create

    lang, author = current_language(), ctx.guard.principal.fhir_user if ctx.guard is not None else None
    link = LINK[res["resourceType"]]
    links = list(res.get(link) or [])
    for f in findings:
        issue = {**detected_issue(f, patient, lang), "status": "final"}
        mitigation = {"action": {"coding": [_MANAGEMENT], "text": reason}, "date": _now()}
        if author:
            issue["author"] = mitigation["author"] = {"reference": author}
        issue["mitigation"] = [mitigation]
        stored = (await create(ctx, "DetectedIssue", issue)).stored
        links.append({"reference": f"DetectedIssue/{stored.res_id}"})
    res[link] = links
    # The reason lives in the DetectedIssues: a later change of the line is checked afresh.
    res["extension"] = [e for e in res.get("extension") or () if not (isinstance(e, dict) and e.get("url") == OVERRIDE)]
    if not res["extension"]:
        del res["extension"]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

"""The coverage cliff's one answer: what a coverage gives on a date, and what comes next.

A registry feed that ends a coverage because the household's RSU index crossed its
programme's threshold marks the Coverage with the ``coverage-cliff`` extension (the next
regime and, for an ALD patient, the last day of the transition).  ``cover_on`` reads it:
eligibility, adjudication and the portal all ask it, so "covered for ALD care under
transition until <date>" is said, and paid, the same way everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from claims.adjudication.model import CoverageFacts, Exemption
from claims.uris import EXT_COVERAGE_CLIFF, EXT_NEXT_STEP, REGIME

# Where a household leaving a programme goes, and what its members must do (French, Arabic).
NEXT_REGIME: dict[str, str] = {"AMO-TADAMON": "AMO-TNS", "AMO-ACHAMIL": "AMO-TNS"}
REGIME_FR = {
    "AMO-TADAMON": "AMO Tadamon", "AMO-TNS": "AMO des travailleurs non salariés (CNSS)", "AMO-SAL": "AMO des salariés (CNSS)",
    "AMO-ACHAMIL": "AMO Achamil (CNSS)", "AMO-PUB": "AMO du secteur public (CNOPS)",
}
REGIME_AR = {
    "AMO-TADAMON": "أمو تضامن", "AMO-TNS": "التأمين الإجباري للعمال غير الأجراء (الصندوق الوطني للضمان الاجتماعي)",
    "AMO-SAL": "التأمين الإجباري للأجراء (الصندوق الوطني للضمان الاجتماعي)", "AMO-ACHAMIL": "أمو الشامل",
    "AMO-PUB": "التأمين الإجباري للقطاع العام",
}


@dataclass(frozen=True)
class Cover:
    """``state``: in-force | ald-transition | ended.  ``exemptions``: the ALD/ALC whose care is
    covered on the date (all granted ones in force; under transition, those held at the end)."""

    state: str
    end: date | None
    transition_until: date | None
    next_regime: str | None
    exemptions: tuple[Exemption, ...]

    @property
    def covers_ald_only(self) -> bool:
        return self.state == "ald-transition"

    def text(self, lang: str) -> str | None:
        """What to tell the patient (``fr`` or ``ar``); None when there is nothing to say."""
        if self.next_regime is None and self.state != "ald-transition":
            return None
        transition, ending, register = _PHRASES[lang]
        parts = []
        if self.state == "ald-transition":
            parts.append(transition.format(self.transition_until.isoformat()))
        elif self.end is not None:
            parts.append(ending.format(self.end.isoformat()))
        if self.next_regime:
            parts.append(register.format((REGIME_FR if lang == "fr" else REGIME_AR).get(self.next_regime, self.next_regime)))
        return " ".join(parts)


_PHRASES = {
    "fr": ("Couvert(e) pour les soins ALD en période de transition jusqu'au {}.",
           "La couverture prend fin le {} (seuil de l'indice RSU dépassé).",
           "Régime suivant : {}. Inscrivez-vous auprès de l'agence CNSS ou sur le portail de la CNSS avec votre CIN "
           "et votre attestation RSU."),
    "ar": ("تغطية علاجات المرض المزمن مستمرة خلال الفترة الانتقالية إلى غاية {}.",
           "تنتهي التغطية بتاريخ {} (تجاوز عتبة مؤشر السجل الاجتماعي الموحد).",
           "النظام الموالي: {}. سجلوا لدى وكالة الصندوق الوطني للضمان الاجتماعي أو عبر بوابته ببطاقتكم الوطنية "
           "وشهادة السجل الاجتماعي الموحد."),
}


def cover_on(cov: CoverageFacts, on: date) -> Cover:
    """What ``cov`` gives on ``on`` — the one answer eligibility, adjudication and the portal use."""
    cliff = cov.cliff
    nxt = cliff.next_regime if cliff else None
    until = cliff.transition_until if cliff else None
    if cov.in_force(on):
        return Cover("in-force", cov.end, until, nxt, tuple(e for e in cov.exemptions if e.on(on)))
    if (cliff is not None and until is not None and cov.status == "active" and cov.end is not None
            and cov.end < on <= until):
        held = tuple(e for e in cov.exemptions if e.on(cov.end))
        if held:
            return Cover("ald-transition", cov.end, until, nxt, held)
    return Cover("ended", cov.end, until, nxt, ())


def next_step_extension(cover: Cover) -> dict | None:
    """The eligibility answer's ``coverage-next-step`` extension (None: nothing to say)."""
    fr, ar = cover.text("fr"), cover.text("ar")
    if fr is None:
        return None
    parts = [{"url": "state", "valueCode": cover.state}]
    if cover.end:
        parts.append({"url": "end", "valueDate": cover.end.isoformat()})
    if cover.transition_until and cover.state != "ended":
        parts.append({"url": "transitionUntil", "valueDate": cover.transition_until.isoformat()})
    if cover.next_regime:
        parts.append({"url": "nextRegime", "valueCoding": {"system": REGIME, "code": cover.next_regime,
                                                           "display": REGIME_FR.get(cover.next_regime, cover.next_regime)}})
    parts += [{"url": "instructions", "valueString": fr}, {"url": "instructions-ar", "valueString": ar}]
    return {"url": EXT_NEXT_STEP, "extension": parts}


def cliff_extension(next_regime: str | None, transition_until: date | None) -> dict:
    """What a threshold-driven end writes on the Coverage (read back by ``coverage_facts``)."""
    parts = [{"url": "reason", "valueCode": "rsu-threshold"}]
    if next_regime:
        parts.append({"url": "nextRegime", "valueCoding": {"system": REGIME, "code": next_regime}})
    if transition_until:
        parts.append({"url": "transitionUntil", "valueDate": transition_until.isoformat()})
    return {"url": EXT_COVERAGE_CLIFF, "extension": parts}

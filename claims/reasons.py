"""Coded adjudication reasons, in French and Arabic, as the funds' letters state them.

Each reason belongs to one of the categories the issue names (eligibility, authorisation,
duplicate, tariff, deadline, coverage, coding) or to ``review`` for why a claim waits for an
agent.  The codes form ``https://fhir.sijill.ma/CodeSystem/claim-adjudication-reason``.
"""
from __future__ import annotations

from dataclasses import dataclass

from claims.uris import REASON, TRANSLATION


@dataclass(frozen=True)
class Reason:
    code: str
    category: str
    fr: str
    ar: str
    rejects: bool  # the line pays nothing (as opposed to a reduction or a note)

    def concept(self) -> dict:
        """A CodeableConcept: French display, Arabic as a translation, French text."""
        return {
            "coding": [{
                "system": REASON,
                "code": self.code,
                "display": self.fr,
                "_display": {"extension": [{"url": TRANSLATION, "extension": [
                    {"url": "lang", "valueCode": "ar"}, {"url": "content", "valueString": self.ar},
                ]}]},
            }],
            "text": self.fr,
        }


_ALL = (
    Reason("not-covered", "eligibility", "Aucune couverture AMO en vigueur à la date des soins",
           "لا توجد تغطية للتأمين الإجباري عن المرض سارية في تاريخ العلاج", True),
    Reason("provider-unknown", "eligibility", "Prestataire inconnu : INPE non enregistré",
           "مقدم العلاج غير معروف: المعرف الوطني غير مسجل", True),
    Reason("provider-inactive", "eligibility", "Prestataire dont l'INPE n'est pas actif",
           "مقدم العلاج معرفه الوطني غير نشط", True),
    Reason("not-in-basket", "coverage", "Acte ou produit hors du panier de soins remboursables",
           "عمل أو منتج خارج سلة العلاجات القابلة للتعويض", True),
    Reason("ceiling-reached", "coverage", "Plafond de remboursement atteint pour cette prestation",
           "تم بلوغ سقف التعويض عن هذه الخدمة", False),
    Reason("frequency-limit", "coverage", "Nombre maximal de prestations sur la période dépassé",
           "تم تجاوز العدد الأقصى للخدمات خلال المدة", True),
    Reason("above-tariff", "tariff", "Montant ramené au tarif national de référence (TNR)",
           "تم تخفيض المبلغ إلى التعريفة الوطنية المرجعية", False),
    Reason("no-tariff", "tariff", "Aucun tarif national de référence en vigueur pour cet acte à cette date",
           "لا توجد تعريفة وطنية مرجعية سارية لهذا العمل في هذا التاريخ", True),
    Reason("preauth-missing", "authorisation", "Accord préalable (attestation de prise en charge) requis et absent",
           "الموافقة المسبقة (شهادة التكفل) مطلوبة وغير موجودة", True),
    Reason("preauth-invalid", "authorisation", "Accord préalable expiré, refusé ou ne couvrant pas cette prestation",
           "الموافقة المسبقة منتهية الصلاحية أو مرفوضة أو لا تشمل هذه الخدمة", True),
    Reason("duplicate", "duplicate", "Prestation déjà prise en charge (même patient, prestataire, acte et date)",
           "خدمة سبق التكفل بها (نفس المريض ومقدم العلاج والعمل والتاريخ)", True),
    Reason("late-penalty", "deadline", "Feuille de soins transmise hors délai : abattement appliqué",
           "ورقة العلاج أرسلت خارج الأجل: تم تطبيق تخفيض", False),
    Reason("late-rejected", "deadline", "Feuille de soins transmise hors délai : rejet",
           "ورقة العلاج أرسلت خارج الأجل: رفض", True),
    Reason("unknown-code", "coding", "Code d'acte ou de médicament inconnu de la nomenclature",
           "رمز العمل أو الدواء غير موجود في المدونة", True),
    Reason("prescription-unmatched", "coding",
           "Ligne de pharmacie sans ordonnance et délivrance correspondantes",
           "سطر صيدلية دون وصفة طبية وصرف مطابقين", True),
    Reason("agent-rejected", "review", "Refus décidé par l'agent de l'organisme après examen",
           "رفض قرره عون الهيئة بعد الدراسة", True),
    Reason("agent-adjusted", "review", "Montant ajusté par l'agent de l'organisme après examen",
           "مبلغ عدله عون الهيئة بعد الدراسة", False),
    # Why a claim waits for an agent (it still has to be decided within the deadline).
    Reason("high-amount", "review", "Montant élevé : examen par un agent de l'organisme",
           "مبلغ مرتفع: دراسة من طرف عون الهيئة", False),
    Reason("missing-document", "review", "Pièce justificative manquante",
           "وثيقة مثبتة ناقصة", False),
    Reason("suspected-duplicate", "review", "Doublon possible avec une prestation d'un autre prestataire",
           "احتمال تكرار مع خدمة لدى مقدم علاج آخر", False),
    Reason("technical", "review", "Échec technique répété de la liquidation automatique",
           "فشل تقني متكرر في التصفية الآلية", False),
)

REASONS: dict[str, Reason] = {r.code: r for r in _ALL}
CATEGORIES = ("eligibility", "authorisation", "duplicate", "tariff", "deadline", "coverage", "coding", "review")


def reason(code: str) -> Reason:
    return REASONS[code]


def code_system() -> dict:
    """The CodeSystem resource for these reasons, with the Arabic text as a designation."""
    return {
        "resourceType": "CodeSystem",
        "id": "claim-adjudication-reason",
        "url": REASON,
        "name": "ClaimAdjudicationReason",
        "title": "Motifs de liquidation des feuilles de soins",
        "status": "active",
        "content": "complete",
        "caseSensitive": True,
        "property": [{"code": "category", "type": "code"}],
        "concept": [
            {
                "code": r.code,
                "display": r.fr,
                "designation": [{"language": "ar", "value": r.ar}],
                "property": [{"code": "category", "valueCode": r.category}],
            }
            for r in _ALL
        ],
    }

"""Every sentence the paper channel prints, in Arabic and French, in one place.

A letter is printed once per language (Arabic first, the official language, then French), from
the same template: the templates hold the layout, this module the words.  Texts are
``str.format`` patterns; the values put into them are escaped when the letter is rendered.
Digits are Western in both languages, as Moroccan administrations print them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bilingual:
    """A text, or a label read from the data (a name, a terminology display), in both languages."""

    fr: str
    ar: str

    def get(self, lang: str) -> str:
        return self.ar if lang == "ar" else self.fr

    @classmethod
    def same(cls, text: str) -> "Bilingual":
        """A value written once for both languages (a code, a name known in one script only)."""
        return cls(text, text)


LANGUAGES = ("ar", "fr")  # printing order
DIRECTION = {"ar": "rtl", "fr": "ltr"}
CURRENCY = Bilingual("DH", "درهم")

_TEXTS: dict[str, tuple[str, str]] = {
    # --- every letter ------------------------------------------------------------------------
    "letter.reference": ("Référence à présenter au guichet", "المرجع الذي يقدم لدى الشباك"),
    "letter.printed": ("Imprimé le {date} à {time}", "طبع بتاريخ {date} على الساعة {time}"),
    "letter.printed_by": ("par {who}", "من طرف {who}"),
    "letter.source": ("Document établi par Sijill à partir du dossier de l'assurance maladie obligatoire.",
                      "وثيقة أعدها سجل انطلاقا من ملف التأمين الإجباري الأساسي عن المرض."),
    "party.patient": ("Patient(e)", "المريض(ة)"),
    "party.provider": ("Prestataire de soins", "مقدم العلاج"),
    "label.inpe": ("INPE", "المعرف الوطني لمقدم العلاج"),
    "label.care_date": ("Date des soins", "تاريخ العلاج"),
    "label.decision_date": ("Date de la décision", "تاريخ القرار"),
    "label.decision": ("Décision", "القرار"),
    "label.status_code": ("Code de suivi", "رمز التتبع"),
    "row.total": ("Total", "المجموع"),
    # --- printed prescription ----------------------------------------------------------------
    "rx.title": ("Ordonnance", "وصفة طبية"),
    "rx.number": ("N° d'ordonnance", "رقم الوصفة"),
    "rx.prescriber": ("Médecin prescripteur", "الطبيب الواصف"),
    "rx.date": ("Date", "التاريخ"),
    "rx.dosage": ("Posologie", "الجرعة"),
    "rx.quantity": ("Quantité", "الكمية"),
    "rx.substitution_yes": ("Substitution par un générique autorisée", "يسمح بتعويضه بدواء جنيس"),
    "rx.substitution_no": ("Non substituable", "غير قابل للتعويض"),
    "rx.valid_until": ("Valable jusqu'au {date}", "صالحة إلى غاية {date}"),
    "rx.renewals": ("Renouvellements : {count}", "عدد التجديدات: {count}"),
    "rx.stopped": ("Ligne arrêtée par le médecin", "أوقف الطبيب هذا السطر"),
    "rx.scan": ("À la pharmacie : scanner le code ou saisir le numéro", "في الصيدلية: مسح الرمز أو إدخال الرقم"),
    # --- printed care sheet ----------------------------------------------------------------
    "cs.title": ("Feuille de soins", "ورقة العلاج"),
    "cs.number": ("N° de feuille de soins", "رقم ورقة العلاج"),
    "cs.scan": ("Gardez ce numéro : il désigne votre feuille auprès de votre caisse", "احتفظوا بهذا الرقم: يحدد ورقتكم لدى صندوقكم"),
    "cs.line": ("Acte ou médicament", "العمل الطبي أو الدواء"),
    "cs.price": ("Prix", "الثمن"),
    "cs.total": ("Total", "المجموع"),
    "cs.fund": ("Caisse", "الصندوق"),
    "cs.status": ("Où en est-elle ? Code de suivi {code}", "أين وصلت؟ رمز التتبع {code}"),
    # --- decision letter ---------------------------------------------------------------------
    "decision.title": ("Décision de prise en charge", "قرار التكفل"),
    "decision.preauth_title": ("Décision sur la demande d'accord préalable", "قرار بشأن طلب الموافقة المسبقة"),
    "decision.sheet": ("Feuille de soins n° {number}", "ورقة العلاج رقم {number}"),
    "outcome.approved": ("Prise en charge accordée", "تمت الموافقة على التكفل"),
    "outcome.partial": ("Prise en charge accordée partiellement", "تمت الموافقة الجزئية على التكفل"),
    "outcome.rejected": ("Prise en charge refusée", "تم رفض التكفل"),
    "col.item": ("Acte ou médicament", "العمل الطبي أو الدواء"),
    "col.date": ("Date", "التاريخ"),
    "col.asked": ("Montant demandé", "المبلغ المطلوب"),
    "col.accepted": ("Montant retenu", "المبلغ المقبول"),
    "col.benefit": ("Payé par l'organisme", "ما تؤديه الهيئة"),
    "col.patient_share": ("Reste à votre charge", "ما يبقى على عاتقكم"),
    "col.reason": ("Motif", "السبب"),
    "payee.provider": ("Tiers payant : l'organisme paie sa part directement au prestataire ; vous ne réglez que "
                       "le reste à votre charge.",
                       "الثالث المؤدي: تؤدي الهيئة حصتها مباشرة لمقدم العلاج، ولا تؤدون إلا ما يبقى على عاتقكم."),
    "payee.insured": ("Remboursement : l'organisme verse sa part à l'assuré(e) {name}.",
                      "التعويض: تدفع الهيئة حصتها للمؤمن(ة) {name}."),
    "payee.paid_on": ("Payé le {date}.", "تم الأداء بتاريخ {date}."),
    "payee.to_come": ("Le paiement sera fait au prochain règlement de l'organisme.",
                      "سيتم الأداء في عملية الأداء المقبلة للهيئة."),
    "status.superseded": ("Cette décision a été remplacée par celle de la feuille corrigée n° {number} : "
                          "demandez la lettre de la feuille corrigée.",
                          "عوض هذا القرار بقرار ورقة العلاج المصححة رقم {number}: اطلبوا رسالة الورقة المصححة."),
    "status.revised": ("Décision révisée après recours le {date}.", "قرار معدل بعد الطعن بتاريخ {date}."),
    "appeal.title": ("Recours", "الطعن"),
    "appeal.until": ("Si vous n'êtes pas d'accord avec cette décision, vous pouvez former un recours jusqu'au "
                     "{date} ({days} jours après la décision) :",
                     "إذا لم تكونوا متفقين مع هذا القرار، يمكنكم تقديم طعن إلى غاية {date} ({days} يوما بعد القرار):"),
    "appeal.at_counter": ("au guichet de votre organisme ou d'un point d'accueil, en présentant cette lettre ;",
                          "لدى شباك هيئتكم أو نقطة استقبال، مع تقديم هذه الرسالة؛"),
    "appeal.online": ("ou en ligne (application, prestataire) : demande {operation}.",
                      "أو عبر الإنترنت (التطبيق أو مقدم العلاج): الطلب {operation}."),
    "appeal.in_progress": ("Un recours est en cours d'examen depuis le {received} ; décision au plus tard le {deadline}.",
                           "طعن قيد الدراسة منذ {received}؛ يصدر القرار في أجل أقصاه {deadline}."),
    "appeal.expired": ("Le délai de recours ({days} jours après la décision) a expiré le {date}.",
                       "انتهى أجل الطعن ({days} يوما بعد القرار) بتاريخ {date}."),
    "appeal.preauth": ("Un refus d'accord préalable ne fait pas l'objet d'un recours : présentez une nouvelle demande.",
                       "لا يقبل رفض الموافقة المسبقة الطعن: قدموا طلبا جديدا."),
    "appeal.complementary": ("Pour contester la part de votre assurance complémentaire, adressez-vous à elle.",
                             "للاعتراض على حصة تأمينكم التكميلي، يرجى التوجه إليه."),
    # --- payment notice ----------------------------------------------------------------------
    "payment.title": ("Avis de paiement", "إشعار بالأداء"),
    "payment.insured": ("L'organisme a versé {amount} le {date} à l'assuré(e) {name}, pour les feuilles de soins "
                        "ci-dessous.",
                        "دفعت الهيئة {amount} بتاريخ {date} للمؤمن(ة) {name}، عن أوراق العلاج أدناه."),
    "payment.provider": ("L'organisme a réglé {amount} le {date} au prestataire {name} (tiers payant), pour les "
                         "feuilles de soins ci-dessous.",
                         "أدت الهيئة {amount} بتاريخ {date} لمقدم العلاج {name} (الثالث المؤدي)، عن أوراق العلاج أدناه."),
    "payment.payee": ("Bénéficiaire du paiement", "المستفيد من الأداء"),
    "col.sheet": ("Feuille n°", "رقم الورقة"),
    "col.beneficiary": ("Soins de", "العلاج لفائدة"),
    "col.provider": ("Prestataire", "مقدم العلاج"),
    "col.kind": ("Nature", "النوع"),
    "col.amount": ("Montant versé", "المبلغ المدفوع"),
    "col.status_code": ("Code de suivi", "رمز التتبع"),
    "kind.payment": ("Remboursement", "تعويض"),
    "kind.adjustment": ("Complément (correction ou recours)", "تكملة (تصحيح أو طعن)"),
    "kind.recovery": ("Retenue d'un trop-perçu", "اقتطاع مبلغ مدفوع بزيادة"),
    # --- access report -----------------------------------------------------------------------
    "report.issuer": ("Dossier médical partagé — assurance maladie obligatoire",
                      "الملف الطبي المشترك — التأمين الإجباري الأساسي عن المرض"),
    "report.title": ("Relevé des accès à votre dossier médical", "بيان الاطلاع على ملفكم الطبي"),
    "report.since": ("Accès enregistrés depuis le {date}", "عمليات الاطلاع المسجلة منذ {date}"),
    "report.all": ("Tous les accès enregistrés", "جميع عمليات الاطلاع المسجلة"),
    "report.count": ("{count} accès", "{count} عملية اطلاع"),
    "report.truncated": ("Seuls les {shown} accès les plus récents sur {total} figurent ici : demandez un relevé "
                         "depuis une date plus récente pour voir les autres.",
                         "لا تظهر هنا إلا آخر {shown} عملية اطلاع من أصل {total}: اطلبوا بيانا انطلاقا من تاريخ "
                         "أحدث لرؤية الباقي."),
    "report.empty": ("Aucun accès enregistré sur la période.", "لا توجد أي عملية اطلاع مسجلة خلال هذه المدة."),
    "col.when": ("Date et heure", "التاريخ والساعة"),
    "col.who": ("Qui", "من"),
    "col.what": ("Quoi", "ماذا"),
    "col.why": ("Pourquoi", "لماذا"),
    "why.care": ("Soins", "العلاج"),
    "why.emergency": ("Urgence : accès exceptionnel (bris de glace)", "استعجال: ولوج استثنائي (كسر الزجاج)"),
    "why.insurance": ("Gestion de l'assurance maladie", "تدبير التأمين عن المرض"),
    "why.counter": ("Démarche au guichet pour le patient", "إجراء لدى الشباك لفائدة المريض"),
    "why.assisted": ("Au guichet, en présence du patient", "لدى الشباك، بحضور المريض"),
    "why.own": ("Le patient ou son représentant", "المريض أو نائبه"),
    "why.unknown": ("Non précisé", "غير محدد"),
    "outcome.refused": ("accès refusé", "ولوج مرفوض"),
    # what an access did
    "action.read": ("Consultation", "اطلاع"),
    "action.search": ("Recherche", "بحث"),
    "action.history": ("Consultation de l'historique", "اطلاع على السجل التاريخي"),
    "action.create": ("Ajout", "إضافة"),
    "action.update": ("Modification", "تعديل"),
    "action.delete": ("Suppression", "حذف"),
    "action.operation": ("Opération {operation}", "عملية {operation}"),
    "action.letter": ("Lettre imprimée", "رسالة مطبوعة"),
    "action.letter_counter": ("Lettre imprimée au guichet", "رسالة مطبوعة لدى الشباك"),
    "action.access-report": ("Relevé des accès imprimé", "بيان الاطلاع مطبوع"),
    "action.access-report_counter": ("Relevé des accès imprimé au guichet", "بيان الاطلاع مطبوع لدى الشباك"),
    "action.everything": ("Consultation du dossier complet", "الاطلاع على الملف الكامل"),
    "action.break-glass": ("Ouverture d'un accès d'urgence", "فتح ولوج استعجالي"),
    "action.assist": ("Accueil du patient au guichet", "استقبال المريض لدى الشباك"),
    "action.start-care": ("Début de la prise en charge par le médecin", "بداية التكفل من طرف الطبيب"),
    "action.match": ("Identification du patient", "التحقق من هوية المريض"),
    "action.appeal": ("Recours formé", "تقديم طعن"),
    "action.submit": ("Feuille de soins transmise", "إرسال ورقة العلاج"),
    # who
    "role.patient": ("le patient", "المريض"),
    "role.guardian": ("un proche (représentant légal)", "قريب (نائب قانوني)"),
    "role.doctor": ("médecin", "طبيب"),
    "role.pharmacist": ("pharmacien", "صيدلي"),
    "role.insurer": ("agent de l'organisme", "عون الهيئة"),
    "role.paper-agent": ("agent d'accueil (guichet)", "عون الاستقبال (الشباك)"),
    "role.admin": ("administrateur", "مسير النظام"),
    "role.professional": ("professionnel de santé", "مهني الصحة"),
    "role.organization": ("établissement ou organisme", "مؤسسة أو هيئة"),
    "role.unknown": ("utilisateur", "مستعمل"),
}

# What kind of record an access touched (others are shown by their FHIR type name).
_KINDS: dict[str, tuple[str, str]] = {
    "Patient": ("fiche d'identité", "بطاقة الهوية"),
    "Observation": ("résultat ou mesure", "نتيجة أو قياس"),
    "Condition": ("problème de santé", "مشكل صحي"),
    "Encounter": ("consultation ou séjour", "استشارة أو إقامة"),
    "MedicationRequest": ("ordonnance", "وصفة طبية"),
    "MedicationDispense": ("délivrance de médicaments", "صرف الأدوية"),
    "AllergyIntolerance": ("allergie", "حساسية"),
    "Immunization": ("vaccination", "تلقيح"),
    "Procedure": ("acte médical", "عمل طبي"),
    "DiagnosticReport": ("compte rendu d'examen", "تقرير فحص"),
    "DocumentReference": ("document", "وثيقة"),
    "Binary": ("document", "وثيقة"),
    "Claim": ("feuille de soins", "ورقة العلاج"),
    "ClaimResponse": ("décision de l'organisme", "قرار الهيئة"),
    "ExplanationOfBenefit": ("décision de prise en charge", "قرار التكفل"),
    "PaymentReconciliation": ("avis de paiement", "إشعار بالأداء"),
    "Coverage": ("couverture maladie", "التغطية الصحية"),
    "CoverageEligibilityRequest": ("vérification des droits", "التحقق من الحقوق"),
    "CoverageEligibilityResponse": ("vérification des droits", "التحقق من الحقوق"),
    "Consent": ("consentement", "موافقة"),
    "CarePlan": ("plan de soins", "مخطط العلاج"),
    "CareTeam": ("équipe de soins", "فريق العلاج"),
    "Communication": ("message", "رسالة"),
    "AuditEvent": ("journal des accès", "سجل الاطلاع"),
}

TEXTS: dict[str, Bilingual] = {key: Bilingual(*pair) for key, pair in _TEXTS.items()}
KINDS: dict[str, Bilingual] = {key: Bilingual(*pair) for key, pair in _KINDS.items()}


def text(key: str) -> Bilingual:
    return TEXTS[key]


def formatted(key: str, **values: object) -> Bilingual:
    """A catalogue text with its values filled in, in both languages (for values in the data)."""
    t = TEXTS[key]
    return Bilingual(t.fr.format(**values), t.ar.format(**values))


def kind(res_type: str | None) -> Bilingual | None:
    """What a resource type is, in words (its type name when there are none)."""
    if not res_type:
        return None
    return KINDS.get(res_type) or Bilingual.same(res_type)

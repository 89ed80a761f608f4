"""The one message catalogue of patient notifications, in French and Arabic.

Each event has a short text per language with named parameters of bounded width (a longer
value is cut), so that every rendered text fits one SMS: 160 characters of the GSM 03.38
alphabet, or 70 in UCS-2 when a character (Arabic) is outside it.  No text names a diagnosis,
a medicine or an act: the patient learns that something happened and where to look.
"""
from __future__ import annotations

import unicodedata
from string import Formatter

# Where a care sheet stands (``status_code.STAGES``), answered to a patient who texted its code.
STAGE_EVENTS = {stage: f"status-{stage}" for stage in ("received", "under-review", "decided", "paid", "replaced")}
UNKNOWN_EVENT = "status-unknown"  # the one answer that confirms nothing: unknown code, or not the patient's phone
EVENTS = ("claim-decided", "payment", "coverage-ending", "prescription-ready", "prescription-dispensed",
          "care-started", "break-glass", "ald-transition", *STAGE_EVENTS.values(), UNKNOWN_EVENT)
LANGUAGES = ("fr", "ar")

# The widest value each parameter may take in a text (longer values are cut to it).
# ``number``: a prescription number, whole (``7SE7-N65P-TKS7``): the patient gives it at the pharmacy.
WIDTHS = {"code": 9, "number": 14, "owed": 9, "amount": 9, "date": 10, "until": 10, "doctor": 22, "regime": 12}

TEXTS: dict[str, dict[str, str]] = {
    "claim-decided": {
        "fr": "Sijill: votre feuille de soins {code} est traitée. Reste à votre charge: {owed} MAD. "
              "Détail au guichet ou sur Sijill.",
        "ar": "سجل: تمت معالجة ورقة العلاج {code}. الباقي عليكم: {owed} درهم",
    },
    "payment": {
        "fr": "Sijill: un remboursement de {amount} MAD pour votre feuille de soins {code} a été payé le {date}.",
        "ar": "سجل: تم أداء {amount} درهم عن ورقة العلاج {code} يوم {date}",
    },
    "coverage-ending": {
        "fr": "Sijill: votre couverture {regime} prend fin le {date}. Présentez-vous à votre caisse "
              "pour la suite de vos droits.",
        "ar": "سجل: تنتهي تغطيتكم {regime} يوم {date}. راجعوا صندوقكم",
    },
    "prescription-ready": {
        "fr": "Sijill: votre ordonnance {number} est disponible. Donnez ce numéro dans toute pharmacie.",
        "ar": "سجل: وصفتكم رقم {number} جاهزة. قدموا هذا الرقم في أي صيدلية",
    },
    "prescription-dispensed": {
        "fr": "Sijill: votre ordonnance {number} a été délivrée le {date}. Pas vous ? Signalez-le à votre caisse.",
        "ar": "سجل: صرفت وصفتكم {number} يوم {date}. لستم أنتم؟ بلغوا",
    },
    "care-started": {
        "fr": "Sijill: {doctor} a ouvert votre dossier médical le {date} jusqu'au {until}. "
              "Pas consulté ? Signalez-le.",
        "ar": "سجل: فتح {doctor} ملفكم {date}. لم تستشيروه؟ بلغوا",
    },
    "break-glass": {
        "fr": "Sijill: votre dossier médical a été ouvert en urgence par {doctor} le {date}. "
              "Pas vous ? Signalez-le.",
        "ar": "سجل: فتح {doctor} ملفكم الطبي استعجاليا يوم {date}",
    },
    "ald-transition": {
        "fr": "Sijill: votre prise en charge de longue durée continue jusqu'au {date}. "
              "Présentez-vous à votre caisse avant cette date.",
        "ar": "سجل: تستمر تغطية مرضكم المزمن إلى {date}. راجعوا صندوقكم قبله",
    },
    "status-received": {
        "fr": "Sijill: votre feuille de soins {code} est arrivée et en cours de traitement.",
        "ar": "سجل: توصلنا بورقة العلاج {code} وهي قيد المعالجة",
    },
    "status-under-review": {
        "fr": "Sijill: votre feuille de soins {code} est en cours d'examen par votre caisse.",
        "ar": "سجل: ورقة العلاج {code} قيد الدراسة لدى صندوقكم",
    },
    "status-decided": {
        "fr": "Sijill: votre feuille de soins {code} est traitée. Détail au guichet ou sur Sijill.",
        "ar": "سجل: تمت معالجة ورقة العلاج {code}",
    },
    "status-paid": {
        "fr": "Sijill: le remboursement de votre feuille de soins {code} a été payé.",
        "ar": "سجل: تم أداء التعويض عن ورقة العلاج {code}",
    },
    "status-replaced": {
        "fr": "Sijill: votre feuille de soins {code} a été remplacée par une feuille corrigée.",
        "ar": "سجل: عوضت ورقة العلاج {code} بورقة مصححة",
    },
    "status-unknown": {
        "fr": "Sijill: nous ne pouvons pas répondre à ce message. Renseignez-vous au guichet de votre caisse.",
        "ar": "سجل: لا يمكننا الرد على هذه الرسالة. راجعوا شباك صندوقكم",
    },
}

SUBJECTS = {"fr": "Sijill : avis", "ar": "سجل: إشعار"}

# GSM 03.38 default alphabet and its extension table (an extension character costs two).
_GSM = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXT = set("^{}\\[~]|€")


def parameters(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(template) if name}


def _gsm(value: str) -> str:
    """A value for a French text kept in the GSM alphabet ("Benaïssa" → "Benaissa"), so that
    one name never turns the whole SMS into UCS-2 and its 70-character limit."""
    kept = []
    for c in value:
        base = unicodedata.normalize("NFKD", c)[:1]
        kept.append(c if c in _GSM else base if base in _GSM else "?")
    return "".join(kept)


def render(event: str, language: str, params: dict) -> str:
    """The text of ``event`` in ``language``, each parameter cut to its width."""
    template = TEXTS[event][language]
    values = {name: str(params.get(name, ""))[:WIDTHS[name]] for name in parameters(template)}
    if language == "fr":
        values = {name: _gsm(v) for name, v in values.items()}
    return template.format(**values)


def sms_units(text: str) -> tuple[str, int, int]:
    """(encoding, length in that encoding's units, the one-SMS limit)."""
    if all(c in _GSM or c in _GSM_EXT for c in text):
        return "GSM-7", sum(2 if c in _GSM_EXT else 1 for c in text), 160
    return "UCS-2", sum(2 if ord(c) > 0xFFFF else 1 for c in text), 70


def fits_one_sms(text: str) -> bool:
    _, length, limit = sms_units(text)
    return length <= limit

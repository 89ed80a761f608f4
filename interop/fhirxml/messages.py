"""Why an XML body is refused, in French (default), Arabic and English."""
from __future__ import annotations

from ehr.i18n import current_language
from ehr.outcome import FHIRError, Issue

_MESSAGES: dict[str, dict[str, str]] = {
    "malformed": {
        "fr": "Le corps n'est pas du XML bien formé : {detail}",
        "ar": "النص ليس XML سليم البنية: {detail}",
        "en": "The body is not well-formed XML: {detail}",
    },
    "doctype": {
        "fr": "Les DTD et les entités XML sont refusées (DOCTYPE interdit)",
        "ar": "تعريفات DTD وكيانات XML مرفوضة (DOCTYPE ممنوع)",
        "en": "XML DTDs and entities are refused (no DOCTYPE)",
    },
    "depth": {
        "fr": "Le XML imbrique les éléments sur plus de {depth} niveaux",
        "ar": "يتداخل XML في أكثر من {depth} مستوى",
        "en": "The XML nests elements deeper than {depth} levels",
    },
    "namespace": {
        "fr": "L'élément « {name} » n'est pas dans l'espace de noms FHIR (http://hl7.org/fhir)",
        "ar": "العنصر «{name}» ليس ضمن فضاء أسماء FHIR (http://hl7.org/fhir)",
        "en": "Element '{name}' is not in the FHIR namespace (http://hl7.org/fhir)",
    },
    "unknown-type": {
        "fr": "Type de ressource inconnu « {name} »",
        "ar": "نوع مورد غير معروف «{name}»",
        "en": "Unknown resource type '{name}'",
    },
    "unknown-element": {
        "fr": "Élément inconnu « {name} »",
        "ar": "عنصر غير معروف «{name}»",
        "en": "Unknown element '{name}'",
    },
    "unknown-attribute": {
        "fr": "Attribut inconnu « {name} »",
        "ar": "سمة غير معروفة «{name}»",
        "en": "Unknown attribute '{name}'",
    },
    "text": {
        "fr": "Texte interdit dans l'élément « {name} » : les valeurs sont dans l'attribut value",
        "ar": "النص غير مسموح به داخل العنصر «{name}»: توضع القيم في السمة value",
        "en": "Text is not allowed in element '{name}': values go in the value attribute",
    },
    "repeats": {
        "fr": "L'élément « {name} » ne se répète pas",
        "ar": "العنصر «{name}» غير قابل للتكرار",
        "en": "Element '{name}' does not repeat",
    },
    "empty": {
        "fr": "L'élément « {name} » n'a ni valeur ni contenu",
        "ar": "العنصر «{name}» بلا قيمة ولا محتوى",
        "en": "Element '{name}' has neither a value nor children",
    },
    "value": {
        "fr": "« {value} » n'est pas un {type} valide",
        "ar": "«{value}» ليست قيمة {type} صالحة",
        "en": "'{value}' is not a valid {type}",
    },
    "resource": {
        "fr": "L'élément « {name} » doit contenir exactement une ressource",
        "ar": "يجب أن يحتوي العنصر «{name}» على مورد واحد بالضبط",
        "en": "Element '{name}' must hold exactly one resource",
    },
    "xhtml": {
        "fr": "La narration doit être un élément div XHTML (http://www.w3.org/1999/xhtml)",
        "ar": "يجب أن يكون السرد عنصر div بلغة XHTML (http://www.w3.org/1999/xhtml)",
        "en": "The narrative must be an XHTML div (http://www.w3.org/1999/xhtml)",
    },
}


def refused(kind: str, expression: str | None, line: int | None, **params: object) -> FHIRError:
    """400 for an XML body: the element's FHIRPath (when known) and its line in the body."""
    text = _MESSAGES[kind]
    diagnostics = text.get(current_language(), text["fr"]).format(**params)
    code = {"value": "value", "doctype": "security", "depth": "too-costly"}.get(kind, "structure")
    location = (f"Line[{line}]",) if line else ()
    return FHIRError(400, [Issue(code, diagnostics, expression=(expression,) if expression else (), location=location)])

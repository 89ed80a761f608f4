"""Validation messages in French (default), Arabic and English, keyed by problem kind.

Placeholders are filled with ``str.format_map`` (a missing one stays visible as ``{name}``);
a language missing from the catalog falls back to English, an unknown kind to the kind
itself, so a message is never lost.
"""
from __future__ import annotations

CATALOG: dict[str, dict[str, str]] = {
    "unknown-element": {
        "fr": "Élément inconnu « {name} » : il n'est pas défini pour le type {type}",
        "ar": "عنصر غير معروف «{name}»: غير معرَّف في النوع {type}",
        "en": "Unrecognised element '{name}': not defined for type {type}",
    },
    "not-object": {
        "fr": "L'élément « {name} » doit être un objet JSON ({type})",
        "ar": "يجب أن يكون العنصر «{name}» كائن JSON ({type})",
        "en": "Element '{name}' must be a JSON object ({type})",
    },
    "array-expected": {
        "fr": "L'élément « {name} » peut se répéter et doit être un tableau JSON",
        "ar": "العنصر «{name}» قابل للتكرار ويجب أن يكون مصفوفة JSON",
        "en": "Element '{name}' repeats and must be a JSON array",
    },
    "array-unexpected": {
        "fr": "L'élément « {name} » ne se répète pas et ne doit pas être un tableau JSON",
        "ar": "العنصر «{name}» غير قابل للتكرار ولا يجب أن يكون مصفوفة JSON",
        "en": "Element '{name}' does not repeat and must not be a JSON array",
    },
    "array-mismatch": {
        "fr": "Les tableaux « {name} » et « _{name} » doivent avoir la même longueur",
        "ar": "يجب أن يكون للمصفوفتين «{name}» و«_{name}» نفس الطول",
        "en": "Arrays '{name}' and '_{name}' must have the same length",
    },
    "null-value": {
        "fr": "Valeur null interdite pour « {name} »",
        "ar": "القيمة null غير مسموح بها للعنصر «{name}»",
        "en": "Null is not allowed for '{name}'",
    },
    "empty-array": {
        "fr": "Tableau vide interdit pour « {name} » : omettez l'élément",
        "ar": "المصفوفة الفارغة غير مسموح بها للعنصر «{name}»: يجب حذف العنصر",
        "en": "Empty array not allowed for '{name}': omit the element",
    },
    "min": {
        "fr": "« {name} » : au moins {min} occurrence(s) requise(s), {count} trouvée(s)",
        "ar": "«{name}»: يلزم {min} تكرار على الأقل، وُجد {count}",
        "en": "'{name}': minimum cardinality is {min}, found {count}",
    },
    "max": {
        "fr": "« {name} » : au plus {max} occurrence(s) autorisée(s), {count} trouvée(s)",
        "ar": "«{name}»: الحد الأقصى المسموح به {max} تكرار، وُجد {count}",
        "en": "'{name}': maximum cardinality is {max}, found {count}",
    },
    "choice-multiple": {
        "fr": "Un seul type est permis pour « {name} » ; trouvés : {found}",
        "ar": "يُسمح بنوع واحد فقط للعنصر «{name}»؛ وُجد: {found}",
        "en": "Only one type is allowed for '{name}'; found: {found}",
    },
    "json-type": {
        "fr": "Valeur {value} invalide pour le type {type} : un {json} JSON est attendu",
        "ar": "القيمة {value} غير صالحة للنوع {type}: يُنتظر {json} JSON",
        "en": "Invalid value {value} for type {type}: a JSON {json} is expected",
    },
    "format": {
        "fr": "La valeur {value} n'est pas valide pour le type {type}",
        "ar": "القيمة {value} غير صالحة للنوع {type}",
        "en": "Value {value} is not a valid {type}",
    },
    "integer-range": {
        "fr": "La valeur {value} est hors des limites du type {type}",
        "ar": "القيمة {value} خارج حدود النوع {type}",
        "en": "Value {value} is out of range for type {type}",
    },
    "empty-string": {
        "fr": "Chaîne vide interdite pour le type {type} : omettez l'élément",
        "ar": "السلسلة الفارغة غير مسموح بها للنوع {type}: يجب حذف العنصر",
        "en": "Empty string not allowed for type {type}: omit the element",
    },
    "ele-1": {
        "fr": "Un élément doit avoir une valeur ou des éléments enfants (ele-1)",
        "ar": "يجب أن يحتوي العنصر على قيمة أو عناصر فرعية (ele-1)",
        "en": "All FHIR elements must have a @value or children (ele-1)",
    },
    "resource-type-missing": {
        "fr": "La propriété « resourceType » est absente",
        "ar": "الخاصية «resourceType» غير موجودة",
        "en": "Property 'resourceType' is missing",
    },
    "resource-type-unknown": {
        "fr": "Type de ressource inconnu : {type}",
        "ar": "نوع مورد غير معروف: {type}",
        "en": "Unknown resource type: {type}",
    },
    "resource-type-abstract": {
        "fr": "Le type {type} est abstrait et ne peut pas être instancié",
        "ar": "النوع {type} مجرد ولا يمكن إنشاء نسخة منه",
        "en": "Type {type} is abstract and cannot be instantiated",
    },
    "type-not-allowed": {
        "fr": "Type {type} non autorisé ici ; types permis : {allowed}",
        "ar": "النوع {type} غير مسموح به هنا؛ الأنواع المسموحة: {allowed}",
        "en": "Type {type} is not allowed here; allowed: {allowed}",
    },
    "fixed": {
        "fr": "La valeur doit être exactement {expected}",
        "ar": "يجب أن تكون القيمة مطابقة تماماً لـ {expected}",
        "en": "Value must be exactly {expected}",
    },
    "pattern": {
        "fr": "La valeur doit correspondre au motif {expected}",
        "ar": "يجب أن تطابق القيمة النمط {expected}",
        "en": "Value must match the pattern {expected}",
    },
    "binding-required": {
        "fr": "Le code {code} n'appartient pas au jeu de valeurs obligatoire {valueset}",
        "ar": "الرمز {code} لا ينتمي إلى مجموعة القيم الإلزامية {valueset}",
        "en": "Code {code} is not in the required value set {valueset}",
    },
    "binding-extensible": {
        "fr": "Le code {code} n'appartient pas au jeu de valeurs extensible {valueset}",
        "ar": "الرمز {code} لا ينتمي إلى مجموعة القيم القابلة للتوسيع {valueset}",
        "en": "Code {code} is not in the extensible value set {valueset}",
    },
    "binding-no-code": {
        "fr": "Aucun code fourni alors qu'un code du jeu de valeurs {valueset} est exigé",
        "ar": "لم يُقدَّم أي رمز بينما يلزم رمز من مجموعة القيم {valueset}",
        "en": "No code provided, and a code from value set {valueset} is required",
    },
    "valueset-unknown": {
        "fr": "Jeu de valeurs {valueset} inconnu : les codes liés n'ont pas été vérifiés",
        "ar": "مجموعة القيم {valueset} غير معروفة: لم يتم التحقق من الرموز المرتبطة",
        "en": "Value set {valueset} is unknown: bound codes were not checked",
    },
    "invariant": {
        "fr": "Contrainte {key} non respectée : {human}",
        "ar": "القيد {key} غير مستوفى: {human}",
        "en": "Constraint {key} failed: {human}",
    },
    "reference-target": {
        "fr": "Référence vers un {type} non autorisée ; cibles permises : {allowed}",
        "ar": "الإحالة إلى {type} غير مسموح بها؛ الأهداف المسموحة: {allowed}",
        "en": "Reference to a {type} is not allowed; allowed targets: {allowed}",
    },
    "reference-type-mismatch": {
        "fr": "Reference.type {declared} ne correspond pas à la référence {reference}",
        "ar": "Reference.type {declared} لا يطابق الإحالة {reference}",
        "en": "Reference.type {declared} does not match reference {reference}",
    },
    "reference-contained": {
        "fr": "La ressource contenue {reference} est introuvable",
        "ar": "المورد المضمَّن {reference} غير موجود",
        "en": "Contained resource {reference} not found",
    },
    "identifier-format": {
        "fr": "Identifiant invalide pour le système {system} : {detail}",
        "ar": "معرِّف غير صالح للنظام {system}: {detail}",
        "en": "Invalid identifier for system {system}: {detail}",
    },
    "slice-min": {
        "fr": "« {name} » : la tranche « {slice} » exige au moins {min} occurrence(s), {count} trouvée(s)",
        "ar": "«{name}»: الشريحة «{slice}» تتطلب {min} تكرار على الأقل، وُجد {count}",
        "en": "'{name}': slice '{slice}' requires at least {min}, found {count}",
    },
    "slice-max": {
        "fr": "« {name} » : la tranche « {slice} » autorise au plus {max} occurrence(s), {count} trouvée(s)",
        "ar": "«{name}»: الشريحة «{slice}» تسمح بـ {max} تكرار كحد أقصى، وُجد {count}",
        "en": "'{name}': slice '{slice}' allows at most {max}, found {count}",
    },
    "slice-closed": {
        "fr": "Cet élément ne correspond à aucune tranche définie pour « {name} » (découpage fermé)",
        "ar": "هذا العنصر لا يطابق أي شريحة معرَّفة لـ «{name}» (تقسيم مغلق)",
        "en": "This element does not match any slice defined for '{name}' (closed slicing)",
    },
    "slice-order": {
        "fr": "Les éléments de « {name} » ne suivent pas l'ordre des tranches ({slice})",
        "ar": "عناصر «{name}» لا تتبع ترتيب الشرائح ({slice})",
        "en": "Elements of '{name}' are not in slice order ({slice})",
    },
    "slicing-unsupported": {
        "fr": "Découpage de « {name} » non évaluable (discriminant {path}) : tranches non vérifiées",
        "ar": "تعذر تقييم تقسيم «{name}» (المميِّز {path}): لم يتم التحقق من الشرائح",
        "en": "Slicing of '{name}' cannot be evaluated (discriminator {path}): slices not checked",
    },
    "profile-unknown": {
        "fr": "Profil inconnu {profile} : la ressource n'a pas été validée contre lui",
        "ar": "ملف تعريف غير معروف {profile}: لم يتم التحقق من المورد وفقه",
        "en": "Unknown profile {profile}: the resource was not validated against it",
    },
    "profile-type": {
        "fr": "Le profil {profile} s'applique au type {expected}, pas à {type}",
        "ar": "ملف التعريف {profile} يخص النوع {expected} وليس {type}",
        "en": "Profile {profile} applies to type {expected}, not {type}",
    },
    "profile-conformance": {
        "fr": "L'élément n'est conforme à aucun des profils {profiles}",
        "ar": "العنصر غير مطابق لأي من ملفات التعريف {profiles}",
        "en": "The element conforms to none of the profiles {profiles}",
    },
    # problems of a StructureDefinition given to add_profile
    "sd-invalid": {
        "fr": "StructureDefinition invalide : {detail}",
        "ar": "StructureDefinition غير صالح: {detail}",
        "en": "Invalid StructureDefinition: {detail}",
    },
    "sd-base-unknown": {
        "fr": "Définition de base inconnue : {base}",
        "ar": "التعريف الأساسي غير معروف: {base}",
        "en": "Unknown base definition: {base}",
    },
    "sd-path-unknown": {
        "fr": "Chemin d'élément inconnu dans le profil : {path}",
        "ar": "مسار عنصر غير معروف في ملف التعريف: {path}",
        "en": "Unknown element path in profile: {path}",
    },
    "sd-cardinality": {
        "fr": "Cardinalité {min}..{max} invalide pour {path} (base {bmin}..{bmax})",
        "ar": "العددية {min}..{max} غير صالحة لـ {path} (الأساس {bmin}..{bmax})",
        "en": "Invalid cardinality {min}..{max} for {path} (base {bmin}..{bmax})",
    },
    "sd-type": {
        "fr": "Type {type} non permis pour {path} (types de base : {allowed})",
        "ar": "النوع {type} غير مسموح به لـ {path} (الأنواع الأساسية: {allowed})",
        "en": "Type {type} not allowed for {path} (base types: {allowed})",
    },
    "sd-slicing": {
        "fr": "Tranche {path} déclarée sans découpage (slicing) sur l'élément",
        "ar": "الشريحة {path} معرَّفة دون تقسيم (slicing) على العنصر",
        "en": "Slice {path} declared without slicing on the element",
    },
    "sd-slice-folded": {
        "fr": "Tranche {path} déclarée sans découpage : ses contraintes s'appliquent à tout l'élément",
        "ar": "الشريحة {path} معرَّفة دون تقسيم: تنطبق قيودها على العنصر بأكمله",
        "en": "Slice {path} declared without slicing: its constraints apply to the whole element",
    },
    "sd-children": {
        "fr": "Impossible de contraindre les enfants de {path} : type ambigu ({types})",
        "ar": "لا يمكن تقييد العناصر الفرعية لـ {path}: النوع غير محدد ({types})",
        "en": "Cannot constrain children of {path}: ambiguous type ({types})",
    },
    "sd-invariant": {
        "fr": "Invariant {key} non évaluable (ignoré) : {detail}",
        "ar": "تعذر تقييم القيد {key} (تم تجاهله): {detail}",
        "en": "Invariant {key} cannot be evaluated (skipped): {detail}",
    },
}

LANGS = ("fr", "ar", "en")


def message(kind: str, lang: str = "fr", /, **params: object) -> str:
    entry = CATALOG.get(kind)
    if entry is None:
        return kind
    template = entry.get(lang) or entry["en"]
    return template.format_map(_Missing(params))


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def pick_language(accept_language: str | None) -> str:
    """The catalog language to use for an ``Accept-Language`` header (fr when none fits)."""
    if not accept_language:
        return "fr"
    best, best_q = "fr", -1.0
    for part in accept_language.split(","):
        tag, _, q = part.strip().partition(";q=")
        lang = tag.strip().lower().split("-")[0]
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        if lang in LANGS and weight > best_q:
            best, best_q = lang, weight
    return best

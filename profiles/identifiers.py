"""Moroccan identifier systems: their URIs, labels and format rules, in one place.

Everything else derives from ``SYSTEMS``: the NamingSystem resources shipped with the
server (``naming_systems()``), the format constraints written in the profiles (a test keeps
their ``matches()`` patterns equal to the ones here) and the validator's identifier check.
Messages are in French, the working language of the funds, and name the identifier so a
clerk knows which field of the form to correct.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ehr.outcome import Issue
from ehr.security import prescription_number

SID = "https://fhir.sijill.ma/sid/"


@dataclass(frozen=True)
class IdentifierSystem:
    url: str
    name: str  # computer-friendly name, also the NamingSystem id
    label_fr: str
    label_ar: str
    pattern: str  # anchored regular expression, also used verbatim in the profiles' FHIRPath
    rule_fr: str  # the rule in words, quoted in error messages
    example: str
    responsible: str  # the body that issues the identifiers
    # Extra checks beyond the pattern (check digits, reserved ranges…): return a message or None.
    checker: Callable[[str], str | None] | None = None
    regex: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.pattern))


def _not_all_zero(value: str) -> str | None:
    # Funds never issue a number made only of zeros: it is what forms send for "unknown".
    return "ne peut pas être composé uniquement de zéros" if value.strip("0") == "" else None


_SYSTEMS = [
    IdentifierSystem(
        url=SID + "cin",
        name="cin",
        label_fr="Numéro de la carte nationale d'identité électronique (CIN)",
        label_ar="رقم البطاقة الوطنية للتعريف الإلكترونية",
        pattern=r"^[A-Z]{1,2}[0-9]{1,6}$",
        rule_fr="une ou deux lettres majuscules suivies de 1 à 6 chiffres, sans espace",
        example="BE123456",
        responsible="Direction Générale de la Sûreté Nationale (DGSN)",
        checker=lambda v: _not_all_zero(v.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")),
    ),
    IdentifierSystem(
        url=SID + "rnp",
        name="rnp",
        label_fr="Identifiant civil et social numérique (ICS) du Registre national de la population (RNP)",
        label_ar="المعرف المدني والاجتماعي الرقمي للسجل الوطني للسكان",
        pattern=r"^[0-9]{10}$",
        rule_fr="exactement 10 chiffres",
        example="1234567890",
        responsible="Agence Nationale des Registres (ANRE)",
        checker=_not_all_zero,
    ),
    IdentifierSystem(
        url=SID + "rsu",
        name="rsu",
        label_fr="Identifiant du ménage au Registre social unifié (RSU)",
        label_ar="معرف الأسرة في السجل الاجتماعي الموحد",
        pattern=r"^[0-9]{9}$",
        rule_fr="exactement 9 chiffres",
        example="512345678",
        responsible="Agence Nationale des Registres (ANRE)",
        checker=_not_all_zero,
    ),
    IdentifierSystem(
        url=SID + "cnss",
        name="cnss",
        label_fr="Numéro d'immatriculation à la CNSS",
        label_ar="رقم التسجيل في الصندوق الوطني للضمان الاجتماعي",
        pattern=r"^[0-9]{9}$",
        rule_fr="exactement 9 chiffres",
        example="112345678",
        responsible="Caisse Nationale de Sécurité Sociale (CNSS)",
        checker=_not_all_zero,
    ),
    IdentifierSystem(
        url=SID + "cnops",
        name="cnops",
        label_fr="Numéro d'affiliation à la CNOPS",
        label_ar="رقم الانخراط في الصندوق الوطني لمنظمات الاحتياط الاجتماعي",
        pattern=r"^[0-9]{6,10}$",
        rule_fr="de 6 à 10 chiffres",
        example="20123456",
        responsible="Caisse Nationale des Organismes de Prévoyance Sociale (CNOPS)",
        checker=_not_all_zero,
    ),
    IdentifierSystem(
        url=SID + "amo-tadamon",
        name="amo-tadamon",
        label_fr="Numéro d'immatriculation AMO Tadamon",
        label_ar="رقم التسجيل في نظام التأمين الإجباري الأساسي عن المرض تضامن",
        pattern=r"^[0-9]{9}$",
        rule_fr="exactement 9 chiffres",
        example="912345678",
        responsible="Caisse Nationale de Sécurité Sociale (CNSS), gestionnaire de l'AMO Tadamon",
        checker=_not_all_zero,
    ),
    IdentifierSystem(
        url=SID + "mutuelle",
        name="mutuelle",
        label_fr="Numéro d'adhérent à une mutuelle ou une assurance complémentaire",
        label_ar="رقم المنخرط في التعاضدية أو التأمين التكميلي",
        pattern=r"^[A-Z0-9][A-Z0-9/-]{2,19}$",
        rule_fr="de 3 à 20 caractères : lettres majuscules, chiffres, « / » ou « - », commençant par une lettre ou un chiffre",
        example="MGPAP-123456",
        responsible="La mutuelle ou l'assureur complémentaire de l'adhérent",
    ),
    IdentifierSystem(
        url=SID + "inpe",
        name="inpe",
        label_fr="Identifiant national des professionnels et établissements de santé (INPE)",
        label_ar="المعرف الوطني لمهنيي ومؤسسات الصحة",
        pattern=r"^[0-9]{9}$",
        rule_fr="exactement 9 chiffres",
        example="101234567",
        responsible="Agence Nationale de l'Assurance Maladie (ANAM)",
        checker=_not_all_zero,
    ),
    IdentifierSystem(
        url=SID + "claim",
        name="claim",
        label_fr="Numéro de la feuille de soins électronique",
        label_ar="رقم ورقة العلاج الإلكترونية",
        pattern=r"^[A-Z0-9][A-Z0-9-]{5,31}$",
        rule_fr="de 6 à 32 caractères : lettres majuscules, chiffres ou « - », commençant par une lettre ou un chiffre",
        example="FSE-2024-000123",
        responsible="Sijill (attribué à la création de la feuille de soins)",
    ),
    IdentifierSystem(
        url=prescription_number.SYSTEM,
        name="prescription",
        label_fr="Numéro de l'ordonnance électronique",
        label_ar="رقم الوصفة الطبية الإلكترونية",
        pattern=prescription_number.PATTERN,
        rule_fr="12 caractères en Base32 de Crockford (chiffres et lettres sauf I, L, O, U) en trois groupes de 4 "
                "séparés par « - », le dernier caractère de contrôle (algorithme de Damm)",
        example=prescription_number.EXAMPLE,
        responsible="Sijill (attribué au hasard par le serveur à la prescription, ehr.security.prescription_number)",
        checker=prescription_number.problem,
    ),
]

SYSTEMS: dict[str, IdentifierSystem] = {s.url: s for s in _SYSTEMS}
BY_NAME: dict[str, IdentifierSystem] = {s.name: s for s in _SYSTEMS}


def check(system: str, value: str) -> str | None:
    """None if ``value`` is a well-formed identifier of ``system`` (or the system is not one of
    ours, whose format is not ours to judge), else a French message naming the identifier."""
    spec = SYSTEMS.get(system)
    if spec is None:
        return None
    if not isinstance(value, str) or value == "":
        return f"{spec.label_fr} : valeur absente"
    if not spec.regex.fullmatch(value):
        hint = ""
        if spec.regex.fullmatch(value.upper().replace(" ", "")):
            hint = " (écrire en majuscules, sans espace : « " + value.upper().replace(" ", "") + " »)"
        return f"{spec.label_fr} invalide « {value} » : attendu {spec.rule_fr}, par ex. {spec.example}{hint}"
    if spec.checker is not None:
        problem = spec.checker(value)
        if problem:
            return f"{spec.label_fr} invalide « {value} » : {problem}"
    return None


def identifier_issue(identifier: dict, expression: str) -> Issue | None:
    """The issue for one FHIR Identifier (``{"system":…, "value":…}``) found at ``expression``."""
    system = identifier.get("system")
    if system not in SYSTEMS:
        return None
    message = check(system, identifier.get("value", ""))
    if message is None:
        return None
    return Issue("value", message, expression=(f"{expression}.value",))


def naming_systems() -> list[dict]:
    """One NamingSystem resource per identifier system, as stored in the server."""
    return [_naming_system(s) for s in _SYSTEMS]


def _naming_system(spec: IdentifierSystem) -> dict:
    return {
        "resourceType": "NamingSystem",
        "id": f"sijill-{spec.name}",
        "name": "".join(part.capitalize() for part in re.split(r"[-_]", spec.name)) + "Identifier",
        "status": "active",
        "kind": "identifier",
        "date": "2024-01-01",
        "publisher": "Sijill",
        "responsible": spec.responsible,
        "jurisdiction": [{"coding": [{"system": "urn:iso:std:iso:3166", "code": "MA"}]}],
        "description": f"{spec.label_fr} / {spec.label_ar}. Format : {spec.rule_fr} "
        f"(expression régulière `{spec.pattern}`), par ex. {spec.example}.",
        "usage": f"Identifier.system = {spec.url}",
        "uniqueId": [
            {"type": "uri", "value": spec.url, "preferred": True},
        ],
    }

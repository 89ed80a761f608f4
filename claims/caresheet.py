"""A care sheet (``Claim``) read into what the exchange works with, and its business rules.

The core has already checked the base structure; here each business problem becomes one
``Issue`` with the FHIRPath of the element to correct, and all of them are reported at once
(a clerk fixes a sheet in one go).  The same reading serves submission and adjudication, so a
stored Claim is never interpreted two ways.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import orjson

from claims.clock import local_date, now_us
from claims.money import CURRENCY, round_cent, to_decimal
from claims.uris import (
    ACTS,
    CLAIM_INFO_CATEGORY,
    CLAIM_NUMBER,
    CLAIM_TYPE,
    ICD10,
    INPE,
    MEDICINE,
    RELATED_CLAIM_RELATIONSHIP,
)
from ehr.outcome import FHIRError, Issue
from profiles.identifiers import check as check_identifier

# Which care setting a claim type is; an institutional claim at a public hospital is refined
# to ``hospital_public`` once the provider is known.
SETTING_OF_TYPE = {
    "professional": "ambulatory",
    "oral": "ambulatory",
    "vision": "ambulatory",
    "institutional": "hospital",
    "pharmacy": "pharmacy",
}
USES = ("claim", "preauthorization")
# The key letters (lettre-clé, the acts' leading letters) that tell an ambulatory sheet's kind, for
# the statistics: a consultation or visit of a specialist, then of a general practitioner, then lab work.
CARE_KINDS = (("specialist", ("CS", "CNPSY", "VS")), ("gp", ("C", "V")), ("lab", ("B",)))


@dataclass(frozen=True)
class Line:
    sequence: int
    system: str
    code: str
    service_date: date
    quantity: Decimal
    unit_price: Decimal | None
    submitted: Decimal  # net: what the provider asks for the line
    diagnoses: tuple[str, ...]  # ICD-10 codes the line is linked to (diagnosisSequence)
    index: int  # position in Claim.item, for expressions


@dataclass
class CareSheet:
    use: str
    claim_type: str
    care_setting: str
    identifier: str | None
    patient_id: str | None
    provider_ref: str | None  # "Practitioner/x", "Organization/y", "PractitionerRole/z"
    provider_inpe: str | None  # from Claim.provider.identifier, if the sheet carries it
    coverage_id: str | None
    preauth_refs: tuple[str, ...]
    prescription_id: str | None
    related_claim_id: str | None
    document_categories: frozenset[str]
    lines: list[Line] = field(default_factory=list)
    # A correction: the Claim it replaces (``related`` with relationship ``prior``) and where.
    corrects_claim_id: str | None = None
    corrects_path: str | None = None  # e.g. "Claim.related[0].claim"

    @property
    def service_date(self) -> date | None:
        return min((ln.service_date for ln in self.lines), default=None)

    @property
    def submitted(self) -> Decimal:
        return sum((ln.submitted for ln in self.lines), Decimal(0))

    @property
    def care_kind(self) -> str | None:
        """gp | specialist | lab for an ambulatory sheet whose acts say so (a specialist's
        consultation wins over lab work on the same sheet); None otherwise."""
        if self.care_setting != "ambulatory":
            return None
        letters = {ln.code.rstrip("0123456789") for ln in self.lines if ln.system == ACTS}
        return next((kind for kind, keys in CARE_KINDS if letters & set(keys)), None)

    def fingerprint(self) -> str:
        """What makes two submissions "the same care sheet": its lines and use, not its ids."""
        lines = [
            [ln.sequence, ln.system, ln.code, ln.service_date.isoformat(), str(ln.quantity), str(ln.submitted)]
            for ln in self.lines
        ]
        return hashlib.sha256(orjson.dumps([self.use, self.claim_type, lines])).hexdigest()


def today(tz: str = "Africa/Casablanca") -> date:
    """Today in Morocco by the claims clock (virtual in benchmarks, see ``claims.clock``)."""
    return local_date(now_us(), tz)


def local_reference_id(ref: object, res_type: str) -> str | None:
    """The id in ``{"reference": "<res_type>/<id>"}`` (relative or absolute), else None."""
    if not isinstance(ref, dict):
        return None
    value = ref.get("reference")
    if not isinstance(value, str):
        return None
    parts = value.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == res_type and parts[-1]:
        return parts[-1]
    if len(parts) >= 4 and parts[-2] == "_history" and parts[-4] == res_type:
        return parts[-3]
    return None


def any_reference(ref: object, types: tuple[str, ...]) -> str | None:
    for t in types:
        rid = local_reference_id(ref, t)
        if rid is not None:
            return f"{t}/{rid}"
    return None


def _date(value: object) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _coding(concept: object, system: str | None = None) -> dict | None:
    if not isinstance(concept, dict):
        return None
    for c in concept.get("coding") or []:
        if isinstance(c, dict) and c.get("code") and (system is None or c.get("system") == system):
            return c
    return None


def _money(value: object, where: str, issues: list[Issue]) -> Decimal | None:
    if value is None:
        return None
    amount = to_decimal(value.get("value")) if isinstance(value, dict) else None
    if amount is None:
        issues.append(Issue("required", "Montant absent", expression=(f"{where}.value",)))
        return None
    if value.get("currency") != CURRENCY:
        issues.append(Issue("value", f"Les montants sont en dirhams : currency doit être {CURRENCY}", expression=(f"{where}.currency",)))
    if amount < 0:
        issues.append(Issue("value", "Un montant ne peut pas être négatif", expression=(f"{where}.value",)))
    if amount != round_cent(amount):
        issues.append(Issue("value", "Un montant s'exprime au centime près", expression=(f"{where}.value",)))
    return amount


def read_care_sheet(claim: dict, *, tz: str = "Africa/Casablanca") -> tuple[CareSheet, list[Issue]]:
    """The sheet and every business problem found (empty list: acceptable)."""
    issues: list[Issue] = []
    use = claim.get("use")
    if use not in USES:
        issues.append(Issue("not-supported", f"Claim.use {use!r} : seuls « claim » et « preauthorization » sont traités", expression=("Claim.use",)))

    type_coding = _coding(claim.get("type"), CLAIM_TYPE)
    claim_type = type_coding["code"] if type_coding else ""
    if claim_type not in SETTING_OF_TYPE:
        issues.append(Issue("code-invalid", f"Claim.type doit être un code de {CLAIM_TYPE} parmi {sorted(SETTING_OF_TYPE)}", expression=("Claim.type",)))

    identifier = None
    for i, ident in enumerate(claim.get("identifier") or []):
        if isinstance(ident, dict) and ident.get("system") == CLAIM_NUMBER:
            identifier = ident.get("value")
            problem = check_identifier(CLAIM_NUMBER, identifier)
            if problem:
                issues.append(Issue("value", problem, expression=(f"Claim.identifier[{i}].value",)))
                identifier = None
            break
    else:
        issues.append(Issue("required", f"La feuille de soins doit porter son numéro (identifier de système {CLAIM_NUMBER})", expression=("Claim.identifier",)))

    patient_id = local_reference_id(claim.get("patient"), "Patient")
    if patient_id is None:
        issues.append(Issue("required", "Claim.patient doit référencer le patient (Patient/<id>)", expression=("Claim.patient",)))

    provider = claim.get("provider") if isinstance(claim.get("provider"), dict) else {}
    provider_ref = any_reference(provider, ("Practitioner", "PractitionerRole", "Organization"))
    provider_inpe = None
    ident = provider.get("identifier")
    if isinstance(ident, dict) and ident.get("system") == INPE:
        problem = check_identifier(INPE, ident.get("value"))
        if problem:
            issues.append(Issue("value", problem, expression=("Claim.provider.identifier.value",)))
        else:
            provider_inpe = ident["value"]
    if provider_ref is None and provider_inpe is None:
        issues.append(Issue("required", f"Claim.provider doit référencer le prestataire ou porter son INPE ({INPE})", expression=("Claim.provider",)))

    coverage_id, preauth_refs = None, ()
    insurance = claim.get("insurance") or []
    focal = [(i, ins) for i, ins in enumerate(insurance) if isinstance(ins, dict) and ins.get("focal") is True]
    if not focal:
        issues.append(Issue("required", "Claim.insurance doit désigner la couverture principale (focal = true)", expression=("Claim.insurance",)))
    else:
        i, ins = focal[0]
        coverage_id = local_reference_id(ins.get("coverage"), "Coverage")
        if coverage_id is None:
            issues.append(Issue("required", "La couverture principale doit référencer la Coverage du patient", expression=(f"Claim.insurance[{i}].coverage",)))
        preauth_refs = tuple(r for r in ins.get("preAuthRef") or [] if isinstance(r, str))

    diagnoses: dict[int, str] = {}
    for i, d in enumerate(claim.get("diagnosis") or []):
        coding = _coding(d.get("diagnosisCodeableConcept"), ICD10) if isinstance(d, dict) else None
        if coding and isinstance(d.get("sequence"), int):
            diagnoses[d["sequence"]] = coding["code"]

    documents = frozenset(
        c["code"]
        for s in claim.get("supportingInfo") or []
        if isinstance(s, dict) and (c := _coding(s.get("category"), CLAIM_INFO_CATEGORY))
    )

    lines = _read_lines(claim, use, claim_type, diagnoses, tz, issues)

    total = claim.get("total")
    if total is not None and lines:
        amount = _money(total, "Claim.total", issues)
        if amount is not None and amount != sum((ln.submitted for ln in lines), Decimal(0)):
            issues.append(Issue("value", "Claim.total doit être la somme des montants des lignes", expression=("Claim.total.value",)))

    related = None
    for r in claim.get("related") or []:
        if isinstance(r, dict) and (rid := local_reference_id(r.get("claim"), "Claim")):
            related = rid
            break
    corrects_claim_id, corrects_path = _corrected_claim(claim, issues)

    sheet = CareSheet(
        use=use or "",
        claim_type=claim_type,
        care_setting=SETTING_OF_TYPE.get(claim_type, "ambulatory"),
        identifier=identifier,
        patient_id=patient_id,
        provider_ref=provider_ref,
        provider_inpe=provider_inpe,
        coverage_id=coverage_id,
        preauth_refs=preauth_refs,
        prescription_id=local_reference_id(claim.get("prescription"), "MedicationRequest"),
        related_claim_id=corrects_claim_id or related,
        document_categories=documents,
        lines=lines,
        corrects_claim_id=corrects_claim_id,
        corrects_path=corrects_path,
    )
    return sheet, issues


def _corrected_claim(claim: dict, issues: list[Issue]) -> tuple[str | None, str | None]:
    """The Claim a correction replaces: the one ``related`` entry whose relationship is ``prior``."""
    found: list[tuple[str | None, str]] = []
    for i, r in enumerate(claim.get("related") or []):
        coding = _coding(r.get("relationship"), RELATED_CLAIM_RELATIONSHIP) if isinstance(r, dict) else None
        if coding is not None and coding["code"] == "prior":
            found.append((local_reference_id(r.get("claim"), "Claim"), f"Claim.related[{i}].claim"))
    if not found:
        return None, None
    if len(found) > 1:
        issues.append(Issue("value", "Une correction remplace une seule feuille de soins (un seul related de type prior)",
                            expression=(found[1][1],)))
    claim_id, path = found[0]
    if claim_id is None:
        issues.append(Issue("required", "La feuille corrigée doit être référencée par son identifiant (Claim/<id>)",
                            expression=(path,)))
    return claim_id, path


def _read_lines(claim: dict, use, claim_type: str, diagnoses: dict[int, str], tz: str, issues: list[Issue]) -> list[Line]:
    items = claim.get("item") or []
    if not items:
        issues.append(Issue("required", "La feuille de soins doit contenir au moins une ligne (Claim.item)", expression=("Claim.item",)))
    expected_system = MEDICINE if claim_type == "pharmacy" else ACTS
    now = today(tz)
    lines, seen = [], set()
    for i, item in enumerate(items):
        where = f"Claim.item[{i}]"
        problems_before = len(issues)
        seq = item.get("sequence")
        if not isinstance(seq, int) or seq in seen:
            issues.append(Issue("value", "Chaque ligne a un numéro de séquence unique", expression=(f"{where}.sequence",)))
        seen.add(seq)
        coding = _coding(item.get("productOrService"))
        if coding is None or not coding.get("system"):
            issues.append(Issue("required", "La ligne doit coder l'acte ou le médicament (system et code)", expression=(f"{where}.productOrService",)))
        elif coding["system"] != expected_system:
            kind = "médicament (code-barres EAN-13)" if claim_type == "pharmacy" else "acte (nomenclature nationale)"
            issues.append(Issue("code-invalid", f"Code de {kind} attendu : system {expected_system}", expression=(f"{where}.productOrService.coding[0].system",)))
        served = _date(item.get("servicedDate")) or _date((item.get("servicedPeriod") or {}).get("start"))
        if served is None:
            issues.append(Issue("required", "La ligne doit porter la date des soins (servicedDate)", expression=(f"{where}.servicedDate",)))
        elif served > now and use == "claim":
            issues.append(Issue("value", "La date des soins ne peut pas être dans le futur", expression=(f"{where}.servicedDate",)))
        quantity = Decimal(1)
        if item.get("quantity") is not None:
            quantity = to_decimal((item.get("quantity") or {}).get("value"))
            if quantity is None or quantity <= 0:
                issues.append(Issue("value", "La quantité doit être positive", expression=(f"{where}.quantity.value",)))
                quantity = Decimal(1)
        unit = _money(item.get("unitPrice"), f"{where}.unitPrice", issues)
        net = _money(item.get("net"), f"{where}.net", issues)
        if net is None and unit is not None:
            net = round_cent(unit * quantity)
        if net is None:
            issues.append(Issue("required", "La ligne doit porter son montant (net ou unitPrice) en MAD", expression=(f"{where}.net",)))
        elif unit is not None and round_cent(unit * quantity) != net:
            issues.append(Issue("value", "net doit valoir quantity × unitPrice", expression=(f"{where}.net.value",)))
        linked = []
        for j, ds in enumerate(item.get("diagnosisSequence") or []):
            if ds not in diagnoses:
                issues.append(Issue("value", f"Le diagnostic n° {ds} n'existe pas dans Claim.diagnosis (CIM-10)", expression=(f"{where}.diagnosisSequence[{j}]",)))
            else:
                linked.append(diagnoses[ds])
        if len(issues) == problems_before:
            lines.append(Line(seq, coding["system"], coding["code"], served, quantity, unit, net, tuple(linked), i))
    return lines


def require_valid(claim: dict, *, tz: str = "Africa/Casablanca") -> CareSheet:
    sheet, issues = read_care_sheet(claim, tz=tz)
    if issues:
        raise FHIRError(422, issues)
    return sheet

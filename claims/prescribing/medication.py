"""The checks of a prescription line (``MedicationRequest``) against the patient's record and the
national medicines list.

The medicine is read from ``medicationCodeableConcept``: a pack of the list (EAN-13, system
``CodeSystem/medicament``) or an active substance (ATC).  A line named only in words (or by a
``Medication`` reference) cannot be matched against the list and is not checked.  Substances are
compared by ATC code and by the ingredients of the DCI ("Amoxicilline + acide clavulanique"
contains amoxicillin), so a combination duplicates or triggers an allergy to its parts.
Every read is an indexed search of the patient's records (subject, status) that the caller may see.
The lines written together (one transaction Bundle: none is stored before all are checked) are
also checked against each other: a later line of the same patient duplicates an earlier one.
"""
from __future__ import annotations

import unicodedata
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from claims.lookups import fund_code
from claims.ports import Product, reference_for
from claims.prescribing.findings import Finding, find
from claims.uris import ATC, MEDICINE
from ehr.interactions.context import Context

_WHERE = "MedicationRequest.medicationCodeableConcept"
_DAYS = {"s": Decimal(1) / 86400, "min": Decimal(1) / 1440, "h": Decimal(1) / 24, "d": Decimal(1), "wk": Decimal(7),
         "mo": Decimal(30), "a": Decimal(365)}
_INACTIVE_ALLERGY = {"inactive", "resolved"}
_UNCONFIRMED_ALLERGY = {"refuted", "entered-in-error"}


async def medication_findings(ctx: Context, line: dict, patient: str, today: date) -> list[Finding]:
    codes, atcs = _medicine_codes(line.get("medicationCodeableConcept"))
    if not codes and not atcs:
        return []
    medicines = (await reference_for(ctx.conn)).medicines
    products = await medicines.products(ctx.conn, codes, atcs, today)
    by_code = {p.code: p for p in products}
    prescribed = [by_code[c] for c in codes if c in by_code] or [p for p in products if p.atc in atcs]
    if not prescribed:
        concept = line["medicationCodeableConcept"]
        return [Finding("not-listed", _WHERE, words={"medicine": concept.get("text") or ", ".join(sorted({*codes, *atcs}))})]
    substances = set().union(*(_substances(p) for p in prescribed))
    together = _written_together(ctx, line, patient, substances, today)
    return [
        *await _duplicate_therapy(ctx, line, patient, substances, prescribed[0], today, together),
        *await _allergies(ctx, patient, substances, prescribed[0], today),
        *await _not_reimbursed(ctx, patient, prescribed, today),
        *_dose(line, prescribed if len(codes) else []),
    ]


def _medicine_codes(concept) -> tuple[list[str], list[str]]:
    codings = [c for c in (concept or {}).get("coding") or () if isinstance(c, dict) and isinstance(c.get("code"), str)]
    return ([c["code"] for c in codings if c.get("system") == MEDICINE],
            [c["code"] for c in codings if c.get("system") == ATC])


def _fold(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(ch)).strip()


def _substances(p: Product) -> set[str]:
    """The ATC code and each ingredient of the DCI, folded."""
    return {*(("atc:" + p.atc,) if p.atc else ()), *(_fold(part) for part in p.dci.split("+") if part.strip())}


async def _substances_of(ctx: Context, concepts: list, today: date) -> list[set[str]]:
    """The substances of each coded medicine (one lookup of the list for all of them)."""
    wanted = [_medicine_codes(c) for c in concepts]
    products = await (await reference_for(ctx.conn)).medicines.products(
        ctx.conn, {c for codes, _ in wanted for c in codes}, {a for _, atcs in wanted for a in atcs}, today)
    out = []
    for codes, atcs in wanted:
        found = [p for p in products if p.code in codes or p.atc in atcs]
        out.append(set().union(*(_substances(p) for p in found)) | {"atc:" + a for a in atcs})
    return out


async def _duplicate_therapy(ctx: Context, line: dict, patient: str, substances: set[str], product: Product,
                             today: date, together: tuple[str, ...]) -> list[Finding]:
    running = [r for r in await find(ctx, "MedicationRequest", [("subject", patient), ("status", "active")])
               if r.get("id") != line.get("id") and _running(r, today)]
    theirs = await _substances_of(ctx, [r.get("medicationCodeableConcept") for r in running], today)
    stored = [f"MedicationRequest/{r['id']}" for r, s in zip(running, theirs) if s & substances]
    same = tuple(dict.fromkeys([*stored, *together]))
    return [Finding("DUPTHPY", _WHERE, same, {"substance": product.dci})] if same else []


def _written_together(ctx: Context, line: dict, patient: str, substances: set[str], today: date) -> tuple[str, ...]:
    """The earlier lines of this request for the patient sharing a substance with ``line``, which
    is then remembered for the lines after it (the request's ``ctx.shared``)."""
    earlier: list[tuple[str, set[str]]] = ctx.shared.setdefault(("lines written together", patient), [])
    same = tuple(ref for ref, theirs in earlier if theirs & substances and ref != f"MedicationRequest/{line.get('id')}")
    if line.get("status") == "active" and _running(line, today) and isinstance(line.get("id"), str):
        earlier.append((f"MedicationRequest/{line['id']}", substances))
    return same


def _running(request: dict, today: date) -> bool:
    """Not past its validity period, nor past its expected supply from the day it was written."""
    dispense = request.get("dispenseRequest") or {}
    end = (dispense.get("validityPeriod") or {}).get("end")
    if isinstance(end, str) and end[:10] < today.isoformat():
        return False
    supply, authored = dispense.get("expectedSupplyDuration") or {}, request.get("authoredOn")
    days = _days(supply.get("value"), supply.get("code") or supply.get("unit"))
    if days is not None and isinstance(authored, str):
        try:
            return date.fromisoformat(authored[:10]) + timedelta(days=float(days)) >= today
        except ValueError:
            return True
    return True


def _days(value, unit) -> Decimal | None:
    factor = _DAYS.get({"day": "d", "days": "d", "jour": "d", "jours": "d"}.get(unit, unit)) if unit else None
    return Decimal(str(value)) * factor if isinstance(value, (int, float)) and factor is not None else None


async def _allergies(ctx: Context, patient: str, substances: set[str], product: Product, today: date) -> list[Finding]:
    recorded = [a for a in await find(ctx, "AllergyIntolerance", [("patient", patient)]) if _in_force(a)]
    theirs = await _substances_of(ctx, [a.get("code") for a in recorded], today)
    atcs = {s.removeprefix("atc:") for s in substances if s.startswith("atc:")}
    hit = tuple(
        f"AllergyIntolerance/{a['id']}" for a, s in zip(recorded, theirs)
        if s & substances or _named(a.get("code"), substances) or _class_of(a.get("code"), atcs)
    )
    return [Finding("ALGY", _WHERE, hit, {"substance": product.dci})] if hit else []


def _in_force(allergy: dict) -> bool:
    def codes(element: str) -> set:
        return {c.get("code") for c in (allergy.get(element) or {}).get("coding") or () if isinstance(c, dict)}

    return not codes("clinicalStatus") & _INACTIVE_ALLERGY and not codes("verificationStatus") & _UNCONFIRMED_ALLERGY


def _named(concept, substances: set[str]) -> bool:
    """An allergy recorded in words ("Amoxicilline") or by a coding's display."""
    concept = concept or {}
    names = [concept.get("text"), *((c or {}).get("display") for c in concept.get("coding") or ())]
    return any(isinstance(n, str) and _fold(n) in substances for n in names)


def _class_of(concept, atcs: set[str]) -> bool:
    """An allergy to an ATC class (J01C, the penicillins) covers its substances."""
    return any(c.get("system") == ATC and isinstance(c.get("code"), str) and any(a.startswith(c["code"]) for a in atcs)
               for c in (concept or {}).get("coding") or () if isinstance(c, dict))


async def _not_reimbursed(ctx: Context, patient: str, prescribed: list[Product], today: date) -> list[Finding]:
    """The patient's funds that reimburse none of the prescribed packs (each fund its own column of
    the list, else the national one)."""
    if any(p.reimbursable and not p.funds for p in prescribed):
        return []  # reimbursed by every fund: no need to read the patient's coverage
    refusing = [f for f in await _funds(ctx, patient, today) if not any(p.reimbursed_by(f) for p in prescribed)]
    return [Finding("not-reimbursed", _WHERE, words={"product": prescribed[0].name, "fund": ", ".join(refusing)})] if refusing else []


async def _funds(ctx: Context, patient: str, today: date) -> list[str]:
    """The funds of the patient's coverages in force today."""
    day = today.isoformat()
    payors = {
        ref.removeprefix("Organization/")
        for c in await find(ctx, "Coverage", [("beneficiary", patient), ("status", "active")])
        if ((c.get("period") or {}).get("start") or day)[:10] <= day <= ((c.get("period") or {}).get("end") or day)[:10]
        for p in c.get("payor") or () if isinstance(ref := (p or {}).get("reference"), str) and ref.startswith("Organization/")
    }
    if not payors:
        return []
    orgs = {o["id"]: o for o in await find(ctx, "Organization", [("_id", ",".join(sorted(payors)))])}
    return sorted(fund_code(orgs.get(i), i) for i in payors)


def _dose(line: dict, products: list[Product]) -> list[Finding]:
    """The daily dose against the pack's usual range (units of intake a day), where the list has it."""
    if len(products) != 1 or (products[0].dose_min is None and products[0].dose_max is None):
        return []
    p, daily = products[0], _daily_units(line, products[0])
    if daily is None:
        return []
    words = {"dose": _number(daily), "product": p.name}
    if p.dose_max is not None and daily > p.dose_max:
        return [Finding("DOSEHINDA", "MedicationRequest.dosageInstruction", words={**words, "limit": _number(p.dose_max)})]
    if p.dose_min is not None and daily < p.dose_min:
        return [Finding("DOSELINDA", "MedicationRequest.dosageInstruction", words={**words, "limit": _number(p.dose_min)})]
    return []


def _daily_units(line: dict, product: Product) -> Decimal | None:
    total, known = Decimal(0), False
    for d in line.get("dosageInstruction") or ():
        dose = next((r.get("doseQuantity") or (r.get("doseRange") or {}).get("high") for r in d.get("doseAndRate") or ()
                     if isinstance(r, dict)), None)
        repeat = ((d.get("timing") or {}).get("repeat")) or {}
        per_day = _per_day(repeat)
        units = _units(dose, product)
        if units is None or per_day is None:
            continue
        total, known = total + units * per_day, True
    return total if known else None


def _per_day(repeat: dict) -> Decimal | None:
    frequency, period = repeat.get("frequencyMax") or repeat.get("frequency") or 1, repeat.get("period")
    days = _days(period, repeat.get("periodUnit")) if period else None
    return Decimal(frequency) / days if days else None


def _units(dose, product: Product) -> Decimal | None:
    """Units of intake of one dose: as written, or milligrams over the pack's strength in mg."""
    if not isinstance(dose, dict) or not isinstance(dose.get("value"), (int, float)):
        return None
    value, unit = Decimal(str(dose["value"])), (dose.get("code") or dose.get("unit") or "")
    if unit != "mg":
        return value
    try:
        number, _, strength_unit = product.strength.partition(" ")
        return value / Decimal(number.replace(",", ".")) if strength_unit == "mg" else None
    except (InvalidOperation, ZeroDivisionError):
        return None


def _number(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01")).normalize(), "f")

"""The pharmacy care sheet a set of dispenses makes, and what each party pays for it.

``sheet_for`` turns the dispenses of one patient at one pharmacy into a pharmacy ``Claim``: one
line per dispense (the pack's EAN-13, the quantity, the public price), the prescription lines'
diagnoses (``MedicationRequest.reasonCode``, ICD-10) as ``Claim.diagnosis`` linked to their
lines — how an ALD patient's treatment is paid at the ALD rate — the patient's AMO coverage in
force, and a sheet number derived from the dispenses (billing the same dispenses again is a
resubmission of the same sheet).  ``preview`` runs the adjudication engine on it, as the worker
will once it is submitted: per line the base, the fund's share and the patient's share, and
whether the fund pays the pharmacy (tiers payant).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from claims.adjudication.engine import adjudicate
from claims.adjudication.model import ClaimFacts, Decision, Dispense, Prescription, ProviderFacts
from claims.adjudication.ruleset import rulesets
from claims.caresheet import any_reference, local_reference_id, read_care_sheet, today
from claims.coverage import coverage_facts, payor_refs, route
from claims.lookups import patient_records, resources_by_id
from claims.money import money
from claims.ports import reference_for
from claims.prescription_lines import codes_of, read_line
from claims.settings import get_claims_settings
from claims.uris import ATC, CLAIM_NUMBER, CLAIM_TYPE, ICD10, MEDICINE
from ehr.outcome import FHIRError
from ehr.search.access import AccessFilter
from ehr.store import repository


@dataclass
class PharmacySheet:
    claim: dict
    coverage_id: str
    dispenses: list[dict]
    lines: dict[str, dict]  # MedicationRequest id -> resource


def _bad(message: str, where: str = "Parameters.parameter") -> FHIRError:
    return FHIRError.of(422, "business-rule", message, where)


async def _dispenses(conn, ids: list[str], access: AccessFilter | None) -> list[dict]:
    if not ids:
        raise FHIRError.of(400, "required", "Indiquez les dispensations à facturer (paramètre dispense)", "Parameters.parameter")
    out = []
    for dispense_id in ids:
        stored = await repository.current(conn, "MedicationDispense", dispense_id, access=access)
        if stored is None or stored.deleted:
            raise FHIRError.of(422, "not-found", f"MedicationDispense/{dispense_id} est inconnue", "Parameters.parameter")
        out.append(stored.resource())
    return out


def _served(dispense: dict, tz: str) -> date:
    when = dispense.get("whenHandedOver") or dispense.get("whenPrepared")
    return date.fromisoformat(when[:10]) if isinstance(when, str) and len(when) >= 10 else today(tz)


async def sheet_for(conn, ids: list[str], access: AccessFilter | None) -> PharmacySheet:
    tz = get_claims_settings().timezone
    dispenses = await _dispenses(conn, ids, access)
    patients = {local_reference_id(d.get("subject"), "Patient") for d in dispenses}
    if len(patients) != 1 or None in patients:
        raise _bad("Une feuille de soins est celle d'un seul patient : les dispensations doivent le désigner (subject)")
    providers = {any_reference((d.get("performer") or [{}])[0].get("actor"), ("Organization", "PractitionerRole", "Practitioner"))
                 for d in dispenses}
    if len(providers) != 1 or None in providers:
        raise _bad("Les dispensations doivent désigner la même pharmacie (performer.actor)")
    patient_id, provider = patients.pop(), providers.pop()
    line_ids = [local_reference_id((d.get("authorizingPrescription") or [{}])[0], "MedicationRequest") for d in dispenses]
    if None in line_ids or any(d.get("status") != "completed" for d in dispenses):
        raise _bad("Seules les dispensations remises (completed) sur ordonnance se facturent")
    lines = {k[1]: v for k, v in (await resources_by_id(conn, [("MedicationRequest", i) for i in line_ids])).items()}
    served = [_served(d, tz) for d in dispenses]
    coverage_id = await _coverage(conn, patient_id, min(served))
    reference = await reference_for(conn)
    diagnoses: list[str] = []
    items = []
    for i, (d, line_id, day) in enumerate(zip(dispenses, line_ids, served)):
        line = read_line(lines[line_id])
        packs = sorted(codes_of(d.get("medicationCodeableConcept"), MEDICINE))
        atc = codes_of(d.get("medicationCodeableConcept"), ATC) | line.atc
        # Listed at its public price whether the patient's fund reimburses it or not: the fund's
        # adjudication decides (a pack it does not reimburse is the patient's to pay).
        listed = await reference.medicines.products(conn, packs[:1], (), day) if packs else []
        pack = next((p for p in listed if not atc or p.atc in atc), None)
        if pack is None:
            raise _bad(f"MedicationDispense/{d['id']} : présentation inconnue de la liste des médicaments "
                       f"(code {MEDICINE} de la substance délivrée)")
        for icd in line.diagnoses:
            if icd not in diagnoses:
                diagnoses.append(icd)
        qty = Decimal(str(d["quantity"]["value"]))
        items.append({
            "sequence": i + 1, "productOrService": {"coding": [{"system": MEDICINE, "code": pack.code}]},
            "servicedDate": day.isoformat(), "quantity": {"value": d["quantity"]["value"]},
            "unitPrice": money(pack.ppv), "net": money(pack.ppv * qty),
            **({"diagnosisSequence": [diagnoses.index(c) + 1 for c in line.diagnoses]} if line.diagnoses else {}),
        })
    number = "PH-" + hashlib.sha256(",".join(sorted(ids)).encode()).hexdigest()[:24].upper()
    claim = {
        "resourceType": "Claim", "status": "active", "use": "claim",
        "identifier": [{"system": CLAIM_NUMBER, "value": number}],
        "type": {"coding": [{"system": CLAIM_TYPE, "code": "pharmacy"}]},
        "patient": {"reference": f"Patient/{patient_id}"}, "created": today(tz).isoformat(),
        "provider": {"reference": provider}, "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/{coverage_id}"}}],
        "diagnosis": [{"sequence": n + 1, "diagnosisCodeableConcept": {"coding": [{"system": ICD10, "code": c}]}}
                      for n, c in enumerate(diagnoses)],
        "item": items,
        "total": money(sum((Decimal(str(it["net"]["value"])) for it in items), Decimal(0))),
    }
    if not claim["diagnosis"]:
        del claim["diagnosis"]
    return PharmacySheet(claim, coverage_id, dispenses, lines)


async def _coverage(conn, patient_id: str, on: date) -> str:
    """The patient's AMO coverage in force on the day (the fund the sheet is routed to)."""
    covs = (await patient_records(conn, [patient_id], ["Coverage"]))[patient_id]
    orgs = await resources_by_id(conn, payor_refs(covs))
    facts = [f for c in covs if (f := coverage_facts(c, orgs))]
    primary, _ = route(patient_id, None, facts, on, rulesets())
    if primary is None:
        raise _bad(f"Patient/{patient_id} n'a pas de couverture AMO en vigueur le {on.isoformat()}")
    return primary.id


async def preview(conn, sheet: PharmacySheet) -> tuple[Decision, ClaimFacts]:
    """The decision the worker would take on the sheet now (no history: duplicates and ceilings
    are the worker's)."""
    tz = get_claims_settings().timezone
    care, _ = read_care_sheet(sheet.claim, tz=tz)
    covs = (await patient_records(conn, [care.patient_id], ["Coverage"]))[care.patient_id]
    orgs = await resources_by_id(conn, payor_refs(covs))
    cov = next(f for c in covs if c["id"] == sheet.coverage_id and (f := coverage_facts(c, orgs)))
    rules = rulesets().version(cov.fund_code, care.service_date)
    if rules is None:
        raise _bad(f"L'organisme {cov.fund_code} n'a pas de règles en vigueur le {care.service_date.isoformat()}")
    reference = await reference_for(conn)
    wanted = {(ln.code, ln.service_date) for ln in care.lines}
    facts = ClaimFacts(
        sheet=care, ledger_id=0, fund_code=cov.fund_code, received=today(tz), coverage=cov,
        provider=ProviderFacts(care.provider_ref, None, True, False),
        prices=await reference.medicines.bases(conn, cov.fund_code, wanted), exemptions=cov.exemptions,
        dispenses=[Dispense(d["id"], codes_of(d.get("medicationCodeableConcept"), MEDICINE) | codes_of(d.get("medicationCodeableConcept"), ATC),
                            ln.service_date, ln.quantity, local_reference_id(d["authorizingPrescription"][0], "MedicationRequest"),
                            d["status"]) for d, ln in zip(sheet.dispenses, care.lines)],
        prescriptions={i: Prescription(i, r.get("status", ""), None, codes_of(r.get("medicationCodeableConcept"), ATC)
                                       | codes_of(r.get("medicationCodeableConcept"), MEDICINE)) for i, r in sheet.lines.items()},
        conditions=await reference.conditions.catalog(conn, care.service_date),
    )
    return adjudicate(facts, rules), facts

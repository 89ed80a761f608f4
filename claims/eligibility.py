"""Rights check before care: ``POST /fhir/CoverageEligibilityRequest`` → immediate response.

The request names the patient by reference or by identifier (``patient.identifier``: CIN, RNP,
a fund's insurance number — what the patient at the desk shows), resolved here.

Answered from two indexed queries (the patient's Coverages through the compartment index, then
their funds) and the funds' rule sets: which fund, which regime, in force on the date or not,
the dependants covered through the patient (or the subscriber they depend on), the ALD/ALC
exemptions granted, the patient's share per care setting, whether the fund pays the provider
directly (tiers payant) and where a pre-authorisation is required.  The request and the
response are stored (an audit trail of rights checks); the answer is ``201`` with the
CoverageEligibilityResponse as body and Location.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from claims.adjudication.model import CoverageFacts
from claims.adjudication.ruleset import CARE_SETTINGS, RulesetVersion, rulesets
from claims.caresheet import local_reference_id, today
from claims.clock import now_us, to_instant
from claims.coverage import coverage_facts, payor_refs
from claims.lookups import patient_records, patients_by_identifier, resources_by_id
from claims.ports import LongTermCondition, reference_for
from claims.settings import get_claims_settings
from claims.transition import Cover, cover_on, next_step_extension
from claims.uris import ALD, REGIME, SD, SUBSCRIBER_RELATIONSHIP
from ehr.hooks import submission
from ehr.interactions.context import Context, Result, store_many
from ehr.interactions.preconditions import new_id
from ehr.outcome import FHIRError
from ehr.store.repository import NewVersion

BENEFIT_TYPE = "http://terminology.hl7.org/CodeSystem/benefit-type"
CARE_SETTING_CS = "https://fhir.sijill.ma/CodeSystem/care-setting"
EXT_TIERS_PAYANT = SD + "tiers-payant"
EXT_REGIME = SD + "amo-regime"
EXT_DEPENDANT = SD + "coverage-dependant"
EXT_RELATIONSHIP = SD + "coverage-relationship"
_SETTING_FR = {
    "ambulatory": "Soins ambulatoires", "pharmacy": "Pharmacie", "hospital": "Hospitalisation (secteur privé)",
    "hospital_public": "Hospitalisation (secteur public)",
}


def _served_on(req: dict) -> date:
    for value in (req.get("servicedDate"), (req.get("servicedPeriod") or {}).get("start")):
        if isinstance(value, str):
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                raise FHIRError.of(422, "value", f"Date invalide {value!r}", "CoverageEligibilityRequest.servicedDate") from None
    return today(get_claims_settings().timezone)


def _percent(rate: Decimal) -> int:
    return int((1 - rate) * 100)


def _items(rules: RulesetVersion | None, regime: str | None, cover: Cover, conditions: dict[str, LongTermCondition]) -> list[dict]:
    """Benefits per care setting (coverage in force) and per ALD/ALC held (also under transition)."""
    if rules is None or rules.complementary is not None:
        return []
    items = []
    for setting in CARE_SETTINGS if cover.state == "in-force" else ():
        item = {
            "category": {"coding": [{"system": CARE_SETTING_CS, "code": setting, "display": _SETTING_FR[setting]}]},
            "name": _SETTING_FR[setting],
            "unit": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/benefit-unit", "code": "individual"}]},
            "term": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/benefit-term", "code": "annual"}]},
            "benefit": [{"type": {"coding": [{"system": BENEFIT_TYPE, "code": "copay-percent"}]},
                         "allowedUnsignedInt": _percent(rules.rate(setting, regime))}],
            "authorizationRequired": setting in rules.preauthorization.care_settings
            or (setting == "hospital_public" and "hospital" in rules.preauthorization.care_settings),
            "extension": [{"url": EXT_TIERS_PAYANT, "valueBoolean": setting in rules.tiers_payant}],
        }
        items.append(item)
    for ex in cover.exemptions:
        ald = conditions.get(ex.code)
        items.append({
            "category": {"coding": [{"system": ALD, "code": ex.code, "display": ald.fr if ald else ex.code}]},
            "name": f"ALD/ALC : {ald.fr if ald else ex.code}",
            "description": ald.ar if ald else None,
            "benefit": [{"type": {"coding": [{"system": BENEFIT_TYPE, "code": "copay-percent"}]},
                         "allowedUnsignedInt": _percent(rules.ald_rate)}],
            "extension": [{"url": EXT_TIERS_PAYANT, "valueBoolean": "ald" in rules.tiers_payant}],
        })
        if items[-1]["description"] is None:
            del items[-1]["description"]
    return items


def _insurance(cov: CoverageFacts, all_covs: list[CoverageFacts], patient_id: str, on: date,
               conditions: dict[str, LongTermCondition]) -> dict:
    rules = rulesets().version(cov.fund_code, on)
    cover = cover_on(cov, on)
    entry: dict = {"coverage": {"reference": f"Coverage/{cov.id}"}, "inforce": cover.state == "in-force"}
    period = {}
    if cov.start:
        period["start"] = cov.start.isoformat()
    if cov.end:
        period["end"] = cov.end.isoformat()
    if period:
        entry["benefitPeriod"] = period
    ext = []
    if cov.regime:
        ext.append({"url": EXT_REGIME, "valueCoding": {"system": REGIME, "code": cov.regime}})
    if cov.relationship:
        ext.append({"url": EXT_RELATIONSHIP, "valueCoding": {"system": SUBSCRIBER_RELATIONSHIP, "code": cov.relationship}})
    for dep in all_covs:
        if dep.subscriber_id == patient_id and dep.beneficiary_id != patient_id and dep.fund_ref == cov.fund_ref and dep.in_force(on):
            ext.append({"url": EXT_DEPENDANT, "valueReference": {"reference": f"Patient/{dep.beneficiary_id}"}})
    if (step := next_step_extension(cover)) is not None:
        ext.append(step)
    if ext:
        entry["extension"] = ext
    items = _items(rules, cov.regime, cover, conditions)
    if items:
        entry["item"] = items
    return entry


def _disposition(mine: list[CoverageFacts], on: date) -> str:
    """In force, in an ALD transition, or ended — with what comes next rather than a bare "no"."""
    in_force = [c for c in mine if c.in_force(on)]
    if in_force:
        return f"Couvert(e) par {', '.join(sorted({c.fund_code for c in in_force}))} à la date du {on.isoformat()}"
    said = next((text for c in mine if (text := cover_on(c, on).text("fr"))), None)
    bare = f"Aucune couverture en vigueur à la date du {on.isoformat()}"
    return said if said and "transition" in said else (f"{bare}. {said}" if said else bare)


async def _patient(ctx: Context, req: dict) -> tuple[str | None, dict | None]:
    """(patient id, identifier): the patient named by reference, or by identifier — resolved here,
    None when no single patient carries it."""
    named = req.get("patient")
    patient_id = local_reference_id(named, "Patient")
    if patient_id is not None:
        return patient_id, None
    ident = named.get("identifier") if isinstance(named, dict) else None
    if not isinstance(ident, dict) or not isinstance(ident.get("system"), str) or not isinstance(ident.get("value"), str):
        raise FHIRError.of(422, "required", "CoverageEligibilityRequest.patient doit référencer le patient ou porter "
                           "son identifiant (CIN, RNP, numéro d'immatriculation)", "CoverageEligibilityRequest.patient")
    found = await patients_by_identifier(ctx.conn, ident["system"], ident["value"])
    return (found[0] if len(found) == 1 else None), {"system": ident["system"], "value": ident["value"]}


def _named(patient_id: str | None, identifier: dict | None, covered: bool) -> dict:
    """The patient as the answer names them.  Asked by identifier, the answer gives the patient's
    id only with a coverage to report: an identifier nobody carries and a patient without any
    coverage get the same answer, so the check tells no one who is registered."""
    if identifier is None:
        return {"reference": f"Patient/{patient_id}"}
    return {"reference": f"Patient/{patient_id}", "identifier": identifier} if covered else {"identifier": identifier}


@submission("CoverageEligibilityRequest", instead="une nouvelle vérification des droits est une nouvelle demande (POST)")
async def check_eligibility(ctx: Context, req: dict, res_id: str | None = None) -> Result:
    patient_id, identifier = await _patient(ctx, req)
    on = _served_on(req)
    records = (await patient_records(ctx.conn, [patient_id], ["Patient", "Coverage"]))[patient_id] if patient_id else []
    if identifier is None and not any(r["resourceType"] == "Patient" for r in records):
        raise FHIRError.of(422, "not-found", f"Patient/{patient_id} est inconnu", "CoverageEligibilityRequest.patient")
    cov_json = [r for r in records if r["resourceType"] == "Coverage"]
    orgs = await resources_by_id(ctx.conn, payor_refs(cov_json))
    covs = [f for c in cov_json if (f := coverage_facts(c, orgs))]
    wanted = {local_reference_id(i.get("coverage"), "Coverage") for i in req.get("insurance") or [] if isinstance(i, dict)}
    wanted.discard(None)
    mine = [c for c in covs if c.beneficiary_id == patient_id and (not wanted or c.id in wanted)]
    mine.sort(key=lambda c: (not c.in_force(on), c.order or 1, c.id))

    request_id = res_id or new_id()
    insurer = {"reference": mine[0].fund_ref} if mine else req.get("insurer") or {"display": "Aucun organisme"}
    response = {
        "resourceType": "CoverageEligibilityResponse",
        "status": "active",
        "purpose": req.get("purpose") or ["validation"],
        "patient": _named(patient_id, identifier, bool(mine)),
        "servicedDate": on.isoformat(),
        "created": to_instant(now_us()),
        "request": {"reference": f"CoverageEligibilityRequest/{request_id}"},
        "outcome": "complete",
        "disposition": _disposition(mine, on),
        "insurer": insurer,
    }
    if isinstance(req.get("provider"), dict):
        response["requestor"] = req["provider"]
    if mine:
        conditions = await (await reference_for(ctx.conn)).conditions.catalog(ctx.conn, on)
        response["insurance"] = [_insurance(c, covs, patient_id, on, conditions) for c in mine]
    if identifier is not None and mine:  # the request, in the file of the patient it was about
        req = {**req, "patient": response["patient"]}
    _, stored = await store_many(ctx, [  # the request and its answer: one statement per table
        NewVersion("CoverageEligibilityRequest", request_id, req, "POST", None),
        NewVersion("CoverageEligibilityResponse", new_id(), response, "POST", None),
    ])
    return Result(201, stored)

"""Receiving a care sheet: ``POST /fhir/Claim`` (and Claim entries of transactions).

In the request's one transaction: business checks (422 with one issue per problem), the
idempotency key (provider INPE + the sheet's own number: a resubmission gets the same
ClaimResponse back, never a second claim), routing to the fund that covers the patient on the
date of care, then the Claim, the queued ClaimResponse, the ledger row and the job are written
together — a claim is either fully received, with its 48-hour clock running, or not at all.

The answer is ``201 Created`` whose body is the ClaimResponse (``outcome = queued``, deadline
in the ``claim-deadline`` extension) and whose Location is that ClaimResponse: the provider
polls it (or subscribes) for the decision.  A resubmission answers ``200`` with its current
version.
"""
from __future__ import annotations

from claims import ledger, queue
from claims.adjudication.ruleset import rulesets
from claims.caresheet import CareSheet, any_reference, require_valid
from claims.clock import deadline, now_us
from claims.coverage import coverage_facts, payor_refs, route
from claims.lookups import identifier_value, patient_records, resources_by_id
from claims.money import cents
from claims.responses import queued_response
from claims.settings import get_claims_settings
from claims.uris import INPE
from ehr.hooks import submission
from ehr.interactions.context import Context, Result, store
from ehr.interactions.preconditions import new_id
from ehr.outcome import FHIRError, Issue
from ehr.store import repository


@submission("Claim")
async def submit_claim(ctx: Context, res: dict, res_id: str | None = None) -> Result:
    settings = get_claims_settings()
    sheet = require_valid(res, tz=settings.timezone)
    conn = ctx.conn
    inpe, provider_ref, coverage = await _check_references(ctx, res, sheet)

    existing = await ledger.by_key(conn, inpe, sheet.identifier)
    if existing is not None:
        return await _same_answer(conn, existing, sheet)

    service_date = sheet.service_date
    patient_covs = (await patient_records(conn, [sheet.patient_id], ["Coverage"]))[sheet.patient_id]
    orgs = await resources_by_id(conn, payor_refs(patient_covs + [coverage]))
    focal = coverage_facts(coverage, orgs)
    if focal is None:
        raise FHIRError.of(422, "required", "La couverture doit désigner l'organisme payeur (Coverage.payor)", _coverage_path(res))
    facts = [f for c in patient_covs if (f := coverage_facts(c, orgs))]
    primary, _complementary = route(sheet.patient_id, focal, facts, service_date, rulesets())
    if rulesets().fund(primary.fund_code) is None:
        raise FHIRError.of(
            422, "not-supported", f"L'organisme {primary.fund_code} n'est pas raccordé à l'échange des feuilles de soins",
            _coverage_path(res),
        )

    now = now_us()
    claim_id = res_id or new_id()
    response_id = new_id()
    values = dict(
        provider_inpe=inpe, claim_identifier=sheet.identifier, payer_rank=1, claim_id=claim_id,
        response_id=response_id, patient_id=sheet.patient_id, provider_ref=provider_ref,
        fund_ref=primary.fund_ref, fund_code=primary.fund_code, coverage_id=primary.id, use=sheet.use,
        care_setting=sheet.care_setting, service_date=service_date.isoformat(), fingerprint=sheet.fingerprint(),
        related_claim_id=sheet.related_claim_id, received_at=now,
        due_at=deadline(now, settings.deadline_hours), status=ledger.QUEUED,
        submitted_cents=cents(sheet.submitted),
    )
    ledger_id = await ledger.insert_new(conn, values)
    if ledger_id is None:  # a concurrent submission of the same sheet won the race
        return await _same_answer(conn, await ledger.by_key(conn, inpe, sheet.identifier), sheet)

    await store(ctx, "Claim", claim_id, res, method="POST", prior=None)
    row = (await ledger.by_ids(conn, [ledger_id]))[ledger_id]
    answer = queued_response(res, row, now)
    stored = await store(ctx, "ClaimResponse", response_id, answer, method="POST", prior=None)
    await queue.enqueue(conn, ledger_id, row.due_at, now)
    return Result(201, stored)


def _coverage_path(res: dict) -> str:
    for i, ins in enumerate(res.get("insurance") or []):
        if isinstance(ins, dict) and ins.get("focal") is True:
            return f"Claim.insurance[{i}].coverage"
    return "Claim.insurance"


async def _check_references(ctx: Context, res: dict, sheet: CareSheet) -> tuple[str, str | None, dict]:
    """The provider's INPE, the provider resource, and the focal Coverage — all must hold up."""
    refs = {("Patient", sheet.patient_id), ("Coverage", sheet.coverage_id)}
    if sheet.provider_ref:
        refs.add(tuple(sheet.provider_ref.split("/", 1)))
    found = await resources_by_id(ctx.conn, refs)
    issues: list[Issue] = []
    if ("Patient", sheet.patient_id) not in found:
        issues.append(Issue("not-found", f"Patient/{sheet.patient_id} est inconnu", expression=("Claim.patient",)))
    coverage = found.get(("Coverage", sheet.coverage_id))
    if coverage is None:
        issues.append(Issue("not-found", f"Coverage/{sheet.coverage_id} est inconnue", expression=(_coverage_path(res),)))
    elif any_reference(coverage.get("beneficiary"), ("Patient",)) != f"Patient/{sheet.patient_id}":
        issues.append(Issue("invalid", "La couverture indiquée n'est pas celle de ce patient (Coverage.beneficiary)", expression=(_coverage_path(res),)))

    provider_ref, inpe = None, sheet.provider_inpe
    if sheet.provider_ref:
        provider = found.get(tuple(sheet.provider_ref.split("/", 1)))
        if provider is None:
            issues.append(Issue("not-found", f"{sheet.provider_ref} est inconnu", expression=("Claim.provider",)))
        else:
            if provider["resourceType"] == "PractitionerRole":
                provider = await _role_holder(ctx, provider)
            registered = identifier_value(provider, INPE) if provider else None
            if registered is not None:
                provider_ref = f"{provider['resourceType']}/{provider['id']}"
                if inpe is not None and inpe != registered:
                    issues.append(Issue("value", f"L'INPE indiqué ({inpe}) n'est pas celui du prestataire référencé ({registered})",
                                        expression=("Claim.provider.identifier.value",)))
                inpe = inpe or registered
    if inpe is None and not any(i.expression == ("Claim.provider",) for i in issues):
        issues.append(Issue("required", f"L'INPE du prestataire est requis (Claim.provider.identifier, système {INPE})",
                            expression=("Claim.provider.identifier",)))
    if issues:
        raise FHIRError(422, issues)
    return inpe, provider_ref, coverage


async def _role_holder(ctx: Context, role: dict) -> dict | None:
    """A PractitionerRole's INPE is its own identifier, else its practitioner's."""
    if identifier_value(role, INPE):
        return role
    ref = any_reference(role.get("practitioner"), ("Practitioner",))
    if ref is None:
        return None
    found = await resources_by_id(ctx.conn, [tuple(ref.split("/", 1))])
    return next(iter(found.values()), None)


async def _same_answer(conn, row: ledger.LedgerRow, sheet: CareSheet) -> Result:
    if row.fingerprint != sheet.fingerprint():
        raise FHIRError.of(
            409, "duplicate",
            f"Le numéro de feuille de soins {row.claim_identifier} a déjà été utilisé par ce prestataire pour une autre "
            "feuille ; une correction porte un nouveau numéro et référence l'originale (Claim.related)",
            "Claim.identifier",
        )
    return Result(200, await repository.current(conn, "ClaimResponse", row.response_id))

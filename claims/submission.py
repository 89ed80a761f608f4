"""Receiving care sheets: ``POST /fhir/Claim``, Claim entries of transactions, and batches.

One code path for one sheet or a batch Bundle of them, in the caller's one transaction and a
fixed number of queries whatever the count: business checks (422 with one issue per problem),
the idempotency key (provider INPE + the sheet's own number: a resubmission gets the same
ClaimResponse back, never a second claim), routing to the fund that covers the patient on the
date of care — recorded in the stored sheet as ``Claim.insurer`` (a sheet naming another fund is
refused): what that fund's agents read, decide and pay rests on it — then the Claims, the queued ClaimResponses, the ledger rows and the jobs are
written together — a claim is either fully received, with its 48-hour clock running, or not at
all.

The answer is ``201 Created`` whose body is the ClaimResponse (``outcome = queued``, deadline
in the ``claim-deadline`` extension, the sheet's status code — created in the same transaction —
as its ``identifier``) and whose Location is that ClaimResponse: the provider
polls it (or subscribes) for the decision.  A resubmission answers ``200`` with its current
version.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from claims import corrections, ledger, queue
from claims.adjudication.model import CoverageFacts
from claims.adjudication.ruleset import rulesets
from claims.caresheet import CareSheet, any_reference, require_valid
from claims.clock import deadline, now_us
from claims.coverage import coverage_facts, payor_refs, route
from claims.lookups import identifier_value, patient_records, resources_by_id
from claims.messaging.status_code import codes_for, shown
from claims.money import cents
from claims.responses import queued_response
from claims.settings import get_claims_settings
from claims.uris import FUND, INPE
from ehr.hooks import bulk_submission, submission
from ehr.interactions.context import Context, Result, store_many
from ehr.interactions.preconditions import new_id
from ehr.outcome import FHIRError, Issue
from ehr.store import repository
from ehr.store.repository import NewVersion

Answer = Result | FHIRError


@dataclass
class _Sheet:
    """One submitted sheet on its way through the checks."""

    res: dict
    res_id: str | None
    sheet: CareSheet | None = None
    inpe: str | None = None
    provider_ref: str | None = None
    coverage: dict | None = None
    ledger_values: dict = field(default_factory=dict)
    answer: Answer | None = None  # set once the sheet is refused or answered

    @property
    def key(self) -> tuple[str, str]:
        return (self.inpe, self.sheet.identifier)


@submission("Claim", instead="envoyez-le par POST /Claim (ou $submit) ; une correction est une nouvelle "
            "feuille qui référence l'originale (Claim.related)")
async def submit_claim(ctx: Context, res: dict, res_id: str | None = None) -> Result:
    (answer,) = await submit_claims(ctx, [(res, res_id)])
    if isinstance(answer, FHIRError):
        raise answer
    return answer


@bulk_submission("Claim")
async def submit_claims(ctx: Context, items: list[tuple[dict, str | None]]) -> list[Answer]:
    """Each sheet's answer (a Result, or the FHIRError refusing it), in the order given.

    The caller has checked that it may write each sheet (``Context.require``/``check_write``).

    Refusals are decided before anything is written; an error raised from here (a concurrent
    write, a database failure) means nothing of the batch was written by this call.
    """
    settings = get_claims_settings()
    sheets = [_Sheet(res, res_id) for res, res_id in items]
    for s in sheets:
        try:
            s.sheet = require_valid(s.res, tz=settings.timezone)
        except FHIRError as err:
            s.answer = err
    await _check_references(ctx, _open(sheets))
    await _answer_resubmissions(ctx, _open(sheets))
    await _route(ctx, _open(sheets))
    await corrections.check_corrections(ctx, _open(sheets))
    await _receive(ctx, _open(sheets), settings)
    for s in sheets:
        if isinstance(s.answer, _Repeat):
            first = s.answer.first.answer
            s.answer = Result(200, first.stored) if isinstance(first, Result) else first
    return [s.answer for s in sheets]


def _open(sheets: list[_Sheet]) -> list[_Sheet]:
    return [s for s in sheets if s.answer is None]


def _coverage_path(res: dict) -> str:
    for i, ins in enumerate(res.get("insurance") or []):
        if isinstance(ins, dict) and ins.get("focal") is True:
            return f"Claim.insurance[{i}].coverage"
    return "Claim.insurance"


async def _check_references(ctx: Context, sheets: list[_Sheet]) -> None:
    """The provider's INPE, the provider resource, and the focal Coverage — all must hold up."""
    refs = set()
    for s in sheets:
        refs |= {("Patient", s.sheet.patient_id), ("Coverage", s.sheet.coverage_id)}
        if s.sheet.provider_ref:
            refs.add(tuple(s.sheet.provider_ref.split("/", 1)))
    found = await resources_by_id(ctx.conn, refs)
    holders = await _role_holders(ctx, [found.get(tuple(s.sheet.provider_ref.split("/", 1))) for s in sheets if s.sheet.provider_ref])
    for s in sheets:
        issues = _reference_issues(s, found, holders)
        if issues:
            s.answer = FHIRError(422, issues)


def _reference_issues(s: _Sheet, found: dict, holders: dict[str, dict]) -> list[Issue]:
    sheet, res = s.sheet, s.res
    issues: list[Issue] = []
    if ("Patient", sheet.patient_id) not in found:
        issues.append(Issue("not-found", f"Patient/{sheet.patient_id} est inconnu", expression=("Claim.patient",)))
    s.coverage = found.get(("Coverage", sheet.coverage_id))
    if s.coverage is None:
        issues.append(Issue("not-found", f"Coverage/{sheet.coverage_id} est inconnue", expression=(_coverage_path(res),)))
    elif any_reference(s.coverage.get("beneficiary"), ("Patient",)) != f"Patient/{sheet.patient_id}":
        issues.append(Issue("invalid", "La couverture indiquée n'est pas celle de ce patient (Coverage.beneficiary)",
                            expression=(_coverage_path(res),)))

    inpe = sheet.provider_inpe
    if sheet.provider_ref:
        provider = found.get(tuple(sheet.provider_ref.split("/", 1)))
        if provider is None:
            issues.append(Issue("not-found", f"{sheet.provider_ref} est inconnu", expression=("Claim.provider",)))
        else:
            if provider["resourceType"] == "PractitionerRole" and not identifier_value(provider, INPE):
                provider = holders.get(sheet.provider_ref)
            registered = identifier_value(provider, INPE) if provider else None
            if registered is not None:
                s.provider_ref = f"{provider['resourceType']}/{provider['id']}"
                if inpe is not None and inpe != registered:
                    issues.append(Issue("value", f"L'INPE indiqué ({inpe}) n'est pas celui du prestataire référencé ({registered})",
                                        expression=("Claim.provider.identifier.value",)))
                inpe = inpe or registered
    if inpe is None and not any(i.expression == ("Claim.provider",) for i in issues):
        issues.append(Issue("required", f"L'INPE du prestataire est requis (Claim.provider.identifier, système {INPE})",
                            expression=("Claim.provider.identifier",)))
    s.inpe = inpe
    return issues


async def _role_holders(ctx: Context, providers: list[dict | None]) -> dict[str, dict]:
    """PractitionerRole reference -> its practitioner, for roles without an INPE of their own."""
    roles = {
        f"PractitionerRole/{p['id']}": ref
        for p in providers
        if p and p["resourceType"] == "PractitionerRole" and not identifier_value(p, INPE)
        and (ref := any_reference(p.get("practitioner"), ("Practitioner",)))
    }
    found = await resources_by_id(ctx.conn, {tuple(ref.split("/", 1)) for ref in roles.values()})
    return {role: found[key] for role, ref in roles.items() if (key := tuple(ref.split("/", 1))) in found}


async def _answer_resubmissions(ctx: Context, sheets: list[_Sheet]) -> None:
    """A sheet already received (or earlier in this batch) gets that claim's answer back."""
    existing = await ledger.by_keys(ctx.conn, [s.key for s in sheets])
    responses = await repository.current_many(ctx.conn, [("ClaimResponse", r.response_id) for r in existing.values()])
    first_in_batch: dict[tuple[str, str], _Sheet] = {}
    for s in sheets:
        row = existing.get(s.key)
        if row is not None:
            s.answer = _same_answer(row.fingerprint, row.claim_identifier, s.sheet) or Result(
                200, responses.get(("ClaimResponse", row.response_id))
            )
        elif (earlier := first_in_batch.get(s.key)) is not None:
            # Answered after the batch is written: the earlier one's ClaimResponse, as a resubmission.
            s.answer = _same_answer(earlier.sheet.fingerprint(), s.sheet.identifier, s.sheet) or _Repeat(earlier)
        else:
            first_in_batch[s.key] = s


class _Repeat(Result):
    """The answer of a sheet repeated inside one batch: its first occurrence's ClaimResponse."""

    def __init__(self, first: _Sheet):
        super().__init__(200)
        self.first = first


def _same_answer(fingerprint: str, identifier: str, sheet: CareSheet) -> FHIRError | None:
    if fingerprint == sheet.fingerprint():
        return None
    return FHIRError.of(
        409, "duplicate",
        f"Le numéro de feuille de soins {identifier} a déjà été utilisé par ce prestataire pour une autre "
        "feuille ; une correction porte un nouveau numéro et référence l'originale (Claim.related)",
        "Claim.identifier",
    )


async def _route(ctx: Context, sheets: list[_Sheet]) -> None:
    """The fund of the AMO coverage in force on the date of care (see ``claims.coverage.route``)."""
    fresh = [s for s in sheets if not isinstance(s.answer, _Repeat)]
    patient_covs = await patient_records(ctx.conn, [s.sheet.patient_id for s in fresh], ["Coverage"])
    orgs = await resources_by_id(
        ctx.conn, payor_refs([c for covs in patient_covs.values() for c in covs] + [s.coverage for s in fresh])
    )
    for s in fresh:
        focal = coverage_facts(s.coverage, orgs)
        if focal is None:
            s.answer = FHIRError.of(422, "required", "La couverture doit désigner l'organisme payeur (Coverage.payor)",
                                    _coverage_path(s.res))
            continue
        facts = [f for c in patient_covs[s.sheet.patient_id] if (f := coverage_facts(c, orgs))]
        primary, _complementary = route(s.sheet.patient_id, focal, facts, s.sheet.service_date, rulesets())
        if rulesets().fund(primary.fund_code) is None:
            s.answer = FHIRError.of(
                422, "not-supported", f"L'organisme {primary.fund_code} n'est pas raccordé à l'échange des feuilles de soins",
                _coverage_path(s.res),
            )
            continue
        if (refused := _record_fund(s.res, primary)) is not None:
            s.answer = refused
            continue
        sheet = s.sheet
        s.ledger_values = dict(
            provider_inpe=s.inpe, claim_identifier=sheet.identifier, payer_rank=1, claim_id=s.res_id or new_id(),
            response_id=new_id(), patient_id=sheet.patient_id, provider_ref=s.provider_ref,
            fund_ref=primary.fund_ref, fund_code=primary.fund_code, coverage_id=primary.id, use=sheet.use,
            care_setting=sheet.care_setting, care_kind=sheet.care_kind, service_date=sheet.service_date.isoformat(),
            fingerprint=sheet.fingerprint(), related_claim_id=sheet.related_claim_id, submitted_cents=cents(sheet.submitted),
        )


def _record_fund(res: dict, fund: CoverageFacts) -> FHIRError | None:
    """The stored sheet names the fund it was routed to (``Claim.insurer``): the one fact the
    fund's access, its review queue, decisions, appeals and payments rest on.  A sheet that
    names another fund is refused rather than sent where it did not ask to go."""
    given = res.get("insurer")
    if given is None:
        res["insurer"] = {"reference": fund.fund_ref}
        return None
    if not isinstance(given, dict):
        return FHIRError.of(422, "structure", "Claim.insurer est une référence", "Claim.insurer")
    named = any_reference(given, ("Organization",))
    ident = given.get("identifier")
    code = ident.get("value") if isinstance(ident, dict) and ident.get("system") == FUND else None
    if (given.get("reference") is not None and named is None) or (ident is not None and code is None):
        return FHIRError.of(422, "invalid", "Claim.insurer désigne l'organisme par sa référence (Organization/<id>) "
                            f"ou son identifiant de système {FUND}", "Claim.insurer")
    if (named is not None and named != fund.fund_ref) or (code is not None and code != fund.fund_code):
        return FHIRError.of(
            422, "business-rule",
            f"La feuille est adressée à {named or code}, mais l'organisme qui couvre le patient à la date des soins "
            f"est {fund.fund_ref} ({fund.fund_code})", "Claim.insurer",
        )
    res["insurer"] = {**given, "reference": fund.fund_ref}
    return None


async def _receive(ctx: Context, sheets: list[_Sheet], settings) -> None:
    """Write what was accepted: ledger rows, Claims, queued ClaimResponses, jobs."""
    now = now_us()
    fresh = [s for s in sheets if s.answer is None]
    due = deadline(now, settings.deadline_hours)
    ids = await ledger.insert_many(
        ctx.conn, [{**s.ledger_values, "received_at": now, "due_at": due, "status": ledger.QUEUED} for s in fresh]
    )
    lost = [s for s in fresh if s.key not in ids]
    if lost:  # a concurrent submission of the same sheet won the race: answer with its claim
        await _answer_resubmissions(ctx, lost)
        for s in lost:
            if s.answer is None:
                s.answer = FHIRError.of(409, "conflict", "Feuille de soins reçue au même moment par une autre requête ; "
                                        "renvoyez-la pour obtenir sa réponse", "Claim.identifier")
    received = [s for s in fresh if s.key in ids]
    rows = await ledger.by_ids(ctx.conn, list(ids.values()))
    codes = await codes_for(ctx.conn, [r.claim_id for r in rows.values()])  # on every letter from now on
    versions = []
    for s in received:
        row = rows[ids[s.key]]
        versions.append(NewVersion("Claim", row.claim_id, s.res, "POST", None))
        versions.append(NewVersion("ClaimResponse", row.response_id,
                                   queued_response(s.res, row, now, shown(codes[row.claim_id])), "POST", None))
    written = await store_many(ctx, versions)
    for s, response in zip(received, written[1::2]):
        s.answer = Result(201, response)
    await queue.enqueue_many(ctx.conn, [(ids[s.key], due) for s in received], now)
    await corrections.withdraw_originals(ctx, [rows[ids[s.key]] for s in received], now)

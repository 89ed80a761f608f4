"""Appeals (recours): the provider or the patient contests a fund's decision.

``POST Claim/{id}/$appeal`` — Parameters ``reason`` (text, required), ``line`` (the contested
line numbers, optional, repeated), ``document`` (Attachment or Reference, optional, repeated),
and ``party`` (``provider`` | ``patient``: whose appeal, when a fund agent files it for them or
the server runs without tokens; ``appellant`` then names who files it).  Who may appeal is the
existing access rules plus the claim's parties: the operation first needs the Claim to be
readable by the caller (404 otherwise); then a doctor or pharmacist must be the sheet's provider
(their own reference, a PractitionerRole or organisation they act for, or their INPE), a
patient (or a guardian, or the paper-channel agent who entered the sheet) appeals for the
patient, and a fund agent only for their own fund.

In one transaction: the claim must be decided (409 otherwise), not replaced by a correction
nor being corrected (409), without another open appeal (409; ``UNIQUE (open_ledger_id)``
backs it up), within the fund's ``appeal_window_days`` of the decision (422).  The appeal is
a review task for the fund's agents — always human — with its own 48-hour deadline, in
``Claim/$review-queue`` beside the pended claims.  The claim's ClaimResponse gets a new version
saying an appeal is under way (``claim-appeal`` extension).

The appeal runs on the 48-hour clock like a claim: ``Claim/{id}/$request-info`` asks the
appellant for a document and pauses its clock as the fund's rule allows (``claims.review``),
the worker escalates it near its deadline (``escalate``: urgent Task, first in the queue,
``escalated`` on the answer's ``claim-appeal`` extension), and ``$sla`` measures it
(``claims.sla``).

The agent decides it with ``Claim/{id}/$decide`` (line by line, who and why), starting from the
decision under appeal; an appeal never lowers what was granted (422).  The result is a new
version of the same ClaimResponse, not a second one: the provider keeps one Location to poll
or subscribe to, the current version is always the decision in force, and its history is the
whole story (queued, decided, appealed, revised).  The EOB follows.  An increase on a claim
not paid yet is simply part of its payment; on a claim already paid it is paid by the next
payment run (``claims.payment``), once.  A complementary insurer that already decided its share
of the ticket modérateur decides again on the share the appeal leaves (``revise_complementary``):
a new version of its ClaimResponse and EOB, and the difference paid — or recovered — once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import orjson
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from claims import ledger
from claims.adjudication.engine import adjudicate_complementary
from claims.adjudication.model import Decision, LineDecision
from claims.adjudication.ruleset import rulesets
from claims.clock import DAY_US, deadline, local_date, now_us, to_instant
from claims.coverage import coverage_facts, payor_refs
from claims.ledger import LedgerRow
from claims.lookups import identifier_value, resources_by_id
from claims.money import cents, from_cents
from claims.messaging.status_code import code_for, shown
from claims.notify import Subscriptions
from claims.operations import caller
from claims.recording import SYSTEM
from claims.responses import decided_response, explanation_of_benefit
from claims.settings import get_claims_settings
from claims.tables import claim_appeal, claim_decision_line, claim_job, claim_ledger
from claims.uris import EXT_APPEAL, INPE, TASK_CODE
from ehr.interactions.context import Context, store
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError
from ehr.parsing import bigint
from ehr.rest.http import fhir_response
from ehr.security.identity import split_reference
from ehr.security.roles import Role
from ehr.store import repository
from ehr.store.db import write_transaction

OPEN, WAITING, CLOSED = "open", "waiting-info", "closed"  # waiting-info: for the appellant's answer
ACTIVE = (OPEN, WAITING)
PARTIES = ("provider", "patient")
_PARTY_TEXT = {"provider": "du prestataire", "patient": "du patient"}


def _param(name: str) -> str:
    return f"Parameters.parameter.where(name='{name}')"


async def open_appeals(conn: AsyncConnection, ledger_ids: list[int]) -> set[int]:
    """Those of ``ledger_ids`` with an appeal under way."""
    if not ledger_ids:
        return set()
    rows = await conn.execute(select(claim_appeal.c.open_ledger_id).where(claim_appeal.c.open_ledger_id.in_(ledger_ids)))
    return set(rows.scalars())


async def open_appeal(conn: AsyncConnection, ledger_id: int):
    """The claim's appeal under way (locked until the caller's commit), or None."""
    stmt = select(claim_appeal).where(claim_appeal.c.open_ledger_id == ledger_id).with_for_update()
    return (await conn.execute(stmt)).first()


async def decided_lines(conn: AsyncConnection, ledger_id: int) -> dict[int, LineDecision]:
    """The claim's decision in force, line by line (what an appeal starts from)."""
    t = claim_decision_line.c
    rows = await conn.execute(
        select(t.sequence, t.code_system, t.code, t.service_date, t.quantity, t.submitted_cents, t.eligible_cents,
               t.rate_permille, t.benefit_cents, t.reasons).where(t.ledger_id == ledger_id).order_by(t.sequence)
    )
    return {
        r.sequence: LineDecision(r.sequence, r.code_system, r.code, date.fromisoformat(r.service_date),
                                 Decimal(str(r.quantity)), from_cents(r.submitted_cents), from_cents(r.eligible_cents),
                                 Decimal(r.rate_permille) / 1000, from_cents(r.benefit_cents), (r.reasons or "").split())
        for r in rows
    }


# --- filing an appeal ---------------------------------------------------------------------


@dataclass(frozen=True)
class Filing:
    party: str  # provider | patient
    appellant: str  # who files it: a reference, or the token's subject


@operation("appeal", levels={"instance"}, types={"Claim"}, affects_state=True,
           callers={Role.DOCTOR, Role.PHARMACIST, Role.PATIENT, Role.PAPER_AGENT, Role.INSURER},
           definition="https://fhir.sijill.ma/OperationDefinition/Claim-appeal")
async def appeal(inv: Invocation):
    reason = inv.first("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise FHIRError.of(400, "required", "Le paramètre reason (motif du recours) est requis", _param("reason"))
    sequences = _line_numbers(inv)
    documents = [_document(d, i) for i, d in enumerate(inv.all("document"))]
    settings = get_claims_settings()
    async with write_transaction(inv.engine) as conn:
        row = await ledger.by_claim(conn, inv.res_id, for_update=True)
        if row is None:
            raise FHIRError.of(404, "not-found", f"Claim/{inv.res_id} n'a pas été soumise à l'échange")
        filing = await _filing(inv, conn, row)
        now = now_us()
        await _check_appealable(conn, row, now)
        lines = await decided_lines(conn, row.id)
        for i, seq in enumerate(sequences):
            if seq not in lines:
                raise FHIRError.of(422, "value", f"La feuille n'a pas de ligne n° {seq}", f"{_param('line')}[{i}]")
        await _check_documents(inv, conn, documents)
        prior = await repository.current(conn, "ClaimResponse", row.response_id, for_update=True)
        values = dict(
            ledger_id=row.id, open_ledger_id=row.id, fund_code=row.fund_code, party=filing.party,
            appellant=filing.appellant[:130], reason=reason.strip(), lines=" ".join(map(str, sorted(set(sequences)))) or None,
            documents=orjson.dumps(documents) if documents else None,
            contested=f"ClaimResponse/{prior.res_id}/_history/{prior.version_id}", status=OPEN, received_at=now,
            due_at=deadline(now, settings.deadline_hours), before_cents=row.benefit_cents or 0, payable_cents=0,
        )
        appeal_id = (await conn.execute(claim_appeal.insert().values(**values).returning(claim_appeal.c.id))).scalar_one()
        filed = (await conn.execute(select(claim_appeal).where(claim_appeal.c.id == appeal_id))).one()
        answer = prior.resource()
        answer["extension"] = _without_appeal(answer) + [appeal_extension(filed)]
        ctx = Context(conn, inv.settings.base_url)
        await store(ctx, "ClaimResponse", row.response_id, answer, method="PUT", prior=prior)
        await _notify(conn, answer, now)
    return fhir_response(orjson.dumps(appeal_task(filed, row)), 201)


def _line_numbers(inv: Invocation) -> list[int]:
    out = []
    for i, value in enumerate(inv.all("line")):
        number = (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and bigint(value) is not None)
        if not number:
            raise FHIRError.of(400, "value", "line est un numéro de ligne (valueInteger)", f"{_param('line')}[{i}]")
        out.append(int(value))
    return out


def _document(value: object, i: int) -> dict:
    where = f"{_param('document')}[{i}]"
    if not isinstance(value, dict) or not value:
        raise FHIRError.of(400, "value", "document est une pièce (valueAttachment) ou une référence (valueReference)", where)
    if "reference" in value:
        ref = split_reference(value["reference"]) if isinstance(value["reference"], str) else None
        if ref is None:
            raise FHIRError.of(422, "value", "document.reference doit être de la forme Type/id", where)
        return {"reference": f"{ref[0]}/{ref[1]}"}
    if not (value.get("url") or value.get("data")):
        raise FHIRError.of(422, "required", "Une pièce jointe porte son contenu (data) ou son adresse (url)", where)
    return value


async def _check_documents(inv: Invocation, conn: AsyncConnection, documents: list[dict]) -> None:
    """Referenced documents must exist for the caller (an invisible one is as absent as a missing one)."""
    for i, doc in enumerate(documents):
        if "reference" in doc:
            res_type, res_id = doc["reference"].split("/", 1)
            found = await repository.current(conn, res_type, res_id, access=inv.access)
            if found is None or found.deleted:
                raise FHIRError.of(422, "not-found", f"{doc['reference']} est introuvable", f"{_param('document')}[{i}]")


async def _filing(inv: Invocation, conn: AsyncConnection, row: LedgerRow) -> Filing:
    """Whose appeal, filed by whom — the operation has already checked the caller reads the Claim."""
    who = caller(inv)
    if who is None or who.role is Role.UNRESTRICTED:
        party = _party(inv)
        named = inv.first("appellant")
        named = named.get("reference") if isinstance(named, dict) else named
        default = (row.provider_ref or f"inpe|{row.provider_inpe}") if party == "provider" else f"Patient/{row.patient_id}"
        return Filing(party, named.strip() if isinstance(named, str) and named.strip() else default)
    me = who.fhir_user or who.subject
    if who.role in (Role.PATIENT, Role.PAPER_AGENT):  # the patient, a guardian, or the counter agent who entered it
        return Filing("patient", me)
    if who.role in (Role.DOCTOR, Role.PHARMACIST):
        if not await _is_provider(inv, conn, row):
            raise FHIRError.of(403, "forbidden", "Seul le prestataire qui a établi la feuille de soins (ou le patient) "
                               "peut former un recours contre sa décision")
        return Filing("provider", me)
    if who.role is Role.INSURER:
        if who.fund != row.fund_ref:
            raise FHIRError.of(403, "forbidden", f"Cette feuille relève de {row.fund_ref}, pas de {who.fund}")
        return Filing(_party(inv), me)
    raise FHIRError.of(403, "forbidden", f"Le rôle {who.role.value} ne peut pas former de recours")


def _party(inv: Invocation) -> str:
    party = inv.first("party")
    if party not in PARTIES:
        raise FHIRError.of(400, "required", "Le paramètre party (provider ou patient : au nom de qui) est requis",
                           _param("party"))
    return party


async def _is_provider(inv: Invocation, conn: AsyncConnection, row: LedgerRow) -> bool:
    """The caller is the sheet's provider: themselves, a role or organisation they act for, or their INPE."""
    security = getattr(inv.request.state, "security", None)
    identity = security.policy.identity if security is not None else None
    if identity is None:
        return False
    if row.provider_ref and split_reference(row.provider_ref) in identity.refs:
        return True
    own = await resources_by_id(conn, [identity.own] if identity.own else [])
    return any(identifier_value(res, INPE) == row.provider_inpe for res in own.values())


async def _check_appealable(conn: AsyncConnection, row: LedgerRow, now: int) -> None:
    what = f"Claim/{row.claim_id}"
    if row.use != "claim":
        raise FHIRError.of(422, "not-supported", "Un refus d'accord préalable ne fait pas l'objet d'un recours : "
                           "présentez une nouvelle demande")
    if row.status in ledger.OPEN_STATUSES:
        raise FHIRError.of(409, "conflict", f"{what} n'est pas encore décidée : le recours porte sur une décision")
    if row.status == ledger.SUPERSEDED:
        raise FHIRError.of(409, "conflict", f"{what} a été remplacée par une feuille corrigée : le recours porte sur "
                           "la décision de la feuille corrigée")
    if (correction := (await ledger.corrections_of(conn, [row.id])).get(row.id)) is not None:
        raise FHIRError.of(409, "conflict", f"{what} est en cours de correction (Claim/{correction.claim_id})")
    if await open_appeals(conn, [row.id]):
        raise FHIRError.of(409, "conflict", f"Un recours est déjà en cours sur {what}")
    rules = rulesets().by_version(row.fund_code, row.ruleset_version or "") or rulesets().version(
        row.fund_code, date.fromisoformat(row.service_date))
    window = rules.appeal_window_days if rules else 0
    if now > row.decided_at + window * DAY_US:
        tz = get_claims_settings().timezone
        raise FHIRError.of(422, "business-rule", f"Délai de recours dépassé : {window} jours après la décision du "
                           f"{local_date(row.decided_at, tz).isoformat()} ({row.fund_code})")


# --- the agents' side ---------------------------------------------------------------------


def appeal_task(a, row) -> dict:
    """An appeal as the FHIR Task the agents' software shows (``Claim/$review-queue``); ``row``
    is its claim's ledger row (``claim_id``, ``patient_id``, ``fund_ref``)."""
    inputs = [
        {"type": {"text": "décision contestée"}, "valueReference": {"reference": a.contested}},
        {"type": {"text": "motif"}, "valueString": a.reason},
    ]
    if a.lines:
        inputs.append({"type": {"text": "lignes contestées"}, "valueString": ", ".join(a.lines.split())})
    for doc in orjson.loads(a.documents) if a.documents else []:
        key = "valueReference" if "reference" in doc else "valueAttachment"
        inputs.append({"type": {"text": "pièce jointe"}, key: doc})
    requester = {"reference": a.appellant} if split_reference(a.appellant) else {"display": a.appellant}
    task = {
        "resourceType": "Task",
        "id": f"claim-appeal-{a.id}",
        "status": {OPEN: "ready", WAITING: "on-hold", CLOSED: "completed"}[a.status],
        "intent": "order",
        "priority": "urgent" if a.escalated_at and a.status != CLOSED else "routine",
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}], "text": "Recours contre une décision de prise en charge"},
        "focus": {"reference": f"Claim/{row.claim_id}"},
        "for": {"reference": f"Patient/{row.patient_id}"},
        "authoredOn": to_instant(a.received_at),
        "requester": requester,
        "owner": {"reference": row.fund_ref},
        "statusReason": {"text": f"Recours {_PARTY_TEXT[a.party]} : {a.reason}"},
        "businessStatus": {"text": "Recours"},
        "restriction": {"period": {"end": to_instant(a.due_at)}},
        "input": inputs,
    }
    if a.info_request_id:
        task["basedOn"] = [{"reference": f"CommunicationRequest/{a.info_request_id}"}]
    if a.status == CLOSED and a.resolution:
        task["output"] = [{"type": {"text": "décision"}, "valueString": a.resolution}]
    return task


async def queue_tasks(conn: AsyncConnection, fund_ref: str, statuses: tuple[str, ...], limit: int) -> list[tuple[dict, str, int]]:
    """A fund's appeals under way in ``statuses``, escalated first, then by deadline: (Task, Claim id, deadline)."""
    a, led = claim_appeal.c, claim_ledger.c
    rows = (await conn.execute(
        select(claim_appeal, led.claim_id, led.patient_id, led.fund_ref)
        .select_from(claim_appeal.join(claim_ledger, led.id == a.ledger_id))
        .where(led.fund_ref == fund_ref, a.status.in_(statuses), a.follows_id.is_(None))
        .order_by(a.escalated_at.is_(None), a.due_at, a.id)
        .limit(limit)
    )).all()
    return [(appeal_task(r, r), r.claim_id, r.due_at) for r in rows]


def appeal_extension(a, decided_at: int | None = None) -> dict:
    """What the ClaimResponse says of its appeal: under way, or decided (and when)."""
    parts = [
        {"url": "status", "valueCode": "completed" if decided_at else "in-progress"},
        {"url": "received", "valueDateTime": to_instant(a.received_at)},
        {"url": "deadline", "valueDateTime": to_instant(a.due_at)},
        {"url": "contested", "valueReference": {"reference": a.contested}},
        {"url": "reason", "valueString": a.reason},
    ]
    if a.escalated_at:  # as ``claim-escalated`` says it of a claim
        parts.append({"url": "escalated", "valueDateTime": to_instant(a.escalated_at)})
    if decided_at:
        parts.append({"url": "decided", "valueDateTime": to_instant(decided_at)})
    return {"url": EXT_APPEAL, "extension": parts}


def _without_appeal(res: dict) -> list[dict]:
    return [e for e in res.get("extension") or [] if e.get("url") != EXT_APPEAL]


def party_recipient(a, row: LedgerRow, claim: dict) -> dict | None:
    """Whom a request for information on the appeal goes to: the party whose appeal it is."""
    if a.party == "patient":
        return {"reference": f"Patient/{row.patient_id}"}
    return claim["provider"] if isinstance(claim.get("provider"), dict) else None


async def escalate(conn: AsyncConnection, now: int, horizon: int) -> int:
    """Flag, once, the appeals under way whose deadline falls before ``horizon``: their Task is
    urgent and first in the fund's queue, and the decided answer says when they were escalated."""
    a = claim_appeal.c
    done = await conn.execute(
        update(claim_appeal).where(a.status.in_(ACTIVE), a.escalated_at.is_(None), a.due_at <= horizon)
        .values(escalated_at=now)
    )
    return done.rowcount


# --- the revised decision -----------------------------------------------------------------


async def decide_appeal(ctx: Context, row: LedgerRow, a, decision: Decision, notes: dict[int, str], *, agent: str,
                        resolution: str, now: int) -> None:
    """Write the revised decision (named lines, totals, answer, EOB), close the appeal, and have
    the complementary insurer decide again if the AMO benefit changed."""
    conn = ctx.conn
    claim = (await repository.current(conn, "Claim", row.claim_id)).resource()
    changed = [ln for ln in decision.lines if ln.sequence in notes]
    await _revise(ctx, row, claim, decision, changed, notes, decided_by=agent, now=now,
                  extension=appeal_extension(a, decided_at=now))
    before, after = row.benefit_cents or 0, cents(decision.benefit)
    # Paid already: the increase is paid on its own; not yet: the claim's payment includes it.
    payable = after - before if row.status == ledger.PAID else 0
    closed = await conn.execute(
        update(claim_appeal).where(claim_appeal.c.id == a.id, claim_appeal.c.status.in_(ACTIVE))
        .values(status=CLOSED, open_ledger_id=None, closed_at=now, closed_by=agent, resolution=resolution,
                after_cents=after, payable_cents=payable)
    )
    if closed.rowcount != 1:
        raise FHIRError.of(409, "conflict", f"Le recours sur Claim/{row.claim_id} vient d'être décidé par ailleurs")
    if after != before:
        await revise_complementary(ctx, row, claim, a, now)


async def _revise(ctx: Context, row: LedgerRow, claim: dict, decision: Decision, lines: list[LineDecision],
                  notes: dict[int, str], *, decided_by: str, now: int, extension: dict | None = None,
                  disposition: str | None = None) -> str:
    """Write a decision that replaces the one in force on a decided (or paid) claim: ``lines``
    (the others keep theirs), the ledger's totals, a new version of the ClaimResponse and of the
    EOB, the notifications.  Returns the ClaimResponse version it replaces."""
    conn = ctx.conn
    t = claim_decision_line.c
    if lines:
        await conn.execute(
            update(claim_decision_line)
            .where(t.ledger_id == row.id, t.sequence == bindparam("b_sequence"))
            .values(submitted_cents=bindparam("b_submitted"), eligible_cents=bindparam("b_eligible"),
                    benefit_cents=bindparam("b_benefit"), patient_share_cents=bindparam("b_share"),
                    rate_permille=bindparam("b_rate"), reasons=bindparam("b_reasons"), decided_by=bindparam("b_by"),
                    note=bindparam("b_note")),
            [dict(b_sequence=ln.sequence, b_submitted=cents(ln.submitted), b_eligible=cents(ln.eligible),
                  b_benefit=cents(ln.benefit), b_share=cents(ln.patient_share), b_rate=int(ln.rate * 1000),
                  b_reasons=" ".join(ln.reasons) or None, b_by=decided_by, b_note=notes.get(ln.sequence))
             for ln in lines],
        )
    if not await ledger.transition(conn, row.id, ledger.SETTLED_STATUSES, benefit_cents=cents(decision.benefit),
                                   patient_share_cents=cents(decision.patient_share), outcome=decision.outcome):
        raise FHIRError.of(409, "conflict", f"Claim/{row.claim_id} vient de changer d'état ({row.status})")
    prior = await repository.current(conn, "ClaimResponse", row.response_id, for_update=True)
    answer = decided_response(claim, row, decision, now, decided_by, row.preauth_ref, shown(await code_for(conn, row.claim_id)))
    answer["extension"] = _without_appeal(answer) + ([extension] if extension else [])
    if disposition:
        answer["disposition"] += f" — {disposition}"
    await store(ctx, "ClaimResponse", row.response_id, answer, method="PUT", prior=prior)
    if row.eob_id:
        eob_prior = await repository.current(conn, "ExplanationOfBenefit", row.eob_id, for_update=True)
        await store(ctx, "ExplanationOfBenefit", row.eob_id, explanation_of_benefit(claim, row, decision, now, row.response_id),
                    method="PUT", prior=eob_prior)
    await _notify(conn, answer, now)
    return f"ClaimResponse/{prior.res_id}/_history/{prior.version_id}"


_REVISED = ("Part complémentaire révisée après le recours sur la décision de l'organisme AMO",
            "تمت مراجعة الحصة التكميلية بعد الطعن في قرار هيئة التأمين الإجباري عن المرض")


async def revise_complementary(ctx: Context, row: LedgerRow, claim: dict, a, now: int) -> None:
    """The appeal changed the AMO benefit, so the ticket modérateur left to the patient changed:
    a complementary insurer that already decided its share decides again on the new one (its
    own rule set and coverage, as the worker does).  The difference is recorded as a closed
    ``claim_appeal`` row following ``a`` — paid, or recovered, by the payment run if the
    complementary claim was paid; otherwise its payment simply carries the new benefit.  One
    not decided yet will read the new lines when the worker decides it."""
    conn = ctx.conn
    ids = sorted(r.id for r in await ledger.complementary_of(conn, [row.id]))
    if not ids:
        return
    # Their jobs first (the worker's lock order): a worker deciding one on the old lines commits
    # before we read its status, or waits for our commit and reads the new lines.
    await conn.execute(select(claim_job.c.id).where(claim_job.c.ledger_id.in_(ids)).with_for_update())
    settled = [r for r in (await ledger.by_ids(conn, ids, for_update=True)).values() if r.status in ledger.SETTLED_STATUSES]
    if not settled:
        return
    primary = sorted((await decided_lines(conn, row.id)).values(), key=lambda ln: ln.sequence)
    coverages = await resources_by_id(conn, [("Coverage", r.coverage_id) for r in settled if r.coverage_id])
    orgs = await resources_by_id(conn, payor_refs(coverages.values()))
    text = " / ".join(_REVISED)
    for comp in settled:
        on = date.fromisoformat(comp.service_date)
        rules = rulesets().by_version(comp.fund_code, comp.ruleset_version or "") or rulesets().version(comp.fund_code, on)
        if rules is None or rules.complementary is None:
            continue  # decided without a rule set: nothing was, or is, paid
        cov_json = coverages.get(("Coverage", comp.coverage_id))
        cov = coverage_facts(cov_json, orgs) if cov_json else None
        decision = adjudicate_complementary(primary, rules, cov is not None and cov.in_force(on))
        contested = await _revise(ctx, comp, claim, decision, decision.lines, dict.fromkeys(
            (ln.sequence for ln in decision.lines), _REVISED[0]), decided_by=SYSTEM, now=now, disposition=text)
        before, after = comp.benefit_cents or 0, cents(decision.benefit)
        await conn.execute(claim_appeal.insert().values(
            ledger_id=comp.id, open_ledger_id=None, fund_code=comp.fund_code, party=a.party, appellant=a.appellant,
            reason=a.reason, contested=contested, status=CLOSED, received_at=a.received_at, due_at=a.due_at,
            paused_total_us=0, follows_id=a.id, closed_at=now, closed_by=SYSTEM, resolution=_REVISED[0],
            before_cents=before, after_cents=after, payable_cents=after - before if comp.status == ledger.PAID else 0,
        ))


async def _notify(conn: AsyncConnection, response: dict, now: int) -> None:
    subscriptions = Subscriptions()
    await subscriptions.refresh(conn)
    await subscriptions.enqueue(conn, response, now)

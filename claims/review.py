"""Human review of pended claims: the fund's work queue, line-by-line decisions, requests for
information to the provider, and the clock pause the fund's rules allow.

* ``GET|POST Claim/$review-queue?fund=Organization/<id>&status=open`` — a Bundle of ``Task``
  (one per pended claim and per appeal under way (``claims.appeals``), escalated ones and
  those near their deadline first and marked ``urgent``, then by deadline) with the Claims
  included.  Only the fund's own agents and gateways call it (``claims.callers``: 403 to other
  roles and to another fund's agents); without ``fund`` an agent gets their fund's queue.  Each
  patient whose sheet is listed gets an AuditEvent.  A pended correction's Task names the
  Claim it replaces.
* ``POST Claim/{id}/$decide`` — Parameters: ``note`` (why, required), ``line`` parts
  (``sequence``, ``decision`` = accept | reject | adjust, ``benefit`` for adjust, ``reason`` code,
  ``note``), ``agent`` (the deciding agent when the server runs without tokens).  Lines not
  named keep the automatic proposal — or, for a claim under appeal, the decision appealed
  against, which the agent may keep or raise but not lower.  Answers the decided ClaimResponse.
* ``POST Claim/{id}/$request-info`` — Parameters ``message`` (and ``agent``): stores a
  ``CommunicationRequest`` to the provider — or, for a claim under appeal, to the party whose
  appeal it is.  If the fund's rule set allows it, the 48-hour clock (the pended claim's, or the
  appeal's) pauses until the answering ``Communication`` (``basedOn`` that request) arrives, for
  at most ``clock_pause_max_hours`` in all; past that the clock runs again by itself.  A decision
  taken while the clock is paused ends the pause first, so the paused time counts.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import orjson
from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from claims import appeals, ledger
from claims.adjudication.model import Decision, LineDecision
from claims.adjudication.ruleset import rulesets
from claims.callers import QUEUE_FUND_AGENT, fund_reference
from claims.caresheet import local_reference_id, read_care_sheet
from claims.coverage import coverage_facts, payor_refs, route
from claims.lookups import patient_records, resources_by_id
from claims.clock import HOUR_US, now_us, to_instant
from claims.corrections import supersede_on_decision
from claims.money import ZERO, round_cent, to_decimal
from claims.notify import Subscriptions
from claims.operations import caller
from claims.reasons import REASONS
from claims.recording import current_responses, record_decision
from claims.settings import get_claims_settings
from claims.tables import claim_appeal, claim_job, claim_ledger, claim_review_task
from claims.uris import TASK_CODE
from ehr import bundle
from ehr.hooks import validator
from ehr.interactions.context import Context, store
from ehr.interactions.preconditions import new_id
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError
from ehr.parsing import bigint
from ehr.rest.http import fhir_response
from ehr.security.roles import Role
from ehr.store import repository
from ehr.store.db import read_connection, write_transaction
from ehr.store.schema import resource

OPEN, WAITING, CLOSED = "open", "waiting-info", "closed"
_TASK_NS = uuid.UUID("6f1f3a52-4c1e-4b8e-9a57-5e0d2b1c7a10")


def _agent(inv: Invocation, fund_ref: str | None) -> str:
    """Who acts: the token's user (an agent of this claim's fund: the operations admit insurers
    only), else the ``agent`` parameter."""
    who = caller(inv)
    if who is not None and who.role is not Role.UNRESTRICTED:
        if fund_ref is not None and who.fund != fund_ref:
            raise FHIRError.of(403, "forbidden", f"Cette feuille relève de {fund_ref}, pas de {who.fund}")
        return who.fhir_user or who.subject
    agent = inv.first("agent")
    if isinstance(agent, dict):
        agent = agent.get("reference") or agent.get("display")
    if not isinstance(agent, str) or not agent.strip():
        raise FHIRError.of(400, "required", "Le paramètre agent (qui décide) est requis", "Parameters.parameter.where(name='agent')")
    return agent.strip()


# --- the work queue ------------------------------------------------------------------------


def _task(row) -> dict:
    """A review task (joined with its ledger row) as a FHIR Task the agents' software can show."""
    concept = REASONS[row.reason_code].concept()
    concept["text"] = row.detail or concept["text"]
    status = {OPEN: "ready", WAITING: "on-hold", CLOSED: "completed"}[row.status]
    task = {
        "resourceType": "Task",
        "id": f"claim-review-{row.id}",
        "status": status,
        "intent": "order",
        "priority": "urgent" if row.escalated else "routine",
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}], "text": "Examen d'une feuille de soins"},
        "focus": {"reference": f"Claim/{row.claim_id}"},
        "for": {"reference": f"Patient/{row.patient_id}"},
        "authoredOn": to_instant(row.created_at),
        "owner": {"reference": row.fund_ref},
        "statusReason": concept,
        "businessStatus": {"text": REASONS[row.reason_code].fr},
        "restriction": {"period": {"end": to_instant(row.ledger_due)}},
        "input": [{"type": {"text": "proposition"}, "valueString": row.proposal.decode()}],
    }
    if row.info_request_id:
        task["basedOn"] = [{"reference": f"CommunicationRequest/{row.info_request_id}"}]
    if row.corrects_claim_id:
        replaced = {"reference": f"Claim/{row.corrects_claim_id}"}
        task["input"].append({"type": {"text": "feuille corrigée"}, "valueReference": replaced})
    return task


@operation("review-queue", levels={"type"}, types={"Claim"}, callers={QUEUE_FUND_AGENT},
           definition="https://fhir.sijill.ma/OperationDefinition/Claim-review-queue")
async def review_queue(inv: Invocation):
    who = caller(inv)
    fund = who.fund if who is not None and who.role is Role.INSURER else fund_reference(inv.first("fund"))
    if fund is None:
        raise FHIRError.of(400, "required", "Le paramètre fund (Organization/<id>) est requis", "http.fund")
    statuses = {"open": (OPEN,), "waiting-info": (WAITING,), "all": (OPEN, WAITING)}.get(str(inv.first("status") or "all"))
    if statuses is None:
        raise FHIRError.of(400, "value", "status vaut open, waiting-info ou all", "http.status")
    count = inv.first("_count") or 50
    asked = bigint(str(count))
    if asked is None:
        raise FHIRError.of(400, "invalid", "_count doit être un entier", "http._count")
    limit = min(asked, inv.settings.max_page_size)
    t, led = claim_review_task.c, claim_ledger.c
    corrected = claim_ledger.alias("corrected")
    async with read_connection(inv.engine) as conn:
        rows = (await conn.execute(
            select(claim_review_task, led.claim_id, led.patient_id, led.fund_ref, led.due_at.label("ledger_due"),
                   corrected.c.claim_id.label("corrects_claim_id"))
            .select_from(claim_review_task.join(claim_ledger, led.id == t.ledger_id)
                         .outerjoin(corrected, corrected.c.id == led.corrects_id))
            .where(led.fund_ref == fund, t.status.in_(statuses))
            .order_by(t.escalated.desc(), led.due_at, t.id)
            .limit(limit)
        )).all()
        found = [(_task(r), r.claim_id, r.ledger_due) for r in rows]
        found += await appeals.queue_tasks(conn, fund, statuses, limit)  # the same statuses: open, waiting-info
        found = sorted(found, key=lambda f: (f[0]["priority"] != "urgent", f[2]))[:limit]
        claims = await _claims(conn, [claim_id for _, claim_id, _ in found])
    entries = []
    for task, claim_id, _ in found:
        entries.append(bundle.entry(f"urn:uuid:{uuid.uuid5(_TASK_NS, task['id'])}", orjson.dumps(task), search={"mode": "match"}))
        if claim_id in claims:
            entries.append(bundle.entry(f"{inv.settings.base_url}/Claim/{claim_id}", claims[claim_id][1], search={"mode": "include"}))
    # Each patient whose sheet the agent sees is told, as for a search of their Claims.
    inv.returning(rids=[rid for rid, _ in claims.values()], patients=[task["for"]["reference"] for task, _, _ in found])
    return fhir_response(bundle.bundle("searchset", entries, total=len(found)))


async def _claims(conn: AsyncConnection, ids: list[str]) -> dict[str, tuple[int, bytes]]:
    """Claim id -> (rid, content)."""
    if not ids:
        return {}
    rows = await conn.execute(select(resource.c.res_id, resource.c.rid, resource.c.content)
                              .where(resource.c.res_type == "Claim", resource.c.res_id.in_(ids)))
    return {res_id: (rid, content) for res_id, rid, content in rows.all()}


# --- deciding ------------------------------------------------------------------------------


def _proposal_lines(proposal: bytes) -> dict[int, LineDecision]:
    data = orjson.loads(proposal)
    out = {}
    for ln in data.get("lines", []):
        out[ln["sequence"]] = LineDecision(
            ln["sequence"], ln["system"], ln["code"], date.fromisoformat(ln["service_date"]), Decimal(ln["quantity"]),
            Decimal(ln["submitted"]), Decimal(ln["eligible"]), Decimal(ln["rate"]), Decimal(ln["benefit"]),
            list(ln["reasons"]), ln.get("ald", False),
        )
    return out


def _part(p: dict, name: str):
    for sub in p.get("part") or []:
        if sub.get("name") == name:
            return next((v for k, v in sub.items() if k.startswith("value")), None)
    return None


def _apply_line(base: LineDecision, part: dict, where: str) -> tuple[LineDecision, str | None]:
    choice = _part(part, "decision")
    reason = _part(part, "reason")
    note = _part(part, "note")
    if reason is not None and reason not in REASONS:
        raise FHIRError.of(422, "code-invalid", f"Motif inconnu {reason!r}", f"{where}.part.where(name='reason')")
    if choice == "accept":
        if base.eligible == ZERO and base.benefit == ZERO and not base.reasons:
            raise FHIRError.of(422, "required", "Aucune proposition pour cette ligne : utiliser decision=adjust avec benefit", where)
        return base, note
    if choice == "reject":
        base.benefit, base.eligible = ZERO, ZERO
        base.reasons = [reason or "agent-rejected"] + [r for r in base.reasons if r != (reason or "agent-rejected")]
        return base, note
    if choice == "adjust":
        raw = _part(part, "benefit")
        amount = to_decimal(raw.get("value") if isinstance(raw, dict) else raw)
        if amount is None or amount < 0 or amount > base.submitted or round_cent(amount) != amount:
            raise FHIRError.of(422, "value", f"benefit doit être un montant en MAD entre 0 et {base.submitted}", f"{where}.part.where(name='benefit')")
        base.benefit = amount
        base.eligible = max(base.eligible, amount)
        if base.rate == ZERO and base.eligible:
            base.rate = round_cent(amount / base.eligible)
        base.reasons = [reason or "agent-adjusted"] + [r for r in base.reasons if r not in ("agent-adjusted",)]
        return base, note
    raise FHIRError.of(422, "code-invalid", "decision vaut accept, reject ou adjust", f"{where}.part.where(name='decision')")


def _agent_lines(inv: Invocation, lines: dict[int, LineDecision], note: str,
                 floor: dict[int, Decimal] | None = None) -> dict[int, str]:
    """Apply the ``line`` parameters to ``lines`` (in place); the notes of the lines named.

    ``floor``: per line, the least the agent may grant (an appeal never lowers a decision)."""
    notes: dict[int, str] = {}
    for i, part in enumerate(inv.all("line")):
        where = f"Parameters.parameter.where(name='line')[{i}]"
        if not isinstance(part, dict):
            raise FHIRError.of(400, "structure", "line est un paramètre à parties", where)
        seq = _part(part, "sequence")
        if seq not in lines:
            raise FHIRError.of(422, "value", f"La feuille n'a pas de ligne n° {seq}", f"{where}.part.where(name='sequence')")
        lines[seq], line_note = _apply_line(lines[seq], part, where)
        if floor is not None and lines[seq].benefit < floor[seq]:
            raise FHIRError.of(422, "business-rule", f"Un recours ne réduit pas la prise en charge : la ligne n° {seq} "
                               f"reste d'au moins {floor[seq]} MAD", f"{where}.part.where(name='decision')")
        notes[seq] = line_note or note
    return notes


@operation("decide", levels={"instance"}, types={"Claim"}, affects_state=True, callers={Role.INSURER},
           definition="https://fhir.sijill.ma/OperationDefinition/Claim-decide")
async def decide(inv: Invocation):
    note = inv.first("note")
    if not isinstance(note, str) or not note.strip():
        raise FHIRError.of(400, "required", "Le paramètre note (pourquoi) est requis", "Parameters.parameter.where(name='note')")
    async with write_transaction(inv.engine) as conn:
        row = await ledger.by_claim(conn, inv.res_id)
        if row is None:
            raise FHIRError.of(404, "not-found", f"Claim/{inv.res_id} n'a pas été soumise à l'échange")
        agent = _agent(inv, row.fund_ref)
        appeal = await appeals.open_appeal(conn, row.id)
        if appeal is not None:
            await _decide_appeal(inv, conn, row, appeal, agent, note.strip())
        else:
            await _decide_pended(inv, conn, row, agent, note)
        answer = await repository.current(conn, "ClaimResponse", row.response_id)
    return fhir_response(answer.content)


async def _decide_pended(inv: Invocation, conn: AsyncConnection, row: ledger.LedgerRow, agent: str, note: str) -> None:
    claims_settings = get_claims_settings()
    task = (await conn.execute(
        select(claim_review_task).where(claim_review_task.c.ledger_id == row.id).with_for_update()
    )).first()
    if task is None or task.status == CLOSED or row.status != ledger.IN_REVIEW:
        raise FHIRError.of(409, "business-rule", f"Claim/{inv.res_id} n'attend pas de décision d'un agent (statut {row.status})")
    if await _end_pause(conn, _CLAIM_CLOCK, task, now_us()):
        row = (await ledger.by_ids(conn, [row.id]))[row.id]  # the answer states the deadline moved
    claim = (await repository.current(conn, "Claim", row.claim_id)).resource()
    lines = _proposal_lines(task.proposal)
    if not lines:  # a technical pend: every line needs the agent's decision
        sheet, _ = read_care_sheet(claim, tz=claims_settings.timezone)
        lines = {ln.sequence: LineDecision(ln.sequence, ln.system, ln.code, ln.service_date, ln.quantity,
                                           ln.submitted, ZERO, ZERO, ZERO) for ln in sheet.lines}
    notes = _agent_lines(inv, lines, note)
    for seq in lines:
        notes.setdefault(seq, note)
    proposal = orjson.loads(task.proposal)
    rules = rulesets().by_version(row.fund_code, proposal.get("ruleset_version", "")) if proposal.get("ruleset_version") else None
    decision = Decision(sorted(lines.values(), key=lambda ln: ln.sequence),
                        proposal.get("ruleset_version") or f"{row.fund_code.lower()}-agent",
                        proposal.get("payee") or ("provider" if rules and row.care_setting in rules.tiers_payant else "insured"))
    subscriptions = Subscriptions()
    await subscriptions.refresh(conn)
    ctx = Context(conn, inv.settings.base_url, inv.access)
    prior = (await current_responses(ctx, [row.response_id])).get(row.response_id)
    complementary = await _complementary_for(conn, row)
    ok = await record_decision(ctx, row, claim, decision, now=now_us(), prior_response=prior, subscriptions=subscriptions,
                               decided_by=agent, notes=notes, complementary=complementary,
                               deadline_hours=claims_settings.deadline_hours)
    if not ok:
        raise FHIRError.of(409, "conflict", f"Claim/{inv.res_id} vient d'être décidée par ailleurs")
    await supersede_on_decision(ctx, [row.id], subscriptions)  # a correction replaces its original now
    await conn.execute(update(claim_review_task).where(claim_review_task.c.id == task.id).values(resolution=note.strip()))


async def _decide_appeal(inv: Invocation, conn: AsyncConnection, row: ledger.LedgerRow, appeal, agent: str, note: str) -> None:
    """The revised decision: lines not named keep the decision appealed against."""
    row = (await ledger.by_ids(conn, [row.id], for_update=True))[row.id]
    if await _end_pause(conn, _APPEAL_CLOCK, appeal, now_us()):
        appeal = await appeals.open_appeal(conn, row.id)  # its deadline moved
    lines = await appeals.decided_lines(conn, row.id)
    notes = _agent_lines(inv, lines, note, floor={seq: ln.benefit for seq, ln in lines.items()})
    decision = Decision(sorted(lines.values(), key=lambda ln: ln.sequence),
                        row.ruleset_version or f"{row.fund_code.lower()}-agent", row.payee or "insured")
    ctx = Context(conn, inv.settings.base_url, inv.access)
    await appeals.decide_appeal(ctx, row, appeal, decision, notes, agent=agent, resolution=note, now=now_us())


async def _complementary_for(conn, row) -> list:
    covs = (await patient_records(conn, [row.patient_id], ["Coverage"]))[row.patient_id]
    orgs = await resources_by_id(conn, payor_refs(covs))
    facts = [f for c in covs if (f := coverage_facts(c, orgs))]
    _, extra = route(row.patient_id, None, facts, date.fromisoformat(row.service_date), rulesets())
    return extra


# --- asking for information, and the clock ----------------------------------------------


@dataclass(frozen=True)
class _Clock:
    """Something an agent must finish within its deadline, whose clock a request for information
    may pause: a pended claim's review task, or an appeal.  Both tables have ``status``,
    ``due_at``, ``info_request_id``, ``paused_at`` and ``paused_total_us``."""

    table: Table
    moves_claim: bool  # a pended claim's deadline is also its ledger row's and its job's priority


_CLAIM_CLOCK = _Clock(claim_review_task, moves_claim=True)
_APPEAL_CLOCK = _Clock(claim_appeal, moves_claim=False)


@operation("request-info", levels={"instance"}, types={"Claim"}, affects_state=True, callers={Role.INSURER},
           definition="https://fhir.sijill.ma/OperationDefinition/Claim-request-info")
async def request_info(inv: Invocation):
    message = inv.first("message")
    if not isinstance(message, str) or not message.strip():
        raise FHIRError.of(400, "required", "Le paramètre message est requis", "Parameters.parameter.where(name='message')")
    async with write_transaction(inv.engine) as conn:
        row = await ledger.by_claim(conn, inv.res_id)
        if row is None:
            raise FHIRError.of(404, "not-found", f"Claim/{inv.res_id} n'a pas été soumise à l'échange")
        agent = _agent(inv, row.fund_ref)
        claim = (await repository.current(conn, "Claim", row.claim_id)).resource()
        appeal = await appeals.open_appeal(conn, row.id)  # a decided claim's open appeal: its clock, not the claim's
        if appeal is not None:
            clock, item, topic = _APPEAL_CLOCK, appeal, "Demande de pièces ou d'informations pour l'examen d'un recours"
            recipient = appeals.party_recipient(appeal, row, claim)
        else:
            clock, topic = _CLAIM_CLOCK, "Demande de pièces ou d'informations complémentaires"
            item = (await conn.execute(
                select(claim_review_task).where(claim_review_task.c.ledger_id == row.id).with_for_update()
            )).first()
            if item is None or item.status == CLOSED:
                raise FHIRError.of(409, "business-rule", f"Claim/{inv.res_id} n'est pas en cours d'examen")
            recipient = claim["provider"] if isinstance(claim.get("provider"), dict) else None
        now = now_us()
        comm = {
            "resourceType": "CommunicationRequest",
            "status": "active",
            "category": [{"text": topic}],
            "priority": "urgent",
            "subject": {"reference": f"Patient/{row.patient_id}"},
            "about": [{"reference": f"Claim/{row.claim_id}"}],
            "authoredOn": to_instant(now),
            "requester": {"reference": row.fund_ref},
            "sender": {"reference": row.fund_ref},
            "payload": [{"contentString": message.strip()}],
            "note": [{"authorString": agent, "text": f"Demandé par {agent}"}],
        }
        if recipient:
            comm["recipient"] = [recipient]
        stored = await store(Context(conn, inv.settings.base_url, inv.access), "CommunicationRequest", new_id(), comm,
                             method="POST", prior=None)
        pauses = _pause_budget_us(row.fund_code, row.service_date) > item.paused_total_us
        table = clock.table
        await conn.execute(update(table).where(table.c.id == item.id).values(
            status=WAITING, info_request_id=stored.res_id, paused_at=now if pauses and item.paused_at is None else item.paused_at,
        ))
    headers = {"Location": f"{inv.settings.base_url}/CommunicationRequest/{stored.res_id}/_history/{stored.version_id}"}
    return fhir_response(stored.content, 201, headers)


def _pause_budget_us(fund_code: str, service_date: str) -> int:
    """How long requests for information may stop a claim's (or its appeal's) clock, in all (fund's rule)."""
    rules = rulesets().version(fund_code, date.fromisoformat(service_date))
    return (rules.review.clock_pause_max_hours if rules else 0) * HOUR_US


async def _resume(conn: AsyncConnection, clock: _Clock, item, now: int, status: str) -> int:
    """End a pause: the deadline moves by the paused time, within the fund's allowance."""
    row = (await ledger.by_ids(conn, [item.ledger_id]))[item.ledger_id]
    budget = max(_pause_budget_us(row.fund_code, row.service_date) - item.paused_total_us, 0)
    paused = min(now - item.paused_at, budget) if item.paused_at else 0
    table = clock.table
    await conn.execute(update(table).where(table.c.id == item.id).values(
        status=status, paused_at=None, paused_total_us=item.paused_total_us + paused, due_at=item.due_at + paused,
    ))
    if paused and clock.moves_claim:
        await conn.execute(update(claim_ledger).where(claim_ledger.c.id == row.id).values(due_at=row.due_at + paused))
        await conn.execute(update(claim_job).where(claim_job.c.ledger_id == row.id).values(priority=claim_job.c.priority + paused))
    return paused


async def _end_pause(conn: AsyncConnection, clock: _Clock, item, now: int) -> bool:
    """Decided while paused: the pause ends at the decision (within the allowance), so the time
    the clock stood still is not counted against the deadline."""
    return item.paused_at is not None and await _resume(conn, clock, item, now, item.status) > 0


async def resume_expired_pauses(conn: AsyncConnection, now: int) -> int:
    """Pauses that used up the fund's allowance end by themselves (no answer came)."""
    ended = 0
    for clock in (_CLAIM_CLOCK, _APPEAL_CLOCK):
        t = clock.table
        rows = (await conn.execute(
            select(t, claim_ledger.c.fund_code.label("claim_fund"), claim_ledger.c.service_date)
            .select_from(t.join(claim_ledger, claim_ledger.c.id == t.c.ledger_id))
            .where(t.c.paused_at.is_not(None), t.c.status == WAITING)
        )).all()
        for item in rows:
            budget = _pause_budget_us(item.claim_fund, item.service_date) - item.paused_total_us
            if item.paused_at + budget <= now:
                await _resume(conn, clock, item, now, WAITING)
                ended += 1
    return ended


@validator
async def provider_answer_resumes_review(ctx: Context, res: dict) -> None:
    """An answer (``Communication`` based on our request) restarts the paused clock — of a pended
    claim or of an appeal.

    Done as a write hook so it happens in the same transaction as storing the answer, whatever
    way it arrives (create, update, transaction entry).
    """
    if res.get("resourceType") != "Communication":
        return
    ids = [rid for ref in res.get("basedOn") or [] if (rid := local_reference_id(ref, "CommunicationRequest"))]
    if not ids:
        return
    for clock in (_CLAIM_CLOCK, _APPEAL_CLOCK):
        t = clock.table
        for item in (await ctx.conn.execute(select(t).where(t.c.info_request_id.in_(ids), t.c.status == WAITING))).all():
            await _resume(ctx.conn, clock, item, now_us(), OPEN)

"""Writing a decision (automatic or an agent's) or a pend, inside the caller's transaction.

Everything a decision changes is written here and together: the ledger row moves to
``decided`` only from an open status (a second decision of the same claim changes nothing
and reports False), the decided lines (unique per claim and line: a second insert fails the
transaction), the ClaimResponse's new version, the patient's ExplanationOfBenefit, the review
task's closing, the notifications to send, and the complementary insurer's follow-up claim.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from sqlalchemy import update

from claims import ledger, queue
from claims.adjudication.model import CoverageFacts, Decision
from claims.clock import deadline
from claims.ledger import LedgerRow
from claims.money import cents
from claims.messaging.notices import notify
from claims.messaging.status_code import codes_for, shown
from claims.notify import Subscriptions
from claims.responses import decided_response, explanation_of_benefit, queued_response
from claims.tables import claim_decision_line, claim_review_task
from ehr.interactions.context import Context, store_many
from ehr.interactions.preconditions import new_id
from ehr.store import repository
from ehr.store.repository import NewVersion, Stored

SYSTEM = "system"


@dataclass
class Outcome:
    decided: list[int] = field(default_factory=list)  # ledger ids
    pended: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # already decided elsewhere


async def current_responses(ctx: Context, ids: list[str]) -> dict[str, Stored]:
    """The current ClaimResponses (by id) a batch of decisions will update, in one query."""
    found = await repository.current_many(ctx.conn, [("ClaimResponse", i) for i in ids])
    return {key[1]: stored for key, stored in found.items()}


def preauth_number(row: LedgerRow) -> str:
    return f"PA-{row.fund_code}-{row.id:08d}"


@dataclass
class ToRecord:
    """One decision to write: the claim's ledger row, its Claim, the decision and its context."""

    row: LedgerRow
    claim: dict
    decision: Decision
    prior_response: Stored | None
    notes: dict[int, str] = field(default_factory=dict)
    complementary: list[CoverageFacts] = field(default_factory=list)


async def record_decision(
    ctx: Context,
    row: LedgerRow,
    claim: dict,
    decision: Decision,
    *,
    now: int,
    prior_response: Stored | None,
    subscriptions: Subscriptions,
    decided_by: str = SYSTEM,
    notes: dict[int, str] | None = None,
    complementary: list[CoverageFacts] = (),
    deadline_hours: int = 48,
) -> bool:
    item = ToRecord(row, claim, decision, prior_response, notes or {}, list(complementary))
    done = await record_decisions(ctx, [item], now=now, subscriptions=subscriptions, decided_by=decided_by,
                                  deadline_hours=deadline_hours)
    return bool(done)


async def record_decisions(
    ctx: Context,
    items: list[ToRecord],
    *,
    now: int,
    subscriptions: Subscriptions,
    decided_by: str = SYSTEM,
    deadline_hours: int = 48,
) -> list[int]:
    """Write a batch of decisions in a fixed number of statements; returns the ledger ids decided.

    A claim no longer open (decided meanwhile by an agent or another worker) is left alone.
    """
    movable = set(await ledger.lock_open(ctx.conn, [it.row.id for it in items]))
    items = [it for it in items if it.row.id in movable]
    if not items:
        return []
    eob_ids = [new_id() for _ in items]
    await ledger.set_decided(ctx.conn, [
        dict(
            id=it.row.id, status=ledger.DECIDED, decided_at=now, decided_by=decided_by, outcome=it.decision.outcome,
            benefit_cents=cents(it.decision.benefit), patient_share_cents=cents(it.decision.patient_share),
            payee=it.decision.payee, ruleset_version=it.decision.ruleset_version, eob_id=eob_id,
            ald=int(any(ln.ald for ln in it.decision.lines)),
            preauth_ref=preauth_number(it.row) if it.decision.preauth_period else None,
            preauth_from=it.decision.preauth_period[0].isoformat() if it.decision.preauth_period else None,
            preauth_until=it.decision.preauth_period[1].isoformat() if it.decision.preauth_period else None,
        )
        for it, eob_id in zip(items, eob_ids)
    ])
    lines = [
        dict(
            ledger_id=it.row.id, sequence=ln.sequence, patient_id=it.row.patient_id, provider_inpe=it.row.provider_inpe,
            fund_code=it.row.fund_code, code_system=ln.system, code=ln.code, service_date=ln.service_date.isoformat(),
            quantity=float(ln.quantity), submitted_cents=cents(ln.submitted), eligible_cents=cents(ln.eligible),
            benefit_cents=cents(ln.benefit), patient_share_cents=cents(ln.patient_share),
            rate_permille=int(ln.rate * 1000), reasons=" ".join(ln.reasons) or None, decided_by=decided_by,
            note=it.notes.get(ln.sequence),
        )
        for it in items for ln in it.decision.lines
    ]
    if lines:
        await ctx.conn.execute(claim_decision_line.insert(), lines)
    codes = {i: shown(c) for i, c in (await codes_for(ctx.conn, [it.row.claim_id for it in items])).items()}
    versions = []
    for it, eob_id in zip(items, eob_ids):
        preauth = preauth_number(it.row) if it.decision.preauth_period else None
        answer = decided_response(it.claim, it.row, it.decision, now, decided_by, preauth, codes[it.row.claim_id])
        eob = explanation_of_benefit(it.claim, it.row, it.decision, now, it.row.response_id)
        versions.append(NewVersion("ClaimResponse", it.row.response_id, answer, "PUT", it.prior_response))
        versions.append(NewVersion("ExplanationOfBenefit", eob_id, eob, "POST", None))
    written = await store_many(ctx, versions)
    await ctx.conn.execute(
        update(claim_review_task)
        .where(claim_review_task.c.ledger_id.in_([it.row.id for it in items]), claim_review_task.c.status != "closed")
        .values(status="closed", closed_at=now, closed_by=decided_by)
    )
    if subscriptions.active:
        await subscriptions.enqueue_many(ctx.conn, [orjson.loads(w.content) for w in written[::2]], now)
    for it in items:
        if it.row.use == "claim":  # the patient is told of each insurer's decision and what they owe
            await notify(ctx, it.row.patient_id, "claim-decided", f"ClaimResponse/{it.row.response_id}", {
                "code": codes[it.row.claim_id], "owed": str(it.decision.patient_share)})
    await open_complementary(ctx, [
        (it.row, it.claim, cov, rank)
        for it in items if it.row.payer_rank == 1 and it.row.use == "claim" and it.decision.patient_share > 0
        for rank, cov in enumerate(it.complementary[:1], start=2)
    ], now, deadline_hours)
    return [it.row.id for it in items]


async def open_complementary(ctx: Context, follow_ups: list[tuple[LedgerRow, dict, CoverageFacts, int]], now: int,
                             hours: int) -> None:
    """The complementary insurers' claims: same sheet, each its own ledger row, clock and answer."""
    if not follow_ups:
        return
    claims_by_ledger: dict[int, dict] = {}
    for row, claim, cov, rank in follow_ups:
        values = dict(
            provider_inpe=row.provider_inpe, claim_identifier=row.claim_identifier, payer_rank=rank, claim_id=row.claim_id,
            response_id=new_id(), patient_id=row.patient_id, provider_ref=row.provider_ref, fund_ref=cov.fund_ref,
            fund_code=cov.fund_code, coverage_id=cov.id, use=row.use, care_setting=row.care_setting,
            service_date=row.service_date, fingerprint=row.fingerprint, parent_id=row.id, received_at=now,
            due_at=deadline(now, hours), status=ledger.QUEUED, submitted_cents=row.submitted_cents,
        )
        ledger_id = await ledger.insert_new(ctx.conn, values)
        if ledger_id is not None:
            claims_by_ledger[ledger_id] = claim
    rows = await ledger.by_ids(ctx.conn, list(claims_by_ledger))
    codes = await codes_for(ctx.conn, [row.claim_id for row in rows.values()])
    note = "Part complémentaire : décision après celle de l'organisme AMO"
    await store_many(ctx, [
        NewVersion("ClaimResponse", row.response_id,
                   queued_response(claims_by_ledger[lid], row, now, shown(codes[row.claim_id]), note), "POST", None)
        for lid, row in rows.items()
    ])
    await queue.enqueue_many(ctx.conn, [(lid, row.due_at) for lid, row in rows.items()], now)


def proposal_json(decision: Decision) -> bytes:
    """The automatic decision an agent starts from (amounts as text: exact decimals)."""
    return orjson.dumps({
        "ruleset_version": decision.ruleset_version,
        "payee": decision.payee,
        "lines": [
            {
                "sequence": ln.sequence, "system": ln.system, "code": ln.code,
                "service_date": ln.service_date.isoformat(), "quantity": str(ln.quantity),
                "submitted": str(ln.submitted), "eligible": str(ln.eligible), "rate": str(ln.rate),
                "benefit": str(ln.benefit), "reasons": ln.reasons, "ald": ln.ald,
            }
            for ln in decision.lines
        ],
    })


async def record_pends(ctx: Context, items: list[ToRecord], *, now: int) -> list[int]:
    """Hand these claims to the fund's agents (their clocks keep running); returns the ledger ids
    moved to review — a claim no longer queued is left alone."""
    moved = set(await ledger.move_queued(ctx.conn, [it.row.id for it in items], ledger.IN_REVIEW))
    items = [it for it in items if it.row.id in moved]
    if not items:
        return []
    await ctx.conn.execute(claim_review_task.insert(), [
        dict(ledger_id=it.row.id, fund_code=it.row.fund_code, reason_code=it.decision.pend.code,
             detail=it.decision.pend.detail, proposal=proposal_json(it.decision), status="open", due_at=it.row.due_at,
             escalated=0, created_at=now, paused_total_us=0)
        for it in items
    ])
    codes = await codes_for(ctx.conn, [it.row.claim_id for it in items])
    await store_many(ctx, [
        NewVersion("ClaimResponse", it.row.response_id, queued_response(
            it.claim, it.row, now, shown(codes[it.row.claim_id]),
            f"Feuille de soins en cours d'examen par un agent de l'organisme : {it.decision.pend.detail}",
        ), "PUT", it.prior_response)
        for it in items
    ])
    return [it.row.id for it in items]

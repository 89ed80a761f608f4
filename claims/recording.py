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
from claims.notify import Subscriptions
from claims.responses import decided_response, explanation_of_benefit, queued_response
from claims.tables import claim_decision_line, claim_review_task
from ehr.interactions.context import Context, store
from ehr.interactions.preconditions import new_id
from ehr.store import repository
from ehr.store.repository import Stored

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
    eob_id = new_id()
    preauth = preauth_number(row) if decision.preauth_period else None
    moved = await ledger.transition(
        ctx.conn, row.id, ledger.OPEN_STATUSES,
        status=ledger.DECIDED, decided_at=now, decided_by=decided_by, outcome=decision.outcome,
        benefit_cents=cents(decision.benefit), patient_share_cents=cents(decision.patient_share),
        payee=decision.payee, ruleset_version=decision.ruleset_version, eob_id=eob_id, preauth_ref=preauth,
        preauth_from=decision.preauth_period[0].isoformat() if preauth else None,
        preauth_until=decision.preauth_period[1].isoformat() if preauth else None,
    )
    if not moved:
        return False
    notes = notes or {}
    await ctx.conn.execute(
        claim_decision_line.insert(),
        [
            dict(
                ledger_id=row.id, sequence=ln.sequence, patient_id=row.patient_id, provider_inpe=row.provider_inpe,
                fund_code=row.fund_code, code_system=ln.system, code=ln.code, service_date=ln.service_date.isoformat(),
                quantity=float(ln.quantity), submitted_cents=cents(ln.submitted), eligible_cents=cents(ln.eligible),
                benefit_cents=cents(ln.benefit), patient_share_cents=cents(ln.patient_share),
                rate_permille=int(ln.rate * 1000), reasons=" ".join(ln.reasons) or None, decided_by=decided_by,
                note=notes.get(ln.sequence),
            )
            for ln in decision.lines
        ],
    )
    answer = decided_response(claim, row, decision, now, decided_by, preauth)
    stored = await store(ctx, "ClaimResponse", row.response_id, answer, method="PUT", prior=prior_response)
    await store(ctx, "ExplanationOfBenefit", eob_id, explanation_of_benefit(claim, row, decision, now, row.response_id),
                method="POST", prior=None)
    await ctx.conn.execute(
        update(claim_review_task)
        .where(claim_review_task.c.ledger_id == row.id, claim_review_task.c.status != "closed")
        .values(status="closed", closed_at=now, closed_by=decided_by)
    )
    await subscriptions.enqueue(ctx.conn, orjson.loads(stored.content), now)
    if row.payer_rank == 1 and row.use == "claim" and decision.patient_share > 0:
        for rank, cov in enumerate(complementary[:1], start=2):
            await _open_complementary(ctx, row, claim, cov, rank, now, deadline_hours)
    return True


async def _open_complementary(ctx: Context, row: LedgerRow, claim: dict, cov: CoverageFacts, rank: int, now: int, hours: int) -> None:
    """The complementary insurer's claim: same sheet, its own ledger row, clock and answer."""
    response_id = new_id()
    values = dict(
        provider_inpe=row.provider_inpe, claim_identifier=row.claim_identifier, payer_rank=rank, claim_id=row.claim_id,
        response_id=response_id, patient_id=row.patient_id, provider_ref=row.provider_ref, fund_ref=cov.fund_ref,
        fund_code=cov.fund_code, coverage_id=cov.id, use=row.use, care_setting=row.care_setting,
        service_date=row.service_date, fingerprint=row.fingerprint, parent_id=row.id, received_at=now,
        due_at=deadline(now, hours), status=ledger.QUEUED, submitted_cents=row.submitted_cents,
    )
    ledger_id = await ledger.insert_new(ctx.conn, values)
    if ledger_id is None:
        return
    new_row = (await ledger.by_ids(ctx.conn, [ledger_id]))[ledger_id]
    note = "Part complémentaire : décision après celle de l'organisme AMO"
    await store(ctx, "ClaimResponse", response_id, queued_response(claim, new_row, now, note), method="POST", prior=None)
    await queue.enqueue(ctx.conn, ledger_id, new_row.due_at, now)


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


async def record_pend(ctx: Context, row: LedgerRow, claim: dict, decision: Decision, *, now: int, prior_response: Stored | None) -> bool:
    """Hand the claim to the fund's agents; its clock keeps running."""
    moved = await ledger.transition(ctx.conn, row.id, (ledger.QUEUED,), status=ledger.IN_REVIEW)
    if not moved:
        return False
    await ctx.conn.execute(
        claim_review_task.insert().values(
            ledger_id=row.id, fund_code=row.fund_code, reason_code=decision.pend.code, detail=decision.pend.detail,
            proposal=proposal_json(decision), status="open", due_at=row.due_at, escalated=0, created_at=now,
            paused_total_us=0,
        )
    )
    note = f"Feuille de soins en cours d'examen par un agent de l'organisme : {decision.pend.detail}"
    await store(ctx, "ClaimResponse", row.response_id, queued_response(claim, row, now, note), method="PUT", prior=prior_response)
    return True

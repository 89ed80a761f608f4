"""Corrected resubmissions: a new care sheet that replaces one the fund already received.

A provider fixes a sheet (wrong code, forgotten line, wrong quantity) by sending a new Claim
with its own sheet number whose ``related`` names the original with relationship ``prior``
(``http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship``).

* At submission (``check_corrections``, in the submission's transaction): the original must be
  known to the exchange, for the same patient, provider (INPE) and fund, a ``claim`` (not a
  pre-authorisation), decided or paid — or still queued — and not already replaced, under
  review or under appeal.  The original's row (and first its job, the order the worker locks
  them in) is locked until the commit, so two corrections of one sheet, or a correction and an
  appeal, are decided one after the other; ``UNIQUE (corrects_id)`` backs this up.
* A queued original is withdrawn there and then (``withdraw_originals``): its job is dropped,
  its row ``superseded``, its ClaimResponse says so and names the correction.
* When the correction is decided (``supersede_on_decision``, in the decision's transaction) the
  original — and its complementary insurer's row — become ``superseded`` and their answers
  (ClaimResponse, EOB) get a new version pointing to the correction.  The correction's own
  complementary claim replaces the original's; if the correction opened none (it leaves the
  patient nothing to pay, or that cover has ended), one is opened with that insurer all the
  same, so that, decided at what is left, it recovers what the insurer paid on the original.  Until then, and after,
  the original's lines never count as history (duplicates, frequency, ceilings) against
  anyone: they are replaced (``claims.adjudication.facts``).
* Payment (``claims.payment``): the correction is paid what it is decided minus what was
  already paid for the sheets it replaces — positive: paid; negative: recovered on the payee's
  next PaymentReconciliation.
"""
from __future__ import annotations

from typing import Protocol

from sqlalchemy import delete, select, update

from claims import appeals, ledger
from claims.adjudication.model import CoverageFacts
from claims.caresheet import CareSheet
from claims.clock import now_us
from claims.ledger import LedgerRow
from claims.lookups import resources_by_id
from claims.notify import Subscriptions
from claims.recording import open_complementary
from claims.settings import get_claims_settings
from claims.tables import claim_job, claim_ledger, claim_review_task
from claims.uris import EXT_SUPERSEDED_BY
from ehr.interactions.context import Context, store
from ehr.outcome import FHIRError
from ehr.store import repository


class SheetUnderCheck(Protocol):
    """What ``check_corrections`` reads and sets on each sheet of a submission."""

    res: dict
    sheet: CareSheet
    inpe: str | None
    ledger_values: dict  # the ledger row to insert (routed: fund_code is known)
    answer: object  # set to the FHIRError refusing the sheet


async def check_corrections(ctx: Context, sheets: list[SheetUnderCheck]) -> None:
    """Refuse corrections that cannot replace their original; link the others to it."""
    for s in sheets:  # every row of one insert names the same columns
        s.ledger_values.setdefault("corrects_id", None)
    corrections = [s for s in sheets if s.answer is None and s.sheet.corrects_claim_id]
    if not corrections:
        return
    originals = await _lock_originals(ctx, {s.sheet.corrects_claim_id for s in corrections})
    ids = [o.id for o in originals.values()]
    # original's ledger id -> (sheet number, Claim id) of the correction that replaces it
    replaced = {lid: (r.claim_identifier, r.claim_id) for lid, r in (await ledger.corrections_of(ctx.conn, ids)).items()}
    appealed = await appeals.open_appeals(ctx.conn, ids)
    for s in corrections:
        original = originals.get(s.sheet.corrects_claim_id)
        s.answer = _refusal(s, original, replaced.get(original.id) if original else None, appealed)
        if s.answer is None:
            s.ledger_values["corrects_id"] = original.id
            replaced[original.id] = (s.sheet.identifier, s.ledger_values["claim_id"])  # one correction per batch too


async def _lock_originals(ctx: Context, claim_ids: set[str]) -> dict[str, LedgerRow]:
    """The originals' rows by Claim id, locked — their jobs first, in the worker's lock order."""
    conn = ctx.conn
    found = {r.claim_id: r for cid in sorted(claim_ids) if (r := await ledger.by_claim(conn, cid)) is not None}
    ids = sorted(r.id for r in found.values())
    if ids:
        await conn.execute(select(claim_job.c.id).where(claim_job.c.ledger_id.in_(ids)).with_for_update())
    locked = await ledger.by_ids(conn, ids, for_update=True)
    return {r.claim_id: r for r in locked.values()}


def _refusal(s: SheetUnderCheck, original: LedgerRow | None, correction: tuple[str, str] | None,
             appealed: set[int]) -> FHIRError | None:
    sheet, where = s.sheet, s.sheet.corrects_path
    if original is None:
        return FHIRError.of(422, "not-found", f"La feuille corrigée Claim/{sheet.corrects_claim_id} n'a pas été reçue "
                            "par l'échange", where)
    if original.patient_id != sheet.patient_id:
        return FHIRError.of(422, "invalid", "Une correction concerne le même patient que la feuille qu'elle remplace "
                            f"(Patient/{original.patient_id})", where)
    if original.provider_inpe != s.inpe:
        return FHIRError.of(422, "business-rule", "Seul le prestataire qui a établi la feuille peut la corriger "
                            f"(INPE {original.provider_inpe})", where)
    if original.use != "claim" or sheet.use != "claim":
        return FHIRError.of(422, "not-supported", "Seules les feuilles de soins (use = claim) se corrigent ; une demande "
                            "d'accord préalable se renouvelle", where)
    if s.ledger_values.get("fund_code") != original.fund_code:
        return FHIRError.of(422, "business-rule", f"La correction relève de {s.ledger_values.get('fund_code')}, la feuille "
                            f"corrigée de {original.fund_code} : une correction reste chez le même organisme", where)
    if correction is not None or original.status == ledger.SUPERSEDED:
        by = f" par la feuille n° {correction[0]} (Claim/{correction[1]})" if correction else ""
        return FHIRError.of(409, "conflict", f"La feuille Claim/{original.claim_id} a déjà été remplacée{by} ; "
                            "corrigez la dernière version", where)
    if original.status == ledger.IN_REVIEW:
        return FHIRError.of(409, "conflict", f"La feuille Claim/{original.claim_id} est en cours d'examen par un agent "
                            "de l'organisme : attendez sa décision pour la corriger", where)
    if original.id in appealed:
        return FHIRError.of(409, "conflict", f"Un recours est en cours sur Claim/{original.claim_id} : attendez sa "
                            "décision pour corriger la feuille", where)
    return None


async def withdraw_originals(ctx: Context, rows: list[LedgerRow], now: int) -> None:
    """Corrections just received whose original was still queued: it is withdrawn undecided."""
    corrections = [r for r in rows if r.corrects_id is not None]
    originals = await ledger.by_ids(ctx.conn, [r.corrects_id for r in corrections])
    queued = [(r, originals[r.corrects_id]) for r in corrections if originals[r.corrects_id].status == ledger.QUEUED]
    if not queued:
        return
    subscriptions = Subscriptions()
    await subscriptions.refresh(ctx.conn)
    for correction, original in queued:
        await _retire(ctx, original, correction, now, subscriptions)


async def supersede_on_decision(ctx: Context, ledger_ids: list[int], subscriptions: Subscriptions) -> None:
    """Corrections among ``ledger_ids`` decided in this transaction replace their originals.

    Called after the decisions are written, in their transaction (worker batch, agent's decision).
    """
    rows = await ledger.by_ids(ctx.conn, ledger_ids)
    decided = [r for r in rows.values() if r.status == ledger.DECIDED and r.corrects_id is not None and r.payer_rank == 1]
    if not decided:
        return
    originals = await ledger.by_ids(ctx.conn, [r.corrects_id for r in decided])
    live = [(r, originals[r.corrects_id]) for r in decided if originals[r.corrects_id].status != ledger.SUPERSEDED]
    now = now_us()
    for correction, original in live:
        await _retire(ctx, original, correction, now, subscriptions)
    # The complementary insurers' rows follow their primary row.
    primary_ids = [o.id for _, o in live] + [c.id for c, _ in live]
    following = await ledger.complementary_of(ctx.conn, primary_ids)
    opened = {(r.parent_id, r.payer_rank) for r in following}
    unmatched = [(c, old) for c, o in live for old in following if old.parent_id == o.id and (c.id, old.payer_rank) not in opened]
    if unmatched:
        await _open_settling_claims(ctx, unmatched, now)
        following = await ledger.complementary_of(ctx.conn, primary_ids)
    for correction, original in live:
        theirs = {r.payer_rank: r for r in following if r.parent_id == original.id}
        ours = {r.payer_rank: r for r in following if r.parent_id == correction.id}
        for rank, old in theirs.items():
            await _retire(ctx, old, correction, now, subscriptions)
            if rank in ours:  # the correction's complementary claim is paid the difference
                await ctx.conn.execute(update(claim_ledger).where(claim_ledger.c.id == ours[rank].id)
                                       .values(corrects_id=old.id))


async def _open_settling_claims(ctx: Context, unmatched: list[tuple[LedgerRow, LedgerRow]], now: int) -> None:
    """For each (correction, complementary row of its original) the correction has no row for:
    a claim of the correction with that insurer, queued like any complementary claim.  Linked to
    the row it replaces (below), the worker decides it on what the correction leaves to the
    patient (nothing, or not covered any more), and the payment run recovers the difference."""
    claims = await resources_by_id(ctx.conn, [("Claim", c.claim_id) for c, _ in unmatched])
    await open_complementary(ctx, [
        (correction, claims[("Claim", correction.claim_id)], _insurer(old), old.payer_rank) for correction, old in unmatched
    ], now, get_claims_settings().deadline_hours)


def _insurer(row: LedgerRow) -> CoverageFacts:
    """The insurer and cover of a complementary row, as a complementary claim is opened with:
    from the row itself, which stays right even if its Coverage has since ended or gone."""
    return CoverageFacts(id=row.coverage_id or "", fund_ref=row.fund_ref, fund_code=row.fund_code, status="active",
                         start=None, end=None, regime=None, relationship=None, subscriber_id=None, subscriber_ref=None,
                         beneficiary_id=None, order=row.payer_rank)


async def _retire(ctx: Context, row: LedgerRow, correction: LedgerRow, now: int, subscriptions: Subscriptions) -> None:
    """``row`` is replaced by ``correction``: its job and open review go, its answers say so.

    The job goes first (a worker deciding it holds it: we wait for its commit), then the row is
    read again, locked: withdrawn if still undecided, replaced if decided or paid."""
    conn = ctx.conn
    await conn.execute(delete(claim_job).where(claim_job.c.ledger_id == row.id))
    row = (await ledger.by_ids(conn, [row.id], for_update=True))[row.id]
    if row.status == ledger.SUPERSEDED:
        return
    withdrawn = row.status in ledger.OPEN_STATUSES
    values = dict(status=ledger.SUPERSEDED)
    if withdrawn:  # settled without a decision of its own: the SLA counts it as answered
        values.update(decided_at=now, decided_by=f"Claim/{correction.claim_id}")
    if not await ledger.transition(conn, row.id, (row.status,), **values):
        raise RuntimeError(f"ledger row {row.id} changed while correction {correction.id} replaced it")
    await conn.execute(
        update(claim_review_task)
        .where(claim_review_task.c.ledger_id == row.id, claim_review_task.c.status != "closed")
        .values(status="closed", closed_at=now, closed_by=f"Claim/{correction.claim_id}", resolution="Feuille remplacée")
    )
    response = await _mark_replaced(ctx, "ClaimResponse", row.response_id, correction, withdrawn)
    if row.eob_id:
        await _mark_replaced(ctx, "ExplanationOfBenefit", row.eob_id, correction, withdrawn)
    if response is not None:
        await subscriptions.enqueue(conn, response, now)


async def _mark_replaced(ctx: Context, res_type: str, res_id: str, correction: LedgerRow, withdrawn: bool) -> dict | None:
    """A new version of an answer: cancelled, replaced by the correction's (kept for the record)."""
    prior = await repository.current(ctx.conn, res_type, res_id, for_update=True)
    if prior is None or prior.deleted:
        return None
    res = prior.resource()
    res["status"] = "cancelled"
    res["extension"] = [e for e in res.get("extension") or [] if e.get("url") != EXT_SUPERSEDED_BY] + [{
        "url": EXT_SUPERSEDED_BY,
        "extension": [
            {"url": "claim", "valueReference": {"reference": f"Claim/{correction.claim_id}"}},
            {"url": "response", "valueReference": {"reference": f"ClaimResponse/{correction.response_id}"}},
        ],
    }]
    number = correction.claim_identifier
    if withdrawn:
        res["outcome"] = "complete"
        text = (f"Feuille retirée avant décision : remplacée par la feuille corrigée n° {number}",
                f"سحبت ورقة العلاج قبل البت فيها: عوضت بورقة العلاج المصححة رقم {number}")
    else:
        text = (f"Décision remplacée par celle de la feuille corrigée n° {number}",
                f"عوض هذا القرار بقرار ورقة العلاج المصححة رقم {number}")
    res["disposition"] = " / ".join(text)
    await store(ctx, res_type, res_id, res, method="PUT", prior=prior)
    return res

"""Daily payment: one PaymentReconciliation (and its PaymentNotice) per fund and payee.

Every claim decided up to the end of the day with something to pay and not paid yet is paid
once: to the provider when the fund pays it directly (tiers payant), otherwise to the insured
member (the Coverage's subscriber, who is reimbursed for a dependant too).  All amounts are
integer centimes, so a reconciliation's total is exactly the sum of its lines and of the
decided benefits.  ``claim_payment.ledger_id`` is unique: running the same day twice, or two
runs at once, can never pay a claim twice (the second run finds nothing left, or fails and
rolls back whole).

Corrections and appeals (``claims.corrections``, ``claims.appeals``) are settled here too, as
``adjustment`` details: a correction is paid its benefit less what was paid for the sheets it
replaces (the replaced sheet's number is the detail's ``predecessor``); when that is negative
it is recovered as a negative detail on the payee's next reconciliation, as far as that
reconciliation's payments cover it (it is never negative).  An increase decided on appeal for
a claim already paid is paid once (``claim_appeal.paid_on``); so is the difference of the
complementary insurer's decision revised after that appeal — recovered the same way when the
patient's share, and so the insurer's, went down.  Over a sheet's chain of corrections and
appeals, what was paid adds up to the benefit in force, to the centime.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date

import typer
from rich.console import Console
from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from claims import ledger
from claims.caresheet import any_reference, today
from claims.clock import day_bounds, now_us, to_instant
from claims.lookups import resources_by_id
from claims.messaging.notices import notify
from claims.messaging.status_code import code_for, shown
from claims.money import from_cents, money
from claims.settings import get_claims_settings
from claims.tables import claim_appeal, claim_ledger, claim_payment
from claims.payment_answers import mark_paid
from claims.uris import CLAIM_NUMBER, INPE, PAYMENT_NUMBER, PAYMENT_TYPE
from ehr.interactions.context import Context, store
from ehr.interactions.preconditions import new_id
from ehr.security.search_params import PAYEE_PERSON as EXT_PAYEE_PERSON
from ehr.store.db import create_engine, write_transaction


@dataclass(frozen=True)
class Detail:
    """One line of a reconciliation: what a claim is paid, a correction's difference with what
    was paid for the sheets it replaces (negative: recovered), or an appeal's increase."""

    row: ledger.LedgerRow
    amount_cents: int
    adjustment: bool = False  # a difference, not a first payment
    replaces: str | None = None  # the replaced sheet's number (a correction)
    appeal_id: int | None = None


@dataclass
class Batch:
    fund_ref: str
    fund_code: str
    payee: str  # provider | insured
    payee_ref: str  # Practitioner/…, Organization/…, Patient/… or RelatedPerson/…; "inpe|<n>" if unregistered
    details: list[Detail] = field(default_factory=list)

    @property
    def total_cents(self) -> int:
        return sum(d.amount_cents for d in self.details)

    def settle_recoveries(self) -> list[Detail]:
        """Recoveries go on a payee's reconciliation as far as its payments cover them, oldest
        claim first; the others wait for the payee's next one.  Returns those left waiting."""
        owed = sorted((d for d in self.details if d.amount_cents < 0), key=lambda d: d.row.id)
        self.details = [d for d in self.details if d.amount_cents >= 0]
        total, waiting = self.total_cents, []
        for d in owed:
            if self.details and total + d.amount_cents >= 0:
                self.details.append(d)
                total += d.amount_cents
            else:
                waiting.append(d)
        return waiting


@dataclass(frozen=True)
class PaymentSummary:
    day: date
    reconciliations: list[tuple[str, str, str, int, int]]  # (reconciliation id, fund, payee, details, cents)

    @property
    def total_cents(self) -> int:
        return sum(r[4] for r in self.reconciliations)


def _payee_reference(ref: str) -> dict:
    if ref.startswith("inpe|"):
        return {"identifier": {"system": INPE, "value": ref[5:]}}
    return {"reference": ref}


def _detail(d: Detail, day: date, payee: dict | None) -> dict:
    r = d.row
    out = {
        "identifier": {"system": CLAIM_NUMBER, "value": r.claim_identifier},
        "type": {"coding": [{"system": PAYMENT_TYPE, "code": "adjustment" if d.adjustment else "payment"}]},
        "request": {"reference": f"Claim/{r.claim_id}"},
        "response": {"reference": f"ClaimResponse/{r.response_id}"},
        "submitter": _payee_reference(r.provider_ref or f"inpe|{r.provider_inpe}"),
        "date": day.isoformat(),
        "amount": money(from_cents(d.amount_cents)),
    }
    if payee is not None:
        out["payee"] = payee
    if d.replaces:
        out["predecessor"] = {"system": CLAIM_NUMBER, "value": d.replaces}
    return out


def _reconciliation(batch: Batch, rec_id: str, day: date, now: int, tz: str) -> dict:
    start, end = day_bounds(day, tz)
    # a provider paid directly is every line's payee (an insured person cannot be: Patient is no payee type)
    payee = _payee_reference(batch.payee_ref) if batch.payee == "provider" else None
    res = {
        "resourceType": "PaymentReconciliation",
        "identifier": [_number(rec_id)],
        "status": "active",
        "period": {"start": to_instant(start), "end": to_instant(end - 1)},
        "created": to_instant(now),
        "paymentIssuer": {"reference": batch.fund_ref},
        "outcome": "complete",
        "disposition": ("Règlement en tiers payant au prestataire" if batch.payee == "provider"
                        else "Remboursement à l'assuré"),
        "paymentDate": day.isoformat(),
        "paymentAmount": money(from_cents(batch.total_cents)),
        "detail": [_detail(d, day, payee) for d in sorted(batch.details, key=lambda d: (d.row.id, d.appeal_id or 0))],
    }
    if any(d.amount_cents < 0 for d in batch.details):
        res["disposition"] += " ; déduction des sommes versées en trop sur des feuilles corrigées ou révisées"
    if batch.payee == "provider" and not batch.payee_ref.startswith("inpe|"):
        kind = batch.payee_ref.split("/", 1)[0]
        if kind in ("Practitioner", "PractitionerRole", "Organization"):
            res["requestor"] = {"reference": batch.payee_ref}
    return res


def _number(rec_id: str) -> dict:
    """The reconciliation's number, which the ClaimResponses and EOBs it pays quote."""
    return {"system": PAYMENT_NUMBER, "value": rec_id}


def _notice(batch: Batch, reconciliation_id: str, day: date, now: int) -> dict:
    res = {
        "resourceType": "PaymentNotice",
        "status": "active",
        "created": to_instant(now),
        "payment": {"reference": f"PaymentReconciliation/{reconciliation_id}"},
        "paymentDate": day.isoformat(),
        "amount": money(from_cents(batch.total_cents)),
        "paymentStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/paymentstatus", "code": "paid"}]},
    }
    kind = batch.payee_ref.split("/", 1)[0]
    if kind == "Organization":
        res["recipient"] = {"reference": batch.payee_ref}
        res["payee"] = {"reference": batch.payee_ref}
    elif kind in ("Practitioner", "PractitionerRole"):
        res["recipient"] = {"display": "Prestataire de soins"}
        res["payee"] = {"reference": batch.payee_ref}
    else:  # the insured person, or a provider known only by INPE
        res["recipient"] = {"display": "Assuré" if batch.payee == "insured" else "Prestataire de soins"}
        res["extension"] = [{"url": EXT_PAYEE_PERSON, "valueReference": _payee_reference(batch.payee_ref)}]
    return res


async def pay_day(engine: AsyncEngine, day: date, *, base_url: str, tz: str) -> PaymentSummary:
    """Pay everything decided up to the end of ``day`` and not paid yet, in one transaction."""
    _, end = day_bounds(day, tz)
    now = now_us()
    done: list[tuple[str, str, str, int, int]] = []
    paid: list[tuple[Detail, dict]] = []
    async with write_transaction(engine) as conn:
        details = await _claims_due(conn, end) + await _appeals_due(conn, end)
        rows = [d.row for d in details]
        # Who is reimbursed for an insured person's care: the coverage's subscriber (one query).
        coverages = await resources_by_id(conn, {("Coverage", r.coverage_id) for r in rows if r.payee != "provider"})
        batches: dict[tuple, Batch] = {}
        for d in details:
            r = d.row
            if r.payee == "provider":
                payee_ref = r.provider_ref or f"inpe|{r.provider_inpe}"
            else:
                cov = coverages.get(("Coverage", r.coverage_id)) or {}
                payee_ref = any_reference(cov.get("subscriber"), ("Patient", "RelatedPerson")) or f"Patient/{r.patient_id}"
            key = (r.fund_ref, r.payee, payee_ref)
            batches.setdefault(key, Batch(r.fund_ref, r.fund_code, r.payee, payee_ref)).details.append(d)
        ctx = Context(conn, base_url)
        for key in sorted(batches):
            batch = batches[key]
            batch.settle_recoveries()
            if not batch.details:
                continue
            rec_id = new_id()
            rec = await store(ctx, "PaymentReconciliation", rec_id, _reconciliation(batch, rec_id, day, now, tz), method="POST", prior=None)
            notice = await store(ctx, "PaymentNotice", new_id(), _notice(batch, rec.res_id, day, now), method="POST", prior=None)
            await _record_paid(conn, batch, day, rec.res_id, notice.res_id, now)
            done.append((rec.res_id, batch.fund_code, batch.payee_ref, len(batch.details), batch.total_cents))
            paid += [(d, _number(rec_id)) for d in batch.details]
            if batch.payee != "provider":  # the insured is reimbursed: tell the patient cared for
                for d in (d for d in batch.details if d.amount_cents > 0):
                    await notify(ctx, d.row.patient_id, "payment", f"ClaimResponse/{d.row.response_id}", {
                        "amount": str(from_cents(d.amount_cents)), "date": day.strftime("%d/%m/%Y"), "occurrence": rec_id,
                        "code": shown(await code_for(conn, d.row.claim_id))})
        await mark_paid(ctx, paid, day, now)
    return PaymentSummary(day, done)


async def _claims_due(conn: AsyncConnection, end: int) -> list[Detail]:
    """Claims decided before ``end`` and not paid: their benefit, less what was paid for the
    sheets a correction replaces (locked: a correction's decision or an appeal waits for us)."""
    led = claim_ledger.c
    ids = list((await conn.execute(
        select(led.id)
        .where(led.status == ledger.DECIDED, led.use == "claim", led.decided_at < end,
               (led.benefit_cents > 0) | led.corrects_id.is_not(None),
               ~exists().where(claim_payment.c.ledger_id == led.id))
        .order_by(led.id)
        .with_for_update()
    )).scalars())
    rows = await ledger.by_ids(conn, ids)
    replaced = await _paid_for_replaced(conn, list(rows.values()))
    details = []
    for r in rows.values():
        paid_before, number = replaced.get(r.id, (0, None))
        due = r.benefit_cents - paid_before
        if due:
            details.append(Detail(r, due, adjustment=paid_before != 0, replaces=number))
    return details


async def _appeals_due(conn: AsyncConnection, end: int) -> list[Detail]:
    """Differences decided on appeal for claims already paid: an increase, or a complementary
    insurer's revision either way (a claim replaced since is settled by its correction instead)."""
    a = claim_appeal.c
    found = (await conn.execute(
        select(a.id, a.ledger_id, a.payable_cents)
        .select_from(claim_appeal.join(claim_ledger, claim_ledger.c.id == a.ledger_id))
        .where(a.status == "closed", a.payable_cents != 0, a.paid_on.is_(None), a.closed_at < end,
               claim_ledger.c.status == ledger.PAID)
        .order_by(a.id)
        .with_for_update(of=claim_appeal)
    )).all()
    rows = await ledger.by_ids(conn, [f.ledger_id for f in found])
    return [Detail(rows[f.ledger_id], f.payable_cents, adjustment=True, appeal_id=f.id) for f in found]


async def _paid_for_replaced(conn: AsyncConnection, rows: list[ledger.LedgerRow]) -> dict[int, tuple[int, str]]:
    """For each correction: what was paid for the sheets it replaces (down the chain of
    corrections of corrections), and the number of the sheet it replaces."""
    frontier = {r.id: r.corrects_id for r in rows if r.corrects_id is not None}
    paid = dict.fromkeys(frontier, 0)
    numbers: dict[int, str] = {}
    while frontier:
        ids = sorted(set(frontier.values()))
        earlier = await ledger.by_ids(conn, ids)
        amounts = await _paid_cents(conn, ids)
        for start, pid in frontier.items():
            paid[start] += amounts.get(pid, 0)
            numbers.setdefault(start, earlier[pid].claim_identifier)
        frontier = {start: earlier[pid].corrects_id for start, pid in frontier.items() if earlier[pid].corrects_id is not None}
    return {start: (paid[start], numbers[start]) for start in paid}


async def _paid_cents(conn: AsyncConnection, ids: list[int]) -> dict[int, int]:
    """Paid per ledger row: its payment and the appeal increases paid since."""
    out: dict[int, int] = {}
    p, a = claim_payment.c, claim_appeal.c
    for lid, cents_ in await conn.execute(select(p.ledger_id, p.amount_cents).where(p.ledger_id.in_(ids))):
        out[lid] = out.get(lid, 0) + cents_
    for lid, cents_ in await conn.execute(
        select(a.ledger_id, func.sum(a.payable_cents)).where(a.ledger_id.in_(ids), a.paid_on.is_not(None)).group_by(a.ledger_id)
    ):
        out[lid] = out.get(lid, 0) + int(cents_)
    return out


async def _record_paid(conn: AsyncConnection, batch: Batch, day: date, rec_id: str, notice_id: str, now: int) -> None:
    """Each claim and appeal of the batch is paid once: the ledger moves ``decided → paid``
    (``claim_payment.ledger_id`` is unique) and an appeal's ``paid_on`` is set only if unset."""
    claims_ = [d for d in batch.details if d.appeal_id is None]
    if claims_:
        await conn.execute(claim_payment.insert(), [
            dict(ledger_id=d.row.id, fund_code=d.row.fund_code, payee_ref=batch.payee_ref, payee=batch.payee,
                 amount_cents=d.amount_cents, paid_on=day.isoformat(), reconciliation_id=rec_id, notice_id=notice_id,
                 created_at=now)
            for d in claims_
        ])
    for d in claims_:
        if not await ledger.transition(conn, d.row.id, (ledger.DECIDED,), status=ledger.PAID):
            raise RuntimeError(f"ledger row {d.row.id} changed during payment")
    for d in batch.details:
        if d.appeal_id is not None:
            paid = await conn.execute(
                update(claim_appeal).where(claim_appeal.c.id == d.appeal_id, claim_appeal.c.paid_on.is_(None))
                .values(paid_on=day.isoformat(), reconciliation_id=rec_id, notice_id=notice_id)
            )
            if paid.rowcount != 1:
                raise RuntimeError(f"appeal {d.appeal_id} was paid during this payment")


def pay_command(
    day: str = typer.Option(None, "--date", help="Payment day, AAAA-MM-JJ (default: today, Moroccan time)."),
) -> None:
    """Pay the day's decided care sheets: PaymentReconciliation + PaymentNotice per fund and payee."""
    from ehr.settings import get_settings

    settings, tz = get_settings(), get_claims_settings().timezone
    when = date.fromisoformat(day) if day else today(tz)

    async def run() -> PaymentSummary:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            return await pay_day(engine, when, base_url=settings.base_url, tz=tz)
        finally:
            await engine.dispose()

    summary = asyncio.run(run())
    console = Console()
    for rec_id, fund, payee, n, total in summary.reconciliations:
        console.print(f"{fund} → {payee}: {n} feuille(s), {from_cents(total)} MAD (PaymentReconciliation/{rec_id})")
    console.print(f"[green]Total payé le {when}: {from_cents(summary.total_cents)} MAD "
                  f"en {len(summary.reconciliations)} règlement(s)[/green]")

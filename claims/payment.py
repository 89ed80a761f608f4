"""Daily payment: one PaymentReconciliation (and its PaymentNotice) per fund and payee.

Every claim decided up to the end of the day with something to pay and not paid yet is paid
once: to the provider when the fund pays it directly (tiers payant), otherwise to the insured
member (the Coverage's subscriber, who is reimbursed for a dependant too).  All amounts are
integer centimes, so a reconciliation's total is exactly the sum of its lines and of the
decided benefits.  ``claim_payment.ledger_id`` is unique: running the same day twice, or two
runs at once, can never pay a claim twice (the second run finds nothing left, or fails and
rolls back whole).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date

import typer
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from claims import ledger
from claims.caresheet import any_reference, today
from claims.clock import day_bounds, now_us, to_instant
from claims.lookups import resources_by_id
from claims.money import from_cents, money
from claims.settings import get_claims_settings
from claims.tables import claim_ledger, claim_payment
from claims.uris import INPE, PAYMENT_TYPE, SD
from ehr.interactions.context import Context, store
from ehr.interactions.preconditions import new_id
from ehr.store.db import create_engine, write_transaction

EXT_PAYEE_PERSON = SD + "payment-payee-person"


@dataclass
class Batch:
    fund_ref: str
    fund_code: str
    payee: str  # provider | insured
    payee_ref: str  # Practitioner/…, Organization/…, Patient/… or RelatedPerson/…; "inpe|<n>" if unregistered
    rows: list[ledger.LedgerRow] = field(default_factory=list)

    @property
    def total_cents(self) -> int:
        return sum(r.benefit_cents for r in self.rows)


@dataclass(frozen=True)
class PaymentSummary:
    day: date
    reconciliations: list[tuple[str, str, str, int, int]]  # (reconciliation id, fund, payee, claims, cents)

    @property
    def total_cents(self) -> int:
        return sum(r[4] for r in self.reconciliations)


def _payee_reference(ref: str) -> dict:
    if ref.startswith("inpe|"):
        return {"identifier": {"system": INPE, "value": ref[5:]}}
    return {"reference": ref}


def _reconciliation(batch: Batch, day: date, now: int, tz: str) -> dict:
    start, end = day_bounds(day, tz)
    details = [
        {
            "identifier": {"system": "https://fhir.sijill.ma/sid/claim", "value": r.claim_identifier},
            "type": {"coding": [{"system": PAYMENT_TYPE, "code": "payment"}]},
            "request": {"reference": f"Claim/{r.claim_id}"},
            "response": {"reference": f"ClaimResponse/{r.response_id}"},
            "submitter": _payee_reference(r.provider_ref or f"inpe|{r.provider_inpe}"),
            "date": day.isoformat(),
            "amount": money(from_cents(r.benefit_cents)),
        }
        for r in sorted(batch.rows, key=lambda r: r.id)
    ]
    res = {
        "resourceType": "PaymentReconciliation",
        "status": "active",
        "period": {"start": to_instant(start), "end": to_instant(end - 1)},
        "created": to_instant(now),
        "paymentIssuer": {"reference": batch.fund_ref},
        "outcome": "complete",
        "disposition": ("Règlement en tiers payant au prestataire" if batch.payee == "provider"
                        else "Remboursement à l'assuré"),
        "paymentDate": day.isoformat(),
        "paymentAmount": money(from_cents(batch.total_cents)),
        "detail": details,
    }
    if batch.payee == "provider" and not batch.payee_ref.startswith("inpe|"):
        kind = batch.payee_ref.split("/", 1)[0]
        if kind in ("Practitioner", "PractitionerRole", "Organization"):
            res["requestor"] = {"reference": batch.payee_ref}
    return res


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
    led, pay = claim_ledger.c, claim_payment.c
    now = now_us()
    done: list[tuple[str, str, str, int, int]] = []
    async with write_transaction(engine) as conn:
        ids = list((await conn.execute(
            select(led.id)
            .select_from(claim_ledger.outerjoin(claim_payment, pay.ledger_id == led.id))
            .where(led.status == ledger.DECIDED, led.use == "claim", led.decided_at < end, led.benefit_cents > 0,
                   pay.id.is_(None))
            .order_by(led.id)
        )).scalars())
        rows = await ledger.by_ids(conn, ids)
        # Who is reimbursed for an insured person's care: the coverage's subscriber (one query).
        coverages = await resources_by_id(conn, {("Coverage", r.coverage_id) for r in rows.values() if r.payee != "provider"})
        batches: dict[tuple, Batch] = {}
        for r in rows.values():
            if r.payee == "provider":
                payee_ref = r.provider_ref or f"inpe|{r.provider_inpe}"
            else:
                cov = coverages.get(("Coverage", r.coverage_id)) or {}
                payee_ref = any_reference(cov.get("subscriber"), ("Patient", "RelatedPerson")) or f"Patient/{r.patient_id}"
            key = (r.fund_ref, r.payee, payee_ref)
            batches.setdefault(key, Batch(r.fund_ref, r.fund_code, r.payee, payee_ref)).rows.append(r)
        ctx = Context(conn, base_url)
        for key in sorted(batches):
            batch = batches[key]
            rec = await store(ctx, "PaymentReconciliation", new_id(), _reconciliation(batch, day, now, tz), method="POST", prior=None)
            notice = await store(ctx, "PaymentNotice", new_id(), _notice(batch, rec.res_id, day, now), method="POST", prior=None)
            await conn.execute(claim_payment.insert(), [
                dict(ledger_id=r.id, fund_code=r.fund_code, payee_ref=batch.payee_ref, payee=batch.payee,
                     amount_cents=r.benefit_cents, paid_on=day.isoformat(), reconciliation_id=rec.res_id,
                     notice_id=notice.res_id, created_at=now)
                for r in batch.rows
            ])
            for r in batch.rows:
                if not await ledger.transition(conn, r.id, (ledger.DECIDED,), status=ledger.PAID):
                    raise RuntimeError(f"ledger row {r.id} changed during payment")
            done.append((rec.res_id, batch.fund_code, batch.payee_ref, len(batch.rows), batch.total_cents))
    return PaymentSummary(day, done)


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

"""What the answers of a paid claim say of its payment: ``ClaimResponse.payment`` and
``ExplanationOfBenefit.payment``.

The payment run (``claims.payment``) writes, in its transaction, a new version of each paid
claim's ClaimResponse (what the provider polls or subscribes to) and EOB (what the patient
reads): what this run paid for the claim (negative: recovered), the payment day and the
identifier of the PaymentReconciliation that carries it.  Rest-hook subscribers get the paid
ClaimResponse like a decision.
"""
from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from claims.money import from_cents, money
from claims.notify import Subscriptions
from claims.uris import EX_PAYMENT_TYPE
from ehr.interactions.context import Context, store_many
from ehr.store import repository
from ehr.store.repository import NewVersion

if TYPE_CHECKING:
    from claims.payment import Detail


def payment_element(lines: list[Detail], identifier: dict, day: date) -> dict:
    out = {
        "type": {"coding": [{"system": EX_PAYMENT_TYPE, "code": "complete"}]},
        "date": day.isoformat(),
        "amount": money(from_cents(sum(d.amount_cents for d in lines))),
        "identifier": identifier,
    }
    why = [f"Différence avec ce qui a été payé pour la feuille n° {d.replaces} / "
           f"الفرق مع ما أدي عن ورقة العلاج رقم {d.replaces}" for d in lines if d.replaces]
    why += ["Différence décidée sur recours / الفرق المقرر بعد الطعن" for d in lines if d.appeal_id is not None][:1]
    if why:
        out["adjustmentReason"] = {"text": " ; ".join(why)}
    return out


async def mark_paid(ctx: Context, paid: list[tuple[Detail, dict]], day: date, now: int) -> None:
    """``paid``: each detail of the run's reconciliations with that reconciliation's identifier."""
    by_answer: dict[tuple[str, str], list[tuple[Detail, dict]]] = {}
    for d, identifier in paid:
        by_answer.setdefault(("ClaimResponse", d.row.response_id), []).append((d, identifier))
        if d.row.eob_id:
            by_answer.setdefault(("ExplanationOfBenefit", d.row.eob_id), []).append((d, identifier))
    current = await repository.current_many(ctx.conn, list(by_answer), for_update=True)
    versions = []
    for key in sorted(by_answer):
        prior = current.get(key)
        if prior is None or prior.deleted:
            continue
        lines = by_answer[key]
        res = prior.resource()
        res["payment"] = payment_element([d for d, _ in lines], lines[0][1], day)
        versions.append(NewVersion(key[0], key[1], res, "PUT", prior))
    await store_many(ctx, versions)
    subscriptions = Subscriptions()
    await subscriptions.refresh(ctx.conn)
    if subscriptions.active:
        await subscriptions.enqueue_many(ctx.conn, [v.res for v in versions if v.res_type == "ClaimResponse"], now)

"""The payment notice: what a fund paid to an insured member (or, printed by the fund, to a
provider under tiers payant), care sheet by care sheet.

``GET PaymentReconciliation/{id}/$letter`` reads the reconciliation ``claims.payment`` wrote
(one per fund, payee and day): each detail is a care sheet paid (with its status code), a difference after a
correction or an appeal, or a recovery of an overpayment (negative).  A fund's agent prints any
of its fund's; the patient side (the member, a guardian, the counter agent for them) prints a
reimbursement to an insured person whose every care sheet they may read — the reconciliation
itself is the fund's record, the sheets are what the letter shows of the patient.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from claims import ledger
from claims.messaging.status_code import codes_of, shown
from claims.money import to_decimal
from claims.payment import EXT_PAYEE_PERSON
from claims.tables import claim_appeal, claim_ledger, claim_payment
from ehr.operations.registry import Invocation, operation
from ehr.outcome import not_found
from ehr.security.roles import Role
from ehr.store.db import read_connection
from interop.paper.access import PATIENT_SIDE, assisted, readable, request_security, require_readable, role
from interop.paper.catalogue import Bilingual
from interop.paper.directory import Party, fund_name, load, party
from interop.paper.formatting import display_name
from interop.paper.letter import deliver, printed
from interop.paper.rendering import HTML, PDF, negotiate


@dataclass(frozen=True)
class PaymentLine:
    sheet_number: str
    care_date: str | None
    beneficiary: Bilingual | None
    provider: Bilingual | None
    kind: str  # payment | adjustment | recovery
    amount: Decimal
    status_code: str | None = None  # the sheet's code, to follow it by SMS or at a counter


@dataclass(frozen=True)
class PaymentLetter:
    fund: Bilingual
    payee_kind: str  # insured | provider
    payee: Party
    paid_on: str
    total: Decimal
    lines: list[PaymentLine]
    patients: list[str]  # Patient/<id> whose care the letter shows


@operation("letter", levels={"instance"}, types={"PaymentReconciliation"}, produces={HTML, PDF}, checks_target=True,
           callers={Role.PATIENT, Role.PAPER_AGENT, Role.INSURER},
           definition="https://fhir.sijill.ma/OperationDefinition/PaymentReconciliation-letter")
async def payment_letter(inv: Invocation):
    media = negotiate(inv.request)
    async with read_connection(inv.engine) as conn:
        rec, version = await _reconciliation(conn, inv)
        rows = await _ledger_rows(conn, rec)
        payee_ref = await _payee(conn, inv.res_id)
        if role(inv) in PATIENT_SIDE:
            await _check_patient_side(conn, inv, rows, payee_ref)
        letter = await build(conn, rec, rows, payee_ref)
        payee_id = payee_ref.split("/", 1)[1] if payee_ref and payee_ref.startswith("Patient/") else None
        stamp = await printed(conn, inv, payee_id, version)
    return await deliver(inv, media, "payment.html", patients=letter.patients, letter=letter, printed=stamp)


async def _reconciliation(conn: AsyncConnection, inv: Invocation) -> tuple[dict, str]:
    if role(inv) in PATIENT_SIDE:
        request_security(inv).guard.require("Claim", "r")  # they read sheets, never the fund's record itself
        stored = await readable(conn, inv, "PaymentReconciliation", inv.res_id, as_caller=False)
        if stored is None:
            raise not_found("PaymentReconciliation", inv.res_id)
    else:
        stored = await require_readable(conn, inv, "PaymentReconciliation", inv.res_id)
    return stored.resource(), stored.version_id


def _claim_ids(rec: dict) -> list[str]:
    refs = ((d.get("request") or {}).get("reference") or "" for d in rec.get("detail") or [] if isinstance(d, dict))
    return sorted({r.split("/", 1)[1] for r in refs if r.startswith("Claim/")})


async def _ledger_rows(conn: AsyncConnection, rec: dict) -> dict[str, ledger.LedgerRow]:
    """The paid sheets' ledger rows for this fund, by Claim id."""
    fund = (rec.get("paymentIssuer") or {}).get("reference")
    ids = list((await conn.execute(
        select(claim_ledger.c.id).where(claim_ledger.c.claim_id.in_(_claim_ids(rec)), claim_ledger.c.fund_ref == fund)
    )).scalars())
    return {r.claim_id: r for r in (await ledger.by_ids(conn, ids)).values()}


async def _payee(conn: AsyncConnection, rec_id: str) -> str | None:
    """Who was paid, as the PaymentNotice of the reconciliation names them."""
    notice_id = (await conn.execute(union(
        select(claim_payment.c.notice_id).where(claim_payment.c.reconciliation_id == rec_id),
        select(claim_appeal.c.notice_id).where(claim_appeal.c.reconciliation_id == rec_id),
    ).limit(1))).scalar()
    notice = (await load(conn, [f"PaymentNotice/{notice_id}" if notice_id else None])).get(f"PaymentNotice/{notice_id}") or {}
    person = next((e.get("valueReference") for e in notice.get("extension") or [] if e.get("url") == EXT_PAYEE_PERSON), None)
    return ((person or notice.get("payee") or {}).get("reference")) or None


async def _check_patient_side(conn: AsyncConnection, inv: Invocation, rows: dict, payee_ref: str | None) -> None:
    """A reimbursement to an insured person, all of whose sheets the caller reads — or, for the
    counter agent, are about the patients they serve in person (else 404)."""
    insured = bool(rows) and all(r.payee == "insured" for r in rows.values()) and (payee_ref or "").startswith(
        ("Patient/", "RelatedPerson/"))
    if not insured:
        raise not_found("PaymentReconciliation", inv.res_id)
    for claim_id, row in rows.items():
        if not assisted(inv, row.patient_id) and await readable(conn, inv, "Claim", claim_id) is None:
            raise not_found("PaymentReconciliation", inv.res_id)


async def build(conn: AsyncConnection, rec: dict, rows: dict[str, ledger.LedgerRow], payee_ref: str | None) -> PaymentLetter:
    fund_ref = (rec.get("paymentIssuer") or {}).get("reference")
    people = await load(conn, [fund_ref, payee_ref, *(f"Patient/{r.patient_id}" for r in rows.values()),
                               *(r.provider_ref for r in rows.values())])
    codes = await codes_of(conn, [r.claim_id for r in rows.values()])
    lines = []
    for d in rec.get("detail") or []:
        row = rows.get(((d.get("request") or {}).get("reference") or "").removeprefix("Claim/"))
        value = to_decimal((d.get("amount") or {}).get("value")) or Decimal(0)
        adjustment = any(c.get("code") == "adjustment" for c in (d.get("type") or {}).get("coding") or [])
        lines.append(PaymentLine(
            sheet_number=(d.get("identifier") or {}).get("value") or "",
            care_date=row.service_date if row else None,
            beneficiary=display_name(people.get(f"Patient/{row.patient_id}")) if row else None,
            provider=(display_name(people.get(row.provider_ref or "")) or Bilingual.same(row.provider_inpe)) if row else None,
            kind="recovery" if value < 0 else "adjustment" if adjustment else "payment",
            amount=value,
            status_code=shown(codes[row.claim_id]) if row and row.claim_id in codes else None,
        ))
    kind = "provider" if any(r.payee == "provider" for r in rows.values()) else "insured"
    return PaymentLetter(
        fund=fund_name(next((r.fund_code for r in rows.values()), ""), people.get(fund_ref)),
        payee_kind=kind,
        payee=party(people.get(payee_ref or ""), identify=kind == "insured"),
        paid_on=rec.get("paymentDate") or "",
        total=to_decimal((rec.get("paymentAmount") or {}).get("value")) or Decimal(0),
        lines=lines,
        patients=sorted({f"Patient/{r.patient_id}" for r in rows.values()}
                        | ({payee_ref} if (payee_ref or "").startswith("Patient/") else set())),
    )

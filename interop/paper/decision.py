"""The decision letter: the fund's decision on a care sheet, for the patient, on paper.

``GET ExplanationOfBenefit/{id}/$letter`` and ``GET ClaimResponse/{id}/$letter`` print the same
letter from the exchange's ledger and its decided lines (exact centimes): the fund, the
patient (identifiers masked), the provider, the date of care, sheet number and status code, each line (label
from the terminology in both languages, amount asked, accepted, paid by the fund, left to the
patient, coded reasons), totals, who is paid, and how and until when to appeal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from claims import ledger
from claims.adjudication.ruleset import rulesets
from claims.clock import DAY_US, now_us
from claims.ledger import LedgerRow
from claims.messaging.status_code import existing_code, shown
from claims.money import from_cents
from claims.reasons import REASONS
from claims.tables import claim_appeal, claim_decision_line, claim_ledger, claim_payment
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError, not_found
from ehr.security.roles import Role
from ehr.store.db import read_connection
from interop.paper.access import assisted, readable, request_security, require_readable, role
from interop.paper.catalogue import Bilingual
from interop.paper.directory import Party, concept_label, fund_name, load, party
from interop.paper.formatting import display_name, local
from interop.paper.letter import deliver, printed, timezone
from interop.paper.rendering import HTML, PDF, negotiate

DECISIONS = {"ExplanationOfBenefit": claim_ledger.c.eob_id, "ClaimResponse": claim_ledger.c.response_id}


@dataclass(frozen=True)
class Line:
    sequence: int
    label: Bilingual
    code: str | None
    service_date: str
    quantity: float
    asked: Decimal
    accepted: Decimal
    benefit: Decimal
    patient_share: Decimal
    reasons: list[tuple[str, Bilingual]]  # (code, text) of claims.reasons


@dataclass(frozen=True)
class Appeal:
    state: str  # open | in-progress | expired | preauthorization | complementary | none
    until: date | None = None
    days: int | None = None
    received: date | None = None
    deadline: date | None = None
    operation: str | None = None


@dataclass
class DecisionLetter:
    fund: Bilingual
    preauthorization: bool
    sheet_number: str
    care_date: str
    decided_on: date
    outcome: str  # approved | partial | rejected
    patient: Party
    provider: Party
    lines: list[Line]
    payee: str  # provider | insured
    payee_name: Bilingual | None
    paid_on: str | None
    appeal: Appeal
    status_code: str | None = None  # what the patient types or gives at a counter to follow the sheet
    superseded_by: str | None = None
    revised_on: date | None = None
    totals: dict[str, Decimal] = field(default_factory=dict)


@operation("letter", levels={"instance"}, types=set(DECISIONS), produces={HTML, PDF}, checks_target=True,
           callers={Role.PATIENT, Role.PAPER_AGENT, Role.INSURER, Role.DOCTOR, Role.PHARMACIST},
           definition="https://fhir.sijill.ma/OperationDefinition/ExplanationOfBenefit-letter")
async def decision_letter(inv: Invocation):
    media = negotiate(inv.request)
    async with read_connection(inv.engine) as conn:
        target, row = await _target(conn, inv)
        letter = await build(conn, row)
        stamp = await printed(conn, inv, row.patient_id, target.version_id)
    return await deliver(inv, media, "decision.html", patients=[f"Patient/{row.patient_id}"], letter=letter, printed=stamp)


async def _target(conn: AsyncConnection, inv: Invocation):
    """The decision as the caller may print it, and its ledger row.  The paper-channel agent
    prints the decision on a sheet they entered (they read the Claim, not the fund's answer),
    or any decision about the patient they serve in person (``$assist``)."""
    res_type, res_id = inv.res_type, inv.res_id
    if role(inv) is Role.PAPER_AGENT:
        request_security(inv).guard.require("Claim", "r")
        row = await _ledger_row(conn, res_type, res_id)
        target = await readable(conn, inv, res_type, res_id, as_caller=False) if row else None
        if target is None or (not assisted(inv, row.patient_id) and await readable(conn, inv, "Claim", row.claim_id) is None):
            raise not_found(res_type, res_id)  # (never naming the sheet they may not read)
    else:
        target = await require_readable(conn, inv, res_type, res_id)
        row = await _ledger_row(conn, res_type, res_id)
        if row is None:
            raise FHIRError.of(422, "not-supported", f"{res_type}/{res_id} n'est pas une décision de l'échange des "
                               "feuilles de soins : il n'y a pas de lettre à imprimer")
    if row.outcome is None:  # queued, in review, or withdrawn before any decision
        if row.status in ledger.OPEN_STATUSES:
            due = local(row.due_at, timezone()).strftime("%d/%m/%Y")
            raise FHIRError.of(409, "conflict", f"La feuille de soins n° {row.claim_identifier} n'est pas encore "
                               f"décidée : la lettre de décision sera disponible après la décision (au plus tard le {due})")
        raise FHIRError.of(409, "conflict", f"La feuille de soins n° {row.claim_identifier} a été retirée avant décision "
                           "et remplacée par une feuille corrigée : imprimez la lettre de la feuille corrigée")
    return target, row


async def _ledger_row(conn: AsyncConnection, res_type: str, res_id: str) -> LedgerRow | None:
    found = (await conn.execute(
        select(claim_ledger.c.claim_id, claim_ledger.c.payer_rank).where(DECISIONS[res_type] == res_id)
    )).first()
    return await ledger.by_claim(conn, found.claim_id, found.payer_rank) if found else None


async def build(conn: AsyncConnection, row: LedgerRow) -> DecisionLetter:
    people = await load(conn, [f"Patient/{row.patient_id}", row.provider_ref, row.fund_ref, f"Claim/{row.claim_id}",
                               f"Coverage/{row.coverage_id}" if row.coverage_id else None])
    subscriber = ((people.get(f"Coverage/{row.coverage_id}") or {}).get("subscriber") or {}).get("reference")
    payee = (await load(conn, [subscriber])).get(subscriber) if row.payee != "provider" and subscriber else None
    lines = await _lines(conn, row, people.get(f"Claim/{row.claim_id}") or {})
    superseded = None
    if row.status == ledger.SUPERSEDED:
        correction = (await ledger.corrections_of(conn, [row.id])).get(row.id)
        superseded = correction.claim_identifier if correction else None
    appeals = (await conn.execute(
        select(claim_appeal.c.status, claim_appeal.c.received_at, claim_appeal.c.due_at, claim_appeal.c.closed_at)
        .where(claim_appeal.c.ledger_id == row.id).order_by(claim_appeal.c.id.desc())
    )).all()
    closed = [a.closed_at for a in appeals if a.status == "closed" and a.closed_at]
    tz = timezone()
    return DecisionLetter(
        fund=fund_name(row.fund_code, people.get(row.fund_ref)),
        preauthorization=row.use != "claim",
        sheet_number=row.claim_identifier,
        care_date=row.service_date,
        decided_on=local(row.decided_at, tz).date(),
        outcome=row.outcome,
        patient=party(people.get(f"Patient/{row.patient_id}"), identify=True),
        provider=party(people.get(row.provider_ref or ""), inpe=row.provider_inpe),
        lines=lines,
        payee=row.payee or "insured",
        payee_name=display_name(payee) or display_name(people.get(f"Patient/{row.patient_id}")),
        paid_on=(await conn.execute(select(claim_payment.c.paid_on).where(claim_payment.c.ledger_id == row.id))).scalar(),
        appeal=_appeal(row, appeals, superseded is not None),
        status_code=shown(code) if (code := await existing_code(conn, row.claim_id)) else None,
        superseded_by=superseded,
        revised_on=local(max(closed), tz).date() if closed else None,
        totals={k: sum((getattr(ln, k) for ln in lines), Decimal(0))
                for k in ("asked", "accepted", "benefit", "patient_share")},
    )


async def _lines(conn: AsyncConnection, row: LedgerRow, claim: dict) -> list[Line]:
    t = claim_decision_line.c
    found = await conn.execute(
        select(t.sequence, t.code_system, t.code, t.service_date, t.quantity, t.submitted_cents, t.eligible_cents,
               t.benefit_cents, t.patient_share_cents, t.reasons).where(t.ledger_id == row.id).order_by(t.sequence)
    )
    items = {it.get("sequence"): it for it in claim.get("item") or [] if isinstance(it, dict)}
    out = []
    for r in found:
        reasons = [REASONS[c] for c in (r.reasons or "").split() if c in REASONS]
        out.append(Line(
            r.sequence, concept_label(r.code_system, r.code) or _label_on_sheet(items.get(r.sequence), r.code),
            r.code, r.service_date, r.quantity, from_cents(r.submitted_cents), from_cents(r.eligible_cents),
            from_cents(r.benefit_cents), from_cents(r.patient_share_cents), [(x.code, Bilingual(x.fr, x.ar)) for x in reasons],
        ))
    return out


def _label_on_sheet(item: dict | None, code: str | None) -> Bilingual:
    """A code the terminology does not know: as the provider wrote it on the sheet."""
    concept = (item or {}).get("productOrService") or {}
    written = concept.get("text") or next((c.get("display") for c in concept.get("coding") or [] if c.get("display")), None)
    return Bilingual.same(written or code or "?")


def _appeal(row: LedgerRow, appeals: list, superseded: bool) -> Appeal:
    """How and until when the patient may contest the decision (``claims.appeals``' rules)."""
    if superseded:
        return Appeal("none")
    if row.use != "claim":
        return Appeal("preauthorization")
    if row.payer_rank > 1:
        return Appeal("complementary")
    tz = timezone()
    under_way = next((a for a in appeals if a.status != "closed"), None)
    if under_way is not None:
        return Appeal("in-progress", received=local(under_way.received_at, tz).date(),
                      deadline=local(under_way.due_at, tz).date())
    rules = rulesets().by_version(row.fund_code, row.ruleset_version or "") or rulesets().version(
        row.fund_code, date.fromisoformat(row.service_date))
    days = rules.appeal_window_days if rules else 0
    until_us = row.decided_at + days * DAY_US
    state = "expired" if now_us() > until_us else "open"
    return Appeal(state, until=local(until_us, tz).date(), days=days, operation=f"Claim/{row.claim_id}/$appeal")

"""The care sheets of the demo's story (``ehr.demo.story``): what the demo users find to act on.

Sent through the same submission path as the API, once (``sijill demo`` calls ``send_story_sheets``
when it writes the story), then decided by the worker and paid by the demo's payment run:
- demo-patient's consultations with the demo doctor and the pharmacy sheet of her dispensed
  prescription (decided, paid: her reimbursements, the doctor's and pharmacy's payments);
- a joint replacement from the demo doctor over the CNSS review threshold: pended, in the CNSS
  agent's queue;
- a consultation of the patient the counter agent serves, with their family doctor: a decided
  sheet whose decision letter and payment notice the agent prints.

``story_claims`` reads back where they stand, for the demo's summary.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from claims import ledger
from claims.demo import World, _line, _sheet, _submit
from claims.tables import claim_ledger, claim_payment
from claims.uris import INPE, MEDICINE
from ehr.store import repository
from ehr.store.db import read_connection

DOCTOR = ("Practitioner", "demo-doctor", "100200300")
PHARMACY = ("Organization", "demo-pharmacy", "200300400")
PENDED = "FSE-DEMO-CNSS-REVIEW"
COUNTER = "FSE-DEMO-GUICHET"
PATIENT_SHEETS = ("FSE-DEMO-PATIENT-1", "FSE-DEMO-PATIENT-2", "FSE-DEMO-PATIENT-3")


@dataclass(frozen=True)
class StoryClaim:
    number: str
    claim_id: str
    response_id: str
    status: str
    reconciliation_id: str | None


async def send_story_sheets(engine: AsyncEngine, base_url: str, world: World, today: date, *, patient: str,
                            coverage: str, visits: tuple[int, int], pended_patient: str, counter_patient: str) -> int:
    """Submit the story's sheets (``visits``: days ago of demo-patient's last two visits);
    returns how many were accepted."""
    third, fourth = (today - timedelta(days=ago) for ago in visits)
    packs = [world.packs[atc][0] for atc in ("A10BA02", "C08CA01") if world.packs.get(atc)]
    sheets = [
        _sheet(PATIENT_SHEETS[0], "professional", patient, coverage, DOCTOR, [_line("C", 150, third)], third),
        _sheet(PATIENT_SHEETS[1], "professional", patient, coverage, DOCTOR, [_line("C", 150, fourth)], fourth),
    ]
    if packs:
        sheets.append(_sheet(PATIENT_SHEETS[2], "pharmacy", patient, coverage, PHARMACY,
                             [_line(p.code, float(p.ppv), third, system=MEDICINE) for p in packs], third))
    on = today - timedelta(days=2)
    sheets.append(_sheet(PENDED, "professional", pended_patient, world.population.coverage[pended_patient]["id"], DOCTOR,
                         [_line("KC3053", 6300, on), _line("KC3054", 6300, on)], on))
    family_doctor = await _family_doctor(engine, counter_patient)
    if family_doctor is not None:
        on = today - timedelta(days=10)
        sheets.append(_sheet(COUNTER, "professional", counter_patient, world.population.coverage[counter_patient]["id"],
                             family_doctor, [_line("C", 120, on)], on))
    sent = 0
    for claim in sheets:
        sent += await _submit(engine, base_url, claim, [])
    return sent


async def _family_doctor(engine: AsyncEngine, patient: str) -> tuple[str, str, str] | None:
    async with read_connection(engine) as conn:
        found = await repository.current(conn, "Patient", patient)
        refs = [g.get("reference", "") for g in (found.resource().get("generalPractitioner") or [])] if found else []
        for ref in refs:
            kind, _, pid = ref.partition("/")
            prac = await repository.current(conn, kind, pid) if kind == "Practitioner" else None
            inpe = next((i["value"] for i in (prac.resource().get("identifier") or []) if i.get("system") == INPE), None) \
                if prac else None
            if inpe:
                return ("Practitioner", pid, inpe)
    return None


async def story_claims(engine: AsyncEngine) -> dict[str, StoryClaim]:
    """The story's sheets by number, as they stand (absent: not sent)."""
    keys = [(DOCTOR[2], n) for n in (*PATIENT_SHEETS[:2], PENDED)] + [(PHARMACY[2], PATIENT_SHEETS[2])]
    async with read_connection(engine) as conn:
        rows = list((await ledger.by_keys(conn, keys)).values())
        counter = await _by_number(conn, COUNTER)
        rows += [counter] if counter else []
        paid = dict((await conn.execute(select(claim_payment.c.ledger_id, claim_payment.c.reconciliation_id).where(
            claim_payment.c.ledger_id.in_([r.id for r in rows])))).all())
    return {r.claim_identifier: StoryClaim(r.claim_identifier, r.claim_id, r.response_id, r.status, paid.get(r.id))
            for r in rows}


async def _by_number(conn, number: str):
    """The counter agent's sheet: its provider (a family doctor) is only known from the ledger."""
    found = (await conn.execute(select(claim_ledger.c.provider_inpe).where(
        claim_ledger.c.claim_identifier == number, claim_ledger.c.payer_rank == 1))).first()
    return await ledger.by_key(conn, found[0], number) if found else None

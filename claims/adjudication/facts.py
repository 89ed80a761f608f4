"""Loading what a batch of claims' decisions depend on, in a fixed number of indexed queries.

Whatever the batch size: the Claims (1 query), the patients' Coverages, prescriptions and
dispenses from the compartment index (1), the funds (1), the providers by INPE (1), the
patients' decided lines over the longest window any rule looks back (1), the
pre-authorisations the sheets cite (1), and the prices (one call per fund to the reference
data).  No query per claim or per line.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from claims.adjudication.model import (
    ClaimFacts,
    Dispense,
    Preauthorization,
    Prescription,
    PriorLine,
    ProviderFacts,
)
from claims.adjudication.ruleset import Rulesets
from claims.caresheet import local_reference_id, read_care_sheet
from claims.clock import local_date
from claims.coverage import coverage_facts, payor_refs, route
from claims.ledger import SUPERSEDED, LedgerRow
from claims.lookups import identifier_value, patient_records, providers_by_inpe, resources_by_id
from claims.money import from_cents
from claims.ports import Reference
from claims.tables import claim_decision_line, claim_ledger
from claims.uris import ACTS, ATC, INPE, MEDICINE, ORG_KIND

PUBLIC_HOSPITALS = frozenset({"chu", "chr", "chp"})
_RECORD_TYPES = ("Coverage", "MedicationRequest", "MedicationDispense")


class MissingClaim(Exception):
    """The ledger names a Claim the store does not have (should never happen: same transaction)."""


def _day(value: object) -> date | None:
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


_MEDICATION_SYSTEMS = (ATC, MEDICINE)


def _codes(concept: object) -> frozenset[str]:
    """The medication's codes: its pack (EAN-13) and/or its substance (ATC)."""
    if not isinstance(concept, dict):
        return frozenset()
    return frozenset(c["code"] for c in concept.get("coding") or [] if c.get("system") in _MEDICATION_SYSTEMS and c.get("code"))


def _provider(res: dict | None) -> ProviderFacts:
    if res is None:
        return ProviderFacts(None, None, False, False)
    kinds = {c.get("code") for t in res.get("type") or [] for c in (t.get("coding") or []) if c.get("system") == ORG_KIND}
    return ProviderFacts(
        ref=f"{res['resourceType']}/{res['id']}",
        inpe=identifier_value(res, INPE),
        active=res.get("active") is not False,
        public_hospital=bool(kinds & PUBLIC_HOSPITALS),
    )


def _dispense(res: dict) -> Dispense:
    qty = (res.get("quantity") or {}).get("value")
    rx = None
    for ref in res.get("authorizingPrescription") or []:
        rx = local_reference_id(ref, "MedicationRequest") or rx
    return Dispense(
        id=res["id"],
        codes=_codes(res.get("medicationCodeableConcept")),
        day=_day(res.get("whenHandedOver") or res.get("whenPrepared")),
        quantity=Decimal(str(qty)) if isinstance(qty, (int, float)) else None,
        prescription_id=rx,
        status=res.get("status", ""),
    )


def _prescription(res: dict) -> Prescription:
    return Prescription(res["id"], res.get("status", ""), _day(res.get("authoredOn")),
                        _codes(res.get("medicationCodeableConcept")))


async def load_facts(
    conn: AsyncConnection, rows: list[LedgerRow], reference: Reference, rulesets: Rulesets, tz: str
) -> dict[int, ClaimFacts]:
    """Facts for each ledger row (rank-1 claims), by ledger id."""
    if not rows:
        return {}
    claims = await resources_by_id(conn, [("Claim", r.claim_id) for r in rows])
    sheets = {}
    for r in rows:
        claim = claims.get(("Claim", r.claim_id))
        if claim is None:
            raise MissingClaim(f"Claim/{r.claim_id} of ledger row {r.id} is not in the store")
        sheets[r.id] = read_care_sheet(claim, tz=tz)[0]

    records = await patient_records(conn, {r.patient_id for r in rows}, _RECORD_TYPES)
    coverages_json = [res for recs in records.values() for res in recs if res["resourceType"] == "Coverage"]
    orgs = await resources_by_id(conn, payor_refs(coverages_json))
    providers = await providers_by_inpe(conn, {r.provider_inpe for r in rows})

    earliest = min(s.service_date for s in sheets.values() if s.service_date)
    lookback = max(_longest_window(rulesets, r.fund_code) for r in rows)
    prior = await _prior_lines(conn, {r.patient_id for r in rows}, earliest - timedelta(days=lookback))
    preauths = await _preauthorizations(conn, {ref for s in sheets.values() for ref in s.preauth_refs})
    prices = await _prices(conn, rows, sheets, reference)
    conditions = await reference.conditions.catalog(conn, earliest)

    pharmacy = {  # read once per patient, shared by the patient's claims of the batch
        pid: ([_dispense(x) for x in recs if x["resourceType"] == "MedicationDispense"],
              {x["id"]: _prescription(x) for x in recs if x["resourceType"] == "MedicationRequest"})
        for pid, recs in records.items()
    }
    out = {}
    for r in rows:
        sheet = sheets[r.id]
        recs = records.get(r.patient_id, [])
        cov_json = next((c for c in recs if c["resourceType"] == "Coverage" and c["id"] == r.coverage_id), None)
        cov = coverage_facts(cov_json, orgs) if cov_json else None
        mine = [f for c in recs if c["resourceType"] == "Coverage" and (f := coverage_facts(c, orgs))]
        _, complementary = route(r.patient_id, None, mine, sheet.service_date, rulesets)
        fund = rulesets.fund(cov.fund_code) if cov else None
        if fund is None or fund.kind != "primary":
            cov = None  # only an AMO coverage can be the first payer
        out[r.id] = ClaimFacts(
            sheet=sheet,
            ledger_id=r.id,
            fund_code=r.fund_code,
            received=local_date(r.received_at, tz),
            coverage=cov,
            provider=_provider(providers.get(r.provider_inpe)),
            prices=prices.get(r.id, {}),
            exemptions=cov.exemptions if cov else (),
            prior_lines=[p for p in prior.get(r.patient_id, []) if p.ledger_id != r.id],
            preauthorizations=preauths,
            dispenses=pharmacy[r.patient_id][0],
            prescriptions=pharmacy[r.patient_id][1],
            conditions=conditions,
            complementary=complementary,
        )
    return out


def _longest_window(rulesets: Rulesets, fund_code: str) -> int:
    fund = rulesets.fund(fund_code)
    if fund is None:
        return 1
    windows = [w.window_days for v in fund.versions for w in (*v.frequency_limits, *v.ceilings)]
    return max(windows, default=1)


async def _prior_lines(conn: AsyncConnection, patient_ids: set[str], since: date) -> dict[str, list[PriorLine]]:
    t, led = claim_decision_line, claim_ledger
    replacement = claim_ledger.alias("replacement")
    # Care actually billed (not what pre-authorisations granted ahead of it), once (the AMO's
    # lines: a complementary insurer's repeat the same acts), and not replaced: the lines of a
    # sheet a correction replaces (received or decided) are history no more.
    rows = await conn.execute(
        select(t.c.patient_id, t.c.ledger_id, t.c.provider_inpe, t.c.code, t.c.service_date, t.c.benefit_cents, t.c.fund_code)
        .select_from(t.join(led, led.c.id == t.c.ledger_id))
        # The ledger side filtered by patient too: both sides then come from their patient index,
        # and the cost follows the patients' history, not the size of the ledger.
        .where(t.c.patient_id.in_(sorted(patient_ids)), led.c.patient_id.in_(sorted(patient_ids)),
               t.c.service_date >= since.isoformat(), led.c.use == "claim",
               led.c.payer_rank == 1, led.c.status != SUPERSEDED, ~exists().where(replacement.c.corrects_id == led.c.id))
    )
    out: dict[str, list[PriorLine]] = defaultdict(list)
    for pid, lid, inpe, code, day, benefit, fund in rows:
        out[pid].append(PriorLine(lid, inpe, code, date.fromisoformat(day), from_cents(benefit), fund))
    return out


async def _preauthorizations(conn: AsyncConnection, refs: set[str]) -> dict[str, Preauthorization]:
    if not refs:
        return {}
    led, line = claim_ledger, claim_decision_line
    rows = await conn.execute(
        select(led.c.preauth_ref, led.c.patient_id, led.c.preauth_from, led.c.preauth_until, led.c.care_setting, line.c.code)
        .select_from(led.outerjoin(line, (line.c.ledger_id == led.c.id) & (line.c.benefit_cents > 0)))
        .where(led.c.preauth_ref.in_(sorted(refs)), led.c.use == "preauthorization")
    )
    found: dict[str, dict] = {}
    for ref, pid, start, end, setting, code in rows:
        entry = found.setdefault(ref, {"pid": pid, "start": start, "end": end, "setting": setting, "codes": set()})
        if code:
            entry["codes"].add(code)
    return {
        ref: Preauthorization(ref, e["pid"], date.fromisoformat(e["start"]), date.fromisoformat(e["end"]),
                              frozenset(e["codes"]), e["setting"])
        for ref, e in found.items()
        if e["start"] and e["end"]
    }


async def _prices(conn, rows: list[LedgerRow], sheets, reference: Reference) -> dict[int, dict]:
    acts_by_fund: dict[str, set] = defaultdict(set)
    medicines_by_fund: dict[str, set] = defaultdict(set)  # each fund reimburses its own medicines
    for r in rows:
        for ln in sheets[r.id].lines:
            if ln.system == ACTS:
                acts_by_fund[r.fund_code].add((ln.code, ln.service_date))
            elif ln.system == MEDICINE:
                medicines_by_fund[r.fund_code].add((ln.code, ln.service_date))
    tariffs = {fund: await reference.tariffs.tariffs(conn, fund, wanted) for fund, wanted in acts_by_fund.items()}
    bases = {fund: await reference.medicines.bases(conn, fund, wanted) for fund, wanted in medicines_by_fund.items()}
    out: dict[int, dict] = {}
    for r in rows:
        prices = {}
        for ln in sheets[r.id].lines:
            key = (ln.code, ln.service_date)
            found = (tariffs if ln.system == ACTS else bases).get(r.fund_code, {}).get(key)
            if found is not None:
                prices[key] = found
        out[r.id] = prices
    return out

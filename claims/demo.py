"""A day of care sheets for the demo population (``sijill demo`` calls ``load_claims_day``).

On top of the demo patients, providers and Coverages already loaded: the funds grant the
ALD/ALC exemptions matching each patient's long-term conditions (as ``costToBeneficiary``
exceptions on the AMO Coverage), patients left without a Coverage get one, then a day's mix of
sheets is submitted through the same submission path as the API: GP and specialist
consultations, lab work, pharmacy sheets (a renewed prescription and its dispense), hospital
stays after their pre-authorisation, and about 5 % needing an agent (high amounts, a missing
discharge summary).  Deterministic for a seed and a day; with ``decide=True`` the worker then
decides them, so the demo shows answers, an SLA report and payments.

``SheetGenerator`` is the one generator of care sheets: the benchmark's day and week spools
(``bench/claims_day.py``) draw from it too, over the world ``claims_world`` reads.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from claims import ledger
from claims.caresheet import today
from claims.ports import Pack, Reference, reference_for
from claims.settings import get_claims_settings
from claims.tables import claim_ledger
from claims.uris import ACTS, ALD, ATC, CLAIM_INFO_CATEGORY, CLAIM_NUMBER, CLAIM_TYPE, ICD10, INPE, MEDICINE, ORG_KIND, PRESCRIPTION_NUMBER
from ehr.interactions.context import Context, store
from ehr.interactions.create import submit_or_create
from ehr.interactions.preconditions import new_id
from ehr.outcome import FHIRError
from ehr.security.prescription_number import seeded_number
from ehr.settings import Settings
from ehr.store import repository
from ehr.store.db import read_connection, write_transaction
from ehr.store.schema import resource

# Per 100 sheets; with the stays that follow the hospital pre-authorisations, about 5 % need an
# agent: the "review" sheets (amounts above the funds' threshold) and the stays sent without
# their discharge summary.
KINDS = (("gp", 43), ("specialist", 18), ("lab", 10), ("pharmacy", 20), ("hospital", 5), ("review", 4))
STAY_WITHOUT_DISCHARGE = 0.25
_ACUTE_MEDICINES = ("N02BE01", "J01CA04", "R06AX13")
# (act code, price asked): NFS, fasting glucose, HbA1c, CRP, creatinine
_LAB_TESTS = (("B1001", 44.0), ("B1011", 11.0), ("B1013", 66.0), ("B1035", 44.0), ("B1016", 11.0))
_ALD_ICD = {"E10", "E11", "E12", "E13", "E14", "I10", "I11", "I12", "I13", "I15", "I20", "I21", "I25", "I50", "N18",
            "B18", "A15", "A16", "J44"}


@dataclass
class DaySummary:
    day: date
    submitted: int = 0
    refused: int = 0  # 422s: the generator only makes valid sheets, so this stays 0
    exemptions_granted: int = 0
    coverages_created: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    decided: int = 0


@dataclass
class Population:
    patients: list[str]
    coverage: dict[str, dict]  # patient id -> AMO Coverage (order 1)
    ald: dict[str, list[str]]  # patient id -> ICD-10 codes of active ALD conditions
    active_rx: dict[str, list[dict]]  # patient id -> active MedicationRequests
    doctors: list[tuple[str, str]]  # (Practitioner id, INPE)
    organizations: dict[str, list[tuple[str, str]]]  # kind -> [(Organization id, INPE)]
    funds: dict[str, str]  # fund code -> Organization id


def _ident(res: dict, system: str) -> str | None:
    return next((i.get("value") for i in res.get("identifier") or [] if i.get("system") == system), None)


async def read_population(engine: AsyncEngine) -> Population:
    """The demo world, read type by type (a handful of queries, not one per patient)."""
    async with read_connection(engine) as conn:
        def rows(t):
            return conn.execute(select(resource.c.content).where(resource.c.res_type == t, resource.c.deleted.is_(False)))

        patients = [orjson.loads(c)["id"] for (c,) in await rows("Patient")]
        coverage: dict[str, dict] = {}
        for (c,) in await rows("Coverage"):
            cov = orjson.loads(c)
            pid = (cov.get("beneficiary") or {}).get("reference", "").split("/")[-1]
            if cov.get("status") == "active" and (cov.get("order") or 1) == 1:
                coverage.setdefault(pid, cov)
        ald: dict[str, list[str]] = {}
        for (c,) in await rows("Condition"):
            cond = orjson.loads(c)
            codes = [x.get("code", "") for x in (cond.get("code") or {}).get("coding") or [] if x.get("system") == ICD10]
            active = any(x.get("code") == "active" for x in (cond.get("clinicalStatus") or {}).get("coding") or [])
            if active and codes and codes[0][:3] in _ALD_ICD:
                ald.setdefault(cond["subject"]["reference"].split("/")[-1], []).append(codes[0])
        active_rx: dict[str, list[dict]] = {}
        for (c,) in await rows("MedicationRequest"):
            mr = orjson.loads(c)
            if mr.get("status") in ("active", "completed"):
                active_rx.setdefault(mr["subject"]["reference"].split("/")[-1], []).append(mr)
        doctors = [(p["id"], inpe) for (c,) in await rows("Practitioner")
                   if (p := orjson.loads(c)) and (inpe := _ident(p, INPE))]
        organizations: dict[str, list[tuple[str, str]]] = {}
        funds: dict[str, str] = {}
        for (c,) in await rows("Organization"):
            org = orjson.loads(c)
            kinds = [x.get("code") for t in org.get("type") or [] for x in t.get("coding") or [] if x.get("system") == ORG_KIND]
            if (inpe := _ident(org, INPE)) and kinds:
                organizations.setdefault(kinds[0], []).append((org["id"], inpe))
            if fund := _ident(org, "https://fhir.sijill.ma/sid/fund"):
                funds[fund.upper()] = org["id"]
    return Population(sorted(patients), coverage, ald, active_rx, sorted(doctors), organizations, funds)


async def _grant_exemptions(engine: AsyncEngine, world: Population, base_url: str, summary: DaySummary,
                            ref: Reference, day: date) -> None:
    """The funds' ALD decisions: an exception on the AMO Coverage per recognised condition."""
    async with write_transaction(engine) as conn:
        catalog = list((await ref.conditions.catalog(conn, day)).values())
        ctx = Context(conn, base_url)
        for pid, icds in sorted(world.ald.items()):
            cov = world.coverage.get(pid)
            if cov is None:
                continue
            granted = {x.get("code") for cost in cov.get("costToBeneficiary") or [] for e in cost.get("exception") or []
                       for x in (e.get("type") or {}).get("coding") or [] if x.get("system") == ALD}
            wanted = sorted({c.code for icd in icds for c in catalog if c.covers(icd)} - granted)
            if not wanted:
                continue
            prior = await repository.current(conn, "Coverage", cov["id"], for_update=True)
            cov = prior.resource()
            cov.setdefault("costToBeneficiary", []).append({
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-copay-type", "code": "copaypct"}]},
                "valueMoney": {"value": 0, "currency": "MAD"},
                "exception": [{"type": {"coding": [{"system": ALD, "code": code}]},
                               "period": {"start": cov.get("period", {}).get("start", "2006-03-01")}} for code in wanted],
            })
            await store(ctx, "Coverage", cov["id"], cov, method="PUT", prior=prior)
            world.coverage[pid] = cov
            summary.exemptions_granted += len(wanted)
        for pid in world.patients:
            if pid in world.coverage or "CNSS" not in world.funds:
                continue
            cov = {
                "resourceType": "Coverage", "status": "active",
                "subscriber": {"reference": f"Patient/{pid}"}, "beneficiary": {"reference": f"Patient/{pid}"},
                "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"}]},
                "period": {"start": "2020-01-01"}, "payor": [{"reference": f"Organization/{world.funds['CNSS']}"}], "order": 1,
                "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]},
                           "value": "salaries", "name": "AMO des salariés du secteur privé"}],
            }
            stored = await store(ctx, "Coverage", new_id(), cov, method="POST", prior=None)
            world.coverage[pid] = orjson.loads(stored.content)
            summary.coverages_created += 1


def _line(code: str, price: float, on: date, quantity: float = 1, system: str = ACTS, diagnosis: list[int] | None = None) -> dict:
    item = {
        "productOrService": {"coding": [{"system": system, "code": code}]},
        "servicedDate": on.isoformat(),
        "quantity": {"value": quantity},
        "unitPrice": {"value": price, "currency": "MAD"},
        "net": {"value": round(price * quantity, 2), "currency": "MAD"},
    }
    if diagnosis:
        item["diagnosisSequence"] = diagnosis
    return item


def _sheet(number: str, kind: str, patient: str, coverage: str, provider: tuple[str, str, str], items: list[dict],
           on: date, **extra) -> dict:
    for n, item in enumerate(items, 1):
        item["sequence"] = n
    res = {
        "resourceType": "Claim",
        "identifier": [{"system": CLAIM_NUMBER, "value": number}],
        "status": "active",
        "type": {"coding": [{"system": CLAIM_TYPE, "code": kind}]},
        "use": extra.pop("use", "claim"),
        "patient": {"reference": f"Patient/{patient}"},
        "created": on.isoformat(),
        "provider": {"reference": f"{provider[0]}/{provider[1]}", "identifier": {"system": INPE, "value": provider[2]}},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/{coverage}"}}],
        "item": items,
        "total": {"value": round(sum(i["net"]["value"] for i in items), 2), "currency": "MAD"},
    }
    res.update(extra)
    return res


@dataclass
class World:
    """What the generator draws from: the population and the packs pharmacies hand over."""

    population: Population
    packs: dict[str, list[Pack]]  # ATC substance -> reimbursable packs


async def claims_world(engine: AsyncEngine, base_url: str, day: date, summary: DaySummary | None = None) -> World | None:
    """The loaded demo world, with the funds' ALD exemptions granted and every patient covered
    (idempotent); None when no patient or doctor is loaded."""
    population = await read_population(engine)
    if not population.doctors or not population.patients:
        return None
    async with read_connection(engine) as conn:
        ref = await reference_for(conn)
        substances = {c["code"] for rxs in population.active_rx.values() for mr in rxs
                      for c in mr["medicationCodeableConcept"]["coding"] if c.get("system") == ATC} | set(_ACUTE_MEDICINES)
        packs = await ref.medicines.packs_for_atc(conn, substances, day)
    await _grant_exemptions(engine, population, base_url, summary or DaySummary(day), ref, day)
    return World(population, packs)


@dataclass
class Sheet:
    kind: str
    claim: dict
    first: list[dict]  # what the provider records before the sheet (prescription, dispense), with ids
    stay: dict | None = None  # after a pre-authorisation: the stay's sheet, to send with the granted number

    @property
    def care_date(self) -> str:
        return self.claim["item"][0]["servicedDate"]


def granted(stay: dict, preauth_ref: str) -> dict:
    """The stay's sheet citing the fund's pre-authorisation number (a copy)."""
    out = orjson.loads(orjson.dumps(stay))
    out["insurance"][0]["preAuthRef"] = [preauth_ref]
    return out


class SheetGenerator:
    """Care sheets for one day of submissions, deterministic for (world, day, seed, label).

    Each sheet is for a distinct (patient, date of care) while there are enough of them: the
    date of care is the day itself or, with ``care_days`` > 1, one of the days before (sheets
    reach the funds up to weeks after the care), so a large day over a small population does
    not turn into the same patient seeing two doctors for the same act on the same date.
    ``label`` keeps the sheet numbers of several generators of one day apart.
    """

    def __init__(self, world: World, day: date, seed: int, *, label: str = "", care_days: int = 1,
                 spare: frozenset[str] = frozenset()) -> None:
        self.population, self.day, self.label = world.population, day, label
        self.packs = world.packs
        self.rng = random.Random(f"claims-day:{seed}:{label}{day.isoformat()}")
        self.n = 0
        self.insured = [p for p in self.population.patients if p in self.population.coverage and p not in spare]
        self.care_days = max(1, care_days)
        self._today: list[int] = []  # (patient, date) pairs as patient × care_days + days before the day
        self._earlier: list[int] = []

    def number(self, prefix: str = "FSE") -> str:
        self.n += 1
        return f"{prefix}-{self.label}{self.day:%Y%m%d}-{self.n:06d}"

    def pick_kind(self) -> str:
        return self.rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0]

    def org(self, *kinds: str) -> tuple[str, str, str] | None:
        options = [o for k in kinds for o in self.population.organizations.get(k, [])]
        if not options:
            return None
        oid, inpe = options[self.rng.randrange(len(options))]
        return ("Organization", oid, inpe)

    def doctor(self) -> tuple[str, str, str]:
        pid, inpe = self.population.doctors[self.rng.randrange(len(self.population.doctors))]
        return ("Practitioner", pid, inpe)

    def _refill(self) -> None:
        k = self.care_days
        self._today = [i * k for i in range(len(self.insured))]
        self._earlier = [i * k + d for i in range(len(self.insured)) for d in range(1, k)]
        self.rng.shuffle(self._today)
        self.rng.shuffle(self._earlier)

    def visit(self, same_day: bool = False) -> tuple[str, date]:
        """The next (patient, date of care), without repeats until every pair was drawn;
        ``same_day``: care on the day itself."""
        if not self._today and (same_day or not self._earlier):
            self._refill()
        if same_day or not self._earlier:
            pool = self._today
        elif not self._today:
            pool = self._earlier
        else:
            pool = self._today if self.rng.randrange(len(self._today) + len(self._earlier)) < len(self._today) else self._earlier
        pair = pool.pop()
        return self.insured[pair // self.care_days], self.day - timedelta(days=pair % self.care_days)

    def sheet(self, kind: str) -> Sheet:
        """One care sheet of ``kind`` for the next visit.  A hospital stay is authorised on the
        day of submission (the fund's authorisation runs from its receipt) for a stay that day."""
        rng = self.rng
        pid, on = self.visit(same_day=kind == "hospital")
        cov = self.population.coverage[pid]["id"]
        alds = self.population.ald.get(pid, [])
        if kind == "gp":
            return Sheet(kind, _sheet(self.number(), "professional", pid, cov, self.doctor(),
                                      [_line("C", rng.choice((80, 100, 120, 150)), on)], on), [])
        if kind == "specialist":
            extra, diag = {}, None
            if alds:
                extra["diagnosis"] = [{"sequence": 1, "diagnosisCodeableConcept": {"coding": [{"system": ICD10, "code": alds[0]}]}}]
                diag = [1]
            return Sheet(kind, _sheet(self.number(), "professional", pid, cov, self.doctor(),
                                      [_line("CS", rng.choice((150, 200, 250, 300)), on, diagnosis=diag)], on, **extra), [])
        if kind == "lab":
            lab = self.org("laboratoire") or self.doctor()
            tests = rng.sample(_LAB_TESTS, rng.randrange(1, 4))
            return Sheet(kind, _sheet(self.number(), "professional", pid, cov, lab, [_line(c, p, on) for c, p in tests], on), [])
        if kind == "pharmacy":
            return self._pharmacy(pid, cov, on)
        if kind == "review":  # joint replacements: above every fund's review threshold
            return Sheet(kind, _sheet(self.number(), "professional", pid, cov, self.doctor(),
                                      [_line("KC3053", 6300, on), _line("KC3054", 6300, on)], on), [])
        hospital = self.org("chu", "chr", "chp", "clinique")
        if hospital is None:
            return self._fallback(pid, cov, on)
        days = rng.randrange(1, 5)
        request = _sheet(self.number("PA"), "institutional", pid, cov, hospital, [_line("FH6001", 550, on, quantity=days)],
                         on, use="preauthorization")
        stay = orjson.loads(orjson.dumps(request))
        stay["use"] = "claim"
        stay["identifier"] = [{"system": CLAIM_NUMBER, "value": self.number()}]
        if rng.random() >= STAY_WITHOUT_DISCHARGE:  # the others reach an agent: document missing
            stay["supportingInfo"] = [{"sequence": 1, "category": {"coding": [{"system": CLAIM_INFO_CATEGORY, "code": "discharge"}]}}]
        return Sheet(kind, request, [], stay)

    def eligibility(self, sheet: Sheet) -> dict:
        """The rights check the provider runs before the care of ``sheet``."""
        claim = sheet.claim
        cov = self.population.coverage[claim["patient"]["reference"].split("/", 1)[1]]
        request = {
            "resourceType": "CoverageEligibilityRequest", "status": "active", "purpose": ["validation", "benefits"],
            "patient": claim["patient"], "created": sheet.care_date, "servicedDate": sheet.care_date,
            "provider": {"reference": claim["provider"]["reference"]},
            "insurance": [{"focal": True, "coverage": {"reference": f"Coverage/{cov['id']}"}}],
        }
        if cov.get("payor"):
            request["insurer"] = {"reference": cov["payor"][0]["reference"]}
        return request

    def _fallback(self, pid: str, cov: str, on: date) -> Sheet:
        return Sheet("gp", _sheet(self.number(), "professional", pid, cov, self.doctor(), [_line("C", 80, on)], on), [])

    def _pharmacy(self, pid: str, cov: str, on: date) -> Sheet:
        """A renewal: the prescription of a medicine the patient takes, and its dispense."""
        rng = self.rng
        pharmacy = self.org("pharmacie")
        if pharmacy is None:
            return self._fallback(pid, cov, on)
        # This day's own renewals are left out: a rerun of the day reads them back from the store
        # and must still draw the same sheets.
        own = f"ord-{self.label}{self.day:%Y%m%d}-".lower()
        past = [c["code"] for mr in self.population.active_rx.get(pid, []) if not mr["id"].startswith(own)
                for c in mr["medicationCodeableConcept"]["coding"] if c.get("system") == ATC and c.get("code") in self.packs]
        acute = rng.choice(_ACUTE_MEDICINES)  # drawn always: the day's draws never depend on the store
        codes = sorted(set(past))[:2] or ([acute] if acute in self.packs else [])
        if not codes:
            return self._fallback(pid, cov, on)
        doctor = self.doctor()
        when = datetime.combine(on, time(10, rng.randrange(60)), tzinfo=ZoneInfo("Africa/Casablanca")).isoformat()
        first, items = [], []
        rx_key = self.number("ORD")
        rx_number = seeded_number(rx_key)
        for n, code in enumerate(codes, 1):
            # Ids from the day's sequence: the same day generated twice writes the same resources.
            mr_id, md_id = f"{rx_key.lower()}-{n}", f"{rx_key.lower()}-{n}-d"
            pack = self.packs[code][rng.randrange(len(self.packs[code]))]
            substance = {"coding": [{"system": ATC, "code": code}]}
            handed = {"coding": [{"system": MEDICINE, "code": pack.code}, {"system": ATC, "code": code}]}
            first.append({"resourceType": "MedicationRequest", "id": mr_id, "status": "active", "intent": "order",
                          "groupIdentifier": {"system": PRESCRIPTION_NUMBER, "value": rx_number},
                          "medicationCodeableConcept": substance, "subject": {"reference": f"Patient/{pid}"},
                          "authoredOn": when, "requester": {"reference": f"Practitioner/{doctor[1]}"}})
            first.append({"resourceType": "MedicationDispense", "id": md_id, "status": "completed",
                          "medicationCodeableConcept": handed, "subject": {"reference": f"Patient/{pid}"},
                          "authorizingPrescription": [{"reference": f"MedicationRequest/{mr_id}"}],
                          "performer": [{"actor": {"reference": f"Organization/{pharmacy[1]}"}}],
                          "quantity": {"value": 1}, "whenHandedOver": when})
            items.append(_line(pack.code, float(pack.ppv), on, system=MEDICINE))
        return Sheet("pharmacy", _sheet(self.number(), "pharmacy", pid, cov, pharmacy, items, on), first)


async def _submit(engine: AsyncEngine, base_url: str, claim: dict, first: list[dict]) -> bool:
    try:
        async with write_transaction(engine) as conn:
            ctx = Context(conn, base_url)
            for res in first:
                res = dict(res)
                res_id = res.pop("id")
                if await repository.current(conn, res["resourceType"], res_id) is None:  # a rerun of the same day
                    await store(ctx, res["resourceType"], res_id, res, method="POST", prior=None)
            await submit_or_create(ctx, "Claim", claim)
        return True
    except FHIRError:
        return False


async def load_claims_day(
    engine: AsyncEngine, settings: Settings, *, day: date | None = None, sheets: int | None = None, seed: int = 1,
    decide: bool = True, spare: frozenset[str] = frozenset(),
) -> DaySummary:
    """Submit a day of care sheets for the loaded demo population (and decide them); the
    ``spare`` patients get none (the demo's walk-ins arrive with a file the day did not touch)."""
    from claims.worker import Worker

    day = day or today(get_claims_settings().timezone)
    summary = DaySummary(day)
    world = await claims_world(engine, settings.base_url, day, summary)
    if world is None:
        return summary
    gen = SheetGenerator(world, day, seed, spare=spare)
    if not gen.insured:
        return summary
    count = sheets if sheets is not None else max(10, len(gen.insured) // 4)
    stays: list[Sheet] = []
    for _ in range(count):
        sheet = gen.sheet(gen.pick_kind())
        ok = await _submit(engine, settings.base_url, sheet.claim, sheet.first)
        summary.submitted += ok
        summary.refused += not ok
        summary.by_kind[sheet.kind] = summary.by_kind.get(sheet.kind, 0) + ok
        if ok and sheet.stay is not None:
            stays.append(sheet)
    worker = Worker(engine, base_url=settings.base_url, name="demo")
    if decide or stays:
        while await worker.run_once():
            pass
    # The stays themselves, now that their pre-authorisations are decided.
    for sheet in stays:
        request = sheet.claim
        async with read_connection(engine) as conn:
            row = await ledger.by_key(conn, request["provider"]["identifier"]["value"], request["identifier"][0]["value"])
        if not (row and row.preauth_ref):
            continue
        ok = await _submit(engine, settings.base_url, granted(sheet.stay, row.preauth_ref), [])
        summary.submitted += ok
        summary.refused += not ok
        summary.by_kind["hospital-stay"] = summary.by_kind.get("hospital-stay", 0) + ok
    if decide:
        while await worker.run_once():
            pass
        async with read_connection(engine) as conn:
            summary.decided = (await conn.execute(select(func.count()).select_from(claim_ledger).where(
                claim_ledger.c.status.in_((ledger.DECIDED, ledger.PAID)),
                claim_ledger.c.claim_identifier.like(f"%-{day:%Y%m%d}-%")))).scalar_one()
    return summary

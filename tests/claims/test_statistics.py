"""Statistics for policy, with the statistics role's own token: aggregates that match the
generated population (the expectations computed here, in Python, from the same rows), small
cells suppressed (and the complementary cell beside a lone suppressed one), CSV, the fairness
view, every other role refused, each extraction audited.  Both backends."""
from __future__ import annotations

import csv
import io
import random
from datetime import date
from statistics import median

import orjson
import pytest
from sqlalchemy import insert, select, union_all

from claims.clock import HOUR_US
from claims.statistics.measures import Period, aggregate
from claims.tables import claim_decision_line, claim_ledger
from ehr.security.demo import DemoUser
from ehr.security.roles import Role
from ehr.security.tables import audit_inbox, audit_log
from tests.claims.test_appeals import secure_app, signing_key  # noqa: F401  (fixtures)
from tests.security.world import USERS, seed_world

STAT = DemoUser("st", Role.STATISTICS, "Practitioner/st")
T0 = 1_735_700_000_000_000  # 2025-01-01, µs
# Patients by province (Address.district as a code, a French or an Arabic name) — and unplaced ones.
PLACES = [("06-casablanca", {"district": "Casablanca"}, 30), ("06-settat", {"district": "06-settat"}, 12),
          ("04-rabat", {"district": "الرباط"}, 14), ("07-safi", {"district": "Safi"}, 4),
          ("inconnu", {"city": "Atlantis"}, 11)]
FUNDS = ("CNSS", "CNOPS")


def _population(seed: int = 7):
    rnd = random.Random(seed)
    patients, rows, lines = [], [], []
    for province, address, n in PLACES:
        for i in range(n):
            pid = f"{province}-{i}"
            patients.append({"resourceType": "Patient", "id": pid, "address": [{**address, "country": "MA"}]})
            for k in range(rnd.randint(1, 3)):
                lid = len(rows) + 1
                received = T0 + rnd.randint(0, 200) * HOUR_US
                decided = received + rnd.randint(1, 90) * HOUR_US if rnd.random() < 0.9 else None
                benefit, share = (rnd.randint(1, 500) * 100 * (lid % 4 != 0), rnd.randint(0, 200) * 100) if decided else (None, None)
                month = "2025-01" if k % 2 == 0 else "2025-02"
                rows.append(dict(id=lid, provider_inpe="1", claim_identifier=f"s{lid}", payer_rank=1, claim_id=f"c{lid}",
                                 response_id=f"r{lid}", patient_id=pid, fund_ref="Organization/x", fund_code=FUNDS[lid % 2],
                                 use="claim", care_setting="ambulatory", service_date=f"{month}-1{k}", fingerprint="f",
                                 received_at=received, due_at=received + 48 * HOUR_US,
                                 status="decided" if decided else "queued", decided_at=decided, submitted_cents=70000,
                                 benefit_cents=benefit, patient_share_cents=share))
                if decided and benefit == 0:
                    lines.append(dict(ledger_id=lid, sequence=1, patient_id=pid, provider_inpe="1", fund_code="CNSS",
                                      service_date="2025-01-10", submitted_cents=70000, eligible_cents=0, benefit_cents=0,
                                      patient_share_cents=0, rate_permille=0, reasons="not-covered late-penalty", decided_by="system"))
    return patients, rows, lines


@pytest.fixture
async def population(secure_app):  # noqa: F811
    patients, rows, lines = _population()
    world = await seed_world(secure_app, patients)
    async with secure_app.state.engine.begin() as conn:
        await conn.execute(insert(claim_ledger), rows)
        if lines:
            await conn.execute(insert(claim_decision_line), lines)
    return world, rows


def _region(pid: str) -> str:
    return "inconnu" if pid.startswith("inconnu") else pid[:2]


async def _get(world, user, url, **headers):
    async with world.client(user, **headers) as c:
        return await c.get(url)


def _strata(report: dict, figure: str) -> dict:
    group = next(g for g in report["group"] if g["code"]["coding"][0]["code"] == figure)
    return {s["value"]["coding"][0]["code"]: s for s in group["stratifier"][0]["stratum"]}


async def test_care_sheets_by_region_match_the_ledger_and_small_regions_are_suppressed(population):
    world, rows = population
    r = await _get(world, STAT, "/MeasureReport/$aggregate?measure=care-sheets&by=region&period=2025")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["resourceType"] == "MeasureReport" and report["type"] == "summary"
    strata = _strata(report, "care-sheets")
    expected = {}
    for row in rows:
        expected.setdefault(_region(row["patient_id"]), []).append(row["patient_id"])
    assert set(strata) == set(expected)
    for region in ("06", "04"):
        assert strata[region]["population"][0]["count"] == len(expected[region])
    # Marrakech-Safi has 4 patients: suppressed, no figure; and being the only one hidden, the
    # smallest other region (the 11 unplaced patients) is hidden too, or the national total
    # minus the regions shown would give it away.
    for region in ("07", "inconnu"):
        assert "population" not in strata[region] and strata[region]["extension"][0]["valueString"] == "<10"
    assert sorted(k for k, s in strata.items() if "population" not in s) == ["07", "inconnu"]
    group = report["group"][0]
    assert group["population"][0]["count"] == len(rows)


async def test_decision_delays_amounts_and_refusals_are_computed_by_the_database(population):
    world, rows = population
    decided = [r for r in rows if r["decided_at"] and r["patient_id"].startswith("06-casablanca")]
    delays = sorted((r["decided_at"] - r["received_at"]) / HOUR_US for r in decided)
    r = await _get(world, STAT, "/MeasureReport/$aggregate?measure=decision-delay&by=province&period=2025-01/2025-02")
    strata = lambda fig: _strata(r.json(), fig)["06-casablanca"]  # noqa: E731
    assert strata("decided")["population"][0]["count"] == len(decided)
    within = 100 * sum(d <= 48 for d in delays) / len(delays)
    assert strata("within-48h")["measureScore"]["value"] == pytest.approx(within, abs=0.01)
    k50 = -(-50 * len(delays) // 100)
    assert strata("delay-median")["measureScore"]["value"] == delays[k50 - 1]
    assert strata("delay-p90")["measureScore"]["value"] == delays[-(-90 * len(delays) // 100) - 1]
    assert abs(strata("delay-median")["measureScore"]["value"] - median(delays)) <= max(delays)

    r = await _get(world, STAT, "/MeasureReport/$aggregate?measure=amounts&by=fund&period=2025", Accept="text/csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert list(table[0]) == ["fund", "fund_libelle", "personnes", "submitted", "paid", "left-to-patient", "out-of-pocket-share"]
    cnss = next(t for t in table if t["fund"] == "CNSS")
    mine = [x for x in rows if x["fund_code"] == "CNSS" and x["benefit_cents"] is not None]
    assert float(cnss["paid"]) == sum(x["benefit_cents"] for x in mine) / 100
    assert float(cnss["left-to-patient"]) == sum(x["patient_share_cents"] for x in mine) / 100
    whole = table[0]
    assert whole["fund"] == "" and int(whole["personnes"]) == len({x["patient_id"] for x in rows})

    r = await _get(world, STAT, "/MeasureReport/$aggregate?measure=refusals&by=reason&period=2025", Accept="text/csv")
    table = {t["reason"]: t for t in csv.DictReader(io.StringIO(r.text)) if t["reason"]}
    refused = [x for x in rows if x["benefit_cents"] == 0]
    people = len({x["patient_id"] for x in refused})
    for reason in ("not-covered", "late-penalty"):
        shown = table[reason]
        assert shown["personnes"] == (str(people) if people >= 10 else "<10")
        if people >= 10:
            assert int(shown["refused-lines"]) == len(refused)


async def test_the_delay_percentiles_are_the_nearest_rank_for_every_cell_size(secure_app):  # noqa: F811
    # PostgreSQL's percentile_disc and SQLite's window must both give the value of rank ceil(p·n/100):
    # cells (one fund each) of n = 1…20 sheets decided 1…n hours after receipt, inserted out of order
    rnd, rows = random.Random(3), []
    for n in range(1, 21):
        for hours in rnd.sample(range(1, n + 1), n):
            lid = len(rows) + 1
            rows.append(dict(id=lid, provider_inpe="1", claim_identifier=f"s{lid}", payer_rank=1, claim_id=f"c{lid}",
                             response_id=f"r{lid}", patient_id=f"p{lid % 7}", fund_ref="Organization/x", fund_code=f"F{n:02}",
                             use="claim", care_setting="ambulatory", service_date="2025-03-01", fingerprint="f",
                             received_at=T0, due_at=T0 + 48 * HOUR_US, status="decided", decided_at=T0 + hours * HOUR_US,
                             submitted_cents=100, benefit_cents=100, patient_share_cents=0))
    async with secure_app.state.engine.begin() as conn:
        await conn.execute(insert(claim_ledger), rows)
        cells = await aggregate(conn, "decision-delay", ("fund",), Period(date(2025, 3, 1), date(2025, 3, 31)))
    got = {c["key"][0]: (c["decided"], c["delay-median"], c["delay-p90"], c["people"]) for c in cells}
    assert got == {f"F{n:02}": (n, float(-(-50 * n // 100)), float(-(-90 * n // 100)), min(n, 7)) for n in range(1, 21)}


async def test_fairness_puts_regions_beside_the_nation_and_flags_by_the_rule(population):
    world, rows = population
    r = await _get(world, STAT, "/MeasureReport/$fairness?period=2025")
    assert r.status_code == 200, r.text
    report = r.json()
    codes = [g["code"]["coding"][0]["code"] for g in report["group"]]
    assert codes == ["within-48h", "delay-median", "out-of-pocket-share"]
    decided = [x for x in rows if x["decided_at"]]
    national = 100 * sum(x["decided_at"] - x["received_at"] <= 48 * HOUR_US for x in decided) / len(decided)
    assert report["group"][0]["measureScore"]["value"] == pytest.approx(national, abs=0.01)
    strata = _strata(report, "within-48h")
    share06 = strata["06"]["measureScore"]["value"]
    flagged = any(e["valueCode"] == "wait" for e in strata["06"].get("extension", []))
    median06 = _strata(report, "delay-median")["06"]["measureScore"]["value"]
    n_median = report["group"][1]["measureScore"]["value"]
    assert flagged == (share06 < national - 10 or median06 > 1.5 * n_median)
    r = await _get(world, STAT, "/MeasureReport/$fairness?period=2025", Accept="text/csv")
    header = next(csv.reader(io.StringIO(r.text)))
    assert header[:4] == ["region", "region_libelle", "personnes", "within-48h"] and header[-1] == "alertes"


async def test_each_extraction_is_audited_with_its_query_and_no_patient(population):
    world, _ = population
    r = await _get(world, STAT, "/MeasureReport/$aggregate?measure=care-sheets&by=month&period=2025")
    assert r.status_code == 200
    async with world.app.state.engine.connect() as conn:
        events = [orjson.loads(e) for (e,) in (await conn.execute(
            union_all(select(audit_inbox.c.event), select(audit_log.c.event)))).all()]
    mine = [e for e in events if any(a.get("who", {}).get("reference") == "Practitioner/st" for a in e["agent"])]
    assert len(mine) == 1
    entity = mine[0]["entity"]
    assert not any(x.get("what", {}).get("reference", "").startswith("Patient/") for x in entity)
    assert any("measure=care-sheets" in str(x) or "bWVhc3VyZT1jYXJlLXNoZWV0c" in str(x) for x in entity)


@pytest.mark.parametrize("user", ["D1", "pa", "AG", "AD", "PH", "PA"])
async def test_every_other_role_is_refused(population, user):
    world, _ = population
    for url in ("/MeasureReport/$aggregate?measure=care-sheets&by=region&period=2025", "/MeasureReport/$fairness?period=2025"):
        r = await _get(world, USERS[user], url)
        assert r.status_code == 403, r.text


async def test_anonymous_and_bad_parameters(population):
    world, _ = population
    assert (await _get(world, None, "/MeasureReport/$fairness?period=2025")).status_code == 401
    for query, where in (("measure=nope&period=2025", "measure"), ("measure=care-sheets&by=reason&period=2025", "by"),
                         ("measure=care-sheets&period=2025-13", "period"), ("measure=care-sheets", "period")):
        r = await _get(world, STAT, f"/MeasureReport/$aggregate?{query}")
        assert r.status_code == 400, r.text
        assert r.json()["issue"][0]["expression"] == [where]


async def test_statistics_role_reads_no_clinical_row(population):
    world, _ = population
    r = await _get(world, STAT, "/Patient/06-casablanca-0")
    assert r.status_code in (403, 404)
    r = await _get(world, STAT, "/CodeSystem/territoire")
    assert r.status_code in (200, 404)

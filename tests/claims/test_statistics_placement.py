"""Statistics: where patients are placed, and the measures added with it.

The placement (``patient_place``) follows every write of a Patient — created, updated through
the API or a transaction Bundle, deleted — and ``sijill statistics refresh`` rebuilds the same
rows; the statistician sees a patient who moved counted in the new region.  The ledger records
the care kind (GP, specialist, lab) at submission and the ALD flag at decision; the statistician
reads them (``by=setting``, ``by=ald``), the coverage-cliff transitions and the time to the first
care after a coverage starts — small cells suppressed as everywhere, every other role refused.
Both backends."""
from __future__ import annotations

import base64
import csv
import io

import orjson
import pytest
from sqlalchemy import delete, insert, select, union_all

from claims.clock import HOUR_US
from claims.statistics.placement import refresh
from claims.tables import claim_ledger, coverage_start, coverage_transition, patient_place
from claims.uris import FUND
from ehr.interactions.context import Context
from ehr.interactions.delete import delete as delete_resource
from ehr.security.demo import DemoUser
from ehr.security.roles import Role
from ehr.security.tables import audit_inbox, audit_log
from ehr.store.db import write_transaction
from tests.claims import builders as b
from tests.claims.test_adjudication_scenarios import World, drain
from tests.claims.test_appeals import secure_app, signing_key  # noqa: F401  (fixtures)
from tests.conftest import BASE
from tests.security.world import USERS, seed_world

STAT = DemoUser("st", Role.STATISTICS, "Practitioner/st")
COUNTER = USERS["PA"]  # the paper-channel agent enters patients at the counter
T0 = 1_735_700_000_000_000  # 2025-01-01, µs
CASABLANCA, RABAT, FES = ({"district": "Casablanca"}, {"district": "Rabat"}, {"district": "Fès"})


async def _places(app) -> dict[str, tuple]:
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(select(patient_place.c.patient_id, patient_place.c.province, patient_place.c.region))
        return {pid: (province, region) for pid, province, region in rows}


async def _get(world, user, url, **headers):
    async with world.client(user, **headers) as c:
        return await c.get(url)


def _table(response) -> dict[str, dict]:
    """The CSV answer by its first dimension's code ('' for the whole, the only line without ``by``)."""
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    first = next(iter(rows[0]))
    return {"" if first == "personnes" else row[first]: row for row in rows}


async def test_the_placement_follows_a_patients_address_on_every_write(secure_app):  # noqa: F811
    world = await seed_world(secure_app)
    patient = {"resourceType": "Patient", "name": [{"family": "Tazi"}], "birthDate": "1990-01-01", "address": [CASABLANCA]}
    async with world.client(COUNTER) as c:
        created = await c.post("/Patient", json=patient)
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        assert (await _places(secure_app))[pid] == ("06-casablanca", "06")
        for address, place in (([FES], ("03-fes", "03")), ([{"state": "MA-04"}], (None, "04")), ([{"city": "Atlantis"}], None)):
            r = await c.put(f"/Patient/{pid}", json={**patient, "id": pid, "address": address})
            assert r.status_code == 200, r.text
            assert (await _places(secure_app)).get(pid) == place
    # a transaction Bundle (the demo loader's path) places its patients too; a deletion unplaces
    await seed_world(secure_app, [{"resourceType": "Patient", "id": "moved", "address": [{"city": "الرباط"}]}])
    assert (await _places(secure_app))["moved"] == ("04-rabat", "04")
    async with write_transaction(secure_app.state.engine) as conn:
        await delete_resource(Context(conn, BASE), "Patient", "moved")
    placed = await _places(secure_app)
    assert "moved" not in placed and "pb" in placed  # the world's Brahim lives in Rabat
    # an existing database: the refresh command rebuilds the same rows from the stored Patients
    async with write_transaction(secure_app.state.engine) as conn:
        await conn.execute(delete(patient_place))
        counts = await refresh(conn)
    assert await _places(secure_app) == placed and counts["patient_place"] == len(placed)


async def test_submission_records_the_care_kind_and_the_decision_the_ald_flag(client, app, settings):
    w = await World().build(client, ald=["ALD09"])  # diabetes
    specialist = w.sheet([b.act("CS", 150, b.days_ago(2), diagnosis=[1]), b.act("B1013", 66, b.days_ago(2))], diagnoses=["E11.9"])
    for sheet in (specialist, w.sheet([b.act("C", 80, b.days_ago(1))]), w.sheet([b.act("B1013", 66, b.days_ago(1))])):
        assert (await client.post("/Claim", json=sheet)).status_code == 201
    async with app.state.engine.connect() as conn:
        before = (await conn.execute(select(claim_ledger.c.care_kind, claim_ledger.c.ald).order_by(claim_ledger.c.id))).all()
    assert before == [("specialist", None), ("gp", None), ("lab", None)]
    await drain(app, settings)
    async with app.state.engine.connect() as conn:
        after = (await conn.execute(select(claim_ledger.c.care_kind, claim_ledger.c.ald).order_by(claim_ledger.c.id))).all()
        start = (await conn.execute(select(coverage_start.c.patient_id, coverage_start.c.starts_on, coverage_start.c.fund_code))).all()
    assert after == [("specialist", 1), ("gp", 0), ("lab", 0)]  # only the diabetes consultation is ALD care
    assert start == [(w.patient["id"], "2020-01-01", "CNSS")]


# The population of the measures: patients of Casablanca whose CNSS coverage starts on 2025-03-01
# (twelve of them seen by a GP before and by a specialist, in ALD, i days after the start; three
# never seen since), of Rabat (5, lab work) and Fès (11, a pharmacy sheet not decided yet),
# whose coverages started in 2024.  Transitions: twelve in Casablanca (four ALD, two restored), five
# in Rabat, eleven in Fès.
def _people() -> list[tuple[str, dict, str]]:
    return ([(f"cas-{i}", CASABLANCA, "2025-03-01") for i in range(15)] + [(f"rab-{i}", RABAT, "2024-06-01") for i in range(5)]
            + [(f"fes-{i}", FES, "2024-06-01") for i in range(11)])


def _sheet(n: int, pid: str, day: str, setting: str, kind: str | None, ald: int | None) -> dict:
    decided = T0 + 30 * HOUR_US if ald is not None else None
    return dict(id=n, provider_inpe="1", claim_identifier=f"s{n}", payer_rank=1, claim_id=f"c{n}", response_id=f"r{n}",
                patient_id=pid, fund_ref="Organization/cnss", fund_code="CNSS", use="claim", care_setting=setting,
                care_kind=kind, service_date=day, fingerprint="f", received_at=T0, due_at=T0 + 48 * HOUR_US,
                status="decided" if decided else "queued", decided_at=decided, ald=ald, submitted_cents=10000,
                benefit_cents=7000 if decided else None, patient_share_cents=3000 if decided else None)


@pytest.fixture
async def population(secure_app):  # noqa: F811
    resources: list[dict] = [{"resourceType": "Organization", "id": "cnss", "identifier": [{"system": FUND, "value": "CNSS"}]}]
    for pid, address, start in _people():
        resources.append({"resourceType": "Patient", "id": pid, "address": [address]})
        resources.append({"resourceType": "Coverage", "id": f"cov-{pid}", "status": "active", "beneficiary": {"reference": f"Patient/{pid}"},
                          "payor": [{"reference": "Organization/cnss"}], "period": {"start": start}})
    # a complementary cover is no opening of AMO rights
    resources.append({"resourceType": "Coverage", "id": "cov-extra", "status": "active", "order": 2,
                      "beneficiary": {"reference": "Patient/cas-0"}, "payor": [{"reference": "Organization/cnss"}],
                      "period": {"start": "2025-03-01"}})
    world = await seed_world(secure_app, resources)
    sheets = []
    for i in range(12):
        sheets.append(_sheet(len(sheets) + 1, f"cas-{i}", "2025-02-20", "ambulatory", "gp", 0))
        sheets.append(_sheet(len(sheets) + 1, f"cas-{i}", f"2025-03-{1 + i:02d}", "ambulatory", "specialist", 1))
        sheets.append(_sheet(len(sheets) + 1, f"cas-{i}", "2025-05-20", "ambulatory", "specialist", 1))
    sheets += [_sheet(len(sheets) + 1 + i, f"rab-{i}", "2025-04-01", "ambulatory", "lab", 0) for i in range(5)]
    sheets += [_sheet(len(sheets) + 1 + i, f"fes-{i}", "2025-04-01", "pharmacy", None, None) for i in range(11)]
    ends = [(f"cas-{i}", i < 4, i in (4, 5)) for i in range(12)] + [(f"rab-{i}", False, False) for i in range(5)] + [
        (f"fes-{i}", False, False) for i in range(11)]
    async with secure_app.state.engine.begin() as conn:
        await conn.execute(insert(claim_ledger), sheets)
        await conn.execute(insert(coverage_transition), [
            dict(patient_id=pid, coverage_id=f"cov-{pid}", fund_ref="Organization/cnss", regime="AMO-TADAMON", next_regime="AMO-ACHAMIL",
                 ends_on="2025-06-30", ald=int(ald), transition_until="2025-09-28" if ald else None, feed_id=1, created_at=T0,
                 closed_at=T0 if restored else None) for pid, ald, restored in ends])
    return world, sheets


async def test_a_patient_who_moves_is_counted_in_the_new_region(population):
    world, sheets = population
    url = "/MeasureReport/$aggregate?measure=care-sheets&by=region&period=2025&_format=csv"
    before = _table(await _get(world, STAT, url))
    # Rabat's 5 patients are hidden, and Fès (11), the smallest other region, with them
    assert (before["06"]["personnes"], before["04"]["personnes"], before["03"]["personnes"]) == ("12", "<10", "<10")
    await seed_world(world.app, [{"resourceType": "Patient", "id": f"cas-{i}", "address": [FES]} for i in range(3)])
    after = _table(await _get(world, STAT, url))
    assert after["03"]["personnes"] == "14" and after["03"]["care-sheets"] == str(11 + 3 * 3)
    assert after["06"]["personnes"] == "<10"  # 9 left in Casablanca; with Rabat, two hidden: none revealed


async def test_care_sheets_by_care_kind_and_by_ald(population):
    world, _ = population
    by_setting = _table(await _get(world, STAT, "/MeasureReport/$aggregate?measure=care-sheets&by=setting&period=2025&_format=csv"))
    assert by_setting["gp"]["setting_libelle"] == "Médecin généraliste"
    assert (by_setting["gp"]["care-sheets"], by_setting["specialist"]["care-sheets"]) == ("12", "24")
    # lab work: 5 people, hidden; and the pharmacy (11), the smallest other cell, with it
    assert by_setting["lab"]["personnes"] == by_setting["pharmacy"]["personnes"] == "<10"
    assert by_setting["lab"]["care-sheets"] == ""
    r = await _get(world, STAT, "/MeasureReport/$aggregate?measure=amounts&by=ald&period=2025")
    assert r.status_code == 200, r.text
    paid = {s["value"]["coding"][0]["code"]: s for s in r.json()["group"][1]["stratifier"][0]["stratum"]}
    assert paid["ald"]["measureScore"]["value"] == 24 * 70.0 and paid["ald"]["value"]["text"] == "En ALD/ALC"
    assert paid["non-ald"]["measureScore"]["value"] == (12 + 5) * 70.0
    assert "measureScore" not in paid["undecided"]  # nothing decided: no amount, 11 people shown
    assert paid["undecided"]["population"][0]["count"] == 11


async def test_coverage_transitions_by_region_and_ald(population):
    world, _ = population
    table = _table(await _get(world, STAT, "/MeasureReport/$aggregate?measure=coverage-transitions&by=region&period=2025&_format=csv"))
    assert (table[""]["transitions"], table[""]["ald-transitions"], table[""]["restored"]) == ("28", "4", "2")
    assert (table["06"]["transitions"], table["06"]["ald-transitions"], table["06"]["restored"]) == ("12", "4", "2")
    assert table["04"]["personnes"] == table["03"]["personnes"] == "<10"
    # the 4 ALD transitions are hidden, and the 24 others with them: the total would give them away
    by_ald = _table(await _get(world, STAT, "/MeasureReport/$aggregate?measure=coverage-transitions&by=ald&period=2025&_format=csv"))
    assert (by_ald["ald"]["personnes"], by_ald["non-ald"]["personnes"], by_ald[""]["personnes"]) == ("<10", "<10", "28")
    by_fund = _table(await _get(world, STAT, "/MeasureReport/$aggregate?measure=coverage-transitions&by=fund&period=2025&_format=csv"))
    assert by_fund["CNSS"]["transitions"] == "28"  # the fund of the ended coverage
    none = _table(await _get(world, STAT, "/MeasureReport/$aggregate?measure=coverage-transitions&period=2024&_format=csv"))
    assert none[""]["personnes"] == "<10" and none[""]["transitions"] == ""


async def test_time_to_first_care_after_the_coverage_starts(population):
    world, _ = population
    r = await _get(world, STAT, "/MeasureReport/$aggregate?measure=time-to-first-care&by=region&period=2025")
    assert r.status_code == 200, r.text
    groups = {g["code"]["coding"][0]["code"]: g for g in r.json()["group"]}
    # 15 coverages opened in 2025 (Casablanca; the complementary one does not count), 12 followed by
    # care after i = 0…11 days: the sheets of 20 February came before the rights and are not counted
    assert groups["coverages"]["population"][0]["count"] == 15
    assert groups["with-care"]["population"][0]["count"] == 12
    assert groups["days-median"]["measureScore"] == {"value": 5.0, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"}
    assert groups["days-p90"]["measureScore"]["value"] == 10.0
    assert [s["value"]["coding"][0]["code"] for s in groups["coverages"]["stratifier"][0]["stratum"]] == ["06"]
    r = await _get(world, STAT, "/MeasureReport/$aggregate?measure=time-to-first-care&period=2024&_format=csv")
    assert _table(r)[""]["personnes"] == "16" and _table(r)[""]["with-care"] == "16"  # a sheet not decided yet is care too


async def test_dimensions_a_measure_does_not_have_are_refused(population):
    world, _ = population
    for query in ("measure=coverage-transitions&by=setting", "measure=time-to-first-care&by=ald", "measure=care-sheets&by=reason"):
        r = await _get(world, STAT, f"/MeasureReport/$aggregate?{query}&period=2025")
        assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["by"], r.text


async def test_an_extraction_of_a_new_measure_is_audited_with_its_query(population):
    world, _ = population
    assert (await _get(world, STAT, "/MeasureReport/$aggregate?measure=time-to-first-care&by=region&period=2025")).status_code == 200
    async with world.app.state.engine.connect() as conn:
        events = [orjson.loads(e) for (e,) in (await conn.execute(union_all(select(audit_inbox.c.event), select(audit_log.c.event)))).all()]
    mine = [e for e in events if any(a.get("who", {}).get("reference") == STAT.fhir_user for a in e["agent"])]
    assert len(mine) == 1
    entities = mine[0]["entity"]
    assert not any(x.get("what", {}).get("reference", "").startswith("Patient/") for x in entities)
    query = base64.b64encode(b"measure=time-to-first-care&by=region&period=2025").decode()
    assert any(x.get("query") == query for x in entities)


@pytest.mark.parametrize("user", ["D1", "pa", "AG", "AD", "PH", "PA"])
async def test_every_other_role_is_refused_the_new_measures(population, user):
    world, _ = population
    for query in ("measure=coverage-transitions&by=region", "measure=time-to-first-care", "measure=care-sheets&by=ald"):
        r = await _get(world, USERS[user], f"/MeasureReport/$aggregate?{query}&period=2025")
        assert r.status_code == 403, r.text

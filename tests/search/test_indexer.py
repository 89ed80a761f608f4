"""Index rows: what ``extract`` produces, replacing and removing them, compartments, speed."""
import time

from sqlalchemy import func, select

from ehr.definitions import load
from ehr.search import engine as engine_module, indexer as indexer_module
from ehr.search.indexer import extract, index_resource, index_resources, unindex_resource
from ehr.search.registry import Registry, param_hash
from ehr.store.schema import INDEX_TABLES
from tests.search.helpers import SID, found, official_examples, store, world


def _rows(resource: dict, table: str, code: str) -> list[dict]:
    h = param_hash(resource["resourceType"], code)
    return [r for r in extract(resource).get(table, []) if r.get("param") == h]


def _by_id(rid: str) -> dict:
    return next(r for r in world() if r["id"] == rid)


def test_human_names_are_indexed_by_part_and_whole():
    norms = {r["norm"] for r in _rows(_by_id("p1"), "string", "name")}
    assert {"محمد", "العلوي", "mohamed", "alaoui", "mohamed alaoui", "alaoui mohamed", "محمد العلوي"} <= norms
    exact = {r["exact"] for r in _rows(_by_id("p1"), "string", "given")}
    assert exact == {"مُحَمَّد", "Mohamed"}


def test_token_rows_of_identifiers_codings_and_of_type():
    rows = _rows(_by_id("p1"), "token", "identifier")
    assert {(r["system"], r["code"]) for r in rows} == {(f"{SID}/cin", "AB123456"), (f"{SID}/cnss", "112233445")}
    of_type = _rows(_by_id("p1"), "token", "identifier:of-type")
    assert [(r["system"], r["code"]) for r in of_type] == [("http://terminology.hl7.org/CodeSystem/v2-0203", "NI|AB123456")]
    code = _rows(_by_id("o1"), "token", "code")
    assert ("http://loinc.org", "8867-4", "heart rate") in {(r["system"], r["code"], r["text"]) for r in code}
    assert (None, None, "frequence cardiaque") in {(r["system"], r["code"], r["text"]) for r in code}


def test_reference_rows_and_compartments():
    rows = _rows(_by_id("o1"), "reference", "subject")
    assert [(r["target_type"], r["target_id"], r["url"]) for r in rows] == [("Patient", "p1", None)]
    comps = {(r["comp_type"], r["comp_id"]) for r in extract(_by_id("o1"))["compartment"]}
    assert comps == {("Patient", "p1"), ("Encounter", "e1"), ("Practitioner", "dr-karim")}
    # a Patient is in its own compartment, and in those of the patients it links to
    comps = {(r["comp_type"], r["comp_id"]) for r in extract(_by_id("p4"))["compartment"]}
    assert comps == {("Patient", "p4"), ("Patient", "p2")}


def test_own_absolute_urls_become_local_references(monkeypatch):
    obs = {"resourceType": "Observation", "id": "x", "status": "final", "code": {"text": "t"},
           "subject": {"reference": "http://127.0.0.1:8000/fhir/Patient/p9"},
           "performer": [{"reference": "https://other.example/fhir/Practitioner/z"}]}
    assert [(r["target_type"], r["target_id"]) for r in _rows(obs, "reference", "subject")] == [("Patient", "p9")]
    assert [(r["target_type"], r["target_id"], r["url"]) for r in _rows(obs, "reference", "performer")] == [
        ("Practitioner", None, "https://other.example/fhir/Practitioner/z")]


def test_composite_components_share_a_group():
    rows = extract(_by_id("o2"))
    h_code = param_hash("Observation", "component-code-value-quantity$0")
    h_value = param_hash("Observation", "component-code-value-quantity$1")
    codes = {r["grp"]: r["code"] for r in rows["token"] if r["param"] == h_code}
    values = {r["grp"]: r["value"] for r in rows["quantity"] if r["param"] == h_value}
    assert {codes[g]: values[g] for g in codes} == {"8480-6": 140.0, "8462-4": 90.0}


def test_dates_numbers_quantities_uris():
    (d,) = _rows(_by_id("p4"), "date", "birthdate")
    assert (d["low"], d["high"]) == (157766400000000, 189302399999999)  # all of 1975
    probs = sorted(r["value"] for r in _rows(_by_id("ra1"), "number", "probability"))
    assert probs == [0.02, 0.35]
    (q,) = _rows(_by_id("o3"), "quantity", "value-quantity")
    assert (q["system"], q["code"], q["value"]) == ("http://unitsofmeasure.org", "g/L", 1.05)
    assert [r["uri"] for r in _rows(_by_id("vs1"), "uri", "url")] == ["https://fhir.sijill.ma/ValueSet/actes-ngap"]


def test_long_values_are_truncated_to_the_columns():
    long = "x" * 600
    rows = extract({"resourceType": "Patient", "id": "p", "name": [{"family": long}],
                    "identifier": [{"system": long, "value": long}]})
    assert all(len(r["norm"]) <= 255 and len(r["exact"]) <= 255 for r in rows["string"])
    assert all(len(r["code"]) <= 255 and len(r["system"] or "") <= 255 for r in rows["token"])


async def _count_rows(db, rid: int) -> int:
    async with db.connect() as conn:
        total = 0
        for table in INDEX_TABLES.values():
            total += (await conn.execute(select(func.count()).select_from(table).where(table.c.rid == rid))).scalar_one()
        return total


async def test_reindex_replaces_and_unindex_removes(db):
    rids = await store(db, {"resourceType": "Patient", "id": "p", "name": [{"family": "Amrani"}], "gender": "male"})
    rid = rids["Patient/p"]
    assert await found(db, "Patient", "name=amrani") == {"Patient/p"}
    before = await _count_rows(db, rid)
    async with db.begin() as conn:
        await index_resource(conn, rid, {"resourceType": "Patient", "id": "p", "name": [{"family": "Tazi"}], "gender": "male"})
    assert await found(db, "Patient", "name=amrani") == set()
    assert await found(db, "Patient", "name=tazi") == {"Patient/p"}
    assert await _count_rows(db, rid) == before
    async with db.begin() as conn:
        await unindex_resource(conn, rid)
    assert await _count_rows(db, rid) == 0


async def test_index_resources_batches_many(db):
    pats = [{"resourceType": "Patient", "id": f"b{i}", "name": [{"family": f"Batch{i}"}]} for i in range(5)]
    rids = await store(db, *pats)
    async with db.begin() as conn:
        await index_resources(conn, [(rids[f"Patient/b{i}"], {**pats[i], "gender": "female"}) for i in range(5)])
    assert len(await found(db, "Patient", "gender=female&name=batch")) == 5


async def test_a_registered_moroccan_parameter_is_indexed_and_searchable(db, monkeypatch):
    reg = Registry(load("search-parameters"), load("compartments"), load("resources"))
    p1 = _by_id("p1")
    cin = param_hash("Patient", "cin")
    assert not any(r[0] == cin for r in indexer_module._extract_rows(p1, reg)["token"])  # plan compiled without it
    reg.add({"resourceType": "SearchParameter", "code": "cin", "base": ["Patient"], "type": "token",
             "url": "https://fhir.sijill.ma/SearchParameter/Patient-cin",
             "expression": f"Patient.identifier.where(system='{SID}/cin')"})
    assert any(r[0] == cin for r in indexer_module._extract_rows(p1, reg)["token"])  # plan rebuilt
    for module in (indexer_module, engine_module):
        monkeypatch.setattr(module, "get_registry", lambda: reg)
    await store(db, *[r for r in world() if r["resourceType"] == "Patient"])
    assert await found(db, "Patient", "cin=AB123456") == {"Patient/p1"}
    assert await found(db, "Patient", "cin=112233445") == set()  # the CNSS number is not a CIN


def test_extract_is_fast_on_the_official_examples():
    examples = official_examples()
    for res in examples:  # compile the plans first
        extract(res)
    start = time.perf_counter()
    for res in examples:
        extract(res)
    per_resource = (time.perf_counter() - start) / len(examples)
    print(f"extract(): {per_resource * 1e6:.0f} µs per official example")
    assert per_resource < 0.002


async def test_statement_by_statement_path_gives_the_same_rows(db, monkeypatch):
    async def unavailable(*args):
        return False

    rids = await store(db, *world()[:8])
    before = {rid: await _count_rows(db, rid) for rid in rids.values()}
    monkeypatch.setattr(indexer_module, "_sqlite_write", unavailable)
    async with db.begin() as conn:
        await index_resources(conn, [(rids[f"{r['resourceType']}/{r['id']}"], r) for r in world()[:8]])
    assert {rid: await _count_rows(db, rid) for rid in rids.values()} == before
    assert await found(db, "Patient", "name=mohamed") == {"Patient/p1"}

"""The searchset Bundle: entries, stored bytes spliced as is, _summary and _elements."""
import orjson
import pytest

from ehr.outcome import FHIRError
from ehr.search.engine import search
from tests.search.helpers import BASE, pairs, run, store, world

SUBSETTED = "SUBSETTED"


@pytest.fixture
async def net(db):
    await store(db, *world())
    return db


def _tags(res: dict) -> list[str]:
    return [t["code"] for t in res.get("meta", {}).get("tag", [])]


async def test_searchset_shape_and_spliced_bytes(net):
    async with net.connect() as conn:
        outcome = await search(conn, "Patient", pairs("_id=p1"), base_url=BASE + "/")
    raw = outcome.bundle
    b = orjson.loads(raw)
    assert b["resourceType"] == "Bundle" and b["type"] == "searchset" and b["total"] == 1
    e = b["entry"][0]
    assert e["fullUrl"] == "http://test/fhir/Patient/p1"
    assert e["search"] == {"mode": "match"}
    stored = orjson.dumps(next(r for r in world() if r["id"] == "p1"))
    assert stored in raw  # the stored JSON, byte for byte
    assert outcome.rids and outcome.patient_ids == ["p1"]


async def test_summary_true_keeps_summary_elements(net):
    b = await run(net, "Patient", "_id=p1&_summary=true")
    res = b["entry"][0]["resource"]
    assert {"id", "meta", "name", "birthDate", "gender", "identifier"} <= set(res)
    assert "generalPractitioner" not in res and "telecom" in res
    assert SUBSETTED in _tags(res) and "amo" in _tags(res)


async def test_summary_text_data_false(net):
    res = (await run(net, "Observation", "_id=o1&_summary=text"))["entry"][0]["resource"]
    assert set(res) <= {"resourceType", "id", "meta", "text", "status", "code"}
    assert {"status", "code"} <= set(res)  # mandatory elements stay
    res = (await run(net, "Observation", "_id=o1&_summary=data"))["entry"][0]["resource"]
    assert "valueQuantity" in res and "text" not in res and SUBSETTED in _tags(res)
    res = (await run(net, "Observation", "_id=o1&_summary=false"))["entry"][0]["resource"]
    assert "meta" not in res  # untouched, no tag added


async def test_elements_and_choice_names(net):
    res = (await run(net, "Patient", "_id=p3&_elements=name,deceased[x]"))["entry"][0]["resource"]
    assert set(res) == {"resourceType", "id", "meta", "name", "deceasedDateTime"}
    assert _tags(res) == [SUBSETTED]
    res = (await run(net, "Observation", "_id=o1&_elements=subject"))["entry"][0]["resource"]
    assert {"subject", "status", "code"} <= set(res) and "valueQuantity" not in res


async def test_elements_apply_to_included_resources_too(net):
    b = await run(net, "Observation", "_id=o1&_include=Observation:subject&_elements=id")
    inc = [e["resource"] for e in b["entry"] if e["search"]["mode"] == "include"][0]
    assert set(inc) == {"resourceType", "id", "meta"}


async def test_elements_with_summary_is_refused(net):
    with pytest.raises(FHIRError):
        await run(net, "Patient", "_summary=true&_elements=name")


async def test_contained_is_not_supported(net):
    b = await run(net, "Patient", "_contained=true&_count=1")
    outcome = [e for e in b["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome and outcome[0]["resource"]["issue"][0]["expression"] == ["http._contained"]
    with pytest.raises(FHIRError):
        await run(net, "Patient", "_contained=true", handling="strict")
    assert (await run(net, "Patient", "_contained=false&_count=1", handling="strict"))["total"] == 4

"""_sort, _count, _total and keyset paging that stays stable under concurrent inserts."""
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from ehr.outcome import FHIRError
from ehr.search.engine import search
from tests.search.helpers import BASE, StatementCounter, ids, run, store, world


def _next(bundle: dict) -> str | None:
    return next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)


async def _follow(db, url: str, **kw) -> dict:
    split = urlsplit(url)
    res_type = split.path.rsplit("/", 1)[-1]
    async with db.connect() as conn:
        outcome = await search(conn, res_type, parse_qsl(split.query, keep_blank_values=True), base_url=BASE, **kw)
    return orjson.loads(outcome.bundle)


async def _all_pages(db, res_type: str, query: str) -> list[list[str]]:
    bundle = await run(db, res_type, query)
    pages = [ids(bundle)]
    while (url := _next(bundle)) is not None:
        bundle = await _follow(db, url)
        pages.append(ids(bundle))
    return pages


def _patients(n: int) -> list[dict]:
    return [
        {"resourceType": "Patient", "id": f"pt{i:03d}", "birthDate": f"{1950 + (i * 7) % 50}-0{1 + i % 9}-1{i % 10}",
         "name": [{"family": f"Famille{(i * 13) % 17:02d}", "given": [f"Prenom{i}"]}], "gender": "male" if i % 3 else "female"}
        for i in range(n)
    ]


async def test_sort_by_several_keys_both_directions(db):
    await store(db, *_patients(30))
    bundle = await run(db, "Patient", "_sort=family,-birthdate&_count=100")
    got = [e["resource"] for e in bundle["entry"]]
    keys = [(r["name"][0]["family"].lower(), r["birthDate"]) for r in got]
    expected = sorted(keys, key=lambda k: k[0])
    assert [k[0] for k in keys] == [k[0] for k in expected]
    for fam in {k[0] for k in keys}:  # within a family, birth dates descend
        dates = [k[1] for k in keys if k[0] == fam]
        assert dates == sorted(dates, reverse=True)


@pytest.mark.parametrize("sort", ["", "_sort=birthdate", "_sort=-birthdate", "_sort=family,_id", "_sort=-_lastUpdated",
                                  "_sort=gender,-family,birthdate", "_sort=_id"])
async def test_pages_cover_everything_once_in_order(db, sort):
    await store(db, *_patients(23))
    pages = await _all_pages(db, "Patient", f"{sort}&_count=5")
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    flat = [i for p in pages for i in p]
    assert len(set(flat)) == 23
    single = ids(await run(db, "Patient", f"{sort}&_count=100"))
    assert flat == single


async def test_missing_sort_values_come_last_in_both_directions(db):
    await store(db, *_patients(4), {"resourceType": "Patient", "id": "nodate"})
    for sort in ("birthdate", "-birthdate"):
        pages = await _all_pages(db, "Patient", f"_sort={sort}&_count=2")
        assert [i for p in pages for i in p][-1] == "Patient/nodate"


async def test_keyset_pages_are_stable_when_rows_are_inserted_between_pages(db):
    await store(db, *_patients(10))
    first = await run(db, "Patient", "_sort=birthdate&_count=4")
    seen = ids(first)
    # Insert patients born before, between and after what page one showed
    await store(db, {"resourceType": "Patient", "id": "early", "birthDate": "1900-01-01"},
                {"resourceType": "Patient", "id": "late", "birthDate": "2099-01-01"})
    second = await _follow(db, _next(first))
    rest = ids(second)
    while (url := _next(second)) is not None:
        second = await _follow(db, url)
        rest += ids(second)
    assert not set(seen) & set(rest)  # nothing repeated
    assert "Patient/late" in rest and "Patient/early" not in rest  # inserted before the cursor: not shown
    assert len(seen) + len(rest) == 11


async def test_count_cap_zero_and_totals(db):
    await store(db, *_patients(12))
    b = await run(db, "Patient", "_count=5")
    assert b["total"] == 12 and len(b["entry"]) == 5
    b = await run(db, "Patient", "_count=5000", max_count=7)
    assert len(b["entry"]) == 7
    b = await run(db, "Patient", "_count=0")
    assert b["total"] == 12 and "entry" not in b and _next(b) is None
    b = await run(db, "Patient", "_summary=count&gender=female")
    assert b["total"] == 4 and "entry" not in b
    b = await run(db, "Patient", "_count=5&_total=none")
    assert "total" not in b
    b = await run(db, "Patient", "_count=5&_total=estimate")
    assert b["total"] > 0
    b2 = await _follow(db, _next(await run(db, "Patient", "_count=5")))
    assert b2["total"] == 12  # carried by the cursor, not recounted


async def test_statements_per_page(db):
    await store(db, *_patients(12))
    with StatementCounter(db) as counter:
        await run(db, "Patient", "_count=5&gender=male&_sort=family")
    assert counter.count == 2  # the page and the total
    with StatementCounter(db) as counter:
        await run(db, "Patient", "_count=50&gender=male")
    assert counter.count == 1  # everything fits: the page is the total


async def test_links_echo_the_request_and_carry_an_opaque_cursor(db):
    await store(db, *_patients(3))
    b = await run(db, "Patient", "gender=male&_count=1&_sort=-birthdate")
    assert b["link"][0] == {"relation": "self", "url": "http://test/fhir/Patient?gender=male&_count=1&_sort=-birthdate"}
    nxt = dict(parse_qsl(urlsplit(_next(b)).query))
    assert nxt["gender"] == "male" and nxt["_count"] == "1" and nxt["_sort"] == "-birthdate" and nxt["_cursor"]


async def test_bad_paging_params_are_400(db):
    for query in ("_count=abc", "_count=-1", "_total=maybe", "_sort=nope", "_sort=general-practitioner", "_cursor=garbage",
                  "_summary=maybe"):
        with pytest.raises(FHIRError) as err:
            await run(db, "Patient", query)
        assert err.value.status == 400, query
        assert err.value.issues[0].expression[0].startswith("http._"), query
    # a cursor from another sort order is refused, not misread
    await store(db, *_patients(3))
    b = await run(db, "Patient", "_count=1&_sort=birthdate,family")
    cursor = dict(parse_qsl(urlsplit(_next(b)).query))["_cursor"]
    with pytest.raises(FHIRError):
        await run(db, "Patient", f"_count=1&_cursor={cursor}")


async def test_system_search_with_type(db):
    await store(db, *world())
    b = await run(db, None, "_type=Patient,Practitioner&gender=female&_count=50")
    assert set(ids(b)) == {"Patient/p2", "Patient/p4", "Practitioner/dr-fatima"}
    assert b["link"][0]["url"] == "http://test/fhir?_type=Patient,Practitioner&gender=female&_count=50"
    b = await run(db, None, "_tag=amo")
    assert ids(b) == ["Patient/p1"]
    b = await run(db, None, "_id=p1,o1,atlas&_count=50")
    assert set(ids(b)) == {"Patient/p1", "Observation/o1", "Organization/atlas"}
    with pytest.raises(FHIRError) as err:
        await run(db, None, "gender=female", handling="strict")  # not defined on every type
    assert err.value.issues[0].code == "not-supported"
    with pytest.raises(FHIRError):
        await run(db, None, "_type=Nope")

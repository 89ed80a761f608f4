"""find_matches: the strict, unpaged search behind conditional interactions."""
import pytest

from ehr.outcome import FHIRError
from ehr.search.engine import find_matches
from tests.search.helpers import SID, store, world


@pytest.fixture
async def net(db):
    rids = await store(db, *world())
    await store(db, {"resourceType": "Patient", "id": "gone", "identifier": [{"system": f"{SID}/cin", "value": "ZZ0"}]},
                deleted=True)
    return db, rids


async def test_query_string_or_pairs(net):
    db, rids = net
    async with db.connect() as conn:
        assert await find_matches(conn, "Patient", f"identifier={SID}/cin|AB123456") == [(rids["Patient/p1"], "p1")]
        assert await find_matches(conn, "Patient", [("identifier", f"{SID}/cin|BE98765")]) == [(rids["Patient/p2"], "p2")]
        # URL-encoded, as it arrives in If-None-Exist or a conditional reference
        assert await find_matches(conn, "Patient", "identifier=https%3A%2F%2Ffhir.sijill.ma%2Fsid%2Fcin%7CAB123456") == [
            (rids["Patient/p1"], "p1")]


async def test_limit_and_deleted(net):
    db, _ = net
    async with db.connect() as conn:
        assert len(await find_matches(conn, "Patient", "gender=female")) == 2
        assert len(await find_matches(conn, "Patient", "gender=female", limit=1)) == 1
        assert await find_matches(conn, "Patient", "_id=gone") == []
        assert await find_matches(conn, "Patient", "_id=p1&_count=5&_sort=_id") != []  # result params ignored


async def test_always_strict(net):
    db, _ = net
    async with db.connect() as conn:
        with pytest.raises(FHIRError) as err:
            await find_matches(conn, "Patient", "nickname=x")
        assert (err.value.status, err.value.issues[0].code) == (400, "not-supported")
        with pytest.raises(FHIRError) as err:
            await find_matches(conn, "Patient", "_count=1")
        assert err.value.status == 400  # no criteria: would match everything

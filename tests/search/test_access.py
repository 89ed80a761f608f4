"""An AccessFilter is applied to every resource row a search touches."""
import pytest
from sqlalchemy import FromClause

from ehr.search.access import AccessFilter
from ehr.search.engine import find_matches
from tests.search.helpers import found, ids, run, store, world


class Hide:
    """Hides the given resources, as a consent or care-relationship rule would."""

    def __init__(self, rids):
        self.rids = sorted(rids)

    def clause(self, res: FromClause):
        return res.c.rid.not_in(self.rids)


@pytest.fixture
async def net(db):
    rids = await store(db, *world())
    return db, rids


def hide(rids, *keys) -> Hide:
    return Hide(rids[k] for k in keys)


async def test_hidden_resources_are_neither_matched_nor_counted(net):
    db, rids = net
    access = hide(rids, "Patient/p2")
    assert isinstance(access, AccessFilter)
    b = await run(db, "Patient", "_count=2", access=access)
    assert b["total"] == 3 and "Patient/p2" not in ids(b)
    b = await run(db, "Patient", "_count=0", access=access)
    assert b["total"] == 3
    assert await found(db, "Patient", "gender=female", access=access) == {"Patient/p4"}
    async with db.connect() as conn:
        assert await find_matches(conn, "Patient", "name=elodie", access=access) == []
        assert [m[1] for m in await find_matches(conn, "Patient", "name=elodie")] == ["p2"]


async def test_hidden_resources_are_not_included_or_revincluded(net):
    db, rids = net
    access = hide(rids, "Patient/p2", "Observation/o2")
    b = await run(db, "Observation", "_include=Observation:subject&_count=50", access=access)
    assert set(ids(b, "include")) == {"Patient/p1", "Patient/p3"}
    b = await run(db, "Patient", "_id=p1&_revinclude=Observation:subject", access=access)
    assert ids(b, "include") == ["Observation/o1"]


async def test_chains_do_not_pass_through_hidden_resources(net):
    db, rids = net
    access = hide(rids, "Patient/p2")
    assert await found(db, "Observation", "subject:Patient.name=elodie", access=access) == set()
    assert await found(db, "Observation", "subject:Patient.name=elodie") == {"Observation/o3", "Observation/o4"}
    # nor a hidden intermediate link of a longer chain
    access = hide(rids, "Practitioner/dr-fatima")
    assert await found(db, "Observation", "subject:Patient.general-practitioner.name=fatima", access=access) == set()


async def test_reverse_chains_do_not_use_hidden_resources(net):
    db, rids = net
    access = hide(rids, "Observation/o3")
    assert await found(db, "Patient", "_has:Observation:patient:code=2345-7", access=access) == set()
    assert await found(db, "Patient", "_has:Observation:patient:code=2345-7") == {"Patient/p2"}
    access = hide(rids, "Patient/p1")
    assert await found(
        db, "Practitioner", "_has:Patient:general-practitioner:_has:Observation:patient:code=8867-4", access=access
    ) == set()


async def test_patient_ids_report_what_was_returned(net):
    db, rids = net
    b = await run(db, "Observation", "_include=Observation:subject&_count=50", access=hide(rids, "Observation/o5"))
    outcome = b["_outcome"]
    assert outcome.patient_ids == ["p1", "p2"]
    assert set(outcome.rids) == {rids[k] for k in ids(b) + ids(b, "include")}

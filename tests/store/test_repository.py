"""The versioned store's batch writes keep the guarantees of single writes."""
import pytest

from ehr.outcome import FHIRError
from ehr.store import repository
from ehr.store.db import write_transaction
from ehr.store.repository import NewVersion


def _patient(family):
    return {"resourceType": "Patient", "name": [{"family": family}]}


async def test_write_many_creates_and_updates_in_one_go(app):
    engine = app.state.engine
    pending: list = []
    async with write_transaction(engine) as conn:
        created = await repository.write_many(
            conn, [NewVersion("Patient", f"p{i}", _patient(f"F{i}"), "PUT", None) for i in range(3)], index_later=pending
        )
        await repository.flush_index(conn, pending)
    assert [s.version_id for s in created] == [1, 1, 1]
    async with write_transaction(engine) as conn:
        priors = await repository.current_many(conn, [("Patient", "p0"), ("Patient", "p1"), ("Patient", "nope")], for_update=True)
        assert set(priors) == {("Patient", "p0"), ("Patient", "p1")}
        updated = await repository.write_many(
            conn, [NewVersion("Patient", k[1], _patient("G"), "PUT", v) for k, v in priors.items()], index_later=pending
        )
        await repository.flush_index(conn, pending)
    assert sorted(s.version_id for s in updated) == [2, 2]
    async with engine.connect() as conn:
        now = await repository.current(conn, "Patient", "p0")
        old = await repository.version(conn, "Patient", "p0", 1)
    assert now.resource()["name"][0]["family"] == "G" and old.resource()["name"][0]["family"] == "F0"


async def test_write_many_detects_concurrent_changes(app):
    engine = app.state.engine
    pending: list = []
    async with write_transaction(engine) as conn:
        await repository.write_many(conn, [NewVersion("Patient", "c1", _patient("A"), "PUT", None)], index_later=pending)
        await repository.flush_index(conn, pending)
    async with engine.connect() as conn:
        stale = await repository.current(conn, "Patient", "c1")
    async with write_transaction(engine) as conn:
        await repository.write(conn, "Patient", "c1", _patient("B"), method="PUT", prior=stale)
    with pytest.raises(FHIRError) as err:
        async with write_transaction(engine) as conn:
            await repository.write_many(conn, [NewVersion("Patient", "c1", _patient("C"), "PUT", stale)], index_later=[])
    assert err.value.status == 412
    with pytest.raises(FHIRError) as err:
        async with write_transaction(engine) as conn:
            await repository.write_many(conn, [NewVersion("Patient", "c1", _patient("D"), "PUT", None)], index_later=[])
    assert err.value.status == 409

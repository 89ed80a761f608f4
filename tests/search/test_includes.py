"""_include / _revinclude (with :iterate, *, and target types): one query per level."""
import pytest

from ehr.outcome import FHIRError
from tests.search.helpers import StatementCounter, ids, run, store, world


@pytest.fixture
async def net(db):
    await store(db, *world())
    return db


async def test_include_and_target_type(net):
    b = await run(net, "Observation", "code=8867-4&_include=Observation:subject&_include=Observation:performer")
    assert set(ids(b)) == {"Observation/o1", "Observation/o5"}
    assert set(ids(b, "include")) == {"Patient/p1", "Patient/p3", "Practitioner/dr-karim"}
    assert b["total"] == 2  # includes are not counted
    b = await run(net, "Encounter", "_include=Encounter:participant:Practitioner")
    assert set(ids(b, "include")) == {"Practitioner/dr-karim"}
    b = await run(net, "Encounter", "_include=Encounter:participant:RelatedPerson")
    assert ids(b, "include") == []


async def test_include_wildcards(net):
    b = await run(net, "Claim", "_include=*")
    assert set(ids(b, "include")) == {"Patient/p1", "Organization/atlas", "Organization/cnss"}
    b = await run(net, "Claim", "_include=Claim:*")
    assert set(ids(b, "include")) == {"Patient/p1", "Organization/atlas", "Organization/cnss"}


async def test_revinclude(net):
    b = await run(net, "Patient", "_id=p1&_revinclude=Observation:subject&_revinclude=Claim:patient")
    assert ids(b) == ["Patient/p1"]
    assert set(ids(b, "include")) == {"Observation/o1", "Observation/o2", "Claim/c1"}
    b = await run(net, "Observation", "_id=o1&_revinclude=Provenance:target")
    assert ids(b, "include") == ["Provenance/prov1"]
    b = await run(net, "Practitioner", "_id=dr-karim&_revinclude=*")
    assert set(ids(b, "include")) == {"Patient/p1", "Encounter/e1", "Observation/o1", "MedicationRequest/rx1",
                                     "PractitionerRole/role-karim", "Provenance/prov1"}


async def test_iterate_follows_included_resources(net):
    q = "_id=o1&_include=Observation:patient&_include:iterate=Patient:general-practitioner&_include:iterate=Patient:organization"
    b = await run(net, "Observation", q)
    assert set(ids(b, "include")) == {"Patient/p1", "Practitioner/dr-karim", "Organization/atlas"}
    # without :iterate the second hop is not taken
    b = await run(net, "Observation", "_id=o1&_include=Observation:patient&_include=Patient:general-practitioner")
    assert set(ids(b, "include")) == {"Patient/p1"}
    # iterate across a reverse link then a forward one, three levels deep
    q = ("_id=dr-karim&_revinclude:iterate=Patient:general-practitioner&_revinclude:iterate=Claim:patient"
         "&_include:iterate=Claim:insurer")
    b = await run(net, "Practitioner", q)
    assert set(ids(b, "include")) == {"Patient/p1", "Claim/c1", "Organization/cnss"}


async def test_one_query_per_include_level(net):
    q = "_include=Observation:patient&_include:iterate=Patient:general-practitioner&_revinclude=Provenance:target&_count=50"
    with StatementCounter(net) as counter:
        b = await run(net, "Observation", q)
    assert set(ids(b, "include")) >= {"Patient/p1", "Patient/p2", "Patient/p3", "Practitioner/dr-karim",
                                       "Practitioner/dr-fatima", "Provenance/prov1"}
    # page (which also gives the total) + level 1 (patients and provenance together) + level 2
    # (practitioners); no level 3: no iterate include starts from a Practitioner, so no query
    assert counter.count == 3
    assert len([s for s in counter.statements if "idx_reference" in s]) == 2


async def test_included_resources_are_not_repeated(net):
    b = await run(net, "Patient", "_include=Patient:link&_count=50")
    matches, included = ids(b), ids(b, "include")
    assert "Patient/p2" in matches and "Patient/p2" not in included


async def test_bad_includes_are_400(net):
    for q in ("_include=Observation", "_include=Nope:subject", "_include=Observation:code", "_include=Observation:subject:Nope",
              "_include=Observation:patient:Group", "_include:deep=Observation:subject"):
        with pytest.raises(FHIRError) as err:
            await run(net, "Observation", q)
        assert err.value.status == 400, q
        assert err.value.issues[0].expression[0].startswith("http._include"), q

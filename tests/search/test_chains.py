"""Chained parameters (any depth) and reverse chaining with ``_has`` (nested)."""
import pytest

from ehr.outcome import FHIRError
from tests.search.helpers import SID, found, run, store, world


@pytest.fixture
async def net(db):
    await store(db, *world())
    return db


async def test_chain_through_a_typed_reference(net):
    assert await found(net, "Observation", "subject:Patient.name=elodie") == {"Observation/o3", "Observation/o4"}
    assert await found(net, "Observation", "subject:Patient.gender=male&code=8867-4") == {"Observation/o1", "Observation/o5"}
    assert await found(net, "Observation", f"patient.identifier={SID}/cin|AB123456") == {"Observation/o1", "Observation/o2"}


async def test_chain_without_type_uses_the_targets_that_have_the_param(net):
    # Observation.subject may be a Patient, Group, Device, Location...: only Patient has "birthdate"
    assert await found(net, "Observation", "subject.birthdate=lt1990") == {"Observation/o1", "Observation/o2"}


async def test_chain_to_any_depth(net):
    assert await found(net, "Patient", "general-practitioner.name=karim") == {"Patient/p1"}
    assert await found(net, "Patient", "organization.partof.name=caisse") == {"Patient/p1", "Patient/p2"}
    # Observation -> Patient -> Practitioner (general practitioner) by name
    assert await found(net, "Observation", "subject:Patient.general-practitioner:Practitioner.name=fatima") == {
        "Observation/o3", "Observation/o4"}
    assert await found(net, "Claim", "patient.general-practitioner.identifier=12345") == {"Claim/c1"}


async def test_chain_with_modifiers_and_or_values(net):
    assert await found(net, "Observation", "subject:Patient.family:exact=Benjelloun-Tazi,Aït Ben Haddou") == {
        "Observation/o3", "Observation/o4", "Observation/o5"}
    assert await found(net, "Observation", "subject:Patient.deceased=true") == {"Observation/o5"}


async def test_chain_ignores_deleted_targets(db):
    await store(db, {"resourceType": "Observation", "id": "x", "status": "final", "code": {"text": "t"},
                     "subject": {"reference": "Patient/gone"}})
    await store(db, {"resourceType": "Patient", "id": "gone"}, deleted=True)
    assert await found(db, "Observation", "subject:Patient._id=gone") == set()
    assert await found(db, "Observation", "subject=Patient/gone") == {"Observation/x"}  # the reference itself stays


async def test_bad_chains_are_400(net):
    for query in ("gender.name=x", "subject:Nope.name=x", "subject:Patient.nope=x", "general-practitioner.unknown=x",
                  "subject:Patient.name:fuzzy=x"):
        with pytest.raises(FHIRError) as err:
            await run(net, "Observation" if query.startswith("subject") else "Patient", query)
        assert err.value.status == 400, query
        assert err.value.issues[0].code in ("invalid", "value"), query


async def test_reverse_chain(net):
    assert await found(net, "Patient", "_has:Observation:patient:code=8867-4") == {"Patient/p1", "Patient/p3"}
    assert await found(net, "Patient", "_has:Observation:subject:code=http://loinc.org|2345-7") == {"Patient/p2"}
    assert await found(net, "Patient", "_has:Observation:patient:code=8867-4&gender=male&birthdate=ge2000") == {"Patient/p3"}
    assert await found(net, "Practitioner", "_has:Observation:performer:status=final") == {
        "Practitioner/dr-karim", "Practitioner/dr-fatima"}
    assert await found(net, "Patient", "_has:Claim:patient:identifier=FS-2024-0001") == {"Patient/p1"}
    assert await found(net, "Patient", "_has:Observation:patient:value-quantity=gt100") == {"Patient/p3"}


async def test_nested_reverse_chain_and_chain_inside(net):
    # practitioners with a patient who has a heart-rate observation
    assert await found(net, "Practitioner", "_has:Patient:general-practitioner:_has:Observation:patient:code=8867-4") == {
        "Practitioner/dr-karim"}
    # observations whose patient has a claim
    assert await found(net, "Observation", "subject:Patient._has:Claim:patient:status=active") == {
        "Observation/o1", "Observation/o2"}
    # patients having an observation made in an encounter served by the clinic
    assert await found(net, "Patient", "_has:Observation:patient:encounter.service-provider.name=clinique") == {"Patient/p1"}


async def test_bad_reverse_chains_are_400(net):
    for query in ("_has:Observation:patient", "_has:Nope:patient:code=x", "_has:Observation:nope:code=x",
                  "_has:Observation:patient:nope=x", "_has:Observation:code:code=x", "_has:Claim:insurer:status=active"):
        with pytest.raises(FHIRError) as err:
            await run(net, "Patient", query)
        assert err.value.status == 400, query


async def test_reverse_chain_in_a_system_search(net):
    # Observation.performer may point to a Practitioner or a Patient (and more)
    got = await found(net, None, "_type=Practitioner,Patient&_has:Observation:performer:code=8867-4")
    assert got == {"Practitioner/dr-karim"}

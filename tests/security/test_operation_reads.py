"""What ``$everything`` and includes let through of what the caller cannot see, and the trail
operations leave: nothing, and one AuditEvent per patient whose data the answer carried.

On top of the world's scenario: Amina's psychiatrist (Practitioner/psy-doc, of the clinic
Organization/psy-clinic) is named only by her PSY-labelled records, which her Consent hides from
everyone but Dr D3; and an Observation of Amina's groups a measurement of her daughter Chama.
"""
from __future__ import annotations

import pytest

from ehr.interactions.transaction import Options, transaction

from .test_access_matrix import ids
from .test_audit_trail import by, trail
from .world import PSY

PSY_DOC, PSY_CLINIC = "Practitioner/psy-doc", "Organization/psy-clinic"
LOINC = "http://loinc.org"


def _psychiatry() -> list[dict]:
    return [
        {"resourceType": "Practitioner", "id": "psy-doc", "name": [{"family": "Tazi"}]},
        {"resourceType": "Organization", "id": "psy-clinic", "name": "Clinique Al Amal"},
        {"resourceType": "Condition", "id": "cond-a-psy", "meta": {"security": [PSY]}, "subject": {"reference": "Patient/pa"},
         "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "F32"}]}, "asserter": {"reference": PSY_DOC}},
        {"resourceType": "Observation", "id": "obs-a-psy", "meta": {"security": [PSY]}, "status": "final",
         "code": {"coding": [{"system": LOINC, "code": "44249-1"}]}, "subject": {"reference": "Patient/pa"},
         "performer": [{"reference": PSY_CLINIC}]},
        # Amina's family record: her own Observation groups one of her daughter's
        {"resourceType": "Observation", "id": "obs-a-family", "status": "final", "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
         "subject": {"reference": "Patient/pa"}, "hasMember": [{"reference": "Observation/obs-c"}]},
    ]


@pytest.fixture
async def clinic(world):
    s = world.app.state.security.settings
    opts = Options(s.base_url, s.default_page_size, s.max_page_size, s.max_bundle_entries, False)
    entries = [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in _psychiatry()]
    await transaction(world.app.state.engine, {"resourceType": "Bundle", "type": "transaction", "entry": entries}, opts)
    return world


async def _get(world, user: str, url: str, **params) -> dict:
    async with world.client(user) as c:
        r = await c.get(url, params=params or None)
    assert r.status_code == 200, r.text
    return r.json()


async def test_everything_names_no_one_only_hidden_records_refer_to(clinic):
    d1 = await _get(clinic, "D1", "/Patient/pa/$everything")
    assert ids(d1) & {PSY_DOC, PSY_CLINIC, "Condition/cond-a-psy", "Observation/obs-a-psy"} == set()
    assert {"Practitioner/d1", "Observation/obs-a"} <= ids(d1)  # what D1's visible records name still comes
    assert d1["total"] == len(d1["entry"])
    only_people = await _get(clinic, "D1", "/Patient/pa/$everything", _type="Practitioner,Organization")
    assert ids(only_people) & {PSY_DOC, PSY_CLINIC} == set() and only_people["total"] == len(only_people.get("entry", []))
    # the psychiatrist's colleague the Consent lets in sees them, and so does Amina herself
    for user in ("D3", "pa"):
        assert {PSY_DOC, PSY_CLINIC, "Condition/cond-a-psy"} <= ids(await _get(clinic, user, "/Patient/pa/$everything"))


@pytest.mark.parametrize(
    ("user", "query", "hidden", "shown"),
    [
        # forward from the page's matches, and iterating from what a revinclude pulled
        ("D1", "/Condition?patient=Patient/pa&_include=Condition:asserter", {PSY_DOC}, set()),
        ("D1", "/Patient?_id=pa&_revinclude=Condition:subject&_include:iterate=Condition:asserter",
         {"Condition/cond-a-psy", PSY_DOC}, set()),
        ("D1", "/Patient?_id=pa&_revinclude=Observation:subject&_include:iterate=Observation:performer",
         {"Observation/obs-a-psy", PSY_CLINIC}, {"Observation/obs-a", "Practitioner/d1"}),
        ("D1", "/Observation?patient=Patient/pa&_include=*", {PSY_CLINIC}, {"Practitioner/d1", "Encounter/enc-a"}),
        ("D1", "/Patient?_id=pa&_revinclude=*&_include:iterate=Observation:performer&_include:iterate=Condition:asserter",
         {"Condition/cond-a-psy", "Observation/obs-a-psy", PSY_DOC, PSY_CLINIC}, {"Observation/obs-a", "Practitioner/d1"}),
        # reverse: the directory entry is public, the records naming it are not
        ("D1", "/Practitioner?_id=psy-doc&_revinclude=Condition:asserter", {"Condition/cond-a-psy"}, {PSY_DOC}),
        ("D1", "/Organization?_id=psy-clinic&_revinclude=*", {"Observation/obs-a-psy"}, {PSY_CLINIC}),
        # the daughter's record comes through her mother's (a guardian reads it), never to a stranger
        ("pb", "/Observation?_id=obs-b&_include=Observation:has-member", {"Observation/obs-c"}, {"Observation/obs-b"}),
        ("D3", "/Observation?_id=obs-a-family&_include=Observation:has-member", {"Observation/obs-c"}, {"Observation/obs-a-family"}),
        ("pa", "/Observation?_id=obs-a-family&_include=Observation:has-member", set(), {"Observation/obs-c"}),
        ("D3", "/Patient?_id=pa&_revinclude=Condition:subject&_include:iterate=Condition:asserter",
         set(), {"Condition/cond-a-psy", PSY_DOC}),
    ],
)
async def test_includes_pull_nothing_through_what_the_caller_cannot_see(clinic, user, query, hidden, shown):
    found = ids(await _get(clinic, user, query))
    assert found & hidden == set() and shown <= found


async def test_everything_is_audited_for_every_patient_whose_data_it_returns(clinic):
    body = await _get(clinic, "pa", "/Patient/pa/$everything")
    assert "Observation/obs-c" in ids(body)  # her daughter's, grouped in her own Observation
    for patient in ("pa", "pc"):
        events = [e for e in by(await trail(clinic, "pa", patient=f"Patient/{patient}"), "Patient/pa")
                  if e["subtype"][-1].get("code") == "$everything"]
        assert len(events) == 1, patient
        assert events[0]["entity"][0]["what"] == {"reference": f"Patient/{patient}"}

"""Who sees what: every role × the record's resource types × every read and search feature.

The expectations are written out once (``VISIBLE``) and every interaction is checked against
them: a read answers 200 for a visible resource, 404 — exactly as for a missing id — for an
invisible one, and 403 when the role may not read the type at all; searches, totals, includes,
revincludes, chains, ``_has``, history and ``$everything`` return exactly the visible ids.
Both databases (the ``database_url`` fixture family).
"""
from __future__ import annotations

from urllib.parse import quote

import pytest

from ehr.security.roles import role_allows

from .world import RX, USERS

UNIVERSE = [
    "Patient/pa", "Patient/pb", "Patient/pc", "RelatedPerson/rp-c",
    "Encounter/enc-a", "CareTeam/ct-a", "Encounter/enc-b-old", "Encounter/enc-b-d2",
    "Observation/obs-a", "Observation/obs-b", "Observation/obs-c", "Condition/cond-a-psy",
    "Consent/con-a", "Consent/con-b-deny", "Consent/con-b-permit",
    "MedicationRequest/mr-a", "MedicationRequest/mr-b", "Coverage/cov-a", "Coverage/cov-b",
    "Claim/claim-a", "Claim/claim-b", "ClaimResponse/cr-a", "DocumentReference/doc-a", "Binary/bin-a",
]
PA_RECORD = {
    "Patient/pa", "Encounter/enc-a", "CareTeam/ct-a", "Observation/obs-a", "Condition/cond-a-psy", "Consent/con-a",
    "MedicationRequest/mr-a", "Coverage/cov-a", "Claim/claim-a", "ClaimResponse/cr-a", "DocumentReference/doc-a", "Binary/bin-a",
}
PB_RECORD = {
    "Patient/pb", "Encounter/enc-b-old", "Encounter/enc-b-d2", "Observation/obs-b", "Consent/con-b-deny", "Consent/con-b-permit",
    "MedicationRequest/mr-b", "Coverage/cov-b", "Claim/claim-b",
}
PC_RECORD = {"Patient/pc", "RelatedPerson/rp-c", "Observation/obs-c"}

VISIBLE = {
    # her own record (the PSY label hides nothing from her) and her daughter's
    "pa": PA_RECORD | PC_RECORD,
    "pb": PB_RECORD,
    # care relationship with pa; pb only through his own old Encounter and his prescription (own
    # Practitioner compartment); the PSY Condition is hidden by pa's Consent
    "D1": (PA_RECORD - {"Condition/cond-a-psy"}) | {"Encounter/enc-b-old", "MedicationRequest/mr-b"},
    # a current Encounter with pb, but pb's Consent denies him: nothing at all
    "D2": set(),
    # CareTeam member for pa (and exempt from the PSY hiding), permitted by pb's Consent
    "D3": PA_RECORD | PB_RECORD,
    "D4": set(),
    # the pharmacy wrote claim-a, so it sees the claim and its response; prescriptions only once presented
    "PH": {"Claim/claim-a", "ClaimResponse/cr-a"},
    # CNSS: its claim, response, coverage, the attachment and its Binary, its beneficiary
    "AG": {"Claim/claim-a", "ClaimResponse/cr-a", "Coverage/cov-a", "DocumentReference/doc-a", "Binary/bin-a", "Patient/pa"},
    "AGO": {"Claim/claim-b", "Coverage/cov-b", "Patient/pb"},
    "PA": set(),
    "AD": set(),
}
ROLES = sorted(VISIBLE)
# Types each role may not read at all (403 rather than 404).
UNREADABLE = {
    "PH": {"RelatedPerson", "Encounter", "CareTeam", "Observation", "Condition", "Consent", "DocumentReference", "Binary"},
    "AG": {"RelatedPerson", "Encounter", "CareTeam", "Observation", "Condition", "Consent", "MedicationRequest"},
    "AGO": {"RelatedPerson", "Encounter", "CareTeam", "Observation", "Condition", "Consent", "MedicationRequest"},
    "AD": {t.split("/")[0] for t in UNIVERSE},
    "PA": {"ClaimResponse"},
}
SEARCHED_TYPES = sorted({r.split("/")[0] for r in UNIVERSE})


def expected_status(user: str, ref: str) -> int:
    if ref.split("/")[0] in UNREADABLE.get(user, ()):
        return 403
    return 200 if ref in VISIBLE[user] else 404


def ids(bundle: dict, mode: str | None = None) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if "resource" in e and e["resource"]["resourceType"] != "OperationOutcome"
        and (mode is None or e.get("search", {}).get("mode") == mode)
    }


def searchable(user: str, res_type: str) -> bool:
    # e.g. pharmacists read a patient but never search for one; insurers read Binaries by id
    return role_allows(USERS[user].role, res_type, "s")


@pytest.mark.parametrize("user", ROLES)
async def test_read_and_vread(world, user):
    wrong = []
    async with world.client(user) as c:
        for ref in UNIVERSE:
            want = expected_status(user, ref)
            r = await c.get(f"/{ref}")
            if r.status_code != want:
                wrong.append(("read", ref, r.status_code, want))
            v = await c.get(f"/{ref}/_history/1")
            if v.status_code != want:
                wrong.append(("vread", ref, v.status_code, want))
            if want == 404:  # exactly as for an id that does not exist
                missing = await c.get(f"/{ref.split('/')[0]}/no-such-id")
                assert r.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"] == "not-found"
    assert wrong == []


@pytest.mark.parametrize("user", ROLES)
async def test_search_and_total(world, user):
    wrong = []
    async with world.client(user) as c:
        for res_type in SEARCHED_TYPES:
            r = await c.get(f"/{res_type}", params={"_count": 1, "_total": "accurate"})
            if not searchable(user, res_type):
                if r.status_code != 403:
                    wrong.append((res_type, r.status_code))
                continue
            want = {ref for ref in VISIBLE[user] if ref.startswith(res_type + "/")}
            body = r.json()
            if r.status_code != 200 or body["total"] != len(want):
                wrong.append((res_type, r.status_code, body.get("total"), len(want)))
                continue
            found, url = ids(body), next((lnk["url"] for lnk in body.get("link", []) if lnk["relation"] == "next"), None)
            while url:  # page through: one match per page
                page = (await c.get(url)).json()
                found |= ids(page)
                url = next((lnk["url"] for lnk in page.get("link", []) if lnk["relation"] == "next"), None)
            if found != want:
                wrong.append((res_type, sorted(found), sorted(want)))
    assert wrong == []


async def _search(world, user, url):
    async with world.client(user) as c:
        r = await c.get(url)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize(
    ("user", "matches", "included"),
    [
        ("D1", {"Observation/obs-a"}, {"Patient/pa"}),
        ("D3", {"Observation/obs-a", "Observation/obs-b"}, {"Patient/pa", "Patient/pb"}),
        ("pa", {"Observation/obs-a", "Observation/obs-c"}, {"Patient/pa", "Patient/pc"}),
        ("D4", set(), set()),
    ],
)
async def test_include_pulls_only_visible_targets(world, user, matches, included):
    body = await _search(world, user, "/Observation?_include=Observation:subject")
    assert ids(body, "match") == matches and ids(body, "include") == included and body["total"] == len(matches)


async def test_include_never_pulls_an_invisible_target(world):
    # D1 sees his 2020 Encounter with pb, but not pb himself
    body = await _search(world, "D1", "/Encounter?_include=Encounter:subject")
    assert ids(body, "match") == {"Encounter/enc-a", "Encounter/enc-b-old"}
    assert ids(body, "include") == {"Patient/pa"}


@pytest.mark.parametrize(
    ("user", "patients", "revincluded"),
    [
        ("D1", {"Patient/pa"}, {"Observation/obs-a"}),
        ("D3", {"Patient/pa", "Patient/pb"}, {"Observation/obs-a", "Observation/obs-b"}),
        ("pa", {"Patient/pa", "Patient/pc"}, {"Observation/obs-a", "Observation/obs-c"}),
        ("AG", {"Patient/pa"}, set()),  # insurers may not read Observations at all
    ],
)
async def test_revinclude_pulls_only_visible_sources(world, user, patients, revincluded):
    body = await _search(world, user, "/Patient?_revinclude=Observation:subject")
    assert ids(body, "match") == patients and ids(body, "include") == revincluded and body["total"] == len(patients)


async def test_revinclude_of_hidden_label_is_withheld(world):
    d1 = await _search(world, "D1", "/Patient?_id=pa&_revinclude=Condition:subject")
    d3 = await _search(world, "D3", "/Patient?_id=pa&_revinclude=Condition:subject")
    assert ids(d1, "include") == set() and ids(d3, "include") == {"Condition/cond-a-psy"}


@pytest.mark.parametrize(
    ("user", "query", "expected"),
    [
        ("D1", "/Observation?subject.family=Bennani", set()),
        ("D3", "/Observation?subject.family=Bennani", {"Observation/obs-b"}),
        ("D1", "/Observation?subject:Patient.family=Alaoui", {"Observation/obs-a"}),
        ("pa", "/Observation?subject:Patient.family=Alaoui", {"Observation/obs-a", "Observation/obs-c"}),
        # enc-b-old is D1's own, but the chain may not go through pb, whom D1 cannot see
        ("D1", "/Encounter?subject.family=Bennani", set()),
        ("D1", "/Encounter?subject.family=Alaoui", {"Encounter/enc-a"}),
    ],
)
async def test_chains_go_only_through_visible_resources(world, user, query, expected):
    body = await _search(world, user, query)
    assert ids(body) == expected and body["total"] == len(expected)


@pytest.mark.parametrize(
    ("user", "query", "expected"),
    [
        ("D1", "/Patient?_has:Observation:subject:code=8867-4", {"Patient/pa"}),
        ("D3", "/Patient?_has:Observation:subject:code=8867-4", {"Patient/pa", "Patient/pb"}),
        ("pa", "/Patient?_has:Observation:subject:code=8867-4", {"Patient/pa", "Patient/pc"}),
        # the hidden psychiatric Condition cannot be inferred through _has
        ("D1", "/Patient?_has:Condition:subject:code=F32", set()),
        ("D3", "/Patient?_has:Condition:subject:code=F32", {"Patient/pa"}),
        ("AG", "/Patient?_has:Coverage:beneficiary:status=active", {"Patient/pa"}),
    ],
)
async def test_has_goes_only_through_visible_resources(world, user, query, expected):
    body = await _search(world, user, query)
    assert ids(body) == expected and body["total"] == len(expected)


async def test_system_search_and_type_list(world):
    body = await _search(world, "D1", "/?_type=Observation,Condition,Patient")
    assert ids(body) == {"Observation/obs-a", "Patient/pa"}
    async with world.client("AG") as c:
        assert (await c.get("/", params={"_type": "Claim,Observation"})).status_code == 403


@pytest.mark.parametrize("user", ["pa", "D1", "D3", "AG"])
async def test_history_shows_only_visible_versions(world, user):
    async with world.client(user) as c:
        system = (await c.get("/_history", params={"_count": 500})).json()
        got = {e["fullUrl"].split("/fhir/")[1] for e in system.get("entry", [])}
        assert got & set(UNIVERSE) == VISIBLE[user]
        for ref in ("Patient/pa", "Patient/pb", "Observation/obs-b"):
            r = await c.get(f"/{ref}/_history")
            want = expected_status(user, ref)
            assert r.status_code == want, (ref, r.text)
            if want == 200:
                assert r.json()["total"] == 1
        if searchable(user, "Observation"):
            typed = (await c.get("/Observation/_history")).json()
            assert {e["fullUrl"].split("/fhir/")[1] for e in typed.get("entry", [])} == {
                ref for ref in VISIBLE[user] if ref.startswith("Observation/")
            }


@pytest.mark.parametrize(
    ("user", "patient", "status", "expected"),
    [
        # (a Binary is no compartment member: $everything never returns it)
        ("D1", "pa", 200, PA_RECORD - {"Condition/cond-a-psy", "Binary/bin-a"}),
        ("D3", "pa", 200, PA_RECORD - {"Binary/bin-a"}),
        ("pa", "pc", 200, PC_RECORD),
        ("D1", "pb", 404, None),
        ("D4", "pa", 404, None),
        ("AD", "pa", 403, None),
    ],
)
async def test_everything_is_limited_to_what_the_caller_sees(world, user, patient, status, expected):
    async with world.client(user) as c:
        r = await c.get(f"/Patient/{patient}/$everything")
    assert r.status_code == status, r.text
    if expected is not None:
        assert ids(r.json()) & set(UNIVERSE) == expected


# --- writes ----------------------------------------------------------------------------------


def observation(patient: str, **extra) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": f"Patient/{patient}"}, **extra}


@pytest.mark.parametrize(
    ("user", "body", "status"),
    [
        ("D1", observation("pa"), 201),
        ("D4", observation("pa"), 403),  # no care relationship: writes mirror reads (issue 10)
        ("pa", observation("pa"), 403),  # patients read their clinical record, they do not write it
        ("PH", observation("pa"), 403),
        ("AG", observation("pa"), 403),
        ("AD", observation("pa"), 403),
        ("PA", observation("pb"), 201),
        ("AD", {"resourceType": "Organization", "name": "Clinique Anfa"}, 201),
        ("D1", {"resourceType": "Organization", "name": "Clinique Anfa"}, 403),
        ("D1", {"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2025-01-01T00:00:00Z",
                "agent": [{"requestor": True}], "source": {"observer": {"display": "x"}}}, 403),
    ],
)
async def test_create(world, user, body, status):
    async with world.client(user) as c:
        r = await c.post(f"/{body['resourceType']}", json=body)
        assert r.status_code == status, r.text
        if status == 201:  # what one entered, one can read back
            assert (await c.get(r.headers["Location"].split("/fhir")[1].rsplit("/_history", 1)[0])).status_code == 200


async def test_entering_gives_no_access_to_the_rest_of_the_record(world):
    async with world.client("PA") as c:  # the counter agent enters for anyone, and sees only that
        created = await c.post("/Observation", json=observation("pa"))
        assert created.status_code == 201
        assert (await c.get("/Patient/pa")).status_code == 404
        assert (await c.get("/Observation/obs-a")).status_code == 404
        assert ids((await c.get("/Observation")).json()) == {f"Observation/{created.json()['id']}"}


@pytest.mark.parametrize(
    ("user", "ref", "status"),
    [
        ("D1", "Observation/obs-a", 200),
        ("D1", "Observation/obs-b", 405),  # invisible: refused exactly as a PUT on a missing id (issue 10)
        ("D4", "Observation/obs-a", 405),
        ("pa", "Observation/obs-a", 403),  # the type is not writable by the role: says nothing of the row
        ("AG", "Claim/claim-a", 403),
        ("AG", "ClaimResponse/cr-a", 200),
        ("AGO", "ClaimResponse/cr-a", 405),
        ("PH", "MedicationRequest/mr-a", 405),  # not presented yet
    ],
)
async def test_update(world, user, ref, status):
    async with world.client(None) as anonymous, world.client(user) as c:
        assert (await anonymous.get(f"/{ref}")).status_code == 401
        current = await _read_in_process(world, ref)
        r = await c.put(f"/{ref}", json={k: v for k, v in current.items() if k != "meta"})  # the server keeps meta
        assert r.status_code == status, r.text
        after = await _read_in_process(world, ref)
        assert after["meta"]["versionId"] == ("2" if status == 200 else "1")


async def test_patch_of_invisible_is_404(world):
    async with world.client("D1") as c:
        r = await c.patch("/Observation/obs-b", content=b'[{"op":"replace","path":"/status","value":"amended"}]',
                          headers={"Content-Type": "application/json-patch+json"})
        assert r.status_code == 404
        r = await c.patch("/Observation/obs-a", content=b'[{"op":"replace","path":"/status","value":"amended"}]',
                          headers={"Content-Type": "application/json-patch+json"})
        assert r.status_code == 200


@pytest.mark.parametrize(
    ("user", "ref", "status", "deleted"),
    [
        ("D1", "Observation/obs-a", 403, False),  # doctors correct records, they never erase them
        ("PA", "Observation/obs-b", 403, False),  # counter agents neither
        ("pa", "Consent/con-a", 403, False),  # patients update their Consents (status), never delete them
        ("AD", "Organization/cnops", 204, True),  # admins manage the directories
        ("AD", "Organization/no-such-org", 204, False),
    ],
)
async def test_delete(world, user, ref, status, deleted):
    before = await _read_in_process(world, ref)
    async with world.client(user) as c:
        assert (await c.delete(f"/{ref}")).status_code == status
    assert (before is not None and await _read_in_process(world, ref) is None) == deleted


async def test_conditional_interactions_only_match_visible_resources(world):
    async with world.client("D1") as c:
        # obs-b matches the criteria but is invisible: the conditional create creates
        r = await c.post("/Observation", json=observation("pa"), headers={"If-None-Exist": "_id=obs-b"})
        assert r.status_code == 201 and r.json()["id"] != "obs-b"
        # conditional update on an invisible match does not touch it
        r = await c.put("/Observation?_id=obs-b", json=observation("pa"))
        assert r.status_code == 201 and r.json()["id"] != "obs-b"
        # conditional delete of an invisible match is a no-op
        assert (await c.delete("/Encounter?_id=enc-b-d2")).status_code == 403  # doctors never delete
    assert (await _read_in_process(world, "Observation/obs-b"))["meta"]["versionId"] == "1"


async def test_batch_entries_each_see_only_what_the_caller_sees(world):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/pa"}},
        {"request": {"method": "GET", "url": "Patient/pb"}},
        {"request": {"method": "PUT", "url": "Observation/obs-b"}, "resource": {**observation("pb"), "id": "obs-b"}},
        {"request": {"method": "POST", "url": "Observation"}, "resource": observation("pa")},
        {"request": {"method": "GET", "url": "Observation?subject=Patient/pb"}},
        {"request": {"method": "GET", "url": "Observation/obs-b/_history"}},
        {"request": {"method": "DELETE", "url": "Observation/obs-a"}},
    ]}
    async with world.client("D1") as c:
        r = await c.post("/", json=bundle)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert [e["response"]["status"].split()[0] for e in entries] == ["200", "404", "405", "201", "200", "404", "403"]
    assert entries[4]["resource"]["total"] == 0
    assert "resource" not in entries[1] and "telecom" not in str(entries[1])


async def test_transaction_fails_whole_on_an_invisible_entry(world):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0f0e8c5e-8f50-4b8e-9d55-000000000001", "request": {"method": "POST", "url": "Observation"},
         "resource": observation("pa", valueString="ok")},
        {"request": {"method": "PUT", "url": "Observation/obs-b"}, "resource": {**observation("pb"), "id": "obs-b"}},
    ]}
    async with world.client("D1") as c:
        r = await c.post("/", json=bundle)
        assert r.status_code == 405 and r.json()["issue"][0]["expression"] == ["Bundle.entry[1]"]
        assert (await c.get("/Observation", params={"value-string": "ok"})).json()["total"] == 0


async def test_transaction_reads_are_filtered(world):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": "Observation?_count=50"}},
        {"request": {"method": "GET", "url": "Patient/pa"}},
    ]}
    async with world.client("D3") as c:
        r = await c.post("/", json=bundle)
    assert r.status_code == 200
    assert ids(r.json()["entry"][0]["resource"]) == {"Observation/obs-a", "Observation/obs-b"}
    bundle["entry"][1]["request"]["url"] = "Patient/pc"
    async with world.client("D3") as c:
        r = await c.post("/", json=bundle)
    assert r.status_code == 404


async def test_patient_writes_only_into_their_own_records(world):
    def consent(patient: str) -> dict:
        return {"resourceType": "Consent", "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                "patient": {"reference": f"Patient/{patient}"},
                "provision": {"type": "permit", "actor": [{"role": {"text": "x"}, "reference": {"reference": "Practitioner/d4"}}]}}

    async with world.client("pa") as c:
        assert (await c.post("/Consent", json=consent("pa"))).status_code == 201
        assert (await c.post("/Consent", json=consent("pc"))).status_code == 201  # her daughter's
        r = await c.post("/Consent", json=consent("pb"))
        assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"
        tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "POST", "url": "Consent"}, "resource": consent("pa")},
            {"request": {"method": "POST", "url": "Consent"}, "resource": consent("pb")},
        ]}
        r = await c.post("/", json=tx)
        assert r.status_code == 403 and r.json()["issue"][0]["expression"] == ["Bundle.entry[1]"]


async def test_scopes_narrow_the_role(world):
    async with world.client("D1", scopes="openid fhirUser user/Observation.rs") as c:
        assert (await c.get("/Observation/obs-a")).status_code == 200
        assert (await c.get("/Patient/pa")).status_code == 403
        assert (await c.post("/Observation", json=observation("pa"))).status_code == 403
        # included targets of a type the scopes do not grant are not pulled
        body = (await c.get("/Observation?_include=Observation:subject")).json()
        assert ids(body, "include") == set()
    async with world.client("pa", scopes="openid patient/Observation.r") as c:
        assert (await c.get("/Observation/obs-a")).status_code == 200
        assert (await c.get("/Observation")).status_code == 403  # r without s
    async with world.client("D1", scopes="openid patient/*.rs") as c:  # patient/ scopes without a launch patient
        assert (await c.get("/Observation")).json()["total"] == 0


async def test_tokens_are_required_everywhere_but_discovery(world):
    async with world.client(None) as c:
        assert (await c.get("/metadata")).status_code == 200
        assert (await c.get("/.well-known/smart-configuration")).status_code == 200
        for method, url in [("GET", "/Patient/pa"), ("GET", "/Observation"), ("POST", "/"), ("GET", "/Patient/pa/$everything"),
                            ("GET", "/AuditEvent"), ("GET", "/_history"), ("DELETE", "/Observation/obs-a")]:
            r = await c.request(method, url)
            assert r.status_code == 401, (method, url)
            assert r.headers["WWW-Authenticate"].startswith('Bearer realm="sijill"')


async def test_system_gateway_token_is_scoped_to_its_fund(world):
    client = world.issuer.directory.clients["cnss-gateway"]
    token = world.issuer.issue_client_token(client).access_token
    async with world.client(None, Authorization=f"Bearer {token}") as c:
        body = (await c.get("/Claim")).json()
        assert ids(body) == {"Claim/claim-a"} and body["total"] == 1
        assert (await c.get("/Claim/claim-b")).status_code == 404
        assert (await c.get("/Observation/obs-a")).status_code == 403


async def _read_in_process(world, ref: str) -> dict | None:
    from ehr.store import repository
    from ehr.store.db import read_connection

    res_type, res_id = ref.split("/")
    async with read_connection(world.app.state.engine) as conn:
        stored = await repository.current(conn, res_type, res_id)
    return stored.resource() if stored is not None and not stored.deleted else None


def test_prescription_system_is_the_stable_uri():
    assert RX == "https://fhir.sijill.ma/sid/prescription" and quote(RX, safe=":/") == RX and USERS["PH"].role.value == "pharmacist"

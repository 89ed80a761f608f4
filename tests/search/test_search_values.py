"""Each search parameter type, its modifiers and prefixes, on SQLite and PostgreSQL."""
import pytest

from ehr.outcome import FHIRError
from tests.search.helpers import SID, found, run, store, world


@pytest.fixture
async def net(db):
    await store(db, *world())
    return db


# -- string ---------------------------------------------------------------------------------
async def test_string_defaults_to_accent_and_case_insensitive_prefix(net):
    assert await found(net, "Patient", "name=elodie") == {"Patient/p2"}
    assert await found(net, "Patient", "family=BENJELLOUN") == {"Patient/p2"}
    assert await found(net, "Patient", "family=benjelloun tazi") == {"Patient/p2"}
    assert await found(net, "Patient", "name=mhamed") == {"Patient/p3"}
    assert await found(net, "Patient", "name=ait ben") == {"Patient/p3"}
    assert await found(net, "Patient", "name=zzz") == set()


async def test_arabic_names_match_as_typed(net):
    assert await found(net, "Patient", "given=محمد") == {"Patient/p1"}  # stored with harakat
    assert await found(net, "Patient", "name=امنه") == {"Patient/p4"}  # آمنة: madda + teh marbuta
    assert await found(net, "Patient", "family=ابراهيم") == {"Patient/p4"}  # إبراهيم
    assert await found(net, "Patient", "name=آمنة بنت") == {"Patient/p4"}  # the whole text
    assert await found(net, "Patient", "name=محمد العلوي") == {"Patient/p1"}  # given + family
    assert await found(net, "Patient", "name=العلوي محمد") == {"Patient/p1"}  # family + given


async def test_string_whole_name_and_address_parts(net):
    assert await found(net, "Patient", "name=mohamed alaoui") == {"Patient/p1"}
    assert await found(net, "Patient", "name=alaoui moh") == {"Patient/p1"}
    assert await found(net, "Patient", "address=casablanca") == {"Patient/p1"}
    assert await found(net, "Patient", "address=5 rue ibn") == {"Patient/p1"}
    assert await found(net, "Patient", "address-city=rabat") == {"Patient/p2"}
    assert await found(net, "Organization", "address-postalcode=20000") == {"Organization/atlas"}


async def test_string_exact_and_contains(net):
    assert await found(net, "Patient", "family:exact=Benjelloun-Tazi") == {"Patient/p2"}
    assert await found(net, "Patient", "family:exact=benjelloun-tazi") == set()
    assert await found(net, "Patient", "family:exact=Benjelloun") == set()
    assert await found(net, "Patient", "family:contains=jelloun") == {"Patient/p2"}
    assert await found(net, "Practitioner", "name:contains=idriss") == {"Practitioner/dr-fatima"}
    assert await found(net, "Patient", "family:contains=100%") == set()  # LIKE wildcards escaped


async def test_or_and_and(net):
    assert await found(net, "Patient", "family=alaoui,benjelloun") == {"Patient/p1", "Patient/p2"}
    assert await found(net, "Patient", "name=mohamed&name=alaoui") == {"Patient/p1"}
    assert await found(net, "Patient", "name=mohamed&name=elodie") == set()


async def test_escaped_comma_is_part_of_the_value(db):
    await store(db, {"resourceType": "Organization", "id": "o", "name": "Soins, Santé et Cie"},
                {"resourceType": "Organization", "id": "s", "name": "Santé"})
    assert await found(db, "Organization", r"name:exact=Soins\, Santé et Cie") == {"Organization/o"}
    assert await found(db, "Organization", "name=soins,sante") == {"Organization/o", "Organization/s"}


# -- token ----------------------------------------------------------------------------------
async def test_token_forms(net):
    assert await found(net, "Patient", f"identifier={SID}/cin|AB123456") == {"Patient/p1"}
    assert await found(net, "Patient", "identifier=AB123456") == {"Patient/p1"}
    assert await found(net, "Patient", f"identifier={SID}/cnops|") == {"Patient/p2"}
    assert await found(net, "Patient", f"identifier={SID}/cin|") == {"Patient/p1", "Patient/p2"}
    assert await found(net, "Patient", f"identifier={SID}/cnss|AB123456") == set()
    assert await found(net, "Observation", "code=8867-4") == {"Observation/o1", "Observation/o5"}
    assert await found(net, "Observation", "code=http://loinc.org|2345-7") == {"Observation/o3"}
    assert await found(net, "Claim", "priority=|normal") == {"Claim/c1"}
    assert await found(net, "Claim", "priority=http://x|normal") == set()
    assert await found(net, "Patient", "gender=female") == {"Patient/p2", "Patient/p4"}
    assert await found(net, "Patient", "active=true") == {"Patient/p1"}
    assert await found(net, "Patient", "deceased=true") == {"Patient/p3"}
    assert await found(net, "Patient", "phone=+212600000001") == {"Patient/p1"}
    assert await found(net, "Patient", "email=m.alaoui@example.ma") == {"Patient/p1"}


async def test_token_not_text_of_type(net):
    assert await found(net, "Patient", "gender:not=male") == {"Patient/p2", "Patient/p4"}
    assert await found(net, "Observation", "status:not=final,preliminary") == set()
    assert await found(net, "Observation", "code:text=frequence") == {"Observation/o1"}
    assert await found(net, "Observation", "code:text=heart") == {"Observation/o1"}
    assert await found(net, "Patient", "identifier:text=carte") == {"Patient/p1"}
    of_type = "http://terminology.hl7.org/CodeSystem/v2-0203|NI|AB123456"
    assert await found(net, "Patient", f"identifier:of-type={of_type}") == {"Patient/p1"}
    assert await found(net, "Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|NI|BE98765") == set()
    with pytest.raises(FHIRError) as err:
        await run(net, "Patient", "identifier:of-type=NI|AB123456")
    assert err.value.issues[0].code == "value"


@pytest.fixture
def no_terminology():
    from ehr.search.terminology import get_terminology, set_terminology

    saved = get_terminology()
    set_terminology(None)
    yield
    set_terminology(saved)


async def test_token_in_without_terminology_is_refused(net, no_terminology):
    with pytest.raises(FHIRError) as err:
        await run(net, "Observation", "code:in=https://fhir.sijill.ma/ValueSet/x")
    assert (err.value.status, err.value.issues[0].code) == (400, "not-supported")


async def test_token_in_and_below_through_the_terminology_hook(net, no_terminology):
    from ehr.search.terminology import set_terminology

    class Terms:
        async def expand(self, conn, valueset):
            assert valueset == "https://fhir.sijill.ma/ValueSet/vitals"
            return [("http://loinc.org", "8867-4"), ("http://loinc.org", "85354-9")]

        async def related(self, conn, system, code, direction):
            return [(system, code), (system, "2345-7")] if direction == "below" else [(system, code)]

    set_terminology(Terms())
    assert await found(net, "Observation", "code:in=https://fhir.sijill.ma/ValueSet/vitals") == {
        "Observation/o1", "Observation/o2", "Observation/o5"}
    assert await found(net, "Observation", "code:not-in=https://fhir.sijill.ma/ValueSet/vitals") == {
        "Observation/o3", "Observation/o4"}
    assert await found(net, "Observation", "code:below=http://loinc.org|94500-6") == {"Observation/o3", "Observation/o4"}


# -- missing --------------------------------------------------------------------------------
async def test_missing_on_every_type(net):
    assert await found(net, "Patient", "deceased:missing=false") == {"Patient/p1", "Patient/p2", "Patient/p3", "Patient/p4"}
    assert await found(net, "Patient", "death-date:missing=false") == {"Patient/p3"}
    assert await found(net, "Patient", "general-practitioner:missing=true") == {"Patient/p3", "Patient/p4"}
    assert await found(net, "Patient", "address:missing=true") == {"Patient/p3", "Patient/p4"}
    assert await found(net, "Patient", "identifier:missing=true") == {"Patient/p4"}
    assert await found(net, "Observation", "value-quantity:missing=true") == {"Observation/o2", "Observation/o4"}
    assert await found(net, "Observation", "code-value-quantity:missing=false") == {
        "Observation/o1", "Observation/o3", "Observation/o5"}  # o2 has components, o4 a string
    assert await found(net, "ValueSet", "url:missing=false") == {"ValueSet/vs1"}
    assert await found(net, "RiskAssessment", "probability:missing=false") == {"RiskAssessment/ra1"}
    assert await found(net, "Patient", "_id:missing=true") == set()


# -- date -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query, expected",
    [
        ("birthdate=1980", {"p1"}),
        ("birthdate=1980-05", {"p1"}),
        ("birthdate=1980-05-12", {"p1"}),
        ("birthdate=1980-05-13", set()),
        ("birthdate=ne1980-05-12", {"p2", "p3", "p4"}),
        ("birthdate=lt1980", {"p4"}),
        ("birthdate=le1980", {"p1", "p4"}),
        ("birthdate=gt1992-11-03", {"p3"}),
        ("birthdate=ge1992-11-03", {"p2", "p3"}),
        ("birthdate=sa1990", {"p2", "p3"}),
        ("birthdate=eb1980-06", {"p1", "p4"}),
        ("birthdate=ge1975-06-01&birthdate=le1995", {"p1", "p2", "p4"}),  # "1975" runs past June
        ("birthdate=1975-07-01", set()),  # p4 is "1975": the whole year is not within one day
        ("birthdate=le1975-07-01", {"p4"}),  # ...but it starts before it
        ("birthdate=ap2000-06", {"p3"}),  # within 10% of the time from now
        ("birthdate=1980,2001", {"p1", "p3"}),
    ],
)
async def test_date_prefixes_and_precision(net, query, expected):
    assert await found(net, "Patient", query) == {f"Patient/{i}" for i in expected}


async def test_dates_are_timezone_aware_ranges(net):
    # o1 is 2024-03-01T10:00+01:00 = 09:00Z
    assert await found(net, "Observation", "date=2024-03-01T09:00:00Z") == {"Observation/o1"}
    assert await found(net, "Observation", "date=2024-03-01T10:00:00+01:00") == {"Observation/o1"}
    assert await found(net, "Observation", "date=2024-03-01T10:00:00Z") == set()
    # o3's period straddles new year: within neither year, but overlaps both
    assert "Observation/o3" not in await found(net, "Observation", "date=2024")
    assert "Observation/o3" in await found(net, "Observation", "date=ge2023-12-31T23:30:00Z")
    assert "Observation/o3" not in await found(net, "Observation", "date=ge2024-01-01")  # ends on it
    assert "Observation/o3" in await found(net, "Observation", "date=lt2024-01-01")
    assert await found(net, "Observation", "date=2024-03-01") == {"Observation/o1", "Observation/o2"}
    assert await found(net, "Encounter", "date=2024-03-01T08:45:00Z") == set()  # a point is not the period
    assert await found(net, "Encounter", "date=ge2024-03-01T08:45:00Z") == {"Encounter/e1"}


async def test_bad_dates_and_prefixes_are_400(net):
    for q, code in [("birthdate=1980-13-01", "value"), ("birthdate=yesterday", "value"), ("birthdate=xx1980", "value"),
                    ("birthdate=2020-01-01T10:00:00+25:00", "value")]:
        with pytest.raises(FHIRError) as err:
            await run(net, "Patient", q)
        assert err.value.status == 400
        assert err.value.issues[0].code == code
        assert err.value.issues[0].expression == ("http.birthdate",)


async def test_last_updated_and_id_use_resource_columns(db):
    await store(db, {"resourceType": "Patient", "id": "old", "_last_updated": 1_600_000_000_000_000},  # 2020-09-13
                {"resourceType": "Patient", "id": "new", "_last_updated": 1_710_000_000_000_000})  # 2024-03-09
    assert await found(db, "Patient", "_lastUpdated=gt2021") == {"Patient/new"}
    assert await found(db, "Patient", "_lastUpdated=2020-09") == {"Patient/old"}
    assert await found(db, "Patient", "_id=old,nope") == {"Patient/old"}
    assert await found(db, "Patient", "_id=new&_lastUpdated=lt2021") == set()
    assert await found(db, "Patient", "_id:not=old,nope") == {"Patient/new"}  # _id is a token
    with pytest.raises(FHIRError):
        await found(db, "Patient", "_id:exact=old")


# -- number / quantity ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "query, hit",
    [
        ("probability=0.02", True),
        ("probability=0.020", True),
        ("probability=0.021", False),
        ("probability=0.3", False),  # 0.35 is not in [0.25, 0.35)
        ("probability=0.4", True),  # 0.35 is in [0.35, 0.45)
        ("probability=gt0.3", True),
        ("probability=gt0.5", False),
        ("probability=lt0.01", False),
        ("probability=le0.02", True),
        ("probability=ap0.34", True),
        ("probability=ap0.5", False),
    ],
)
async def test_number_precision_and_prefixes(net, query, hit):
    assert (await found(net, "RiskAssessment", query) == {"RiskAssessment/ra1"}) is hit


async def test_bad_number_is_400(net):
    with pytest.raises(FHIRError) as err:
        await run(net, "RiskAssessment", "probability=abc")
    assert err.value.issues[0].code == "value"


async def test_quantity_forms(net):
    assert await found(net, "Observation", "value-quantity=72") == {"Observation/o1"}
    assert await found(net, "Observation", "value-quantity=72|http://unitsofmeasure.org|/min") == {"Observation/o1"}
    assert await found(net, "Observation", "value-quantity=72||/min") == {"Observation/o1"}
    assert await found(net, "Observation", "value-quantity=72||beats/minute") == {"Observation/o1"}  # the unit
    assert await found(net, "Observation", "value-quantity=72||g/L") == set()
    assert await found(net, "Observation", "value-quantity=gt100||/min") == {"Observation/o5"}
    assert await found(net, "Observation", "value-quantity=le1.05|http://unitsofmeasure.org|g/L") == {"Observation/o3"}
    assert await found(net, "Observation", "component-value-quantity=ge140") == {"Observation/o2"}


async def test_bad_quantity_is_400(net):
    with pytest.raises(FHIRError):
        await run(net, "Observation", "value-quantity=72|/min")


# -- uri ------------------------------------------------------------------------------------
async def test_uri_exact_below_above(net):
    assert await found(net, "ValueSet", "url=https://fhir.sijill.ma/ValueSet/actes-ngap") == {"ValueSet/vs1"}
    assert await found(net, "ValueSet", "url=https://fhir.sijill.ma/ValueSet") == set()
    assert await found(net, "ValueSet", "url:below=https://fhir.sijill.ma/ValueSet/") == {"ValueSet/vs1"}
    assert await found(net, "ValueSet", "url:above=https://fhir.sijill.ma/ValueSet/actes-ngap/v2") == {"ValueSet/vs1"}
    assert await found(net, "Patient", "_profile=https://fhir.sijill.ma/StructureDefinition/patient-ma") == {"Patient/p1"}


# -- composite ------------------------------------------------------------------------------
async def test_composites_keep_components_together(net):
    hr = "http://loinc.org|8867-4"
    assert await found(net, "Observation", f"code-value-quantity={hr}$gt100") == {"Observation/o5"}
    assert await found(net, "Observation", f"code-value-quantity={hr}$72||/min") == {"Observation/o1"}
    # the blood pressure components: systolic 140, diastolic 90 - never systolic 90
    assert await found(net, "Observation", "component-code-value-quantity=http://loinc.org|8480-6$140") == {"Observation/o2"}
    assert await found(net, "Observation", "component-code-value-quantity=http://loinc.org|8480-6$90") == set()
    assert await found(net, "Observation", "component-code-value-quantity=8462-4$lt100") == {"Observation/o2"}
    assert await found(net, "Observation", f"code-value-quantity={hr}$gt100,8480-6$140") == {"Observation/o5"}
    assert await found(net, "Observation", "combo-code-value-quantity=8480-6$140,8867-4$72") == {"Observation/o1", "Observation/o2"}
    with pytest.raises(FHIRError):
        await run(net, "Observation", "code-value-quantity=8867-4")


# -- reference ------------------------------------------------------------------------------
async def test_reference_forms(net):
    assert await found(net, "Observation", "subject=Patient/p1") == {"Observation/o1", "Observation/o2"}
    assert await found(net, "Observation", "subject=p1") == {"Observation/o1", "Observation/o2"}
    assert await found(net, "Observation", "subject:Patient=p2") == {"Observation/o3", "Observation/o4"}
    assert await found(net, "Observation", "patient=p3") == {"Observation/o5"}
    assert await found(net, "Observation", "subject=http://test/fhir/Patient/p1") == {"Observation/o1", "Observation/o2"}
    assert await found(net, "Observation", "subject=Patient/p1/_history/3") == {"Observation/o1", "Observation/o2"}
    assert await found(net, "Observation", "subject=http://elsewhere/fhir/Patient/p1") == set()
    assert await found(net, "Claim", f"patient:identifier={SID}/cnss|112233445") == set()  # identifier is on coverage
    # canonical references: any version, or the one named
    lib = "https://fhir.sijill.ma/Library/base"
    assert await found(net, "ActivityDefinition", f"depends-on={lib}") == {"ActivityDefinition/ad1"}
    assert await found(net, "ActivityDefinition", f"depends-on={lib}|2.0") == {"ActivityDefinition/ad1"}
    assert await found(net, "ActivityDefinition", f"depends-on={lib}|3.0") == set()
    with pytest.raises(FHIRError) as err:
        await run(net, "Observation", "subject:Patient=Group/g1")
    assert err.value.issues[0].code == "value"
    # outside the declared targets: nothing can match, but data need not follow the targets
    assert await found(net, "Observation", "patient=Organization/atlas") == set()


async def test_reference_identifier_modifier(db):
    await store(db, {"resourceType": "Observation", "id": "lab", "status": "final", "code": {"text": "x"},
                     "subject": {"identifier": {"system": f"{SID}/cin", "value": "ZZ1"}}})
    assert await found(db, "Observation", f"subject:identifier={SID}/cin|ZZ1") == {"Observation/lab"}
    assert await found(db, "Observation", "subject:identifier=ZZ1") == {"Observation/lab"}
    assert await found(db, "Observation", "subject:missing=false") == {"Observation/lab"}
    assert await found(db, "Observation", "subject=ZZ1") == set()


async def test_resource_level_token_params(net):
    assert await found(net, "Patient", "_tag=https://fhir.sijill.ma/CodeSystem/source|amo") == {"Patient/p1"}
    assert await found(net, "Patient", "_tag:not=amo") == {"Patient/p2", "Patient/p3", "Patient/p4"}


# -- unknown params and modifiers -----------------------------------------------------------
async def test_lenient_ignores_unknown_params_with_a_warning(net):
    bundle = await run(net, "Patient", "foo=bar&gender=female&_count=10")
    assert {e["fullUrl"] for e in bundle["entry"] if e["search"]["mode"] == "match"} == {
        "http://test/fhir/Patient/p2", "http://test/fhir/Patient/p4"}
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1
    issue = outcome[0]["resource"]["issue"][0]
    assert (issue["severity"], issue["code"], issue["expression"]) == ("warning", "not-supported", ["http.foo"])
    assert bundle["link"][0]["url"] == "http://test/fhir/Patient?gender=female&_count=10"  # foo not echoed


async def test_strict_refuses_unknown_params(net):
    with pytest.raises(FHIRError) as err:
        await run(net, "Patient", "foo=bar", handling="strict")
    issue = err.value.issues[0]
    assert (err.value.status, issue.code, issue.expression) == (400, "not-supported", ("http.foo",))
    with pytest.raises(FHIRError) as err:
        await run(net, "Patient", "_text=abc", handling="strict")
    assert err.value.issues[0].expression == ("http._text",)


async def test_unknown_modifier_is_always_400(net):
    for handling in ("lenient", "strict"):
        with pytest.raises(FHIRError) as err:
            await run(net, "Patient", "name:fuzzy=x", handling=handling)
        assert (err.value.status, err.value.issues[0].code) == (400, "invalid")
        assert err.value.issues[0].expression == ("http.name:fuzzy",)


async def test_empty_value_is_400(net):
    with pytest.raises(FHIRError):
        await run(net, "Patient", "name=")


async def test_unknown_type_is_404(net):
    with pytest.raises(FHIRError) as err:
        await run(net, "Nothing", "")
    assert err.value.status == 404


async def test_terminology_errors_point_at_the_parameter(net, no_terminology):
    from ehr.search.terminology import set_terminology

    class Terms:
        async def expand(self, conn, valueset):
            raise FHIRError.of(404, "not-found", f"ValueSet {valueset} is not known")

    set_terminology(Terms())
    with pytest.raises(FHIRError) as err:
        await run(net, "Observation", "code:in=https://fhir.sijill.ma/ValueSet/nope")
    assert err.value.status == 404 and err.value.issues[0].expression == ("http.code:in",)


async def test_timing_and_meta_parameters(db):
    await store(db, {"resourceType": "ServiceRequest", "id": "sr", "status": "active", "intent": "order",
                     "subject": {"reference": "Patient/p1"},
                     "occurrenceTiming": {"event": ["2024-05-01T08:00:00Z", "2024-05-08T08:00:00Z"],
                                          "repeat": {"boundsPeriod": {"start": "2024-06-01", "end": "2024-06-30"}}},
                     "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}],
                              "source": "https://his.chu-rabat.ma/fhir"}})
    assert await found(db, "ServiceRequest", "occurrence=2024-05-08") == {"ServiceRequest/sr"}
    assert await found(db, "ServiceRequest", "occurrence=2024-06-15") == set()  # a day is not the whole bounds
    assert await found(db, "ServiceRequest", "occurrence=2024-06") == {"ServiceRequest/sr"}
    assert await found(db, "ServiceRequest", "occurrence=2024-05-02") == set()
    assert await found(db, "ServiceRequest", "_security=R") == {"ServiceRequest/sr"}
    assert await found(db, "ServiceRequest", "_security:not=R") == set()
    assert await found(db, "ServiceRequest", "_source=https://his.chu-rabat.ma/fhir") == {"ServiceRequest/sr"}
    assert await found(db, "ServiceRequest", "_source:below=https://his.chu-rabat.ma/") == {"ServiceRequest/sr"}

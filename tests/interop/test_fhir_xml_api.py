"""FHIR XML at the edge, with a doctor's own token: asked for by ``Accept`` or ``_format``, sent
with ``Content-Type: application/fhir+xml`` (or ``application/xml``, ``text/xml``), for every
interaction — and refused with 400 when the XML is malformed, declares a DTD or names elements
FHIR does not have.

Dr D1 sees Amina (Patient/pa) in an Encounter (enc-a); he records her observations.
"""
from __future__ import annotations

import pytest
from lxml import etree

from tests.security.world import seed_world

F = "{http://hl7.org/fhir}"
XML = {"Accept": "application/fhir+xml"}
XML_BODY = {"Content-Type": "application/fhir+xml", "Accept": "application/fhir+json"}

OBSERVATION = b"""<?xml version="1.0" encoding="UTF-8"?>
<Observation xmlns="http://hl7.org/fhir">
  <!-- a comment JSON has no place for -->
  <text>
    <status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml"><p>Glyc&#233;mie <b>1,50</b> g/L</p></div>
  </text>
  <status value="final"/>
  <code>
    <coding><system value="http://loinc.org"/><code value="2339-0"/></coding>
    <text value="Glyc\xc3\xa9mie"/>
  </code>
  <subject><reference value="Patient/pa"/></subject>
  <encounter><reference value="Encounter/enc-a"/></encounter>
  <effectiveDateTime value="2026-03-02T10:00:00+01:00"/>
  <valueQuantity>
    <value value="1.50"/>
    <unit value="g/L"/>
  </valueQuantity>
  <note>
    <text id="n1" value="\xc3\xa0 jeun">
      <extension url="http://example.org/fhir/StructureDefinition/mood"><valueBoolean value="true"/></extension>
    </text>
  </note>
  <interpretation><text value="haut"/></interpretation>
  <interpretation><text value="contr\xc3\xb4ler"/></interpretation>
</Observation>"""


@pytest.fixture
async def world(secure_app):
    return await seed_world(secure_app)


def xml(resp) -> etree._Element:
    assert resp.headers["content-type"].startswith("application/fhir+xml"), resp.text
    return etree.fromstring(resp.content)


def value(root: etree._Element, path: str) -> str | None:
    found = root.find("/".join(F + step for step in path.split("/")))
    return None if found is None else found.get("value")


async def create_in_xml(world) -> dict:
    async with world.client("D1", **XML_BODY) as d1:
        created = await d1.post("/Observation", content=OBSERVATION)
    assert created.status_code == 201, created.text
    return created.json()


async def test_an_observation_sent_in_xml_is_read_back_in_json(world):
    created = await create_in_xml(world)
    async with world.client("D1") as d1:
        read = (await d1.get(f"/Observation/{created['id']}")).json()
    assert read["status"] == "final" and read["subject"] == {"reference": "Patient/pa"}
    assert read["valueQuantity"] == {"value": 1.5, "unit": "g/L"}
    assert [i["text"] for i in read["interpretation"]] == ["haut", "contrôler"]  # repeated: an array
    assert read["note"] == [{"text": "à jeun", "_text": {"id": "n1", "extension": [
        {"url": "http://example.org/fhir/StructureDefinition/mood", "valueBoolean": True}]}}]
    assert read["text"]["div"] == '<div xmlns="http://www.w3.org/1999/xhtml"><p>Glycémie <b>1,50</b> g/L</p></div>'


async def test_reads_vreads_and_history_answer_in_xml_by_accept_or_format(world):
    created = await create_in_xml(world)
    url = f"/Observation/{created['id']}"
    async with world.client("D1") as d1:
        for resp in (await d1.get(url, headers=XML), await d1.get(url + "?_format=xml"),
                     await d1.get(url, params={"_format": "application/fhir+xml"}),
                     await d1.get(url + "?_format=application/fhir+xml"),  # the "+" unencoded: a space
                     await d1.get(url + "/_history/1", headers={"Accept": "application/xml"})):
            assert resp.status_code == 200
            root = xml(resp)
            assert root.tag == F + "Observation"
            assert [c.tag.removeprefix(F) for c in root][:4] == ["id", "meta", "text", "status"]  # the definition's order
            assert value(root, "valueQuantity/value") == "1.5"
            assert root.find(f"{F}text/{{http://www.w3.org/1999/xhtml}}div") is not None
            assert root.find(f"{F}note/{F}text").get("id") == "n1"
        history = xml(await d1.get(url + "/_history", headers=XML))
        assert history.tag == F + "Bundle" and value(history, "type") == "history"
        assert history.find(f"{F}entry/{F}resource/{F}Observation") is not None
        # _format wins over Accept, both ways
        assert (await d1.get(url + "?_format=json", headers=XML)).json()["id"] == created["id"]
        assert xml(await d1.get(url + "?_format=xml")).tag == F + "Observation"


async def test_a_search_bundle_in_xml_wraps_each_resource_in_its_type(world):
    await create_in_xml(world)
    async with world.client("D1") as d1:
        bundle = xml(await d1.get("/Observation?subject=Patient/pa&code=http://loinc.org|2339-0&_include=Observation:subject", headers=XML))
    assert value(bundle, "type") == "searchset" and value(bundle, "total") == "1"
    kinds = [e.find(F + "resource")[0].tag.removeprefix(F) for e in bundle.findall(F + "entry")]
    assert sorted(kinds) == ["Observation", "Patient"]
    modes = [value(e, "search/mode") for e in bundle.findall(F + "entry")]
    assert sorted(modes) == ["include", "match"]


async def test_update_transaction_and_validate_take_xml(world):
    created = await create_in_xml(world)
    changed = OBSERVATION.replace(b'<status value="final"/>', b'<id value="%s"/><status value="amended"/>' % created["id"].encode())
    async with world.client("D1", **{**XML_BODY, "Content-Type": "text/xml"}) as d1:
        updated = await d1.put(f"/Observation/{created['id']}", content=changed)
        assert updated.status_code == 200 and updated.json()["status"] == "amended"
        inner = OBSERVATION.split(b"?>", 1)[1].replace(b' xmlns="http://hl7.org/fhir"', b"")
        bundle = (b'<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/><entry><fullUrl value="urn:uuid:'
                  b'4a0c1e2e-0000-4000-8000-000000000001"/><resource>' + inner + b'</resource><request><method value="POST"/>'
                  b'<url value="Observation"/></request></entry></Bundle>')
        done = await d1.post("", content=bundle, headers={"Content-Type": "application/xml", "Accept": "application/fhir+xml"})
        assert done.status_code == 200, done.text
        answer = xml(done)
        assert value(answer, "type") == "transaction-response"
        assert value(answer, "entry/response/status").startswith("201")
        checked = await d1.post("/Observation/$validate", content=OBSERVATION, headers={"Content-Type": "application/fhir+xml"})
        assert checked.status_code == 200 and checked.json()["resourceType"] == "OperationOutcome"


async def test_errors_and_the_capability_statement_answer_in_xml(world):
    async with world.client("D1", **XML) as d1:
        missing = await d1.get("/Observation/nope")
        assert missing.status_code == 404
        outcome = xml(missing)
        assert outcome.tag == F + "OperationOutcome" and value(outcome, "issue/code") == "not-found"
        metadata = xml(await d1.get("/metadata"))
    assert metadata.tag == F + "CapabilityStatement"
    formats = [f.get("value") for f in metadata.findall(F + "format")]
    assert {"application/fhir+json", "application/fhir+xml", "xml"} <= set(formats)
    async with world.client(None, **XML) as anonymous:
        refused = await anonymous.get("/Patient/pa")  # no token: 401, in XML too
    assert refused.status_code == 401 and xml(refused).tag == F + "OperationOutcome"


def refusal(resp, code: str) -> dict:
    assert resp.status_code == 400, resp.text
    issue = resp.json()["issue"][0]
    assert issue["code"] == code
    return issue


async def test_malformed_xml_dtds_and_unknown_elements_are_refused_with_400(world):
    async with world.client("D1", **XML_BODY) as d1:
        cut = refusal(await d1.post("/Observation", content=OBSERVATION[:-30]), "structure")
        assert cut["location"][0].startswith("Line[")
        xxe = (b'<?xml version="1.0"?><!DOCTYPE o [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               b'<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><text value="&x;"/></code></Observation>')
        assert "root:" not in refusal(await d1.post("/Observation", content=xxe), "security")["diagnostics"]
        laughs = b'<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><Patient xmlns="http://hl7.org/fhir"/>'
        refusal(await d1.post("/Patient", content=laughs), "security")
        unknown = refusal(await d1.post("/Observation", content=OBSERVATION.replace(b"<unit ", b"<unity ")), "structure")
        assert unknown["expression"] == ["Observation.valueQuantity.unity"] and unknown["location"] == ["Line[18]"]
        twice = refusal(await d1.post("/Observation", content=OBSERVATION.replace(b"</subject>", b"</subject><subject/>")), "structure")
        assert twice["expression"] == ["Observation.subject"]
        number = refusal(await d1.post("/Observation", content=OBSERVATION.replace(b'"1.50"', b'"1,50"')), "value")
        assert number["expression"] == ["Observation.valueQuantity.value"]
        foreign = refusal(await d1.post("/Observation", content=b'<Observation xmlns="urn:other"/>'), "structure")
        assert "http://hl7.org/fhir" in foreign["diagnostics"]
        wrong_type = await d1.post("/Observation", content=b'<Patient xmlns="http://hl7.org/fhir"><active value="true"/></Patient>')
        assert wrong_type.status_code == 400 and wrong_type.json()["issue"][0]["expression"] == ["Patient.resourceType"]
        assert (await d1.get("/Observation?code=http://loinc.org|2339-0")).json()["total"] == 0  # nothing was written


async def test_what_stays_unsupported_is_406_or_415(world):
    async with world.client("D1") as d1:
        for fmt in ("turtle", "text/turtle", "html"):
            resp = await d1.get("/Patient/pa", params={"_format": fmt})
            assert resp.status_code == 406 and resp.json()["issue"][0]["expression"] == ["http._format"]
        assert (await d1.get("/Patient/pa", headers={"Accept": "text/turtle"})).status_code == 406
        assert (await d1.get("/Patient/pa", headers={"Accept": "application/fhir+xml;q=0, text/turtle"})).status_code == 406
        # q-values decide; an explicit type beats a wildcard of the same weight
        assert (await d1.get("/Patient/pa", headers={"Accept": "application/fhir+xml;q=0.5, application/fhir+json"})).json()["id"] == "pa"
        assert xml(await d1.get("/Patient/pa", headers={"Accept": "*/*, application/fhir+xml"})).tag == F + "Patient"
        assert (await d1.get("/Patient/pa", headers={"Accept": "*/*"})).json()["id"] == "pa"
        sent = await d1.post("/Observation", content=b"@prefix fhir: <http://hl7.org/fhir/> .", headers={"Content-Type": "text/turtle"})
        assert sent.status_code == 415 and "application/fhir+xml" in sent.json()["issue"][0]["diagnostics"]

"""The printed prescription and its QR code: the doctor prescribes, the prescription prints (HTML
or PDF, A5 or A4, Arabic and French) with a signed QR code, and the pharmacist scans the code to
find the prescription — a forged or altered code is refused.  With each role's own token, on
both databases.

The scenario is the access specifications' world (``tests.security.world``): Dr D1 sees Amina
(pa, CIN AA111), whose record also carries her name in Arabic; PH is the pharmacist of
Pharmacie Atlas; PA the counter agent.
"""
from __future__ import annotations

import io

import lxml.html
import pypdf
import pypdfium2
import pytest
import zxingcpp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ehr.security.prescription_signature import _b64
from tests.security.world import CIN, INPE, RX, resources, seed_world

LANG = "http://hl7.org/fhir/StructureDefinition/language"
PDF = {"Accept": "application/pdf"}


def _scenario() -> list[dict]:
    world = resources()
    for r in world:
        if r["resourceType"] == "Patient" and r["id"] == "pa":
            r["name"] = [{"use": "official", "family": "Alaoui", "given": ["Amina"], "extension": [{"url": LANG, "valueCode": "fr"}]},
                         {"use": "usual", "text": "أمينة العلوي", "extension": [{"url": LANG, "valueCode": "ar"}]}]
        if r["resourceType"] == "Practitioner" and r["id"] == "d1":
            r.update(name=[{"family": "Bennani", "given": ["Karim"], "prefix": ["Dr"]}], identifier=[{"system": INPE, "value": "101234567"}])
    return world


def _line(medicine: str, quantity: int, **extra) -> dict:
    return {"resourceType": "MedicationRequest", "status": "active", "intent": "order", "authoredOn": "2026-03-02",
            "medicationCodeableConcept": {"text": medicine}, "subject": {"reference": "Patient/pa"},
            "requester": {"reference": "Practitioner/d1"},
            "dosageInstruction": [{"text": "1 comprimé matin et soir", "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}}],
            "dispenseRequest": {"quantity": {"value": quantity, "unit": "boîte"}, "numberOfRepeatsAllowed": 1,
                                "validityPeriod": {"start": "2026-03-02", "end": "2026-06-02"}}, **extra}


@pytest.fixture
async def prescribed(secure_app):
    """The world, and a two-line prescription Dr D1 wrote for Amina: (world, first line id, number)."""
    world = await seed_world(secure_app, _scenario())
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _line("Metformine 850 mg", 2), "request": {"method": "POST", "url": "MedicationRequest"}},
        {"resource": _line("Amlodipine 5 mg", 1, substitution={"allowedBoolean": False}), "request": {"method": "POST", "url": "MedicationRequest"}},
    ]}
    async with world.client("D1") as d1:
        answer = await d1.post("", json=bundle)
        assert answer.status_code == 200, answer.text
        first = answer.json()["entry"][0]["response"]["location"].split("/")[1]
        number = (await d1.get(f"/MedicationRequest/{first}")).json()["groupIdentifier"]["value"]
    return world, first, number


def _pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(content))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def _qr_of(content: bytes) -> str:
    """The QR code read off the rendered page, as a phone or a scanner would."""
    page = pypdfium2.PdfDocument(content)[0]
    found = zxingcpp.read_barcodes(page.render(scale=3).to_pil())
    assert [b.format for b in found] == [zxingcpp.BarcodeFormat.QRCode]
    return found[0].text


async def _scan(world, who: str, code: str):
    async with world.client(who) as client:
        return await client.post("/MedicationRequest/$scan", json={"resourceType": "Parameters", "parameter": [{"name": "code", "valueString": code}]})


async def test_the_doctor_prints_the_prescription_and_the_pharmacist_scans_it(prescribed):
    world, first, number = prescribed
    async with world.client("D1", **PDF) as d1:
        printed = await d1.get(f"/MedicationRequest/{first}/$print")
    assert printed.status_code == 200, printed.text
    assert printed.headers["content-type"] == "application/pdf"
    words = _pdf_text(printed.content)
    assert number in words
    for expected in ("Ordonnance", "وصفة طبية", "Amina Alaoui", "أمينة العلوي", "Dr Karim Bennani", "101234567",
                     "Metformine 850 mg", "Amlodipine 5 mg", "Non substituable", "غير قابل للتعويض", "02/06/2026", "2 boîte"):
        assert expected in words, expected
    assert "AA111" not in words  # the CIN is masked, as on every letter

    code = _qr_of(printed.content)
    assert code.startswith(f"SJL1.{number}.")
    scanned = await _scan(world, "PH", code)
    assert scanned.status_code == 200, scanned.text
    lines = [e["resource"] for e in scanned.json()["entry"] if e["search"]["mode"] == "match"]
    assert sorted(x["medicationCodeableConcept"]["text"] for x in lines) == ["Amlodipine 5 mg", "Metformine 850 mg"]
    async with world.client("PH") as ph:  # the scan presented it to the pharmacy: the line reads by id now
        looked_up = await ph.get(f"/MedicationRequest?group-identifier={RX}|{number}")
        assert (await ph.get(f"/MedicationRequest/{first}")).status_code == 200
    assert looked_up.json()["entry"] == scanned.json()["entry"]


async def test_who_prints_a_prescription(prescribed):
    world, first, number = prescribed
    path = f"/MedicationRequest/{first}/$print"
    async with world.client(None) as anonymous:
        assert (await anonymous.get(path)).status_code == 401
    for who, status in (("AG", 403), ("PH", 403), ("AD", 403), ("D4", 404), ("pb", 404), ("PA", 404)):
        async with world.client(who, Accept="text/html") as client:
            assert (await client.get(path)).status_code == status, who
    async with world.client("D1", Accept="text/html") as d1:
        assert (await d1.get("/MedicationRequest/nope/$print")).status_code == 404
        assert (await d1.get(path + "?format=B5")).json()["issue"][0]["expression"] == ["http.format"]
        a4 = await d1.get(path + "?format=A4")
    assert "size: A4" in lxml.html.fromstring(a4.content).xpath("string(//style)")
    async with world.client("pa", Accept="text/html") as amina:
        page = await amina.get(path)
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    html = lxml.html.fromstring(page.content)
    assert "size: A5" in html.xpath("string(//style)") and not html.xpath("//script")
    copies = {s.get("lang"): s for s in html.xpath("//section[@class='copy']")}
    assert list(copies) == ["ar", "fr"] and copies["ar"].get("dir") == "rtl"
    assert len(copies["fr"].xpath(".//li[@class='line']")) == 2 and number in html.xpath("string(//*[@class='number'])")
    # the counter agent prints it while serving Amina in person
    async with world.client("PA", Accept="application/fhir+json") as counter:
        proof = {"resourceType": "Parameters", "parameter": [{"name": "identifier", "valueIdentifier": {"system": CIN, "value": "AA111"}},
                                                             {"name": "birthDate", "valueDate": "1980-02-03"}]}
        assert (await counter.post("/Patient/pa/$assist", json=proof)).status_code == 200
    async with world.client("PA", **PDF) as counter:
        assert (await counter.get(path)).status_code == 200


def _altered(code: str) -> str:
    tag, number, signature = code.split(".")
    return ".".join((tag, number[:1] + ("2" if number[1] != "2" else "3") + number[2:], signature))


async def test_altered_and_forged_codes_are_refused_and_counted(prescribed):
    world, first, number = prescribed
    async with world.client("pa", **PDF) as amina:
        code = _qr_of((await amina.get(f"/MedicationRequest/{first}/$print")).content)
    other_key = ed25519.Ed25519PrivateKey.generate()
    forged = f"SJL1.{number}." + _b64(other_key.sign(f"SJL1.{number}".encode()))
    assert other_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    tag, _, signature = code.split(".")
    for bad in (_altered(code), forged, f"{tag}.2GA1-850M-2GAY.{signature}", "SJL2" + code[4:], code + "x", "hello", code.lower()):
        refused = await _scan(world, "PH", bad)
        assert refused.status_code == 422, bad
        issue = refused.json()["issue"][0]
        assert issue["code"] == "security" and issue["expression"] == ["Parameters.parameter.where(name = 'code').value"]
    assert (await _scan(world, "D1", code)).status_code == 403
    async with world.client("PH") as ph:
        empty = await ph.post("/MedicationRequest/$scan", json={"resourceType": "Parameters", "parameter": []})
    assert empty.status_code == 400
    # seven refusals so far; the lookup's limit (10 misses) is shared with typed numbers
    for _ in range(3):
        assert (await _scan(world, "PH", forged)).status_code == 422
    throttled = await _scan(world, "PH", code)
    assert throttled.status_code == 429 and "Retry-After" in throttled.headers


async def test_a_five_line_prescription_prints_on_one_a5_page(secure_app):
    world = await seed_world(secure_app, _scenario())
    medicines = ["Metformine 850 mg", "Amlodipine 5 mg", "Amoxicilline 1 g", "Paracétamol 1 g", "Oméprazole 20 mg"]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _line(m, n + 1), "request": {"method": "POST", "url": "MedicationRequest"}} for n, m in enumerate(medicines)]}
    async with world.client("D1") as d1:
        answer = await d1.post("", json=bundle)
        assert answer.status_code == 200, answer.text
        first = answer.json()["entry"][0]["response"]["location"].split("/")[1]
    async with world.client("D1", **PDF) as d1:
        printed = await d1.get(f"/MedicationRequest/{first}/$print")
    words = _pdf_text(printed.content)  # one page
    assert all(m in words for m in medicines)

"""The paper channel's letters: the decision on a care sheet, the payment notice and the access
report, printed in Arabic and French for the patient — by them, by the counter agent acting for
them, or by their fund — under the rules of reading what the letters show, and recorded in the
patient's audit trail.  With real tokens, on both databases.

Amina (pa, CNSS) had a consultation (C, 80 DH) and an act without a national tariff (XYZ, 50 DH)
with Dr Bennani, who sent the sheet himself.  Brahim (pb, CNOPS) came to the counter: the agent
registered him and entered his paper sheet (C, 80 DH); Dr Bennani, who sees him, read his record.
"""
from __future__ import annotations

import io
from datetime import timedelta

import lxml.html
import pypdf
import pytest
from sqlalchemy import select

from claims.caresheet import today
from claims.messaging.status_code import existing_code, shown
from claims.payment import pay_day
from claims.tables import claim_ledger, claim_payment
from claims.uris import FUND, INPE
from claims.worker import Worker
from ehr.interactions.transaction import Options, transaction
from ehr.security.demo import DemoUser
from ehr.security.roles import Role
from tests.claims import builders as b
from tests.conftest import BASE
from tests.security.world import World as Callers

CIN = "https://fhir.sijill.ma/sid/cin"
AMINA = DemoUser("amina", Role.PATIENT, "Patient/pa")
BRAHIM = DemoUser("brahim", Role.PATIENT, "Patient/pb")
DOCTOR = DemoUser("d1", Role.DOCTOR, "Practitioner/d1")
CNSS_AGENT = DemoUser("agent", Role.INSURER, "Practitioner/ag", "Organization/cnss")
CNOPS_AGENT = DemoUser("agent-o", Role.INSURER, "Practitioner/ago", "Organization/cnops")
COUNTER = DemoUser("guichet", Role.PAPER_AGENT, "Practitioner/pa-agent")
ADMIN = DemoUser("ad", Role.ADMIN, "Practitioner/ad")
HTML = {"Accept": "text/html"}


def _person(rtype: str, rid: str, family: str, given: str, **extra) -> dict:
    return {"resourceType": rtype, "id": rid, "active": True, "name": [{"family": family, "given": [given]}], **extra}


def _world() -> list[dict]:
    recent = (today() - timedelta(days=5)).isoformat()
    return [
        {"resourceType": "Organization", "id": "cnss", "identifier": [{"system": FUND, "value": "CNSS"}], "name": "CNSS"},
        {"resourceType": "Organization", "id": "cnops", "identifier": [{"system": FUND, "value": "CNOPS"}], "name": "CNOPS"},
        _person("Practitioner", "d1", "Bennani", "Karim", identifier=[{"system": INPE, "value": "101234567"}]),
        _person("Practitioner", "ag", "Ait Lahcen", "Khadija"),
        _person("Practitioner", "ago", "Tazi", "Omar"),
        _person("Practitioner", "pa-agent", "Idrissi", "Samira"),
        _person("Practitioner", "ad", "Admin", "Ali"),
        {"resourceType": "PractitionerRole", "id": "ag-role", "active": True, "practitioner": {"reference": "Practitioner/ag"},
         "organization": {"reference": "Organization/cnss"}},
        _person("Patient", "pa", "Alaoui", "Amina", gender="female", birthDate="1980-02-03",
                identifier=[{"system": CIN, "value": "BK123456"}]),
        {"resourceType": "Coverage", "id": "cov-a", "status": "active", "beneficiary": {"reference": "Patient/pa"},
         "subscriber": {"reference": "Patient/pa"}, "payor": [{"reference": "Organization/cnss"}], "period": {"start": "2020-01-01"}},
        {"resourceType": "Coverage", "id": "cov-b", "status": "active", "beneficiary": {"reference": "Patient/pb"},
         "subscriber": {"reference": "Patient/pb"}, "payor": [{"reference": "Organization/cnops"}], "period": {"start": "2020-01-01"}},
        {"resourceType": "Encounter", "id": "enc-a", "status": "finished", "class": {"code": "AMB"},
         "subject": {"reference": "Patient/pa"}, "participant": [{"individual": {"reference": "Practitioner/d1"}}],
         "period": {"start": recent, "end": recent}},
        {"resourceType": "Encounter", "id": "enc-b", "status": "finished", "class": {"code": "AMB"},
         "subject": {"reference": "Patient/pb"}, "participant": [{"individual": {"reference": "Practitioner/d1"}}],
         "period": {"start": recent, "end": recent}},
    ]


def _sheet(patient: str, coverage: str, fund: str, items: list[dict]) -> dict:
    sheet = b.claim(patient, coverage, items, provider={"reference": "Practitioner/d1", "identifier": {"system": INPE, "value": "101234567"}})
    sheet["insurer"] = {"reference": f"Organization/{fund}"}
    return sheet


class Scene:
    """The world above, built through the API as each party would."""

    def __init__(self, app):
        self.app = app
        self.callers = Callers(app)

    def client(self, who: DemoUser | None, **headers):
        return self.callers.client(who, **headers)

    async def build(self) -> "Scene":
        s = self.app.state.security.settings
        opts = Options(s.base_url, s.default_page_size, s.max_page_size, s.max_bundle_entries, False)
        # Brahim is registered by the population register; his paper care sheet comes through the counter.
        brahim = _person("Patient", "pb", "Berrada", "Brahim", gender="male", birthDate="1975-06-07",
                         identifier=[{"system": CIN, "value": "CD654321"}])
        entries = [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in [*_world(), brahim]]
        await transaction(self.app.state.engine, {"resourceType": "Bundle", "type": "transaction", "entry": entries}, opts)
        self.amina_claim = await self.submit(DOCTOR, _sheet("pa", "cov-a", "cnss", [
            b.act("C", 80, b.days_ago(3)), b.act("XYZ", 50, b.days_ago(3))]))
        self.brahim_claim = await self.submit(COUNTER, _sheet("pb", "cov-b", "cnops", [b.act("C", 80, b.days_ago(2))]))
        await Worker(self.app.state.engine, base_url=BASE, name="test-worker").run_once()
        self.amina = await self.ledger(self.amina_claim)
        self.brahim = await self.ledger(self.brahim_claim)
        return self

    async def submit(self, who: DemoUser, sheet: dict) -> str:
        async with self.client(who) as c:
            resp = await c.post("/Claim", json=sheet)
        assert resp.status_code == 201, resp.text
        return resp.json()["request"]["reference"].split("/")[1]

    async def status_code(self, claim_id: str) -> str:
        async with self.app.state.engine.connect() as conn:
            return shown(await existing_code(conn, claim_id))

    async def ledger(self, claim_id: str):
        async with self.app.state.engine.connect() as conn:
            return (await conn.execute(select(claim_ledger).where(claim_ledger.c.claim_id == claim_id))).one()

    async def get(self, who: DemoUser | None, path: str, **headers):
        async with self.client(who, **{**HTML, **headers}) as c:
            return await c.get(path)


@pytest.fixture
async def scene(secure_app) -> Scene:
    return await Scene(secure_app).build()


def _sections(resp) -> dict:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    page = lxml.html.fromstring(resp.content)
    # print-ready and self-contained: A4, no script, nothing fetched from elsewhere
    assert "size: A4" in page.xpath("string(//style)")
    assert not page.xpath("//script") and not page.xpath("//*[@src]") and not page.xpath("//link")
    csp = resp.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "style-src 'unsafe-inline'" in csp and "script-src" not in csp
    sections = {s.get("lang"): s for s in page.xpath("//section[@class='letter']")}
    assert list(sections) == ["ar", "fr"]
    assert sections["ar"].get("dir") == "rtl" and sections["fr"].get("dir") == "ltr"
    return sections


def text(node, css_class: str | None = None) -> str:
    """The visible text (of the first descendant with ``css_class``), spaces normalised."""
    if css_class is not None:
        node = node.xpath(f".//*[contains(concat(' ', normalize-space(@class), ' '), ' {css_class} ')]")[0]
    return " ".join(node.text_content().replace("\u00a0", " ").split())


def _lines(section) -> list:
    return section.xpath(".//tr[contains(@class, 'line')]")


async def test_who_may_print_a_decision(scene):
    amina_eob = f"/ExplanationOfBenefit/{scene.amina.eob_id}/$letter"
    brahim_eob = f"/ExplanationOfBenefit/{scene.brahim.eob_id}/$letter"
    assert (await scene.get(None, amina_eob)).status_code == 401
    assert (await scene.get(ADMIN, amina_eob)).status_code == 403  # reference data only
    # out of scope is absent: another patient, another fund, a counter agent for a sheet they did not enter
    for stranger in (BRAHIM, CNOPS_AGENT, COUNTER):
        resp = await scene.get(stranger, amina_eob)
        assert resp.status_code == 404, stranger
        assert resp.json()["issue"][0]["code"] == "not-found"
        assert scene.amina_claim not in resp.text  # nothing learnt of the sheet behind it
    for reader in (AMINA, CNSS_AGENT):
        _sections(await scene.get(reader, amina_eob))
    _sections(await scene.get(AMINA, f"/ClaimResponse/{scene.amina.response_id}/$letter"))
    # the counter agent prints the decision on the sheet they entered for Brahim
    _sections(await scene.get(COUNTER, brahim_eob))
    _sections(await scene.get(COUNTER, f"/ClaimResponse/{scene.brahim.response_id}/$letter"))
    assert (await scene.get(CNSS_AGENT, brahim_eob)).status_code == 404
    # unknown ids: the same OperationOutcome as any read
    resp = await scene.get(CNSS_AGENT, "/ExplanationOfBenefit/no-such-decision/$letter")
    assert resp.status_code == 404 and resp.json()["resourceType"] == "OperationOutcome"
    assert resp.json()["issue"][0]["code"] == "not-found"


async def test_the_decision_letter_says_what_was_paid_and_why_in_both_languages(scene):
    ar, fr = _sections(await scene.get(AMINA, f"/ExplanationOfBenefit/{scene.amina.eob_id}/$letter")).values()
    care_day = b.days_ago(3).strftime("%d/%m/%Y")
    assert "Décision de prise en charge" in text(fr, "masthead") and "قرار التكفل" in text(ar, "masthead")
    assert scene.amina.claim_identifier in text(fr, "masthead")
    assert "Caisse Nationale de Sécurité Sociale" in text(fr, "issuer")
    assert "الصندوق الوطني للضمان الاجتماعي" in text(ar, "issuer")
    # the patient, identified without giving the whole card number away
    patient = text(fr, "patient")
    assert "Amina Alaoui" in patient and "•••••456" in patient and "BK123456" not in text(fr) + text(ar)
    assert "Karim Bennani" in text(fr, "provider") and "101234567" in text(fr, "provider")
    assert text(fr, "care-date") == care_day
    # the code she texts or gives at a counter to follow the sheet, labelled in both languages
    code = await scene.status_code(scene.amina_claim)
    assert text(fr, "status-code") == text(ar, "status-code") == code
    assert [text(section.xpath(".//td[@class='status-code']/preceding-sibling::th")[0]) for section in (fr, ar)] == [
        "Code de suivi", "رمز التتبع"]
    assert text(fr, "outcome") == "Prise en charge accordée partiellement"
    assert text(ar, "outcome") == "تمت الموافقة الجزئية على التكفل"

    consultation, act = _lines(fr)
    assert text(consultation, "item").startswith("Consultation du médecin généraliste")
    assert text(consultation, "date") == care_day
    assert [text(consultation, c) for c in ("asked", "accepted", "benefit", "share")] == [
        "80,00 DH", "80,00 DH", "56,00 DH", "24,00 DH"]
    assert text(consultation, "reasons") == ""
    assert [text(act, c) for c in ("asked", "benefit", "share")] == ["50,00 DH", "0,00 DH", "50,00 DH"]
    assert "Aucun tarif national de référence en vigueur pour cet acte à cette date" in text(act, "reasons")
    assert "no-tariff" in text(act, "reasons")
    totals = fr.xpath(".//tr[@class='totals']")[0]
    assert [text(totals, c) for c in ("asked", "benefit", "share")] == ["130,00 DH", "56,00 DH", "74,00 DH"]

    consultation_ar, act_ar = _lines(ar)
    assert text(consultation_ar, "item").startswith("استشارة الطبيب العام")
    assert text(consultation_ar, "benefit") == "56,00 درهم"
    assert "لا توجد تعريفة وطنية مرجعية سارية لهذا العمل في هذا التاريخ" in text(act_ar, "reasons")

    # who is paid, and how to appeal: until 60 days after the decision (CNSS), online or at the counter
    assert "Remboursement : l'organisme verse sa part à l'assuré(e) Amina Alaoui." in text(fr, "payee")
    assert "Le paiement sera fait au prochain règlement" in text(fr, "payee")
    decided = text(fr, "decision-date")
    appeal = text(fr, "appeal")
    until = (b.days_ago(0) + timedelta(days=60)).strftime("%d/%m/%Y")
    assert decided == b.days_ago(0).strftime("%d/%m/%Y") and f"jusqu'au {until} (60 jours" in appeal
    assert f"Claim/{scene.amina_claim}/$appeal" in appeal and "au guichet" in appeal
    assert "60" in text(ar, "appeal") and until in text(ar, "appeal")
    assert f"ExplanationOfBenefit/{scene.amina.eob_id}" in text(fr, "reference")
    assert "par Amina Alaoui, le patient" in text(fr, "printed")


async def test_the_counter_agent_prints_the_sheet_they_entered(scene):
    ar, fr = _sections(await scene.get(COUNTER, f"/ExplanationOfBenefit/{scene.brahim.eob_id}/$letter")).values()
    (line,) = _lines(fr)
    assert [text(line, c) for c in ("asked", "benefit", "share")] == ["80,00 DH", "64,00 DH", "16,00 DH"]  # CNOPS: 80 %
    assert "90 jours" in text(fr, "appeal")
    assert "par Samira Idrissi, agent d'accueil (guichet)" in text(fr, "printed")
    assert text(fr, "status-code") == await scene.status_code(scene.brahim_claim)
    assert "عون الاستقبال (الشباك)" in text(ar, "printed")


async def test_a_sheet_not_decided_yet_has_no_letter(scene):
    queued = await scene.submit(DOCTOR, _sheet("pa", "cov-a", "cnss", [b.act("C", 80, b.days_ago(1))]))
    row = await scene.ledger(queued)
    resp = await scene.get(AMINA, f"/ClaimResponse/{row.response_id}/$letter")
    assert resp.status_code == 409 and resp.json()["issue"][0]["code"] == "conflict"
    assert "pas encore décidée" in resp.json()["issue"][0]["diagnostics"]


async def test_letters_are_html_or_pdf(scene):
    letter = f"/ExplanationOfBenefit/{scene.amina.eob_id}/$letter"
    resp = await scene.get(AMINA, letter, Accept="application/fhir+json")
    assert resp.status_code == 406
    issue = resp.json()["issue"][0]
    assert issue["code"] == "not-supported" and issue["expression"] == ["http.Accept"]
    assert "text/html" in issue["diagnostics"] and "application/pdf" in issue["diagnostics"]
    resp = await scene.get(AMINA, letter + "?_format=docx")
    assert resp.status_code == 406 and resp.json()["issue"][0]["expression"] == ["http._format"]
    # PDF when asked for (or preferred), laid out by WeasyPrint: Arabic shaped and in reading order
    for ask in ({"Accept": "application/pdf"}, {"Accept": "text/html;q=0.5, application/pdf"}):
        pdf = await scene.get(AMINA, letter, **ask)
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf", ask
    pages = [p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.content)).pages]
    assert len(pages) == 2  # Arabic, then French
    assert "قرار التكفل" in pages[0] and "تمت الموافقة الجزئية على التكفل" in pages[0]
    assert "Décision de prise en charge" in pages[1] and "80,00" in pages[1]
    as_format = await scene.get(AMINA, letter + "?_format=pdf")
    assert as_format.headers["content-type"] == "application/pdf"
    report = await scene.get(AMINA, "/Patient/pa/$access-report", Accept="application/pdf")
    assert report.status_code == 200 and "بيان الاطلاع على ملفكم الطبي" in pypdf.PdfReader(io.BytesIO(report.content)).pages[0].extract_text()
    # what a browser sends is fine; other operations still answer FHIR JSON only
    _sections(await scene.get(AMINA, letter, Accept="text/html,application/xhtml+xml,*/*;q=0.8"))
    everything = await scene.get(AMINA, "/Patient/pa/$everything", Accept="text/html")
    assert everything.status_code == 406
    async with scene.client(None) as anonymous:
        capability = (await anonymous.get("/metadata")).json()
    ops = {(r["type"], o["name"]) for r in capability["rest"][0]["resource"] for o in r.get("operation", [])}
    assert {("ExplanationOfBenefit", "letter"), ("ClaimResponse", "letter"), ("PaymentReconciliation", "letter"),
            ("Patient", "access-report")} <= ops


async def _reconciliation(scene, row) -> str:
    async with scene.app.state.engine.connect() as conn:
        return (await conn.execute(select(claim_payment.c.reconciliation_id).where(claim_payment.c.ledger_id == row.id))).scalar_one()


async def test_the_payment_notice_lists_what_was_reimbursed(scene):
    s = scene.app.state.security.settings
    await pay_day(scene.app.state.engine, today(), base_url=s.base_url, tz="Africa/Casablanca")
    amina_rec = f"/PaymentReconciliation/{await _reconciliation(scene, scene.amina)}/$letter"
    brahim_rec = f"/PaymentReconciliation/{await _reconciliation(scene, scene.brahim)}/$letter"

    ar, fr = _sections(await scene.get(AMINA, amina_rec)).values()
    assert "Avis de paiement" in text(fr, "masthead") and "إشعار بالأداء" in text(ar, "masthead")
    paid_on = today().strftime("%d/%m/%Y")
    assert f"L'organisme a versé 56,00 DH le {paid_on} à l'assuré(e) Amina Alaoui" in text(fr, "summary")
    assert "56,00 درهم" in text(ar, "summary")
    (line,) = _lines(fr)
    assert text(line, "sheet") == scene.amina.claim_identifier
    assert text(line, "status-code") == await scene.status_code(scene.amina_claim)
    assert "Code de suivi" in text(fr, "lines") and "رمز التتبع" in text(ar, "lines")
    assert text(line, "date") == b.days_ago(3).strftime("%d/%m/%Y")
    assert text(line, "beneficiary") == "Amina Alaoui" and text(line, "provider") == "Karim Bennani"
    assert text(line, "kind") == "Remboursement" and text(line, "paid") == "56,00 DH"
    assert "•••••456" in text(fr, "payee")
    # and now the letter says the decision was paid
    decision = _sections(await scene.get(AMINA, f"/ExplanationOfBenefit/{scene.amina.eob_id}/$letter"))["fr"]
    assert f"Payé le {paid_on}." in text(decision, "payee")

    assert (await scene.get(None, amina_rec)).status_code == 401
    for stranger in (BRAHIM, CNOPS_AGENT, COUNTER, DOCTOR):
        assert (await scene.get(stranger, amina_rec)).status_code in (403, 404), stranger
    assert (await scene.get(BRAHIM, amina_rec)).status_code == 404
    assert (await scene.get(CNOPS_AGENT, amina_rec)).status_code == 404
    assert (await scene.get(COUNTER, amina_rec)).status_code == 404  # not a sheet they entered
    _sections(await scene.get(CNSS_AGENT, amina_rec))
    # Brahim's reimbursement: every sheet in it was entered at the counter
    _, brahim_fr = _sections(await scene.get(COUNTER, brahim_rec)).values()
    assert "64,00 DH" in text(brahim_fr, "summary") and "Brahim Berrada" in text(brahim_fr, "summary")
    assert text(_lines(brahim_fr)[0], "status-code") == await scene.status_code(scene.brahim_claim)
    assert (await scene.get(CNSS_AGENT, brahim_rec)).status_code == 404


async def test_the_access_report_shows_who_looked_and_the_printing_itself(scene):
    async with scene.client(DOCTOR) as doctor:
        assert (await doctor.get("/Patient/pb")).status_code == 200
    _sections(await scene.get(COUNTER, f"/ExplanationOfBenefit/{scene.brahim.eob_id}/$letter"))
    report = "/Patient/pb/$access-report"

    ar, fr = _sections(await scene.get(BRAHIM, report)).values()
    assert "Relevé des accès à votre dossier médical" in text(fr, "masthead")
    assert "بيان الاطلاع على ملفكم الطبي" in text(ar, "masthead")
    assert "Brahim Berrada" in text(fr, "patient") and "CD654321" not in text(fr)
    rows = [[text(r, c) for c in ("who", "what", "why")] for r in fr.xpath(".//tr[contains(@class, 'access')]")]
    assert ["Samira Idrissi, agent d'accueil (guichet)", "Lettre imprimée au guichet — décision de prise en charge",
            "Démarche au guichet pour le patient"] == rows[0]  # newest first
    assert ["Karim Bennani, professionnel de santé", "Consultation — fiche d'identité", "Soins"] in rows
    assert text(fr.xpath(".//tr[contains(@class, 'access')]")[0], "when").startswith(today().strftime("%d/%m/%Y"))
    ar_rows = [text(r, "what") for r in ar.xpath(".//tr[contains(@class, 'access')]")]
    assert ar_rows[0] == "رسالة مطبوعة لدى الشباك — قرار التكفل"

    # at the counter, Brahim proves who he is and the agent prints it for him; it is in his trail too
    assert (await scene.get(COUNTER, report)).status_code == 404  # not without him
    async with scene.client(COUNTER) as counter:
        proof = {"resourceType": "Parameters", "parameter": [
            {"name": "identifier", "valueIdentifier": {"system": CIN, "value": "CD654321"}}, {"name": "birthDate", "valueDate": "1975-06-07"}]}
        assert (await counter.post("/Patient/pb/$assist", json=proof, headers={"Accept": "application/fhir+json"})).status_code == 200
    _, by_counter = _sections(await scene.get(COUNTER, report)).values()
    seen = [[text(r, "what"), text(r, "who")] for r in by_counter.xpath(".//tr[contains(@class, 'access')]")]
    assert ["Relevé des accès imprimé", "Brahim Berrada, le patient"] in seen
    assert "par Samira Idrissi, agent d'accueil (guichet)" in text(by_counter, "printed")
    again = _sections(await scene.get(BRAHIM, report))["fr"]
    assert text(again.xpath(".//tr[contains(@class, 'access')]")[0], "what") == "Relevé des accès imprimé au guichet"

    # nobody else reads Brahim's trail
    assert (await scene.get(None, report)).status_code == 401
    assert (await scene.get(AMINA, report)).status_code == 404
    # the report is for the patient and the counter only: other roles are refused whoever the patient
    assert (await scene.get(CNSS_AGENT, report)).status_code == 403
    assert (await scene.get(DOCTOR, report)).status_code == 403  # reads his record, never his trail


async def test_the_access_report_since_a_date(scene):
    tomorrow = (today() + timedelta(days=1)).isoformat()
    fr = _sections(await scene.get(BRAHIM, f"/Patient/pb/$access-report?_since={tomorrow}"))["fr"]
    assert text(fr, "empty") == "Aucun accès enregistré sur la période."
    assert f"depuis le {(today() + timedelta(days=1)).strftime('%d/%m/%Y')}" in text(fr, "masthead")
    resp = await scene.get(BRAHIM, "/Patient/pb/$access-report?_since=hier")
    assert resp.status_code == 400
    issue = resp.json()["issue"][0]
    assert issue["code"] == "invalid" and issue["expression"] == ["http._since"]


async def test_the_letter_follows_the_claims_story(scene):
    """Under appeal, the letter says so and until when; once a correction replaces the sheet,
    the old letter points to the corrected one and offers no appeal."""
    letter = f"/ExplanationOfBenefit/{scene.amina.eob_id}/$letter"
    appeal = {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "L'acte XYZ était urgent"}]}
    async with scene.client(AMINA) as amina:
        assert (await amina.post(f"/Claim/{scene.amina_claim}/$appeal", json=appeal)).status_code == 201
    fr = _sections(await scene.get(AMINA, letter))["fr"]
    day = today().strftime("%d/%m/%Y")
    assert text(fr, "appeal") == f"Recours Un recours est en cours d'examen depuis le {day} ; décision au plus tard le " \
                                 f"{(today() + timedelta(days=2)).strftime('%d/%m/%Y')}."

    correction = _sheet("pa", "cov-a", "cnss", [b.act("C", 80, b.days_ago(3))])
    correction["related"] = [{"claim": {"reference": f"Claim/{scene.brahim_claim}"},
                              "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship",
                                                           "code": "prior"}]}}]
    correction["patient"] = {"reference": "Patient/pb"}
    correction["insurance"][0]["coverage"] = {"reference": "Coverage/cov-b"}
    correction["insurer"] = {"reference": "Organization/cnops"}
    corrected = await scene.submit(COUNTER, correction)
    await Worker(scene.app.state.engine, base_url=BASE, name="test-worker").run_once()
    number = (await scene.ledger(corrected)).claim_identifier
    fr = _sections(await scene.get(COUNTER, f"/ExplanationOfBenefit/{scene.brahim.eob_id}/$letter"))["fr"]
    assert f"remplacée par celle de la feuille corrigée n° {number}" in text(fr, "superseded")
    assert not fr.xpath(".//*[@class='appeal']")
    _sections(await scene.get(COUNTER, f"/ExplanationOfBenefit/{(await scene.ledger(corrected)).eob_id}/$letter"))

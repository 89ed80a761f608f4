"""The printed care sheet: ``GET Claim/{id}/$print``.

One page (A5, or A4 with ``?format=A4``), Arabic and French side by side, printed like the
prescription (``interop.paper.prescription``): the care sheet number in large type and its signed
QR code (``SJC1.<number>.<signature>``: its own tag, so a pharmacy never takes it for a
prescription), the provider (name, INPE), the patient (name, CIN masked), the date, each line
(act or medicine code and label, quantity, price), the total, the fund it was routed to
(``Claim.insurer``) and, once the sheet has one, its status code (``claims.messaging.status_code``)
with which the patient asks where it stands.  HTML or PDF by ``Accept``.

Who prints: the provider who reads the sheet (doctor, pharmacist), the patient (or a guardian),
and the counter agent on a sheet they entered or for the patient they serve (``$assist``);
anyone else 403, out of scope 404.  The printing is recorded in the patient's trail.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from claims.messaging.status_code import existing_code, shown
from claims.money import to_decimal
from claims.lookups import identifier_value
from claims.uris import CLAIM_NUMBER, FUND
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError, not_found
from ehr.security.prescription_signature import CARE_SHEET_TAG, code
from ehr.security.roles import Role
from ehr.store.db import read_connection
from interop.paper.access import assisted, readable, request_security, require_readable
from interop.paper.catalogue import Bilingual
from interop.paper.directory import Party, concept_label, fund_name, load, party
from interop.paper.letter import deliver, printed
from interop.paper.printout import page_size, qr
from interop.paper.rendering import HTML, PDF, negotiate

PRINTERS = frozenset({Role.DOCTOR, Role.PHARMACIST, Role.PATIENT, Role.PAPER_AGENT})


@dataclass(frozen=True)
class Line:
    label: Bilingual
    code: str | None
    quantity: Decimal | None
    price: Decimal | None  # the line's amount asked (Claim.item.net)


@dataclass(frozen=True)
class CareSheet:
    number: str
    qr: str  # the QR code, a PNG data: URL
    created: str | None
    provider: Party
    patient: Party
    fund: Bilingual | None
    lines: list[Line]
    total: Decimal | None
    status_code: str | None
    size: str


@operation("print", levels={"instance"}, types={"Claim"}, produces={HTML, PDF}, checks_target=True,
           callers=PRINTERS, definition="https://fhir.sijill.ma/OperationDefinition/Claim-print")
async def print_care_sheet(inv: Invocation):
    media = negotiate(inv.request)
    size = page_size(inv)
    async with read_connection(inv.engine) as conn:
        target = await _target(conn, inv)
        sheet = await build(conn, inv, target.resource(), size)
        stamp = await printed(conn, inv, _patient(target.resource()), target.version_id)
    return await deliver(inv, media, "care-sheet.html", patients=[f"Patient/{_patient(target.resource())}"],
                         doc=sheet, kind="cs", printed=stamp)


def _patient(claim: dict) -> str:
    return ((claim.get("patient") or {}).get("reference") or "/").split("/", 1)[1]


async def _target(conn: AsyncConnection, inv: Invocation):
    """The sheet as the caller may print it: read by them (the counter agent: one they entered),
    or the counter agent serving its patient."""
    security = request_security(inv)
    if security.role not in PRINTERS and security.role is not Role.UNRESTRICTED:
        raise FHIRError.of(403, "forbidden", "Une feuille de soins est imprimée par le prestataire, le patient, ou au guichet")
    if security.role is Role.PAPER_AGENT:
        target = await readable(conn, inv, "Claim", inv.res_id)
        if target is None:
            target = await readable(conn, inv, "Claim", inv.res_id, as_caller=False)
            if target is None or not assisted(inv, _patient(target.resource())):
                raise not_found("Claim", inv.res_id)
    else:
        target = await require_readable(conn, inv, "Claim", inv.res_id)
    if identifier_value(target.resource(), CLAIM_NUMBER) is None:
        raise FHIRError.of(422, "business-rule", "Cette feuille de soins ne porte pas de numéro : rien à imprimer", "Claim.identifier")
    return target


def _line(item: dict) -> Line:
    concept = item.get("productOrService") or {}
    coding = next(iter(concept.get("coding") or []), {})
    label = (concept_label(coding.get("system"), coding.get("code"))
             or Bilingual.same(concept.get("text") or coding.get("display") or coding.get("code") or "?"))
    net = item.get("net") or {}
    return Line(label, coding.get("code"), to_decimal((item.get("quantity") or {}).get("value")), to_decimal(net.get("value")))


async def build(conn: AsyncConnection, inv: Invocation, claim: dict, size: str) -> CareSheet:
    number = identifier_value(claim, CLAIM_NUMBER)
    patient_ref = f"Patient/{_patient(claim)}"
    provider_ref, insurer_ref = ((claim.get(k) or {}).get("reference") for k in ("provider", "insurer"))
    people = await load(conn, [patient_ref, provider_ref, insurer_ref])
    insurer = people.get(insurer_ref or "")
    fund = fund_name(identifier_value(insurer, FUND) or "", insurer) if insurer is not None else None
    lines = [_line(item) for item in claim.get("item") or []]
    total = to_decimal((claim.get("total") or {}).get("value"))
    if total is None and lines and all(x.price is not None for x in lines):
        total = sum((x.price for x in lines), Decimal(0))
    status = await existing_code(conn, claim["id"])
    return CareSheet(
        number, qr(code(inv.settings, number, CARE_SHEET_TAG)), claim.get("created"),
        party(people.get(provider_ref or "")), party(people.get(patient_ref), identify=True), fund, lines, total,
        shown(status) if status else None, size,
    )

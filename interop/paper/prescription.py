"""The printed prescription: ``GET MedicationRequest/{id}/$print``.

One page (A5, or A4 with ``?format=A4``), Arabic and French side by side: the prescription
number in large type and its signed QR code (``ehr.security.prescription_signature``), the
prescriber (name, INPE), the patient (name, CIN masked), the date, and every line of the
prescription — every MedicationRequest sharing the number, for the same patient, that the
caller reads — with its medicine, dosage, quantity, whether a generic may be substituted, until
when it may be dispensed and how many renewals.  HTML or PDF by ``Accept``.

Who prints: the doctor who reads the line, the patient (or a guardian), and the counter agent
serving the patient in person (``$assist``); anyone else 403, out of scope 404.  The printing is
recorded in the patient's trail like every letter.
"""
from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError, not_found
from ehr.search.engine import search
from ehr.security.prescription_number import SYSTEM
from ehr.security.prescription_signature import code
from ehr.security.roles import Role
from ehr.store.db import read_connection
from interop.paper.access import assisted, readable, request_security, require_readable
from interop.paper.catalogue import Bilingual
from interop.paper.directory import Party, concept_label, load, party
from interop.paper.letter import deliver, printed
from interop.paper.printout import page_size, qr
from interop.paper.rendering import HTML, PDF, negotiate

PRINTERS = frozenset({Role.DOCTOR, Role.PATIENT, Role.PAPER_AGENT})
_PERIOD = {"h": Bilingual("heure", "ساعة"), "d": Bilingual("jour", "يوم"), "wk": Bilingual("semaine", "أسبوع"),
           "mo": Bilingual("mois", "شهر")}


@dataclass(frozen=True)
class Line:
    medicine: Bilingual
    code: str | None
    dosage: str | None  # as the doctor wrote it
    frequency: Bilingual | None  # from the structured timing
    quantity: str | None
    substitution: bool
    valid_until: str | None
    renewals: int
    status: str


@dataclass(frozen=True)
class Prescription:
    number: str
    qr: str  # the QR code, a PNG data: URL
    authored: str | None
    prescriber: Party
    patient: Party
    lines: list[Line]
    size: str


@operation("print", levels={"instance"}, types={"MedicationRequest"}, produces={HTML, PDF}, checks_target=True,
           callers={Role.DOCTOR, Role.PATIENT, Role.PAPER_AGENT}, definition="https://fhir.sijill.ma/OperationDefinition/MedicationRequest-print")
async def print_prescription(inv: Invocation):
    media = negotiate(inv.request)
    size = page_size(inv)
    async with read_connection(inv.engine) as conn:
        target = await _target(conn, inv)
        lines = await _lines(conn, inv, target)
        prescription = await build(conn, inv, target, lines, size)
        stamp = await printed(conn, inv, prescription_patient(target), target.version_id)
    return await deliver(inv, media, "prescription.html", patients=[f"Patient/{prescription_patient(target)}"],
                         doc=prescription, kind="rx", printed=stamp)


def prescription_patient(target) -> str:
    return ((target.resource().get("subject") or {}).get("reference") or "/").split("/", 1)[1]


async def _target(conn: AsyncConnection, inv: Invocation):
    """The line as the caller may print it: read by them, or the counter agent serving its patient."""
    security = request_security(inv)
    if security.role not in PRINTERS and security.role is not Role.UNRESTRICTED:
        raise FHIRError.of(403, "forbidden", "Une ordonnance est imprimée par le médecin, le patient, ou au guichet en présence du patient")
    if security.role is Role.PAPER_AGENT:
        target = await readable(conn, inv, "MedicationRequest", inv.res_id, as_caller=False)
        if target is None or not assisted(inv, prescription_patient(target)):
            raise not_found("MedicationRequest", inv.res_id)
    else:
        target = await require_readable(conn, inv, "MedicationRequest", inv.res_id)
    group = target.resource().get("groupIdentifier") or {}
    if group.get("system") != SYSTEM or not group.get("value"):
        raise FHIRError.of(422, "business-rule", "Cette ligne ne porte pas de numéro d'ordonnance : rien à imprimer",
                           "MedicationRequest.groupIdentifier")
    return target


async def _lines(conn: AsyncConnection, inv: Invocation, target) -> list[dict]:
    """Every line of the prescription the caller reads (the agent serving the patient: all)."""
    number = target.resource()["groupIdentifier"]["value"]
    access = None if request_security(inv).role is Role.PAPER_AGENT else inv.access
    found = await search(conn, "MedicationRequest", [("group-identifier", f"{SYSTEM}|{number}"),
                                                     ("subject", f"Patient/{prescription_patient(target)}")],
                         base_url=inv.settings.base_url, access=access, default_count=100, max_count=100)
    return [e["resource"] for e in orjson.loads(found.bundle).get("entry") or []]


def _line(res: dict) -> Line:
    medication = res.get("medicationCodeableConcept") or {}
    coding = next(iter(medication.get("coding") or []), {})
    label = (concept_label(coding.get("system"), coding.get("code"))
             or Bilingual.same(medication.get("text") or coding.get("display") or coding.get("code") or "?"))
    dosage = next(iter(res.get("dosageInstruction") or []), {})
    repeat = (dosage.get("timing") or {}).get("repeat") or {}
    frequency = None
    if repeat.get("frequency") and repeat.get("periodUnit") in _PERIOD:
        unit, period = _PERIOD[repeat["periodUnit"]], repeat.get("period", 1)
        every = f"{repeat['frequency']} × / " + ("" if period == 1 else f"{period:g} ")
        frequency = Bilingual(every + unit.fr, every + unit.ar)
    supply = res.get("dispenseRequest") or {}
    quantity = supply.get("quantity") or {}
    return Line(
        label, coding.get("code"), dosage.get("text"), frequency,
        f"{quantity['value']:g} {quantity.get('unit') or ''}".strip() if "value" in quantity else None,
        (res.get("substitution") or {}).get("allowedBoolean", True) is not False,
        (supply.get("validityPeriod") or {}).get("end"), supply.get("numberOfRepeatsAllowed", 0), res.get("status", ""),
    )


async def build(conn: AsyncConnection, inv: Invocation, target, lines: list[dict], size: str) -> Prescription:
    res = target.resource()
    number = res["groupIdentifier"]["value"]
    patient_ref, requester = f"Patient/{prescription_patient(target)}", (res.get("requester") or {}).get("reference")
    people = await load(conn, [patient_ref, requester])
    return Prescription(
        number, qr(code(inv.settings, number)), min((x.get("authoredOn", "") for x in lines), default=None) or None,
        party(people.get(requester or "")), party(people.get(patient_ref), identify=True), [_line(x) for x in lines], size,
    )

"""The demo's story: the file of the ``patient`` user and what every other demo user finds to act on.

``Patient/demo-patient`` (Fatima Zahra Alaoui, CIN BK123456, born 1985-04-12, CNSS) gets a
two-year history with the demo doctor: visits with their periods (the last one days ago, so
the doctor's care relationship is current), a type 2 diabetes (an ALD) and a hypertension, a
resolved sore throat, HbA1c, blood pressure and weight over time, a penicillin allergy, a
long-term prescription renewed at each visit (the current one not dispensed yet: the
pharmacist's), a dispense, and a consultation report.  ``claims_story`` then sends her care
sheets (decided by the worker, paid by the demo's payment run), a care sheet an agent of the
CNSS must decide, and one for the patient the counter agent serves.

The walk-in patients are generated ones chosen by rule among those loaded: adults with a CIN
the demo doctor has no relationship with.  Everything is written once (the first visit is the
marker), through the same transaction and submission paths as the API.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ehr.demo import terminology as t
from ehr.demo.chart import link_as_id
from ehr.demo.clinical import ClinicalHistory
from ehr.demo.places import CITIES
from ehr.demo.reference import reference_population
from ehr.demo.rng import moment
from ehr.demo.systems import CIN
from ehr.security.audit import audit_events
from ehr.security.prescription_number import SYSTEM as RX_SYSTEM, seeded_number
from ehr.security.principal import Principal
from ehr.security.roles import Role

DEMO_PATIENT = "demo-patient"
DEMO_DOCTOR = "demo-doctor"
DEMO_PHARMACY = "demo-pharmacy"
DOCTOR_PATIENTS = 5  # generated patients the demo doctor saw today (ehr.demo_load)
MARKER = ("Encounter", "demo-patient-visit-1")
CURRENT_PRESCRIPTION = "demo-patient-rx-4-1"  # its first line; the pharmacist's to dispense
# What the demo doctor opens at a follow-up visit: (interaction, resource or searched type, query).
_CONSULTATION = (
    ("read", f"Patient/{DEMO_PATIENT}", None),
    ("search-type", "Observation", f"patient=Patient/{DEMO_PATIENT}&code=4548-4&_sort=-date"),
    ("search-type", "Condition", f"patient=Patient/{DEMO_PATIENT}&clinical-status=active"),
    ("search-type", "MedicationRequest", f"patient=Patient/{DEMO_PATIENT}&status=active"),
    ("read", "DocumentReference/demo-patient-report-1", None),
)
# Days before today of the demo doctor's visits; HbA1c %, blood pressure, weight kg at each.
VISITS = ((700, 8.4, (152, 96), 81.0), (360, 7.6, (141, 90), 78.5), (25, 7.1, (134, 85), 76.0), (4, 6.8, (128, 82), 75.0))


@dataclass(frozen=True)
class WalkIns:
    """Generated patients the story picks: for the doctor (not in care) and the counter agent."""

    doctor: dict  # the Patient resource
    counter: dict


class DemoPatientChart(ClinicalHistory):
    """Demo-patient's file, written with the generator's builders (same shapes, same codes)."""

    def __init__(self, seed: int, today: date) -> None:
        ref = reference_population(seed)
        self.today = today  # the story is told relative to the day it is loaded
        super().__init__(seed, "demo", ref, link_as_id)
        self.id = DEMO_PATIENT
        self._subject_ref = f"Patient/{DEMO_PATIENT}"
        self.gender, self.born = "female", date(1985, 4, 12)
        self.city = next(c for c in CITIES if c.fr == "Rabat")
        self.services = ref.near(self.city)
        self.gp = (DEMO_DOCTOR, self.services.outpatient[0])

    def _next_id(self, abbr: str) -> str:
        self.n += 1
        return f"demo-patient-{abbr}-{self.n}"

    def coverage(self) -> dict:
        return {
            "resourceType": "Coverage", "id": "demo-patient-amo", "status": "active",
            "identifier": [{"system": "https://fhir.sijill.ma/sid/cnss", "value": "112233445"}],
            "type": t.concept(t.ACT_CODE, "PUBLICPOL", "public healthcare"),
            "subscriber": self._subject(), "subscriberId": "112233445", "beneficiary": self._subject(),
            "relationship": t.concept(t.SUBSCRIBER_REL, "self", "Self"),
            "period": {"start": "2009-09-01"}, "payor": [{"reference": "Organization/cnss", "display": "CNSS"}], "order": 1,
            "class": [{"type": t.concept(t.COVERAGE_CLASS, "plan", "Plan"), "value": "salaries",
                       "name": "AMO des salariés du secteur privé"}],
        }

    def build(self) -> list[dict]:
        diabetes = self._condition(t.DISEASE["diabetes2"], self.today - timedelta(days=VISITS[0][0]), encounter=None,
                                   recorder=DEMO_DOCTOR)
        hypertension = self._condition(t.DISEASE["hypertension"], self.today - timedelta(days=VISITS[1][0]), encounter=None,
                                       recorder=DEMO_DOCTOR)
        out = [self.coverage(), diabetes, hypertension, self._allergy()]
        for n, (ago, hba1c, (systolic, diastolic), weight) in enumerate(VISITS, 1):
            on = self.today - timedelta(days=ago)
            when = moment(on, 9 * 60 + 30)
            enc, _ = self._encounter("AMB", "AMB", on, DEMO_DOCTOR, self.gp[1], [diabetes["id"]], t.SPECIALTY["general"])
            enc["id"] = f"demo-patient-visit-{n}"
            out.append(enc)
            out.append(self._lab(enc, when, t.LAB["hba1c"], hba1c, self.services.labs[0]))
            out.append(self._blood_pressure(enc, when, DEMO_DOCTOR, systolic, diastolic))
            out.append(self._vital(enc, when, t.WEIGHT, weight, DEMO_DOCTOR))
            if n == 3:
                sore_throat = self._condition(t.DISEASE["pharyngitis"], on, encounter=enc["id"], recorder=DEMO_DOCTOR)
                sore_throat["clinicalStatus"] = t.concept(t.CONDITION_CLINICAL, "resolved", "Resolved")
                sore_throat["abatementDateTime"] = (on + timedelta(days=8)).isoformat()
                out.append(sore_throat)
            if n >= 3:
                out.extend(self._prescription(enc, on, when, current=n == 4))
        out.append(self._report())
        return out

    def _allergy(self) -> dict:
        penicillin = next(a for a in t.ALLERGENS if "enicillin" in a.display)
        return {
            "resourceType": "AllergyIntolerance", "id": "demo-patient-allergy-1",
            "clinicalStatus": t.concept(t.ALLERGY_CLINICAL, "active", "Active"),
            "verificationStatus": t.concept(t.ALLERGY_VER, "confirmed", "Confirmed"),
            "type": "allergy", "category": [penicillin.category], "criticality": "high",
            "code": t.concept(t.SNOMED, penicillin.snomed, penicillin.display, penicillin.fr),
            "patient": self._subject(), "onsetDateTime": "2003-06-01", "recordedDate": "2003-06-01",
            "recorder": {"reference": f"Practitioner/{DEMO_DOCTOR}"},
        }

    def _prescription(self, enc: dict, on: date, when: str, *, current: bool) -> list[dict]:
        """Metformin and amlodipine: one prescription (the server numbers it) and, for the
        earlier one, its dispense at the demo pharmacy."""
        out = []
        for line, key in enumerate(("metformin", "amlodipine"), 1):
            mr = self._medication_request(enc, on, when, t.MEDICINE[key], DEMO_DOCTOR, None, "")
            mr["id"] = f"demo-patient-rx-{enc['id'][-1]}-{line}"
            mr["status"] = "active" if current else "completed"
            mr["groupIdentifier"] = {"system": RX_SYSTEM, "value": seeded_number(f"demo-patient:{enc['id']}")}  # one per visit
            mr.get("dispenseRequest", {}).pop("performer", None)
            out.append(mr)
            if not current:
                out.append({
                    "resourceType": "MedicationDispense", "id": f"{mr['id']}-dispense", "status": "completed",
                    "medicationCodeableConcept": mr["medicationCodeableConcept"], "subject": self._subject(),
                    "authorizingPrescription": [{"reference": f"MedicationRequest/{mr['id']}"}],
                    "performer": [{"actor": {"reference": f"Organization/{DEMO_PHARMACY}"}}],
                    "quantity": {"value": 1}, "whenHandedOver": moment(on, 11 * 60),
                })
        return out

    def _report(self) -> dict:
        text = ("Compte rendu de consultation — Dr Amina Benali\n"
                "Diabète de type 2 équilibré (HbA1c 6,8 %), HTA contrôlée. Poursuite metformine et amlodipine.\n")
        return {
            "resourceType": "DocumentReference", "id": "demo-patient-report-1", "status": "current",
            "type": t.concept(t.LOINC, "11488-4", "Consult note", "Compte rendu de consultation"),
            "subject": self._subject(), "date": moment(self.today - timedelta(days=VISITS[-1][0]), 10 * 60),
            "author": [{"reference": f"Practitioner/{DEMO_DOCTOR}"}],
            "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "language": "fr",
                                        "title": "Compte rendu de consultation",
                                        "data": base64.b64encode(text.encode()).decode()}}],
            "context": {"encounter": [{"reference": "Encounter/demo-patient-visit-4"}]},
        }


def pick_walk_ins(patients: list[dict]) -> WalkIns | None:
    """Adults with a CIN and a birth date, not among the demo doctor's patients: the first for
    the doctor, the second for the counter agent (None when the population is too small)."""
    found = [p for p in sorted(patients, key=lambda p: index_of(p["id"]))
             if index_of(p["id"]) >= DOCTOR_PATIENTS and p.get("birthDate") and cin_of(p)]
    return WalkIns(found[0], found[1]) if len(found) >= 2 else None


def index_of(pid: str) -> int:
    tail = pid.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def cin_of(patient: dict) -> str | None:
    return next((i["value"] for i in patient.get("identifier", []) if i.get("system") == CIN), None)


def doctor_consultations(today: date, issuer: str) -> list[dict]:
    """The audit trail of the demo doctor's last two follow-up visits: what the patient sees in
    "who looked at my file" (the doctor's token comes from ``issuer``, the built-in one)."""
    doctor = Principal(subject="demo-doctor", role=Role.DOCTOR, fhir_user=f"Practitioner/{DEMO_DOCTOR}", issuer=issuer,
                       client_id="sijill-cli")
    events = []
    for ago, *_ in VISITS[2:]:
        opened = datetime.combine(today - timedelta(days=ago), time(9, 25), ZoneInfo("Africa/Casablanca"))
        start_us = int(opened.timestamp()) * 1_000_000
        for k, (interaction, what, query) in enumerate(_CONSULTATION):
            events += audit_events(interaction, doctor, patients=[f"Patient/{DEMO_PATIENT}"], what=what, query=query,
                                   recorded_us=start_us + k * 40_000_000)
    return events

"""A patient's clinical history: encounters with their vitals, labs, diagnoses and
e-prescriptions; chronic conditions, allergies and immunizations (Programme National
d'Immunisation).  Values follow the patient's conditions (diabetics' HbA1c, hypertensives'
blood pressure, children's growth)."""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, timedelta

from ehr.demo import terminology as t
from ehr.demo.chart import Chart
from ehr.demo.rng import TODAY, Weighted, add_months, age_on, day, moment
from ehr.demo.systems import PRESCRIPTION
from ehr.security.prescription_number import seeded_number

MR_CATEGORY = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"

# Growth references (WHO medians, rounded): age in months -> (height male, height female, BMI).
_GROWTH_MONTHS = (0, 3, 6, 12, 24, 36, 60, 96, 120, 144, 168, 204, 240)
_GROWTH = (
    (50, 49, 13.4), (61, 60, 16.5), (68, 66, 17.2), (76, 74, 17.0), (88, 86, 16.3), (96, 95, 15.8),
    (110, 109, 15.3), (128, 127, 16.0), (138, 138, 16.7), (149, 151, 17.8), (163, 159, 19.4),
    (174, 162, 21.0), (176, 162, 22.5),
)

_ACUTE_BY_AGE: dict[int, Weighted] = {}


def _acute_for(age: int, sex: str) -> Weighted:
    key = min(age, 120) * 2 + (sex == "female")
    table = _ACUTE_BY_AGE.get(key)
    if table is None:
        table = _ACUTE_BY_AGE[key] = Weighted(
            (d, d.weight) for d in t.ACUTE if d.min_age <= age <= d.max_age and d.sex in (None, sex)
        )
    return table


def _growth(months: int, male: bool) -> tuple[float, float]:
    """Median (height cm, BMI) at an age in months, linearly interpolated."""
    if months >= _GROWTH_MONTHS[-1]:
        row = _GROWTH[-1]
        return (row[0] if male else row[1]), row[2]
    i = bisect_right(_GROWTH_MONTHS, months) - 1
    m0, m1 = _GROWTH_MONTHS[i], _GROWTH_MONTHS[i + 1]
    f = (months - m0) / (m1 - m0)
    a, b = _GROWTH[i], _GROWTH[i + 1]
    h0, h1 = (a[0], b[0]) if male else (a[1], b[1])
    return h0 + (h1 - h0) * f, a[2] + (b[2] - a[2]) * f


@dataclass
class ChronicCondition:
    disease: t.Disease
    condition_id: str
    onset: date
    medicines: tuple[str, ...]


@dataclass
class Visit:
    """An encounter and everything recorded during it: kept or dropped as a whole."""

    when: date
    resources: list[dict] = field(default_factory=list)


class ClinicalHistory(Chart):
    """Builders of the clinical resources of one patient."""

    def _condition(self, disease: t.Disease, onset: date, *, encounter: str | None, recorder: str) -> dict:
        chronic = encounter is None
        category = [t.concept(t.CONDITION_CATEGORY, "problem-list-item" if chronic else "encounter-diagnosis",
                              "Problem List Item" if chronic else "Encounter Diagnosis")]
        if disease.ald:
            category.append(t.concept(t.CS_CONDITION_CATEGORY, "ald", "Affection de longue durée (ALD)"))
        resolved = not chronic and (TODAY - onset).days > 30
        cond = {
            "resourceType": "Condition",
            "id": self._next_id("cond"),
            "clinicalStatus": t.concept(t.CONDITION_CLINICAL, "resolved" if resolved else "active",
                                        "Resolved" if resolved else "Active"),
            "verificationStatus": t.concept(t.CONDITION_VER, "confirmed", "Confirmed"),
            "category": category,
            "code": t.concept(t.ICD10, disease.icd10, disease.display, disease.fr),
            "subject": self._subject(),
            "onsetDateTime": day(onset),
            "recordedDate": day(onset),
            "recorder": {"reference": f"Practitioner/{recorder}"},
        }
        if encounter:
            cond["encounter"] = self._link("Encounter", encounter)
        if resolved:
            cond["abatementDateTime"] = day(onset + timedelta(days=7 + self.rng.randrange(14)))
        return cond

    def _allergies(self) -> list[dict]:
        rng = self.rng
        count = 0 if rng.random() < 0.82 else (1 if rng.random() < 0.8 else 2)
        out = []
        picked: set[str] = set()
        for _ in range(count):
            a = _ALLERGENS.pick(rng)
            if a.snomed in picked:
                continue
            picked.add(a.snomed)
            reaction = t.REACTIONS[rng.randrange(len(t.REACTIONS))]
            severe = reaction[0] == "39579001"
            when = self.born + timedelta(days=rng.randrange(max(1, (TODAY - self.born).days)))
            out.append({
                "resourceType": "AllergyIntolerance",
                "id": self._next_id("alg"),
                "clinicalStatus": t.concept(t.ALLERGY_CLINICAL, "active", "Active"),
                "verificationStatus": t.concept(t.ALLERGY_VER, "confirmed", "Confirmed"),
                "type": "allergy",
                "category": [a.category],
                "criticality": "high" if severe else "low",
                "code": t.concept(t.SNOMED, a.snomed, a.display, a.fr),
                "patient": self._subject(),
                "onsetDateTime": day(when),
                "recordedDate": day(when),
                "recorder": {"reference": f"Practitioner/{self.gp[0]}"},
                "reaction": [{
                    "manifestation": [t.concept(t.SNOMED, *reaction)],
                    "severity": "severe" if severe else ("moderate" if rng.random() < 0.4 else "mild"),
                }],
            })
        return out

    def _immunization(self, vaccine: t.Vaccine, when: date, dose: int | None) -> dict:
        rng = self.rng
        imm = {
            "resourceType": "Immunization",
            "id": self._next_id("imm"),
            "status": "completed",
            "vaccineCode": t.concept(t.CVX, vaccine.cvx, vaccine.display, vaccine.fr),
            "patient": self._subject(),
            "occurrenceDateTime": moment(when, 540 + rng.randrange(420)),
            "primarySource": True,
            "lotNumber": f"{chr(65 + rng.randrange(26))}{chr(65 + rng.randrange(26))}{rng.randrange(10_000):04d}",
            "performer": [{"actor": {"reference": f"Organization/{self._pick(self.services.outpatient)}"}}],
        }
        if dose is not None:
            imm["protocolApplied"] = [{"series": "PNI", "doseNumberPositiveInt": dose}]
        return imm

    def _immunizations(self) -> list[dict]:
        rng = self.rng
        out = []
        months_old = (TODAY - self.born).days * 12 // 365
        if self.born.year >= 2000:  # the current calendar; older records were never digitised
            for months, key, dose in t.PNI_SCHEDULE:
                if months <= months_old and rng.random() < 0.95:
                    when = add_months(self.born, months) + timedelta(days=rng.randrange(10))
                    if when <= TODAY:
                        out.append(self._immunization(t.VACCINES[key], when, dose))
            if self.gender == "female" and months_old >= t.HPV_AGE_MONTHS and self.born.year >= 2011:
                out.append(self._immunization(t.VACCINES["hpv"], add_months(self.born, t.HPV_AGE_MONTHS), 1))
        if self.age >= 18:
            if rng.random() < 0.7:
                out.append(self._immunization(t.VACCINES["covid"], date(2021, 3, 1) + timedelta(days=rng.randrange(240)), 1))
            if self.age >= 60 and rng.random() < 0.3:
                out.append(self._immunization(t.VACCINES["flu"], date(2024, 10, 15) + timedelta(days=rng.randrange(60)), None))
            if self.gender == "female" and 18 <= self.age <= 45 and rng.random() < 0.4:
                out.append(self._immunization(t.VACCINES["td"], TODAY - timedelta(days=rng.randrange(3000)), None))
        return out

    def _vital(self, enc: dict, when: str, vital: t.Vital, value: float, performer: str) -> dict:
        return {
            "resourceType": "Observation",
            "id": self._next_id("obs"),
            "status": "final",
            "category": [_vital_category()],
            "code": t.concept(t.LOINC, vital.loinc, vital.display, vital.fr),
            "subject": self._subject(),
            "encounter": self._link("Encounter", enc["id"]),
            "effectiveDateTime": when,
            "performer": [{"reference": f"Practitioner/{performer}"}],
            "valueQuantity": {"value": value, "unit": vital.unit_display, "system": t.UCUM, "code": vital.unit},
        }

    def _blood_pressure(self, enc: dict, when: str, performer: str, systolic: int, diastolic: int) -> dict:
        obs = self._vital(enc, when, t.BP_PANEL, 0, performer)
        del obs["valueQuantity"]
        obs["component"] = [
            {"code": t.concept(t.LOINC, v.loinc, v.display, v.fr),
             "valueQuantity": {"value": val, "unit": v.unit_display, "system": t.UCUM, "code": v.unit}}
            for v, val in ((t.SYSTOLIC, systolic), (t.DIASTOLIC, diastolic))
        ]
        return obs

    def _lab(self, enc: dict, when: str, lab: t.Lab, value: float, performer_org: str) -> dict:
        value = round(value, lab.decimals)
        flag = ("H", "High") if value > lab.high else (("L", "Low") if value < lab.low else ("N", "Normal"))
        return {
            "resourceType": "Observation",
            "id": self._next_id("obs"),
            "status": "final",
            "category": [_lab_category()],
            "code": t.concept(t.LOINC, lab.loinc, lab.display, lab.fr),
            "subject": self._subject(),
            "encounter": self._link("Encounter", enc["id"]),
            "effectiveDateTime": when,
            "issued": when,
            "performer": [{"reference": f"Organization/{performer_org}"}],
            "valueQuantity": {"value": value, "unit": lab.unit, "system": t.UCUM, "code": lab.unit},
            "interpretation": [t.concept(t.INTERPRETATION, *flag)],
            "referenceRange": [{"low": {"value": lab.low, "unit": lab.unit, "system": t.UCUM, "code": lab.unit},
                                "high": {"value": lab.high, "unit": lab.unit, "system": t.UCUM, "code": lab.unit}}],
        }

    def _lab_value(self, key: str, conditions: set[str]) -> float:
        rng, g = self.rng, self.rng.gauss
        diabetic = "diabetes2" in conditions or "diabetes1" in conditions
        if key == "hba1c":
            return g(7.9, 1.2) if diabetic else g(5.3, 0.35)
        if key == "glucose":
            return max(0.55, g(1.55, 0.35) if diabetic else g(0.92, 0.1))
        if key == "creatinine":
            return max(4.0, g(24, 6) if "ckd" in conditions else g(9 if self.gender == "male" else 7.5, 1.5))
        if key == "urea":
            return max(0.1, g(0.8, 0.2) if "ckd" in conditions else g(0.3, 0.07))
        if key == "cholesterol":
            return max(1.0, g(2.35, 0.3) if "dyslipidaemia" in conditions else g(1.8, 0.25))
        if key == "hdl":
            return max(0.2, g(0.5, 0.1))
        if key == "ldl":
            return max(0.4, g(1.6, 0.3) if "dyslipidaemia" in conditions else g(1.1, 0.25))
        if key == "triglycerides":
            return max(0.3, g(1.9, 0.5) if "dyslipidaemia" in conditions else g(1.0, 0.3))
        if key == "hemoglobin":
            low = "anaemia" in conditions or "ckd" in conditions
            return max(6.0, g(10.2, 1.0) if low else g(14.5 if self.gender == "male" else 13.0, 1.0))
        if key == "tsh":
            return max(0.05, g(6.5, 2.0) if rng.random() < 0.3 else g(2.0, 0.8))
        raise KeyError(key)

    def _medication_request(self, enc: dict, when: date, moment_str: str, med: t.Medicine, prescriber: str,
                            reason: str | None, rx_number: str) -> dict:
        rng = self.rng
        days = med.days or 30
        status = "active" if (TODAY - when).days <= days else "completed"
        per = f"{med.per_day} fois par jour" if med.per_day > 1 else "1 fois par jour"
        dose = med.dose if med.dose != int(med.dose) else int(med.dose)
        duration = f"pendant {med.days} jours" if med.days else "traitement au long cours"
        mr = {
            "resourceType": "MedicationRequest",
            "id": self._next_id("mrq"),
            "status": status,
            "intent": "order",
            "category": [t.concept(MR_CATEGORY, "community", "Community")],
            "medicationCodeableConcept": t.concept(
                t.ATC, med.atc, med.atc_display, f"{med.brand} ({med.dci_fr}) {med.strength}"),
            "subject": self._subject(),
            "encounter": self._link("Encounter", enc["id"]),
            "authoredOn": moment_str,
            "requester": {"reference": f"Practitioner/{prescriber}"},
            "groupIdentifier": {"system": PRESCRIPTION, "value": rx_number},
            "dosageInstruction": [{
                "sequence": 1,
                "text": f"{dose} {med.form} {per}, {duration}",
                "timing": {"repeat": {"frequency": med.per_day, "period": 1, "periodUnit": "d"}},
                "route": t.concept(t.SNOMED, med.route[0], med.route[1], med.route[2]),
                "doseAndRate": [{"doseQuantity": {"value": dose, "unit": med.form}}],
            }],
            "dispenseRequest": {
                "validityPeriod": {"start": day(when), "end": day(when + timedelta(days=90))},
                "quantity": {"value": 1, "unit": "boîte"},
                "numberOfRepeatsAllowed": 0 if med.days else 2,
                "expectedSupplyDuration": {"value": days, "unit": "days", "system": t.UCUM, "code": "d"},
            },
        }
        if med.days:
            mr["dosageInstruction"][0]["timing"]["repeat"]["boundsDuration"] = {
                "value": med.days, "unit": "days", "system": t.UCUM, "code": "d"}
        if rng.random() < 0.5:
            mr["dispenseRequest"]["performer"] = {"reference": f"Organization/{self._pick(self.services.pharmacies)}"}
        if reason:
            mr["reasonReference"] = [self._link("Condition", reason)]
        return mr

    def _encounter(self, cls: str, kind: str, start: date, prac: str, org: str, reasons: list[str],
                   specialty: t.Specialty) -> tuple[dict, str]:
        rng = self.rng
        start_min = 480 + rng.randrange(600) if cls == "AMB" else rng.randrange(1440)
        started = moment(start, start_min)
        if cls == "IMP":
            end = moment(start + timedelta(days=1 + rng.randrange(7)), 600 + rng.randrange(300))
        else:
            end = moment(start, min(start_min + 15 + rng.randrange(cls == "EMER" and 240 or 30), 1439))
        code, display, fr = t.ENCOUNTER_TYPES[kind]
        cls_display, _ = t.ENCOUNTER_CLASSES[cls]
        enc = {
            "resourceType": "Encounter",
            "id": self._next_id("enc"),
            "status": "finished",
            "class": {"system": t.ACT_CODE, "code": cls, "display": cls_display},
            "type": [t.concept(t.SNOMED, code, display, fr)],
            "serviceType": {"coding": [{"system": t.SNOMED, "code": specialty.snomed, "display": specialty.display}],
                            "text": specialty.fr},
            "subject": self._subject(),
            "participant": [{
                "type": [t.concept(t.PARTICIPATION, "PPRF", "primary performer")],
                "individual": {"reference": f"Practitioner/{prac}"},
            }],
            "period": {"start": started, "end": end},
            "serviceProvider": {"reference": f"Organization/{org}"},
        }
        if reasons:
            enc["reasonReference"] = [self._link("Condition", r) for r in reasons]
        return enc, started

    def _visit(self, when: date, chronic: list[ChronicCondition]) -> Visit:
        """One encounter with its vitals, labs, diagnosis and prescriptions."""
        rng = self.rng
        group = Visit(when)
        out = group.resources
        age = age_on(self.born, when)
        active = [c for c in chronic if c.onset <= when]
        keys = {c.disease.key for c in active}
        roll = rng.random()
        if active and roll < 0.55:
            kind, cls, followed = "CHECK", "AMB", active[rng.randrange(len(active))]
            disease = followed.disease
        else:
            followed = None
            disease = _acute_for(age, self.gender).pick(rng)
            kind, cls = ("EMER", "EMER") if roll > 0.93 else (("IMP", "IMP") if roll > 0.91 else ("AMB", "AMB"))
        spec_key = disease.specialty
        if cls == "EMER":
            spec_key = "emergency"
        elif cls == "AMB" and age < 15 and rng.random() < 0.6:
            spec_key = "pediatrics"
        elif cls == "AMB" and spec_key != "general" and rng.random() < 0.4:
            spec_key = "general"  # many follow-ups happen at the family doctor
        prac, org = self._doctor(spec_key)
        if cls in ("EMER", "IMP"):
            org = self._pick(self.services.hospitals)
        specialty = t.SPECIALTY[spec_key]
        reasons = [followed.condition_id] if followed else []
        enc, started = self._encounter(cls, kind, when, prac, org, reasons, specialty)
        out.append(enc)
        self._vitals(out, enc, started, prac, age, kind, keys)
        diagnosis = None
        if followed is None:
            cond = self._condition(disease, when, encounter=enc["id"], recorder=prac)
            out.append(cond)
            diagnosis = cond["id"]
            enc["reasonReference"] = [self._link("Condition", diagnosis)]
        labs = disease.labs if (followed is None and rng.random() < 0.3) or (followed and rng.random() < 0.6) else ()
        if followed and "cholesterol" in labs:
            labs = tuple(k for k in labs if k != "cholesterol") + t.LIPID_PANEL
        if labs:
            lab_org = self._pick(self.services.labs)
            lab_time = moment(when, 480 + rng.randrange(120))
            for key in labs:
                out.append(self._lab(enc, lab_time, t.LAB[key], self._lab_value(key, keys), lab_org))
        meds: list[tuple[t.Medicine, str | None]] = []
        if followed:
            meds = [(t.MEDICINE[m], followed.condition_id) for m in followed.medicines]
        elif disease.medications:
            n = 1 + rng.randrange(len(disease.medications))
            meds = [(t.MEDICINE[m], diagnosis) for m in disease.medications[:n]]
        if meds:
            rx = seeded_number(f"demo:{enc['id']}")  # one e-prescription per encounter
            for med, reason in meds:
                out.append(self._medication_request(enc, when, started, med, prac, reason, rx))
        return group

    def _vitals(self, out: list[dict], enc: dict, when: str, prac: str, age: int, kind: str, keys: set[str]) -> None:
        rng = self.rng
        male = self.gender == "male"
        months = age * 12
        median_h, median_bmi = _growth(months, male)
        height = median_h + self.height_z * (7 if male else 6) * min(1.0, months / 240 + 0.2)
        bmi = median_bmi + self.bmi_offset * min(1.0, months / 216) + rng.gauss(0, 0.4)
        weight = bmi * (height / 100) ** 2
        if age >= 15 and (kind in ("CHECK", "EMER", "IMP") or rng.random() < 0.5):
            hypertensive = "hypertension" in keys
            sys_ = int(rng.gauss(148 if hypertensive else 122, 12))
            dia = int(rng.gauss(92 if hypertensive else 76, 8))
            out.append(self._blood_pressure(enc, when, prac, sys_, min(dia, sys_ - 20)))
        out.append(self._vital(enc, when, t.HEART_RATE, int(rng.gauss(78 if age >= 12 else 105, 9)), prac))
        if kind in ("AMB", "EMER", "IMP"):
            temp = rng.gauss(38.4, 0.6) if rng.random() < 0.5 else rng.gauss(36.9, 0.3)
            out.append(self._vital(enc, when, t.TEMPERATURE, round(temp, 1), prac))
        if kind != "EMER":
            out.append(self._vital(enc, when, t.WEIGHT, round(weight, 1), prac))
            if age < 18 or rng.random() < 0.2:
                out.append(self._vital(enc, when, t.HEIGHT, round(height, 1), prac))
            if age >= 2 and kind == "CHECK":
                out.append(self._vital(enc, when, t.BMI, round(bmi, 1), prac))


_ALLERGENS = Weighted((a, a.weight) for a in t.ALLERGENS)


def _vital_category() -> dict:
    return t.concept(t.OBS_CATEGORY, "vital-signs", "Vital Signs")


def _lab_category() -> dict:
    return t.concept(t.OBS_CATEGORY, "laboratory", "Laboratory")


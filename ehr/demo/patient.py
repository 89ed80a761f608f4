"""One synthetic patient: demographics, identifiers, insurance, then a clinical history.

A patient is generated from its own random stream (see ``ehr.demo.rng``) into a list of
resources (tens, or ~500 for a "heavy" chronic patient): bounded memory per patient, so the
population streams.
"""
from __future__ import annotations

from datetime import date, timedelta

from ehr.demo import places
from ehr.demo import terminology as t
from ehr.demo.chart import Linker
from ehr.demo.clinical import ChronicCondition, ClinicalHistory, Visit
from ehr.demo.names import family_name, person_name
from ehr.demo.reference import FUND, MUTUELLES, ReferencePopulation
from ehr.demo.rng import (
    CIN_SERIES,
    MEMBER_SERIES,
    MUTUELLE_SERIES,
    RNP_SERIES,
    RSU_SERIES,
    TODAY,
    Weighted,
    birth_date,
    day,
    unique_number,
)
from ehr.demo.systems import CIN, MEMBER_SYSTEMS, RNP, RSU

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"

# Moroccan age pyramid, close to the 2024 census: (low, high) years -> share.
_AGE_BANDS = Weighted((
    ((0, 4), 8.5), ((5, 14), 16.5), ((15, 24), 15.5), ((25, 34), 15), ((35, 44), 14),
    ((45, 54), 11.5), ((55, 64), 9.5), ((65, 90), 9.5),
))

# AMO regime code -> (French label, managing fund); who falls in which is drawn below.
REGIMES = {
    "salaries": ("AMO des salariés du secteur privé", "cnss"),
    "tns": ("AMO des travailleurs non salariés", "cnss"),
    "pensionnes": ("AMO des pensionnés", "cnss"),
    "fonctionnaires": ("AMO des fonctionnaires et agents de l'État", "cnops"),
    "tadamon": ("AMO Tadamon", "amo-tadamon"),
}
_WORKING_REGIME = Weighted((("salaries", 44), ("tns", 12), ("fonctionnaires", 14), ("tadamon", 30)))
_RETIRED_REGIME = Weighted((("pensionnes", 45), ("fonctionnaires", 15), ("tadamon", 40)))
_MEMBER_DIGITS = {"cnss": 9, "cnops": 9, "amo-tadamon": 10}


class PatientFactory(ClinicalHistory):
    """Generates the resources of patient ``index`` of population ``seed``."""

    def __init__(
        self, seed: int, index: int, ref: ReferencePopulation, *, budget: int, heavy: bool, link: Linker
    ) -> None:
        super().__init__(seed, index, ref, link)
        self.heavy = heavy
        self.budget = budget

    # -- demographics ----------------------------------------------------------------------
    def _demographics(self) -> None:
        rng = self.rng
        self.gender = "male" if rng.random() < 0.495 else "female"
        if self.heavy:
            self.age = 55 + rng.randrange(30)
        else:
            low, high = _AGE_BANDS.pick(rng)
            self.age = low + rng.randrange(high - low + 1)
        self.born = birth_date(rng, self.age)
        self.city = places.city_of_residence(rng)
        self.services = self.ref.near(self.city)
        self.family = family_name(rng)
        self.name = person_name(rng, self.gender, self.family)
        self.height_z = rng.gauss(0, 1)
        self.bmi_offset = rng.gauss(1.5, 3.5) if self.age >= 18 else rng.gauss(0, 1.2)
        self.gp = self._doctor("general")

    def _chronic_conditions(self) -> list[ChronicCondition]:
        rng = self.rng
        found: list[ChronicCondition] = []
        for d in t.CHRONIC:
            if self.age < d.min_age or (d.sex and d.sex != self.gender):
                continue
            # Prevalence grows with age past the disease's usual onset.
            p = min(0.6, d.weight / 100 * (1 + (self.age - d.min_age) / 25))
            forced = self.heavy and d.key in ("diabetes2", "hypertension")
            if forced or rng.random() < p:
                years = min(self.age - d.min_age, 15)
                onset = TODAY - timedelta(days=365 * rng.randint(0, max(0, years)) + rng.randrange(365))
                onset = max(onset, self.born + timedelta(days=365 * d.min_age))
                meds = d.medications[: 1 + rng.randrange(len(d.medications))] if d.medications else ()
                found.append(ChronicCondition(d, "", onset, meds))
        if self.heavy and rng.random() < 0.5:
            d = t.DISEASE["ckd"]
            if all(c.disease is not d for c in found):
                found.append(ChronicCondition(d, "", TODAY - timedelta(days=365 * 3 + rng.randrange(700)), ()))
        if any(c.disease.key == "obesity" for c in found):
            self.bmi_offset += 8
        return found

    def _ids(self) -> list[dict]:
        rng = self.rng
        ids = []
        if self.age >= 18:
            serial = unique_number(2 * self.index, 7, self.seed, CIN_SERIES)
            ids.append({
                "use": "official",
                "type": {"coding": [{"system": V2_0203, "code": "NI", "display": "National unique individual identifier"}],
                         "text": "Carte nationale d'identité (CIN)"},
                "system": CIN,
                "value": places.cin(rng, self.city, serial),
            })
        if rng.random() < 0.7:
            ids.append({"use": "official", "type": {"text": "Identifiant civil numérique (RNP)"},
                        "system": RNP, "value": str(unique_number(self.index, 10, self.seed, RNP_SERIES))})
        return ids

    # -- insurance -------------------------------------------------------------------------
    def _insurance(self) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
        """(patient identifiers, patient contacts, related persons, coverages)."""
        rng = self.rng
        if self.age < 18:
            relationship, dependant = "child", True
        elif self.gender == "female" and self.age >= 22 and rng.random() < 0.3:
            relationship, dependant = "spouse", True
        else:
            relationship, dependant = "self", False
        regime = (_RETIRED_REGIME if self.age >= 62 and not dependant else _WORKING_REGIME).pick(rng)
        if dependant and regime == "pensionnes":
            regime = "salaries"
        label, fund_id = REGIMES[regime]
        fund = FUND[fund_id]
        digits = _MEMBER_DIGITS[fund_id]
        holder_serial = 2 * self.index + (1 if dependant else 0)
        member_no = str(unique_number(holder_serial, digits, self.seed, MEMBER_SERIES))

        identifiers, contacts, related, coverages = [], [], [], []
        subscriber = self._subject()
        rank = 1
        if dependant:
            holder = self._related_person(relationship)
            related.append(holder)
            subscriber = self._link("RelatedPerson", holder["id"])
            rank = 2 + rng.randrange(4) if relationship == "child" else 1
            if relationship == "child":
                contacts.append({
                    "relationship": [
                        t.concept(t.ROLE_CODE, "GUARD", "guardian"),
                        t.concept(t.V2_0131, "N", "Next-of-Kin"),
                    ],
                    "name": holder["name"][1],
                    "telecom": holder["telecom"],
                    "gender": holder["gender"],
                })
        member_value = member_no if not dependant else f"{member_no}-{rank:02d}"
        identifiers.append({"use": "secondary", "type": t.concept(V2_0203, "MB", "Member Number", f"N° {fund.acronym}"),
                            "system": fund.member_system, "value": member_value,
                            "assigner": {"reference": f"Organization/{fund.id}", "display": fund.acronym}})
        if regime == "tadamon":
            identifiers.append({"use": "secondary", "type": {"text": "Identifiant ménage (RSU)"}, "system": RSU,
                                "value": str(unique_number(self.index, 10, self.seed, RSU_SERIES))})
        start = max(self.born, date(2006, 3, 1) if regime != "tadamon" else date(2022, 12, 1))
        coverages.append(self._coverage(fund_id, regime, label, member_no, member_value, subscriber, relationship,
                                        rank, start, order=1))
        if regime == "fonctionnaires" and rng.random() < 0.6:  # civil servants' complementary mutuelle
            mut = FUND[MUTUELLES[rng.randrange(len(MUTUELLES))]]
            mut_no = f"{mut.acronym}{unique_number(holder_serial, 8, self.seed, MUTUELLE_SERIES)}"
            coverages.append(self._coverage(mut.id, None, f"Couverture complémentaire {mut.acronym}", mut_no,
                                            mut_no, subscriber, relationship, rank, start, order=2))
            identifiers.append({"use": "secondary", "type": t.concept(V2_0203, "MB", "Member Number", mut.acronym),
                                "system": MEMBER_SYSTEMS["mutuelle"], "value": mut_no,
                                "assigner": {"reference": f"Organization/{mut.id}", "display": mut.acronym}})
        return identifiers, contacts, related, coverages

    def _coverage(self, fund_id, regime, label, subscriber_no, member_value, subscriber, relationship, rank,
                  start: date, order: int) -> dict:
        fund = FUND[fund_id]
        cov = {
            "resourceType": "Coverage",
            "id": self._next_id("cov"),
            "identifier": [{"system": fund.member_system, "value": member_value}],
            "status": "active",
            "type": t.concept(t.ACT_CODE, "PUBLICPOL" if order == 1 else "EHCPOL",
                              "public healthcare" if order == 1 else "extended healthcare"),
            "subscriber": subscriber,
            "subscriberId": subscriber_no,
            "beneficiary": self._subject(),
            "dependent": str(rank),
            "relationship": t.concept(t.SUBSCRIBER_REL, relationship, relationship.capitalize()),
            "period": {"start": day(start)},
            "payor": [{"reference": f"Organization/{fund.id}", "display": fund.acronym}],
            "order": order,
        }
        if regime:
            cov["class"] = [{"type": t.concept(t.COVERAGE_CLASS, "plan", "Plan"), "value": regime, "name": label}]
        return cov

    def _related_person(self, relationship: str) -> dict:
        rng = self.rng
        if relationship == "spouse":
            gender, code, display = "male", "HUSB", "husband"
            family = family_name(rng)  # Moroccan women keep their own family name
        else:
            father = rng.random() < 0.6
            gender = "male" if father else "female"
            code, display = ("FTH", "father") if father else ("MTH", "mother")
            family = self.family if father else family_name(rng)
        name = person_name(rng, gender, family)
        city = self.city
        rel = {
            "resourceType": "RelatedPerson",
            "id": self._next_id("rel"),
            "identifier": [{"use": "official", "system": CIN,
                            "value": places.cin(rng, city, unique_number(2 * self.index + 1, 7, self.seed, CIN_SERIES))}],
            "active": True,
            "patient": self._subject(),
            "relationship": [t.concept(t.ROLE_CODE, code, display)],
            "name": name.human_names(),
            "telecom": [{"system": "phone", "value": places.mobile(rng), "use": "mobile"}],
            "gender": gender,
            "address": [self._home()],
        }
        if relationship == "child":
            rel["relationship"].append(t.concept(t.ROLE_CODE, "GUARD", "guardian"))
        return rel

    def _patient(self, identifiers: list[dict], contacts: list[dict]) -> dict:
        rng = self.rng
        p = {
            "resourceType": "Patient",
            "id": self.id,
            "identifier": identifiers,
            "active": True,
            "name": self.name.human_names(),
            "gender": self.gender,
            "birthDate": day(self.born),
            "address": [self._home()],
        }
        if self.age >= 15:
            p["telecom"] = [{"system": "phone", "value": places.mobile(rng), "use": "mobile"}]
        if self.age >= 18:
            status = ("M", "Married") if rng.random() < 0.6 else (("S", "Never Married") if self.age < 40 else ("W", "Widowed"))
            p["maritalStatus"] = t.concept(t.MARITAL, *status)
        if contacts:
            p["contact"] = contacts
        lang = "zgh" if self.city.region.code in ("08", "09") and rng.random() < 0.4 else ("ar" if rng.random() < 0.8 else "fr")
        p["communication"] = [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": lang}]}, "preferred": True}]
        p["generalPractitioner"] = [{"reference": f"Practitioner/{self.gp[0]}"}]
        return p


    # -- assembly --------------------------------------------------------------------------
    def build(self) -> list[dict]:
        self._demographics()
        chronic = self._chronic_conditions()
        identifiers = self._ids()
        ins_ids, contacts, related, coverages = self._insurance()
        patient = self._patient(identifiers + ins_ids, contacts)
        out: list[dict] = [patient, *related, *coverages]
        for c in chronic:
            cond = self._condition(c.disease, c.onset, encounter=None, recorder=self.gp[0])
            c.condition_id = cond["id"]
            out.append(cond)
        out.extend(self._allergies())
        out.extend(self._immunizations())
        remaining = self.budget - len(out)
        if remaining <= 0:
            return out
        # Visits over the last 8 years (or since birth), more often for the chronically ill;
        # generated in date order, then the oldest dropped to fit the patient's budget.
        first = max(self.born, TODAY - timedelta(days=8 * 365))
        span = max(1, (TODAY - first).days)
        planned = remaining // (8 if chronic else 5) + 2  # typical resources per visit
        dates = sorted(first + timedelta(days=self.rng.randrange(span)) for _ in range(planned))
        groups = [self._visit(d, chronic) for d in dates]
        kept: list[Visit] = []
        for g in reversed(groups):
            if len(g.resources) > remaining:
                break
            kept.append(g)
            remaining -= len(g.resources)
        for g in reversed(kept):
            out.extend(g.resources)
        return out



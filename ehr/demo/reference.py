"""The shared reference population: insurance funds, health facilities, practitioners and
their roles, which every patient's records point to (as ``Type/id``).

Funds are national bodies: their ids do not depend on the seed (``Organization/cnss``).
Facilities and practitioners are drawn per city in proportion to its population, and indexed
so that a patient's generator finds "a cardiologist near Fès" in O(1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from ehr.demo import places
from ehr.demo import terminology as t
from ehr.demo.names import person_name
from ehr.demo.rng import INPE_SERIES, Weighted, stream, unique_number
from ehr.demo.systems import FUND_ID, INPE, MEMBER_SYSTEMS


@dataclass(frozen=True)
class Fund:
    id: str
    acronym: str
    fr: str
    ar: str
    city: str
    kind: str  # "amo" (compulsory scheme manager) or "mutuelle" (complementary)
    member_system: str
    part_of: str | None = None


FUNDS = (
    Fund("cnss", "CNSS", "Caisse Nationale de Sécurité Sociale", "الصندوق الوطني للضمان الاجتماعي",
         "Casablanca", "amo", MEMBER_SYSTEMS["cnss"]),
    Fund("cnops", "CNOPS", "Caisse Nationale des Organismes de Prévoyance Sociale",
         "الصندوق الوطني لمنظمات الاحتياط الاجتماعي", "Rabat", "amo", MEMBER_SYSTEMS["cnops"]),
    # AMO Tadamon (ex-RAMED) is run by the CNSS for people unable to pay contributions.
    Fund("amo-tadamon", "AMO Tadamon", "Assurance Maladie Obligatoire Tadamon",
         "التأمين الإجباري الأساسي عن المرض تضامن", "Casablanca", "amo", MEMBER_SYSTEMS["amo-tadamon"], "cnss"),
    Fund("mgpap", "MGPAP", "Mutuelle Générale du Personnel des Administrations Publiques",
         "التعاضدية العامة لموظفي الإدارات العمومية", "Rabat", "mutuelle", MEMBER_SYSTEMS["mutuelle"]),
    Fund("omfam", "OMFAM", "Œuvres de Mutualité des Fonctionnaires et Agents Assimilés du Maroc",
         "تعاضدية الموظفين والأعوان المماثلين بالمغرب", "Rabat", "mutuelle", MEMBER_SYSTEMS["mutuelle"]),
    Fund("mgen", "MGEN", "Mutuelle Générale de l'Éducation Nationale", "التعاضدية العامة للتربية الوطنية",
         "Rabat", "mutuelle", MEMBER_SYSTEMS["mutuelle"]),
    Fund("mfar", "MFAR", "Mutuelle des Forces Armées Royales", "تعاضدية القوات المسلحة الملكية", "Rabat",
         "mutuelle", MEMBER_SYSTEMS["mutuelle"]),
)
FUND = {f.id: f for f in FUNDS}
MUTUELLES = tuple(f.id for f in FUNDS if f.kind == "mutuelle")

# Names private facilities carry, (fr, ar).
_BRAND_NAMES = (
    ("Al Amal", "الأمل"), ("Annour", "النور"), ("Al Fath", "الفتح"), ("Ibn Sina", "ابن سينا"),
    ("Assalam", "السلام"), ("Essaada", "السعادة"), ("Al Wahda", "الوحدة"), ("Al Qods", "القدس"),
    ("Atlas", "الأطلس"), ("Ryad", "الرياض"), ("Annakhil", "النخيل"), ("Al Andalous", "الأندلس"),
    ("Al Farabi", "الفارابي"), ("Ibn Nafis", "ابن النفيس"), ("Al Boustane", "البستان"), ("Yasmine", "الياسمين"),
    ("Dar Salam", "دار السلام"), ("Al Kawtar", "الكوثر"), ("Al Massira", "المسيرة"), ("Al Majd", "المجد"),
    ("Al Hikma", "الحكمة"), ("Ibn Rochd", "ابن رشد"), ("Al Manar", "المنار"), ("Al Irfane", "العرفان"),
)

# (kind code, French label, Arabic label, organization-type code)
KINDS = {
    "chu": ("Centre hospitalier universitaire", "مركز استشفائي جامعي", "prov"),
    "chr": ("Centre hospitalier régional", "مركز استشفائي جهوي", "prov"),
    "chp": ("Centre hospitalier provincial", "مركز استشفائي إقليمي", "prov"),
    "essp": ("Centre de santé (soins primaires)", "مركز صحي", "prov"),
    "clinique": ("Clinique privée", "مصحة خاصة", "prov"),
    "pharmacie": ("Pharmacie d'officine", "صيدلية", "prov"),
    "laboratoire": ("Laboratoire d'analyses médicales", "مختبر التحاليل الطبية", "prov"),
    "fund": ("Organisme gestionnaire de l'AMO", "هيئة مدبرة للتأمين الإجباري عن المرض", "pay"),
}

REGIONAL_CAPITALS = {
    "01": "Tanger", "02": "Oujda", "03": "Fès", "04": "Rabat", "05": "Béni Mellal", "06": "Casablanca",
    "07": "Marrakech", "08": "Errachidia", "09": "Agadir", "10": "Guelmim", "11": "Laâyoune", "12": "Dakhla",
}

_PHYSICIAN_SPECIALTY = Weighted((s, s.weight) for s in t.SPECIALTIES)


@dataclass
class CityServices:
    """What a patient living in a city can use; lists never empty (region/national fallback)."""

    hospitals: list[str] = field(default_factory=list)  # CHU/CHR/CHP of the city or region
    outpatient: list[str] = field(default_factory=list)  # health centres and clinics
    pharmacies: list[str] = field(default_factory=list)
    labs: list[str] = field(default_factory=list)
    doctors: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # specialty -> (prac, org)


@dataclass
class ReferencePopulation:
    seed: int
    resources: list[dict]
    services: dict[str, CityServices]  # by city (French name)

    def near(self, city: places.City) -> CityServices:
        return self.services[city.fr]


def _ref(res_type: str, res_id: str, display: str | None = None) -> dict:
    r = {"reference": f"{res_type}/{res_id}"}
    if display:
        r["display"] = display
    return r


class _Builder:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = stream(seed, "reference")
        self.resources: list[dict] = []
        self.n_org = 0
        self.n_prac = 0
        self.n_inpe = 0
        # city -> kind -> [org ids]; city -> specialty -> [(prac id, org id)]
        self.orgs: dict[str, dict[str, list[str]]] = {c.fr: {} for c in places.CITIES}
        self.doctors: dict[str, dict[str, list[tuple[str, str]]]] = {c.fr: {} for c in places.CITIES}

    def inpe(self) -> str:
        self.n_inpe += 1
        return str(unique_number(self.n_inpe, 9, self.seed, INPE_SERIES))

    def fund(self, f: Fund) -> None:
        city = places.CITY_BY_NAME[f.city]
        label_fr, label_ar, org_type = KINDS["fund"]
        org = {
            "resourceType": "Organization",
            "id": f.id,
            "identifier": [{"use": "official", "system": FUND_ID, "value": f.acronym.upper().replace(" ", "-")}],
            "active": True,
            "type": [
                t.concept(t.ORG_TYPE, "pay", "Payer"),
                t.concept(t.CS_ORG_KIND, "fund" if f.kind == "amo" else "mutuelle",
                          label_fr if f.kind == "amo" else "Mutuelle"),
            ],
            "name": f.fr,
            "alias": [f.acronym, f.ar],
            "address": [places.address(self.rng, city, use="work")],
        }
        if f.part_of:
            org["partOf"] = _ref("Organization", f.part_of)
        self.resources.append(org)

    def facility(self, kind: str, city: places.City, name_fr: str, name_ar: str) -> str:
        self.n_org += 1
        org_id = f"org-{self.seed}-{self.n_org}"
        label_fr, _, org_type = KINDS[kind]
        self.resources.append({
            "resourceType": "Organization",
            "id": org_id,
            "identifier": [{"use": "official", "system": INPE, "value": self.inpe()}],
            "active": True,
            "type": [
                t.concept(t.ORG_TYPE, org_type, "Healthcare Provider"),
                t.concept(t.CS_ORG_KIND, kind, label_fr),
            ],
            "name": name_fr,
            "alias": [name_ar],
            "telecom": [{"system": "phone", "value": places.landline(self.rng, city), "use": "work"}],
            "address": [places.address(self.rng, city, use="work")],
        })
        self.orgs[city.fr].setdefault(kind, []).append(org_id)
        return org_id

    def practitioner(self, city: places.City, specialty: t.Specialty, org_id: str, role: str) -> None:
        self.n_prac += 1
        rng = self.rng
        gender = "female" if rng.random() < 0.45 else "male"
        name = person_name(rng, gender)
        prac_id = f"pra-{self.seed}-{self.n_prac}"
        qualification = ("PharmD", "Doctor of Pharmacy") if role == "pharmacist" else ("MD", "Doctor of Medicine")
        self.resources.append({
            "resourceType": "Practitioner",
            "id": prac_id,
            "identifier": [{"use": "official", "system": INPE, "value": self.inpe()}],
            "active": True,
            "name": name.human_names(prefix_fr="Dr"),
            "telecom": [{"system": "phone", "value": places.mobile(rng), "use": "work"}],
            "gender": gender,
            "qualification": [{"code": t.concept(
                "http://terminology.hl7.org/CodeSystem/v2-0360", qualification[0], qualification[1])}],
            "communication": [t.concept("urn:ietf:bcp:47", "ar", "Arabic"), t.concept("urn:ietf:bcp:47", "fr", "French")],
        })
        role_display = {"doctor": "Doctor", "pharmacist": "Pharmacist"}[role]
        pr = {
            "resourceType": "PractitionerRole",
            "id": f"prr-{self.seed}-{self.n_prac}",
            "active": True,
            "practitioner": _ref("Practitioner", prac_id, f"Dr {name.display()}"),
            "organization": _ref("Organization", org_id),
            "code": [t.concept(t.PRACTITIONER_ROLE, role, role_display)],
        }
        if specialty.snomed:
            pr["specialty"] = [t.concept(t.SNOMED, specialty.snomed, specialty.display, specialty.fr)]
        else:
            pr["specialty"] = [{"text": specialty.fr}]
        self.resources.append(pr)
        if role == "doctor":
            self.doctors[city.fr].setdefault(specialty.key, []).append((prac_id, org_id))

    def build(self) -> ReferencePopulation:
        rng = self.rng
        for f in FUNDS:
            self.fund(f)
        chu_cities = {c for c, _, _ in places.CHU}
        for city_name, fr, ar in places.CHU:
            self.facility("chu", places.CITY_BY_NAME[city_name], fr, ar)
        for city in places.CITIES:
            if REGIONAL_CAPITALS[city.region.code] == city.fr:
                self.facility("chr", city, f"Centre Hospitalier Régional de {city.fr}",
                              f"المركز الاستشفائي الجهوي {city.ar}")
            elif city.fr not in chu_cities:
                self.facility("chp", city, f"Centre Hospitalier Provincial de {city.fr}",
                              f"المركز الاستشفائي الإقليمي {city.ar}")
            areas = city.districts or ((city.fr, city.ar),)
            for n in range(max(1, city.population_k // 250)):
                d_fr, d_ar = areas[n % len(areas)]
                self.facility("essp", city, f"Centre de Santé Urbain {d_fr}" + (f" {n // len(areas) + 1}" if n >= len(areas) else ""),
                              f"المركز الصحي الحضري {d_ar}")
            for kind, per_k, fr_label, ar_label in (
                ("clinique", 200, "Clinique", "مصحة"),
                ("pharmacie", 60, "Pharmacie", "صيدلية"),
                ("laboratoire", 250, "Laboratoire d'Analyses Médicales", "مختبر التحاليل الطبية"),
            ):
                count = city.population_k // per_k + (1 if kind == "pharmacie" else 0)
                for _ in range(count):
                    b_fr, b_ar = _BRAND_NAMES[rng.randrange(len(_BRAND_NAMES))]
                    org_id = self.facility(kind, city, f"{fr_label} {b_fr}", f"{ar_label} {b_ar}")
                    if kind == "pharmacie":
                        self.practitioner(city, t.PHARMACY, org_id, "pharmacist")
                    elif kind == "laboratoire":
                        self.practitioner(city, t.BIOLOGY, org_id, "doctor")
            # Physicians: general practice everywhere, specialists where there are hospitals/clinics.
            workplaces = [o for k in ("chu", "chr", "chp", "essp", "clinique") for o in self.orgs[city.fr].get(k, [])]
            for n in range(max(2, city.population_k // 25)):
                spec = t.SPECIALTY["general"] if n == 0 else _PHYSICIAN_SPECIALTY.pick(rng)
                self.practitioner(city, spec, workplaces[rng.randrange(len(workplaces))], "doctor")
        return ReferencePopulation(self.seed, self.resources, self._services())

    def _services(self) -> dict[str, CityServices]:
        def gather(cities, pick) -> list:
            return [x for c in cities for x in pick(c.fr)]

        by_region: dict[str, list[places.City]] = {}
        for c in places.CITIES:
            by_region.setdefault(c.region.code, []).append(c)
        out: dict[str, CityServices] = {}
        for city in places.CITIES:
            scopes = ((city,), by_region[city.region.code], places.CITIES)  # nearest first

            def first(pick, scopes=scopes):
                for scope in scopes:
                    found = gather(scope, pick)
                    if found:
                        return found
                raise AssertionError("the reference population has none of these")

            svc = CityServices(
                hospitals=first(lambda c: [o for k in ("chu", "chr", "chp") for o in self.orgs[c].get(k, [])]),
                outpatient=first(lambda c: self.orgs[c].get("essp", []) + self.orgs[c].get("clinique", [])),
                pharmacies=first(lambda c: self.orgs[c].get("pharmacie", [])),
                labs=first(lambda c: self.orgs[c].get("laboratoire", [])),
            )
            for spec in t.SPECIALTIES:
                svc.doctors[spec.key] = first(lambda c, k=spec.key: self.doctors[c].get(k, []))
            out[city.fr] = svc
        return out


@lru_cache(maxsize=4)
def reference_population(seed: int = 1) -> ReferencePopulation:
    """Built once per seed; the patients' generator indexes into it."""
    return _Builder(seed).build()

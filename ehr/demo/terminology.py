"""Clinical code tables for the synthetic population: what Moroccan records actually contain.

Codes are real (ICD-10 WHO, LOINC, UCUM, CVX, ATC, SNOMED CT); labels that patients and
clinicians read are French, the working language of Moroccan medical records.  Lab units
follow Moroccan laboratories (glycaemia and lipids in g/L, creatinine in mg/L).
"""
from __future__ import annotations

from dataclasses import dataclass

ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
CVX = "http://hl7.org/fhir/sid/cvx"
ATC = "http://www.whocc.no/atc"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VER = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
PRACTITIONER_ROLE = "http://terminology.hl7.org/CodeSystem/practitioner-role"
ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
SUBSCRIBER_REL = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
V2_0131 = "http://terminology.hl7.org/CodeSystem/v2-0131"

# Sijill's own code systems (https://fhir.sijill.ma/CodeSystem/<name>).
SIJILL_CS = "https://fhir.sijill.ma/CodeSystem/"
CS_ORG_KIND = SIJILL_CS + "organization-kind"
CS_REGIME = SIJILL_CS + "amo-regime"
CS_CONDITION_CATEGORY = SIJILL_CS + "condition-category"  # "ald": affection de longue durée


def coding(system: str, code: str, display: str) -> dict:
    return {"system": system, "code": code, "display": display}


def concept(system: str, code: str, display: str, text: str | None = None) -> dict:
    cc: dict = {"coding": [coding(system, code, display)]}
    if text:
        cc["text"] = text
    return cc


@dataclass(frozen=True)
class Disease:
    key: str
    icd10: str
    display: str  # ICD-10 (WHO) title
    fr: str
    chronic: bool
    ald: bool  # on the list of long-term conditions (ALD) fully covered by AMO
    weight: float  # relative frequency among diagnoses of the age band
    min_age: int = 0
    max_age: int = 120
    sex: str | None = None
    medications: tuple[str, ...] = ()
    labs: tuple[str, ...] = ()
    specialty: str = "general"


DISEASES = (
    # Chronic conditions (problem list; followed over years)
    Disease("diabetes2", "E11", "Non-insulin-dependent diabetes mellitus", "Diabète de type 2", True, True, 9, 30,
            medications=("metformin", "gliclazide", "insulin_glargine"), labs=("hba1c", "glucose", "creatinine"),
            specialty="endocrinology"),
    Disease("diabetes1", "E10", "Insulin-dependent diabetes mellitus", "Diabète de type 1", True, True, 1, 3,
            medications=("insulin_glargine",), labs=("hba1c", "glucose"), specialty="endocrinology"),
    Disease("hypertension", "I10", "Essential (primary) hypertension", "Hypertension artérielle essentielle",
            True, True, 12, 30, medications=("amlodipine", "enalapril", "losartan", "hydrochlorothiazide"),
            labs=("creatinine", "cholesterol"), specialty="cardiology"),
    Disease("asthma", "J45", "Asthma", "Asthme", True, False, 5, 2,
            medications=("salbutamol", "budesonide_formoterol"), specialty="pulmonology"),
    Disease("copd", "J44", "Other chronic obstructive pulmonary disease", "Bronchopneumopathie chronique obstructive",
            True, True, 2, 45, medications=("salbutamol", "budesonide_formoterol"), specialty="pulmonology"),
    Disease("ckd", "N18", "Chronic kidney disease", "Insuffisance rénale chronique", True, True, 1.5, 40,
            labs=("creatinine", "urea", "hemoglobin"), specialty="nephrology"),
    Disease("ischaemic_heart", "I25", "Chronic ischaemic heart disease", "Cardiopathie ischémique chronique",
            True, True, 2, 45, medications=("aspirin", "atorvastatin"), labs=("cholesterol",), specialty="cardiology"),
    Disease("dyslipidaemia", "E78", "Disorders of lipoprotein metabolism and other lipidaemias", "Dyslipidémie",
            True, False, 6, 30, medications=("atorvastatin",), labs=("cholesterol",)),
    Disease("hypothyroidism", "E03", "Other hypothyroidism", "Hypothyroïdie", True, False, 3, 20, sex="female",
            medications=("levothyroxine",), labs=("tsh",), specialty="endocrinology"),
    Disease("obesity", "E66", "Obesity", "Obésité", True, False, 4, 18),
    Disease("breast_cancer", "C50", "Malignant neoplasm of breast", "Cancer du sein", True, True, 0.6, 35,
            sex="female", labs=("hemoglobin",), specialty="oncology"),
    Disease("hepatitis_b", "B18", "Chronic viral hepatitis", "Hépatite virale chronique", True, True, 0.8, 18,
            medications=("tenofovir",), specialty="general"),
    Disease("tuberculosis", "A15", "Respiratory tuberculosis, bacteriologically and histologically confirmed",
            "Tuberculose pulmonaire", False, True, 0.5, 15, medications=("rhze",), specialty="pulmonology"),
    Disease("depression", "F32", "Depressive episode", "Épisode dépressif", False, False, 2, 16,
            medications=("sertraline",), specialty="psychiatry"),
    # Acute and episodic diagnoses (one encounter each)
    Disease("uri", "J06", "Acute upper respiratory infections of multiple and unspecified sites",
            "Infection aiguë des voies respiratoires supérieures", False, False, 14,
            medications=("paracetamol",)),
    Disease("pharyngitis", "J02", "Acute pharyngitis", "Pharyngite aiguë", False, False, 8,
            medications=("paracetamol", "amoxicillin")),
    Disease("tonsillitis", "J03", "Acute tonsillitis", "Angine aiguë", False, False, 8,
            medications=("amoxicillin", "paracetamol")),
    Disease("otitis", "H66", "Suppurative and unspecified otitis media", "Otite moyenne aiguë", False, False, 6,
            max_age=12, medications=("amoxicillin_clavulanate", "paracetamol"), specialty="pediatrics"),
    Disease("bronchitis", "J20", "Acute bronchitis", "Bronchite aiguë", False, False, 6,
            medications=("amoxicillin", "paracetamol")),
    Disease("gastroenteritis", "A09", "Other gastroenteritis and colitis of infectious and unspecified origin",
            "Gastro-entérite aiguë", False, False, 7, medications=("paracetamol", "metronidazole")),
    Disease("uti", "N39", "Other disorders of urinary system", "Infection urinaire", False, False, 5, 12,
            medications=("amoxicillin_clavulanate",)),
    Disease("gastritis", "K29", "Gastritis and duodenitis", "Gastrite", False, False, 5, 15,
            medications=("omeprazole",)),
    Disease("back_pain", "M54", "Dorsalgia", "Lombalgie", False, False, 6, 20, medications=("ibuprofen", "paracetamol")),
    Disease("headache", "R51", "Headache", "Céphalées", False, False, 4, 8, medications=("paracetamol",)),
    Disease("anaemia", "D50", "Iron deficiency anaemia", "Anémie ferriprive", False, False, 4,
            medications=("ferrous_sulfate",), labs=("hemoglobin",)),
    Disease("pregnancy", "Z34", "Supervision of normal pregnancy", "Suivi de grossesse normale", False, False, 6,
            18, 44, sex="female", medications=("ferrous_sulfate",), labs=("hemoglobin", "glucose"),
            specialty="gynecology"),
    Disease("allergic_rhinitis", "J30", "Vasomotor and allergic rhinitis", "Rhinite allergique", False, False, 4, 4,
            medications=("loratadine",)),
    Disease("scabies", "B86", "Scabies", "Gale", False, False, 1, specialty="dermatology"),
    Disease("dermatitis", "L30", "Other dermatitis", "Dermatite", False, False, 3, specialty="dermatology"),
)
DISEASE = {d.key: d for d in DISEASES}
CHRONIC = tuple(d for d in DISEASES if d.chronic)
ACUTE = tuple(d for d in DISEASES if not d.chronic)


@dataclass(frozen=True)
class Medicine:
    key: str
    atc: str
    atc_display: str
    dci_fr: str
    brand: str  # a brand sold in Moroccan pharmacies
    strength: str
    form: str  # dose unit shown in the instructions
    route: tuple[str, str, str]  # SNOMED route code, display, French
    per_day: int
    days: int  # 0 = long-term (renewed monthly)
    dose: float = 1


ORAL = ("26643006", "Oral route", "Voie orale")
INHALED = ("447694001", "Respiratory tract route", "Voie inhalée")
SUBCUT = ("34206005", "Subcutaneous route", "Voie sous-cutanée")

MEDICINES = (
    Medicine("metformin", "A10BA02", "metformin", "Metformine", "Glucophage", "850 mg", "comprimé", ORAL, 2, 0),
    Medicine("gliclazide", "A10BB09", "gliclazide", "Gliclazide", "Diamicron", "60 mg LM", "comprimé", ORAL, 1, 0),
    Medicine("insulin_glargine", "A10AE04", "insulin glargine", "Insuline glargine", "Lantus", "100 UI/mL",
             "UI", SUBCUT, 1, 0, 20),
    Medicine("amlodipine", "C08CA01", "amlodipine", "Amlodipine", "Amlor", "5 mg", "comprimé", ORAL, 1, 0),
    Medicine("enalapril", "C09AA02", "enalapril", "Énalapril", "Renitec", "20 mg", "comprimé", ORAL, 1, 0),
    Medicine("losartan", "C09CA01", "losartan", "Losartan", "Cozaar", "50 mg", "comprimé", ORAL, 1, 0),
    Medicine("hydrochlorothiazide", "C03AA03", "hydrochlorothiazide", "Hydrochlorothiazide", "Esidrex", "25 mg",
             "comprimé", ORAL, 1, 0),
    Medicine("atorvastatin", "C10AA05", "atorvastatin", "Atorvastatine", "Tahor", "20 mg", "comprimé", ORAL, 1, 0),
    Medicine("aspirin", "B01AC06", "acetylsalicylic acid", "Acide acétylsalicylique", "Kardégic", "75 mg",
             "sachet", ORAL, 1, 0),
    Medicine("salbutamol", "R03AC02", "salbutamol", "Salbutamol", "Ventoline", "100 µg/dose", "bouffée",
             INHALED, 2, 0, 2),
    Medicine("budesonide_formoterol", "R03AK07", "formoterol and budesonide", "Budésonide/formotérol",
             "Symbicort", "160/4,5 µg", "inhalation", INHALED, 2, 0),
    Medicine("levothyroxine", "H03AA01", "levothyroxine sodium", "Lévothyroxine", "Levothyrox", "75 µg",
             "comprimé", ORAL, 1, 0),
    Medicine("tenofovir", "J05AF07", "tenofovir disoproxil", "Ténofovir", "Viread", "245 mg", "comprimé", ORAL, 1, 0),
    Medicine("rhze", "J04AM06", "rifampicin, pyrazinamide, ethambutol and isoniazid", "RHZE (antituberculeux)",
             "Rimstar", "150/75/400/275 mg", "comprimé", ORAL, 1, 60, 4),
    Medicine("sertraline", "N06AB06", "sertraline", "Sertraline", "Zoloft", "50 mg", "comprimé", ORAL, 1, 90),
    Medicine("paracetamol", "N02BE01", "paracetamol", "Paracétamol", "Doliprane", "1 g", "comprimé", ORAL, 3, 5),
    Medicine("amoxicillin", "J01CA04", "amoxicillin", "Amoxicilline", "Clamoxyl", "1 g", "comprimé", ORAL, 2, 7),
    Medicine("amoxicillin_clavulanate", "J01CR02", "amoxicillin and beta-lactamase inhibitor",
             "Amoxicilline/acide clavulanique", "Augmentin", "1 g/125 mg", "sachet", ORAL, 2, 8),
    Medicine("metronidazole", "P01AB01", "metronidazole", "Métronidazole", "Flagyl", "500 mg", "comprimé", ORAL, 3, 7),
    Medicine("ibuprofen", "M01AE01", "ibuprofen", "Ibuprofène", "Brufen", "400 mg", "comprimé", ORAL, 3, 5),
    Medicine("omeprazole", "A02BC01", "omeprazole", "Oméprazole", "Mopral", "20 mg", "gélule", ORAL, 1, 28),
    Medicine("ferrous_sulfate", "B03AA07", "ferrous sulfate", "Sulfate ferreux", "Tardyferon", "80 mg",
             "comprimé", ORAL, 1, 90),
    Medicine("loratadine", "R06AX13", "loratadine", "Loratadine", "Clarityne", "10 mg", "comprimé", ORAL, 1, 10),
)
MEDICINE = {m.key: m for m in MEDICINES}


@dataclass(frozen=True)
class Lab:
    key: str
    loinc: str
    display: str
    fr: str
    unit: str  # UCUM code, also shown
    low: float  # reference range
    high: float
    decimals: int


LABS = (
    Lab("hba1c", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "Hémoglobine glyquée (HbA1c)", "%", 4.0, 6.0, 1),
    Lab("glucose", "1558-6", "Fasting glucose [Mass/volume] in Serum or Plasma", "Glycémie à jeun", "g/L", 0.7, 1.1, 2),
    Lab("creatinine", "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "Créatininémie", "mg/L", 6, 12, 1),
    Lab("urea", "3091-6", "Urea [Mass/volume] in Serum or Plasma", "Urée sanguine", "g/L", 0.15, 0.45, 2),
    Lab("cholesterol", "2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "Cholestérol total", "g/L", 1.5, 2.0, 2),
    Lab("hdl", "2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "HDL-cholestérol", "g/L", 0.4, 0.8, 2),
    Lab("ldl", "13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation", "LDL-cholestérol",
        "g/L", 0.7, 1.3, 2),
    Lab("triglycerides", "2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "Triglycérides", "g/L", 0.4, 1.5, 2),
    Lab("hemoglobin", "718-7", "Hemoglobin [Mass/volume] in Blood", "Hémoglobine", "g/dL", 12, 16, 1),
    Lab("tsh", "3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "TSH", "m[IU]/L", 0.4, 4.0, 2),
)
LAB = {lab.key: lab for lab in LABS}
# A lipid panel is ordered as one test in Morocco ("bilan lipidique").
LIPID_PANEL = ("cholesterol", "hdl", "ldl", "triglycerides")


@dataclass(frozen=True)
class Vital:
    loinc: str
    display: str
    fr: str
    unit: str  # UCUM
    unit_display: str


BP_PANEL = Vital("85354-9", "Blood pressure panel with all children optional", "Tension artérielle", "", "")
SYSTOLIC = Vital("8480-6", "Systolic blood pressure", "Pression systolique", "mm[Hg]", "mmHg")
DIASTOLIC = Vital("8462-4", "Diastolic blood pressure", "Pression diastolique", "mm[Hg]", "mmHg")
HEART_RATE = Vital("8867-4", "Heart rate", "Fréquence cardiaque", "/min", "battements/min")
WEIGHT = Vital("29463-7", "Body weight", "Poids", "kg", "kg")
HEIGHT = Vital("8302-2", "Body height", "Taille", "cm", "cm")
BMI = Vital("39156-5", "Body mass index (BMI) [Ratio]", "Indice de masse corporelle", "kg/m2", "kg/m2")
TEMPERATURE = Vital("8310-5", "Body temperature", "Température corporelle", "Cel", "°C")


@dataclass(frozen=True)
class Vaccine:
    key: str
    cvx: str
    display: str  # CVX short description
    fr: str


VACCINES = {
    v.key: v
    for v in (
        Vaccine("bcg", "19", "BCG", "BCG"),
        Vaccine("hepb", "08", "Hep B, adolescent or pediatric", "Hépatite B (HB)"),
        Vaccine("bopv", "178", "OPV bivalent", "Polio oral bivalent (VPO)"),
        Vaccine("ipv", "10", "IPV", "Polio injectable (VPI)"),
        Vaccine("penta", "102", "DTP-Hib-Hep B", "Pentavalent (DTC-Hib-HB)"),
        Vaccine("pcv", "177", "PCV10", "Pneumocoque conjugué (PCV)"),
        Vaccine("rota", "119", "rotavirus, monovalent", "Rotavirus"),
        Vaccine("mr", "04", "M/R", "Rougeole-Rubéole (RR)"),
        Vaccine("dtp", "01", "DTP", "DTC (rappel)"),
        Vaccine("hpv", "62", "HPV, quadrivalent", "Papillomavirus (HPV)"),
        Vaccine("td", "09", "Td (adult), adsorbed", "Td (tétanos-diphtérie)"),
        Vaccine("flu", "88", "influenza, unspecified formulation", "Grippe saisonnière"),
        Vaccine("covid", "213", "SARS-COV-2 (COVID-19) vaccine, UNSPECIFIED FORMULATION", "COVID-19"),
    )
}

# Programme National d'Immunisation: (age in months, vaccine, dose number).
PNI_SCHEDULE = (
    (0, "bcg", 1), (0, "hepb", 1), (0, "bopv", 1),
    (2, "penta", 1), (2, "bopv", 2), (2, "pcv", 1), (2, "rota", 1),
    (3, "penta", 2), (3, "bopv", 3), (3, "rota", 2),
    (4, "penta", 3), (4, "bopv", 4), (4, "pcv", 2), (4, "ipv", 1),
    (9, "mr", 1),
    (12, "pcv", 3),
    (18, "dtp", 4), (18, "bopv", 5), (18, "mr", 2),
    (60, "dtp", 5), (60, "bopv", 6),
)
HPV_AGE_MONTHS = 11 * 12  # girls, since the 2022 campaign


@dataclass(frozen=True)
class Allergen:
    snomed: str
    display: str
    fr: str
    category: str  # food | medication | environment
    weight: float


ALLERGENS = (
    Allergen("764146007", "Penicillin", "Pénicilline", "medication", 8),
    Allergen("372687004", "Amoxicillin", "Amoxicilline", "medication", 4),
    Allergen("387458008", "Aspirin", "Aspirine", "medication", 3),
    Allergen("387207008", "Ibuprofen", "Ibuprofène", "medication", 2),
    Allergen("387406002", "Sulfonamide", "Sulfamides", "medication", 2),
    Allergen("256259004", "Pollen", "Pollens", "environment", 8),
    Allergen("260147004", "House dust mite", "Acariens", "environment", 8),
    Allergen("111088007", "Latex", "Latex", "environment", 1),
    Allergen("256349002", "Peanut - dietary", "Arachide", "food", 2),
    Allergen("102263004", "Eggs (edible)", "Œuf", "food", 2),
    Allergen("3718001", "Cow's milk", "Lait de vache", "food", 2),
    Allergen("227037002", "Fish - dietary", "Poisson", "food", 1),
)
REACTIONS = (
    ("271807003", "Eruption of skin", "Éruption cutanée"),
    ("247472004", "Wheal", "Urticaire"),
    ("418363000", "Itching of skin", "Prurit"),
    ("267036007", "Dyspnea", "Dyspnée"),
    ("76067001", "Sneezing", "Éternuements"),
    ("39579001", "Anaphylaxis", "Anaphylaxie"),
)


@dataclass(frozen=True)
class Specialty:
    key: str
    snomed: str
    display: str
    fr: str
    weight: float  # share of physicians


SPECIALTIES = (
    Specialty("general", "394814009", "General practice", "Médecine générale", 45),
    Specialty("pediatrics", "394537008", "Pediatric specialty", "Pédiatrie", 8),
    Specialty("cardiology", "394579002", "Cardiology", "Cardiologie", 5),
    Specialty("gynecology", "394586005", "Gynecology", "Gynécologie-obstétrique", 8),
    Specialty("endocrinology", "394583002", "Endocrinology", "Endocrinologie-diabétologie", 4),
    Specialty("pulmonology", "418112009", "Pulmonary medicine", "Pneumo-phtisiologie", 3),
    Specialty("nephrology", "394589003", "Nephrology", "Néphrologie", 2),
    Specialty("dermatology", "394582007", "Dermatology", "Dermatologie", 3),
    Specialty("psychiatry", "394587001", "Psychiatry", "Psychiatrie", 2),
    Specialty("oncology", "394592004", "Clinical oncology", "Oncologie médicale", 2),
    Specialty("emergency", "773568002", "Emergency medicine", "Médecine d'urgence", 4),
)
SPECIALTY = {s.key: s for s in SPECIALTIES}
PHARMACY = Specialty("pharmacy", "", "", "Pharmacie d'officine", 0)
BIOLOGY = Specialty("biology", "394915009", "General pathology", "Biologie médicale", 0)

ENCOUNTER_CLASSES = {
    "AMB": ("ambulatory", "Consultation"),
    "EMER": ("emergency", "Urgences"),
    "IMP": ("inpatient encounter", "Hospitalisation"),
}
ENCOUNTER_TYPES = {
    "AMB": ("11429006", "Consultation", "Consultation"),
    "EMER": ("50849002", "Emergency room admission", "Admission aux urgences"),
    "IMP": ("32485007", "Hospital admission", "Hospitalisation"),
    "CHECK": ("185349003", "Encounter for check up", "Consultation de suivi"),
}

"""Morocco's 12 regions (2015 division), their main cities and urban districts, in French and
Arabic, with postal codes and the letter series of the CIN issued there.

Addresses carry the French form in the element and the Arabic one in the standard
``translation`` extension on the primitive (``_city``, ``_district``, ``_state``, ``_line``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from ehr.demo.rng import Weighted

TRANSLATION_EXT = "http://hl7.org/fhir/StructureDefinition/translation"


@dataclass(frozen=True)
class City:
    fr: str
    ar: str
    region: "Region"
    postal: str
    cin_letters: tuple[str, ...]  # the CIN series issued by this city's offices
    population_k: int  # thousands, weights where patients live
    districts: tuple[tuple[str, str], ...] = ()  # (fr, ar) arrondissements


@dataclass(frozen=True)
class Region:
    code: str  # official region number, "01".."12"
    fr: str
    ar: str
    phone_area: str  # fixed-line prefix after +212


TTA = Region("01", "Tanger-Tétouan-Al Hoceïma", "طنجة تطوان الحسيمة", "539")
ORI = Region("02", "L'Oriental", "الشرق", "536")
FME = Region("03", "Fès-Meknès", "فاس مكناس", "535")
RSK = Region("04", "Rabat-Salé-Kénitra", "الرباط سلا القنيطرة", "537")
BMK = Region("05", "Béni Mellal-Khénifra", "بني ملال خنيفرة", "523")
CAS = Region("06", "Casablanca-Settat", "الدار البيضاء سطات", "522")
MSA = Region("07", "Marrakech-Safi", "مراكش آسفي", "524")
DTA = Region("08", "Drâa-Tafilalet", "درعة تافيلالت", "535")
SMA = Region("09", "Souss-Massa", "سوس ماسة", "528")
GON = Region("10", "Guelmim-Oued Noun", "كلميم واد نون", "528")
LSH = Region("11", "Laâyoune-Sakia El Hamra", "العيون الساقية الحمراء", "528")
DOD = Region("12", "Dakhla-Oued Ed-Dahab", "الداخلة وادي الذهب", "528")

REGIONS = (TTA, ORI, FME, RSK, BMK, CAS, MSA, DTA, SMA, GON, LSH, DOD)

CITIES = (
    City("Casablanca", "الدار البيضاء", CAS, "20000", ("B", "BE", "BH", "BJ", "BK", "BL"), 3360, (
        ("Anfa", "أنفا"), ("Maârif", "المعاريف"), ("Sidi Belyout", "سيدي بليوط"),
        ("Hay Mohammadi", "الحي المحمدي"), ("Aïn Chock", "عين الشق"), ("Sidi Bernoussi", "سيدي البرنوصي"),
        ("Ben M'Sick", "بن امسيك"), ("Al Fida", "الفداء"), ("Hay Hassani", "الحي الحسني"),
    )),
    City("Mohammédia", "المحمدية", CAS, "28800", ("T",), 220),
    City("El Jadida", "الجديدة", CAS, "24000", ("M",), 200),
    City("Settat", "سطات", CAS, "26000", ("W",), 145),
    City("Berrechid", "برشيد", CAS, "26100", ("WA",), 136),
    City("Rabat", "الرباط", RSK, "10000", ("A", "AA", "AB"), 578, (
        ("Agdal-Riyad", "أكدال الرياض"), ("Hassan", "حسان"), ("Yacoub El Mansour", "يعقوب المنصور"),
        ("Souissi", "السويسي"), ("Youssoufia", "اليوسفية"),
    )),
    City("Salé", "سلا", RSK, "11000", ("AE",), 982, (
        ("Bab Lamrissa", "باب لمريسة"), ("Tabriquet", "تابريكت"), ("Hssaine", "احصين"), ("Layayda", "العيايدة"),
    )),
    City("Témara", "تمارة", RSK, "12000", ("AD",), 313),
    City("Kénitra", "القنيطرة", RSK, "14000", ("G", "GA", "GB"), 431),
    City("Khémisset", "الخميسات", RSK, "15000", ("X",), 131),
    City("Fès", "فاس", FME, "30000", ("C", "CB", "CD"), 1112, (
        ("Agdal", "أكدال"), ("Fès-Médina", "فاس المدينة"), ("Saïss", "سايس"), ("Zouagha", "زواكة"),
        ("Jnan El Ouard", "جنان الورد"), ("El Mariniyine", "المرينيين"),
    )),
    City("Meknès", "مكناس", FME, "50000", ("D", "DA"), 632, (
        ("Hamria", "الحمرية"), ("Al Ismailia", "الإسماعيلية"), ("Toulal", "تولال"),
    )),
    City("Taza", "تازة", FME, "35000", ("Z",), 148),
    City("Ifrane", "إفران", FME, "53000", ("DN",), 14),
    City("Sefrou", "صفرو", FME, "31000", ("CN",), 80),
    City("Marrakech", "مراكش", MSA, "40000", ("E", "EE"), 928, (
        ("Guéliz", "جليز"), ("Médina", "المدينة"), ("Ménara", "المنارة"),
        ("Sidi Youssef Ben Ali", "سيدي يوسف بن علي"), ("Annakhil", "النخيل"),
    )),
    City("Safi", "آسفي", MSA, "46000", ("H",), 309),
    City("Essaouira", "الصويرة", MSA, "44000", ("HA",), 78),
    City("El Kelâa des Sraghna", "قلعة السراغنة", MSA, "43000", ("EA",), 95),
    City("Tanger", "طنجة", TTA, "90000", ("K", "KA", "KB"), 948, (
        ("Tanger-Médina", "طنجة المدينة"), ("Charf-Mghogha", "الشرف مغوغة"),
        ("Charf-Souani", "الشرف السواني"), ("Béni Makada", "بني مكادة"),
    )),
    City("Tétouan", "تطوان", TTA, "93000", ("L",), 380),
    City("Al Hoceïma", "الحسيمة", TTA, "32000", ("R",), 56),
    City("Larache", "العرائش", TTA, "92000", ("LA",), 125),
    City("Ksar El Kébir", "القصر الكبير", TTA, "92150", ("LB",), 126),
    City("Chefchaouen", "شفشاون", TTA, "91000", ("LC",), 43),
    City("Oujda", "وجدة", ORI, "60000", ("F",), 494),
    City("Nador", "الناظور", ORI, "62000", ("S",), 161),
    City("Berkane", "بركان", ORI, "63300", ("FB",), 110),
    City("Taourirt", "تاوريرت", ORI, "65800", ("FC",), 103),
    City("Béni Mellal", "بني ملال", BMK, "23000", ("I",), 192),
    City("Khouribga", "خريبكة", BMK, "25000", ("Q",), 196),
    City("Khénifra", "خنيفرة", BMK, "54000", ("IA",), 117),
    City("Fquih Ben Salah", "الفقيه بن صالح", BMK, "23200", ("IB",), 102),
    City("Agadir", "أكادير", SMA, "80000", ("J", "JA"), 421),
    City("Inezgane", "إنزكان", SMA, "86350", ("JB",), 130),
    City("Taroudant", "تارودانت", SMA, "83000", ("JC",), 80),
    City("Tiznit", "تيزنيت", SMA, "85000", ("JE",), 74),
    City("Errachidia", "الرشيدية", DTA, "52000", ("U",), 92),
    City("Ouarzazate", "ورزازات", DTA, "45000", ("PA",), 71),
    City("Zagora", "زاكورة", DTA, "47900", ("PB",), 40),
    City("Tinghir", "تنغير", DTA, "45800", ("UA",), 42),
    City("Midelt", "ميدلت", DTA, "54350", ("UB",), 55),
    City("Guelmim", "كلميم", GON, "81000", ("JF",), 118),
    City("Tan-Tan", "طانطان", GON, "82000", ("JH",), 73),
    City("Sidi Ifni", "سيدي إفني", GON, "85200", ("JG",), 21),
    City("Laâyoune", "العيون", LSH, "70000", ("SH",), 217),
    City("Boujdour", "بوجدور", LSH, "71000", ("SJ",), 42),
    City("Dakhla", "الداخلة", DOD, "73000", ("VA",), 106),
)

# Teaching hospitals (CHU) exist in these cities, by the name they carry.
CHU = (
    ("Rabat", "CHU Ibn Sina", "المركز الاستشفائي الجامعي ابن سينا"),
    ("Casablanca", "CHU Ibn Rochd", "المركز الاستشفائي الجامعي ابن رشد"),
    ("Fès", "CHU Hassan II", "المركز الاستشفائي الجامعي الحسن الثاني"),
    ("Marrakech", "CHU Mohammed VI de Marrakech", "المركز الاستشفائي الجامعي محمد السادس بمراكش"),
    ("Oujda", "CHU Mohammed VI d'Oujda", "المركز الاستشفائي الجامعي محمد السادس بوجدة"),
    ("Tanger", "CHU Mohammed VI de Tanger", "المركز الاستشفائي الجامعي محمد السادس بطنجة"),
    ("Agadir", "CHU Souss-Massa", "المركز الاستشفائي الجامعي سوس ماسة"),
)

STREETS = (
    ("Avenue Mohammed V", "شارع محمد الخامس"),
    ("Avenue Hassan II", "شارع الحسن الثاني"),
    ("Boulevard Zerktouni", "شارع الزرقطوني"),
    ("Avenue des FAR", "شارع القوات المسلحة الملكية"),
    ("Rue Ibn Battouta", "زنقة ابن بطوطة"),
    ("Rue Allal Ben Abdellah", "زنقة علال بن عبد الله"),
    ("Boulevard Moulay Youssef", "شارع مولاي يوسف"),
    ("Rue Abou Bakr Seddik", "زنقة أبو بكر الصديق"),
    ("Avenue Moulay Ismail", "شارع مولاي إسماعيل"),
    ("Rue Al Massira", "زنقة المسيرة"),
    ("Lotissement Al Amal", "تجزئة الأمل"),
    ("Hay Salam", "حي السلام"),
    ("Hay Nahda", "حي النهضة"),
    ("Derb Sultan", "درب السلطان"),
    ("Hay Al Qods", "حي القدس"),
    ("Résidence Al Andalous", "إقامة الأندلس"),
    ("Rue Oued Sebou", "زنقة واد سبو"),
    ("Avenue Abdelkrim El Khattabi", "شارع عبد الكريم الخطابي"),
)

CITY_BY_NAME = {c.fr: c for c in CITIES}
_RESIDENCE = Weighted((c, c.population_k) for c in CITIES)


def city_of_residence(rng: random.Random) -> City:
    return _RESIDENCE.pick(rng)


def _translated(ar: str) -> dict:
    return {"extension": [{"url": TRANSLATION_EXT, "extension": [
        {"url": "lang", "valueCode": "ar"}, {"url": "content", "valueString": ar}]}]}


def address(rng: random.Random, city: City, use: str = "home") -> dict:
    street_fr, street_ar = STREETS[rng.randrange(len(STREETS))]
    number = 1 + rng.randrange(180)
    out = {
        "use": use,
        "type": "physical",
        "line": [f"{number} {street_fr}"],
        "_line": [_translated(f"{number} {street_ar}")],
        "city": city.fr,
        "_city": _translated(city.ar),
    }
    if city.districts:
        d_fr, d_ar = city.districts[rng.randrange(len(city.districts))]
        out["district"] = d_fr
        out["_district"] = _translated(d_ar)
    out["state"] = city.region.fr
    out["_state"] = _translated(city.region.ar)
    out["postalCode"] = city.postal
    out["country"] = "MA"
    return out


def cin(rng: random.Random, city: City, serial: int) -> str:
    """A CIN number: the issuing city's letter series then up to six digits (``serial`` unique)."""
    letters = city.cin_letters[rng.randrange(len(city.cin_letters))]
    return f"{letters}{serial % 1_000_000}"


def mobile(rng: random.Random) -> str:
    # Moroccan mobiles: +212 then 6xxxxxxxx or 7xxxxxxxx.
    return f"+212{6 if rng.random() < 0.8 else 7}{rng.randrange(100_000_000):08d}"


def landline(rng: random.Random, city: City) -> str:
    return f"+212{city.region.phone_area}{rng.randrange(1_000_000):06d}"

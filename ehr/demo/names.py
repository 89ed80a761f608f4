"""Moroccan personal names: Arabic script as on the CIN, with the French transliterations
civil-status officers actually write (one Arabic name, many Latin spellings).

Each entry is ``(arabic, (french spellings...), weight)``; the first spelling is the most
common.  Family names also get the systematic variants of their particles (El/Al/É-, Ben/Bin,
Ou, Aït) so that search has to cope with "El Alaoui", "Alaoui" and "Al-Alaoui" being one name.
"""
from __future__ import annotations

import random

from ehr.demo.rng import Weighted

LANGUAGE_EXT = "http://hl7.org/fhir/StructureDefinition/language"

MALE = (
    ("محمد", ("Mohammed", "Mohamed", "Mhamed", "Mohamad", "Muhammad"), 60),
    ("محمد أمين", ("Mohamed Amine", "Mohammed Amine", "Mohamed-Amine"), 12),
    ("أحمد", ("Ahmed", "Ahmad", "Hmad"), 20),
    ("يوسف", ("Youssef", "Yousef", "Youssouf", "Yusuf"), 18),
    ("عبد الله", ("Abdellah", "Abdallah", "Abdelah", "Abdullah"), 14),
    ("حسن", ("Hassan", "Hasan"), 12),
    ("الحسين", ("El Houssine", "Houssine", "Lhoussaine", "Hussein"), 8),
    ("عمر", ("Omar", "Oumar"), 12),
    ("علي", ("Ali",), 10),
    ("إبراهيم", ("Brahim", "Ibrahim", "Ibrahime"), 10),
    ("إدريس", ("Driss", "Idriss", "Idris"), 9),
    ("رشيد", ("Rachid", "Rachide", "Rashid"), 9),
    ("سعيد", ("Said", "Saïd", "Saaid"), 9),
    ("خالد", ("Khalid", "Khaled"), 9),
    ("مصطفى", ("Mustapha", "Mostafa", "Moustapha"), 9),
    ("عبد الرحيم", ("Abderrahim", "Abderrahime", "Abdelrahim"), 7),
    ("عبد الكريم", ("Abdelkrim", "Abdelkarim"), 6),
    ("عبد الرحمان", ("Abderrahmane", "Abderrahman", "Abdelrahman"), 6),
    ("عبد العزيز", ("Abdelaziz", "Abdel Aziz"), 6),
    ("المهدي", ("El Mehdi", "Mehdi", "Al Mahdi", "Elmehdi"), 10),
    ("أيوب", ("Ayoub", "Ayyoub", "Ayoube"), 10),
    ("إسماعيل", ("Ismail", "Smail", "Ismaïl"), 7),
    ("حمزة", ("Hamza", "Hamzah"), 10),
    ("أنس", ("Anas", "Anass"), 8),
    ("ياسين", ("Yassine", "Yacine", "Yasine"), 10),
    ("عثمان", ("Othmane", "Otmane", "Outmane"), 7),
    ("نبيل", ("Nabil",), 5),
    ("هشام", ("Hicham", "Hisham", "Hichame"), 7),
    ("كريم", ("Karim",), 5),
    ("طارق", ("Tarik", "Tariq", "Tarek"), 5),
    ("جمال", ("Jamal", "Jamel", "Djamal"), 6),
    ("عادل", ("Adil", "Adel"), 6),
    ("زكرياء", ("Zakaria", "Zakariae", "Zakariya"), 8),
    ("آدم", ("Adam",), 8),
    ("إلياس", ("Ilyas", "Ilias", "Elias"), 7),
    ("ريان", ("Rayane", "Rayan", "Ryan"), 7),
    ("بلال", ("Bilal", "Billal"), 6),
    ("سفيان", ("Soufiane", "Sofiane", "Soufyane"), 6),
    ("نور الدين", ("Noureddine", "Nour-Eddine", "Nourdine"), 5),
    ("فؤاد", ("Fouad", "Fuad"), 4),
    ("عزيز", ("Aziz",), 4),
    ("لحسن", ("Lahcen", "Lahsen", "Lahoucine"), 6),
    ("الطيب", ("Taib", "Tayeb", "Ettayeb"), 3),
    ("العربي", ("Larbi", "El Arbi", "Arbi"), 4),
    ("امحمد", ("Mhammed", "Mhamed", "Amhamed"), 4),
    ("يوبا", ("Youba",), 2),
    ("ماسينيسا", ("Massinissa", "Masinissa"), 1),
    ("إيدير", ("Idir",), 2),
    ("أكسيل", ("Aksel", "Axel"), 1),
)

FEMALE = (
    ("فاطمة", ("Fatima", "Fatma", "Fatema"), 40),
    ("فاطمة الزهراء", ("Fatima Zahra", "Fatima-Zahra", "Fatima Ezzahra", "Fatimazahra"), 20),
    ("خديجة", ("Khadija", "Khadidja", "Khadîja"), 18),
    ("عائشة", ("Aicha", "Aïcha", "Aisha", "Aycha"), 14),
    ("مريم", ("Meryem", "Maryam", "Mariam", "Meriem"), 16),
    ("زينب", ("Zineb", "Zaynab", "Zainab"), 14),
    ("سلمى", ("Salma", "Selma"), 12),
    ("نادية", ("Nadia", "Nadiya"), 8),
    ("سعاد", ("Souad", "Soad"), 8),
    ("حليمة", ("Halima", "Halimah"), 8),
    ("لطيفة", ("Latifa", "Latefa"), 7),
    ("نعيمة", ("Naima", "Naïma", "Naeima"), 8),
    ("رشيدة", ("Rachida", "Rachyda"), 7),
    ("حنان", ("Hanane", "Hanan"), 8),
    ("إيمان", ("Imane", "Iman", "Imen"), 10),
    ("هند", ("Hind",), 6),
    ("أسماء", ("Asmae", "Asmaa", "Asma"), 9),
    ("سارة", ("Sara", "Sarah"), 10),
    ("ياسمين", ("Yasmine", "Yasmina", "Jasmine"), 8),
    ("نورة", ("Noura", "Nora"), 6),
    ("كوثر", ("Kaoutar", "Kawtar", "Kaouthar"), 8),
    ("هاجر", ("Hajar", "Hajer", "Hadjar"), 9),
    ("سكينة", ("Soukaina", "Sokaina", "Sakina"), 8),
    ("وفاء", ("Wafae", "Wafaa", "Wafa"), 6),
    ("غيثة", ("Ghita", "Rita"), 5),
    ("غزلان", ("Ghizlane", "Ghizlan", "Rhizlane"), 6),
    ("دنيا", ("Dounia", "Donia", "Dunia"), 5),
    ("لبنى", ("Loubna", "Lubna"), 6),
    ("فدوى", ("Fadoua", "Fadwa"), 5),
    ("بشرى", ("Bouchra", "Bochra", "Bushra"), 7),
    ("جميلة", ("Jamila", "Djamila"), 6),
    ("مليكة", ("Malika", "Malyka"), 7),
    ("أمينة", ("Amina", "Aminah"), 8),
    ("إكرام", ("Ikram", "Ikrame"), 6),
    ("شيماء", ("Chaimae", "Chaima", "Chaymae", "Shaimaa"), 8),
    ("ملاك", ("Malak",), 6),
    ("آية", ("Aya", "Ayah"), 7),
    ("إيناس", ("Ines", "Inass", "Inès"), 6),
    ("رقية", ("Rkia", "Roukaya", "Rokia"), 4),
    ("الزهرة", ("Zahra", "Zohra", "Ezzahra"), 5),
    ("تيليلا", ("Tilila",), 1),
    ("تيزيري", ("Tiziri",), 1),
    ("إيطو", ("Itto", "Ito"), 2),
)

# Family names: (arabic, (french spellings...), weight).  Particle variants are added below.
FAMILY = (
    ("العلوي", ("El Alaoui", "Alaoui", "Lalaoui"), 14),
    ("الإدريسي", ("El Idrissi", "Idrissi", "Drissi"), 12),
    ("بنعلي", ("Ben Ali", "Benali"), 8),
    ("بنجلون", ("Benjelloun", "Ben Jelloun"), 7),
    ("التازي", ("Tazi", "Ettazi", "Et-Tazi"), 6),
    ("الفاسي", ("El Fassi", "Fassi", "Elfassi"), 6),
    ("برادة", ("Berrada", "Berada"), 5),
    ("بنكيران", ("Benkirane", "Ben Kirane"), 5),
    ("العمراني", ("El Amrani", "Amrani", "Lamrani"), 9),
    ("الشرقاوي", ("Cherkaoui", "Charkaoui", "Ech-Cherkaoui"), 7),
    ("الوزاني", ("Ouazzani", "El Ouazzani", "Wazzani"), 6),
    ("بناني", ("Bennani", "Benani"), 7),
    ("السلاوي", ("Slaoui", "Es-Slaoui", "Sellaoui"), 4),
    ("الحسني", ("El Hassani", "Hassani", "Lahssini"), 6),
    ("التوزاني", ("Touzani", "Ettouzani"), 3),
    ("أوعلي", ("Ouali", "Ou Ali", "Oualli"), 4),
    ("آيت الحاج", ("Aït El Haj", "Ait Lhaj", "Aït Lhadj"), 4),
    ("آيت بنحدو", ("Aït Benhaddou", "Ait Ben Haddou"), 3),
    ("أمزيان", ("Amziane", "Amezian", "Amzian"), 4),
    ("أوحدو", ("Ouhaddou", "Ou Haddou", "Ouhadou"), 4),
    ("أخنوش", ("Akhannouch", "Akhennouch"), 2),
    ("الصنهاجي", ("Sanhaji", "Essanhaji", "Es-Sanhaji"), 4),
    ("الكتاني", ("Kettani", "El Kettani", "Kattani"), 4),
    ("المنصوري", ("El Mansouri", "Mansouri", "Lmansouri"), 7),
    ("الزياني", ("Ziani", "Zayani", "Ezziani"), 5),
    ("الرحماني", ("Rahmani", "Er-Rahmani", "Errahmani"), 5),
    ("بوزيد", ("Bouzid", "Bouzide"), 6),
    ("بلحاج", ("Belhaj", "Belhadj", "Bel Haj"), 6),
    ("بنسودة", ("Bensouda", "Ben Souda"), 3),
    ("الناصري", ("Naciri", "En-Naciri", "Nasri"), 6),
    ("الغزالي", ("El Ghazali", "Ghazali", "Rhazali"), 5),
    ("الزهراوي", ("Zahraoui", "Ez-Zahraoui"), 3),
    ("بوعزة", ("Bouazza", "Bouaza"), 5),
    ("الخياطي", ("El Khayati", "Khayati", "Lkhayati"), 5),
    ("الراضي", ("Radi", "Erradi", "Er-Radi"), 5),
    ("المرابط", ("Mrabet", "El Mrabet", "Lemrabet"), 5),
    ("الحداد", ("Haddad", "El Haddad", "Lhaddad"), 6),
    ("النجار", ("Najjar", "En-Najjar", "Nejjar"), 4),
    ("بنموسى", ("Benmoussa", "Ben Moussa"), 5),
    ("بوشعيب", ("Bouchaib", "Bouchaïb"), 4),
    ("الصديقي", ("Seddiki", "Es-Seddiki", "Sediki"), 4),
    ("الودغيري", ("Oudghiri", "El Oudghiri", "Ouadghiri"), 3),
    ("الجزولي", ("Jazouli", "El Jazouli", "Guezouli"), 3),
    ("الركراكي", ("Regragui", "Rgragui", "Er-Regragui"), 4),
    ("السوسي", ("Soussi", "Es-Soussi", "Essoussi"), 5),
    ("الريفي", ("Rifi", "Er-Rifi", "Errifi"), 4),
    ("الدكالي", ("Doukkali", "Dokkali", "Ed-Doukkali"), 4),
    ("الشاوي", ("Chaoui", "Ech-Chaoui"), 4),
    ("الحمري", ("Hamri", "El Hamri"), 3),
    ("بنسعيد", ("Bensaid", "Ben Said", "Bensaïd"), 5),
    ("بنعبد الله", ("Benabdellah", "Ben Abdellah", "Benabdallah"), 5),
    ("الأزرق", ("Azraq", "El Azrak", "Lazrak"), 4),
    ("القادري", ("Kadiri", "El Kadiri", "Qadiri"), 5),
    ("التهامي", ("Touhami", "Ettouhami", "Tohami"), 4),
    ("الحيان", ("Hayane", "El Hayane"), 2),
    ("زروال", ("Zerouali", "Zeroual"), 4),
    ("أزناك", ("Aznag", "Aznague"), 2),
    ("أوبلا", ("Oubella", "Oubla"), 2),
    ("إدبلقاس", ("Idbelkas", "Id Belkas"), 1),
    ("أمغار", ("Amghar", "Amrhar"), 3),
    ("شكري", ("Chokri", "Choukri", "Shukri"), 4),
    ("الفيلالي", ("Filali", "El Filali", "Lfilali"), 5),
    ("الصقلي", ("Skalli", "Sqalli", "Es-Skalli"), 3),
    ("الطاهري", ("Tahiri", "Ettahiri", "Et-Tahiri"), 5),
    ("المودن", ("Moudden", "El Moudden"), 3),
    ("لعرج", ("Laaraj", "Laraj"), 3),
)


def _particle_variants(spellings: tuple[str, ...]) -> tuple[str, ...]:
    """Add the spellings civil registries produce from the same particles."""
    out: list[str] = []
    for s in spellings:
        forms = [s]
        if s.startswith("El "):
            rest = s[3:]
            forms += [f"Al {rest}", f"El-{rest}", f"El{rest.lower()}"]
        elif s.startswith("Ben ") or s.startswith("Bin "):
            rest = s[4:]
            forms += [f"Ben{rest.lower()}", f"Ben-{rest}", f"Ibn {rest}", f"Ou {rest}"]
        elif s.startswith("Aït "):
            rest = s[4:]
            forms += [f"Ait {rest}", f"Ayt {rest}"]
        elif s.startswith("Ou ") and len(s) > 3:
            rest = s[3:]
            forms += [f"Ou{rest.lower()}", f"Ou-{rest}"]
        out.extend(forms)
    return tuple(dict.fromkeys(out))  # deduplicate, order kept


def _table(rows) -> Weighted:
    return Weighted(((ar, fr), w) for ar, fr, w in rows)


_MALE = _table(MALE)
_FEMALE = _table(FEMALE)
_FAMILY = Weighted(((ar, _particle_variants(fr)), w) for ar, fr, w in FAMILY)

# Arabic spellings that vary in practice (hamza seat dropped, ta marbuta written ha, alif maqsura
# as ya): search must fold them, so a share of names carries them.
_ARABIC_FOLDS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ة": "ه", "ى": "ي"})


def _spelling(rng: random.Random, spellings: tuple[str, ...]) -> str:
    # The usual spelling most of the time, one of the others otherwise.
    if len(spellings) == 1 or rng.random() < 0.6:
        return spellings[0]
    return spellings[1 + rng.randrange(len(spellings) - 1)]


def _arabic(rng: random.Random, name: str) -> str:
    return name.translate(_ARABIC_FOLDS) if rng.random() < 0.12 else name


class PersonName:
    """One person's name in both scripts; ``family`` may be inherited (children, spouses)."""

    __slots__ = ("given_ar", "given_fr", "family_ar", "family_fr")

    def __init__(self, given_ar: str, given_fr: str, family_ar: str, family_fr: str) -> None:
        self.given_ar, self.given_fr, self.family_ar, self.family_fr = given_ar, given_fr, family_ar, family_fr

    def human_names(self, prefix_fr: str | None = None) -> list[dict]:
        ar = {
            "extension": [{"url": LANGUAGE_EXT, "valueCode": "ar"}],
            "use": "official",
            "text": f"{self.given_ar} {self.family_ar}",
            "family": self.family_ar,
            "given": [self.given_ar],
        }
        fr = {
            "extension": [{"url": LANGUAGE_EXT, "valueCode": "fr"}],
            "use": "official",
            "text": f"{self.given_fr} {self.family_fr.upper()}",
            "family": self.family_fr,
            "given": [self.given_fr],
        }
        if prefix_fr:
            fr["prefix"] = [prefix_fr]
        return [ar, fr]

    def display(self) -> str:
        return f"{self.given_fr} {self.family_fr}"


def family_name(rng: random.Random) -> tuple[str, str]:
    ar, spellings = _FAMILY.pick(rng)
    return _arabic(rng, ar), _spelling(rng, spellings)


def person_name(rng: random.Random, gender: str, family: tuple[str, str] | None = None) -> PersonName:
    ar, spellings = (_MALE if gender == "male" else _FEMALE).pick(rng)
    fam_ar, fam_fr = family or family_name(rng)
    return PersonName(_arabic(rng, ar), _spelling(rng, spellings), fam_ar, fam_fr)

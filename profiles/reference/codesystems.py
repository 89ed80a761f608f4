"""The acts, medicines and ALD code systems, built from reference table rows.

The same builders serve the shipped sample files (parsed with the loader's checks, so a
broken sample fails the tests) and the tables loaded in the database (``from_database``),
so the terminology the forms autocomplete on is the list the claims are priced with.
"""
from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from profiles.reference.kinds import money
from profiles.reference.loader import parse_file
from profiles.reference.pricing import version_in_force
from profiles.reference.tables import act, ald, ald_icd10, medicine, reference_table_version

SAMPLE_DIR = Path(__file__).parent / "sample"
SAMPLE_FILES = {"tariffs": "tariffs.csv", "medicines": "medicines.csv", "ald": "ald.csv"}
BASE = "https://fhir.sijill.ma/"
ICD10 = "http://hl7.org/fhir/sid/icd-10"


def _designations(fr: str, ar: str | None) -> list[dict]:
    # Names without an Arabic form (brand names) are shown as written in both languages.
    return [{"language": "fr", "value": fr}, {"language": "ar", "value": ar or fr}]


def _codesystem(name: str, title: str, description: str, version: str, properties: list[dict],
                concepts: list[dict], sample: bool) -> dict:
    return {
        "resourceType": "CodeSystem", "id": name, "url": f"{BASE}CodeSystem/{name}", "version": version,
        "name": "".join(p.capitalize() for p in name.split("-")), "title": title, "status": "active",
        "experimental": sample, "publisher": "Sijill", "language": "fr",
        "jurisdiction": [{"coding": [{"system": "urn:iso:std:iso:3166", "code": "MA"}]}],
        "description": description + (" DONNÉES D'EXEMPLE : ni les prix ni les tarifs ne sont officiels." if sample else ""),
        "caseSensitive": True, "valueSet": f"{BASE}ValueSet/{name}", "content": "complete",
        "count": len(concepts), "property": properties, "concept": concepts,
    }


def acts_codesystem(rows: list[dict], version: str, sample: bool) -> dict:
    concepts = [{
        "code": r["code"], "display": r["label_fr"], "designation": _designations(r["label_fr"], r.get("label_ar")),
        "property": [
            {"code": "lettre-cle", "valueCode": r["letter_key"]},
            {"code": "coefficient", "valueDecimal": float(r["coefficient"])},
            {"code": "categorie", "valueCode": r["category"]},
        ],
    } for r in rows]
    props = [
        {"code": "lettre-cle", "uri": f"{BASE}CodeSystem/lettre-cle", "type": "code",
         "description": "Lettre-clé de cotation (CodeSystem lettre-cle)"},
        {"code": "coefficient", "type": "decimal", "description": "Coefficient appliqué à la valeur de la lettre-clé"},
        {"code": "categorie", "type": "code", "description": "Type de feuille de soins (CodeSystem type-feuille-soins)"},
    ]
    return _codesystem("acte", "Nomenclature des actes", "Actes professionnels cotés par lettre-clé et coefficient ; "
                       "les tarifs par organisme sont dans les tables de référence versionnées.", version, props, concepts, sample)


def medicines_codesystem(rows: list[dict], version: str, sample: bool) -> dict:
    concepts = []
    for r in rows:
        display = f"{r['name']} {r['strength']} {r['form']}" + (f", {r['presentation']}" if r.get("presentation") else "")
        props = [
            {"code": "dci", "valueString": r["dci"]},
            {"code": "dosage", "valueString": r["strength"]},
            {"code": "forme", "valueString": r["form"]},
            {"code": "ppv", "valueDecimal": float(money(r["ppv_centimes"]))},
            {"code": "remboursable", "valueBoolean": bool(r["reimbursable"])},
            {"code": "princeps", "valueBoolean": bool(r["originator"])},
        ]
        if r.get("base_centimes") is not None:
            props.append({"code": "prix-base-remboursement", "valueDecimal": float(money(r["base_centimes"]))})
        if r.get("generic_group"):
            props.append({"code": "groupe-generique", "valueString": r["generic_group"]})
        if r.get("atc"):
            props.append({"code": "atc", "valueCode": r["atc"]})
        concepts.append({"code": r["code"], "display": display,
                         "designation": _designations(display, r.get("name_ar")), "property": props})
    props = [
        {"code": "dci", "type": "string", "description": "Dénomination commune internationale (principe actif)"},
        {"code": "dosage", "type": "string", "description": "Dosage"},
        {"code": "forme", "type": "string", "description": "Forme galénique"},
        {"code": "ppv", "type": "decimal", "description": "Prix public de vente (MAD)"},
        {"code": "prix-base-remboursement", "type": "decimal", "description": "Base de remboursement : prix du générique le plus proche (MAD)"},
        {"code": "groupe-generique", "type": "string", "description": "Groupe générique (même DCI, dosage et forme)"},
        {"code": "remboursable", "type": "boolean", "description": "Admis au remboursement"},
        {"code": "princeps", "type": "boolean", "description": "Princeps (vrai) ou générique (faux)"},
        {"code": "atc", "type": "code", "description": "Classe ATC de l'OMS"},
    ]
    return _codesystem("medicament", "Liste des médicaments", "Présentations de médicaments identifiées par leur code-barres "
                       "EAN-13, avec prix public de vente, base de remboursement et groupe générique.", version, props, concepts, sample)


def ald_codesystem(rows: list[dict], version: str, sample: bool) -> dict:
    concepts = [{
        "code": r["code"], "display": r["label_fr"], "designation": _designations(r["label_fr"], r.get("label_ar")),
        "property": [{"code": "categorie", "valueCode": r["category"]}]
        + [{"code": "cim-10", "valueString": low if low == high else f"{low}-{high}"} for low, high in r["icd10"]],
    } for r in rows]
    props = [
        {"code": "categorie", "type": "code", "description": "ALD ou ALC (CodeSystem type-exoneration)"},
        {"code": "cim-10", "type": "string", "description": "Code ou plage de codes CIM-10 couverts par l'exonération"},
    ]
    return _codesystem("ald", "Affections de longue durée et affections lourdes et coûteuses",
                       "Liste des ALD et ALC ouvrant droit à exonération du ticket modérateur, avec leurs codes CIM-10.",
                       version, props, concepts, sample)


def ald_conceptmap(rows: list[dict], version: str) -> dict:
    return {
        "resourceType": "ConceptMap", "id": "ald-vers-cim-10", "url": f"{BASE}ConceptMap/ald-vers-cim-10",
        "version": version, "name": "AldVersCim10", "title": "ALD/ALC vers CIM-10", "status": "active",
        "publisher": "Sijill", "description": "Codes et plages CIM-10 couverts par chaque ALD/ALC.",
        "sourceCanonical": f"{BASE}ValueSet/ald", "targetCanonical": f"{BASE}ValueSet/cim-10",
        "group": [{"source": f"{BASE}CodeSystem/ald", "target": ICD10, "element": [
            {"code": r["code"], "display": r["label_fr"], "target": [
                {"code": low if low == high else f"{low}-{high}", "equivalence": "wider"} for low, high in r["icd10"]
            ]} for r in rows
        ]}],
    }


_BUILDERS = {"tariffs": acts_codesystem, "medicines": medicines_codesystem, "ald": ald_codesystem}


@lru_cache(maxsize=None)
def sample_resources() -> tuple[dict, ...]:
    """The code systems (and the ALD→ICD-10 map) of the shipped sample tables."""
    out: list[dict] = []
    for kind, filename in SAMPLE_FILES.items():
        parsed = parse_file(kind, SAMPLE_DIR / filename)
        rows = [r for _, r in parsed.records]
        version = parsed.meta.get("version", "SAMPLE")
        out.append(_BUILDERS[kind](rows, version, True))
        if kind == "ald":
            out.append(ald_conceptmap(rows, version))
    return tuple(out)


async def from_database(conn: AsyncConnection, on_date: date | None = None) -> list[dict]:
    """The code systems of the tables in force on ``on_date`` (today by default), for
    ``TerminologyService.add`` after official tables were loaded.  Kinds never loaded are absent."""
    on_date = on_date or date.today()
    v = reference_table_version
    out: list[dict] = []
    for kind, table in (("tariffs", act), ("medicines", medicine), ("ald", ald)):
        head = (await conn.execute(select(v.c.id, v.c.version, v.c.sample).where(v.c.id == version_in_force(kind, on_date)))).first()
        if head is None:
            continue
        rows = [dict(r._mapping) for r in (await conn.execute(select(table).where(table.c.version_id == head.id).order_by(table.c.code))).all()]
        if kind == "ald":
            ranges: dict[str, list[tuple[str, str]]] = {}
            for r in (await conn.execute(select(ald_icd10).where(ald_icd10.c.version_id == head.id))).all():
                ranges.setdefault(r.ald_code, []).append((r.icd_from, r.icd_to))
            for r in rows:
                r["icd10"] = ranges.get(r["code"], [])
        out.append(_BUILDERS[kind](rows, head.version, head.sample))
        if kind == "ald":
            out.append(ald_conceptmap(rows, head.version))
    return out

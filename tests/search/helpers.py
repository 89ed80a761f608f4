"""Helpers shared by the search tests: storing resources directly and running searches."""
from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import orjson
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ehr.search.engine import search
from ehr.search.indexer import index_resource
from ehr.store.schema import resource

BASE = "http://test/fhir"
EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "examples.ndjson.gz"


@lru_cache(maxsize=1)
def official_examples() -> tuple[dict, ...]:
    with gzip.open(EXAMPLES, "rb") as fh:
        return tuple(orjson.loads(line) for line in fh if line.strip())


class StatementCounter:
    """Counts the SQL statements an engine sends (SQLAlchemy ``before_cursor_execute``)."""

    def __init__(self, engine: AsyncEngine):
        self.statements: list[str] = []
        self.engine = engine

    def __enter__(self):
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):  # transaction control
            self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)


_clock = [1_700_000_000_000_000]


async def store(engine: AsyncEngine, *resources: dict, deleted: bool = False) -> dict[str, int]:
    """Insert ``resources`` as version 1 and index them; {"Type/id": rid}."""
    rids = {}
    async with engine.begin() as conn:
        for res in resources:
            _clock[0] += 1_000_000
            rid = (
                await conn.execute(
                    insert(resource)
                    .values(
                        res_type=res["resourceType"],
                        res_id=res["id"],
                        version_id=1,
                        last_updated=res.get("_last_updated", _clock[0]),
                        deleted=deleted,
                        content=None if deleted else orjson.dumps({k: v for k, v in res.items() if k != "_last_updated"}),
                    )
                    .returning(resource.c.rid)
                )
            ).scalar_one()
            if not deleted:
                await index_resource(conn, rid, res)
            rids[f"{res['resourceType']}/{res['id']}"] = rid
    return rids


def pairs(query: str) -> list[tuple[str, str]]:
    """Query pairs from ``a=1&b=2`` without URL-decoding (tests write values literally)."""
    out = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            out.append((name, value))
    return out


async def run(engine: AsyncEngine, res_type: str | None, query: str, **kw) -> dict:
    async with engine.connect() as conn:
        outcome = await search(conn, res_type, pairs(query), base_url=BASE, **kw)
    body = orjson.loads(outcome.bundle)
    body["_outcome"] = outcome
    return body


def ids(bundle: dict, mode: str = "match") -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == mode
    ]


async def found(engine: AsyncEngine, res_type: str | None, query: str, **kw) -> set[str]:
    """Ids matched by ``query`` (strict by default, so a mistyped parameter fails the test)."""
    kw.setdefault("handling", "strict")
    return set(ids(await run(engine, res_type, query + "&_count=1000", **kw)))


SID = "https://fhir.sijill.ma/sid"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def world() -> list[dict]:
    """A small Moroccan care network: patients, practitioners, a clinic, observations, a
    claim, a prescription... enough to exercise every search feature."""
    return [
        {"resourceType": "Organization", "id": "cnss", "name": "Caisse Nationale de Sécurité Sociale",
         "identifier": [{"system": f"{SID}/inpe", "value": "CNSS-01"}]},
        {"resourceType": "Organization", "id": "atlas", "name": "Clinique Atlas", "partOf": {"reference": "Organization/cnss"},
         "identifier": [{"system": f"{SID}/inpe", "value": "100200300"}],
         "address": [{"line": ["12 Boulevard Zerktouni"], "city": "Casablanca", "postalCode": "20000", "country": "MA"}]},
        {"resourceType": "Practitioner", "id": "dr-karim", "name": [{"family": "Benjelloun", "given": ["Karim"], "prefix": ["Dr"]}],
         "identifier": [{"system": f"{SID}/inpe", "value": "12345"}], "gender": "male"},
        {"resourceType": "Practitioner", "id": "dr-fatima", "name": [{"family": "El Idrissi", "given": ["Fatima", "Zahra"]}],
         "identifier": [{"system": f"{SID}/inpe", "value": "67890"}], "gender": "female"},
        {"resourceType": "PractitionerRole", "id": "role-karim", "practitioner": {"reference": "Practitioner/dr-karim"},
         "organization": {"reference": "Organization/atlas"}},
        {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1980-05-12", "active": True,
         "name": [{"family": "العلوي", "given": ["مُحَمَّد"]}, {"family": "Alaoui", "given": ["Mohamed"]}],
         "identifier": [
             {"system": f"{SID}/cin", "value": "AB123456",
              "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NI"}], "text": "Carte nationale"}},
             {"system": f"{SID}/cnss", "value": "112233445"}],
         "telecom": [{"system": "phone", "value": "+212600000001"}, {"system": "email", "value": "m.alaoui@example.ma"}],
         "address": [{"line": ["5 Rue Ibn Batouta"], "city": "Casablanca", "country": "MA"}],
         "generalPractitioner": [{"reference": "Practitioner/dr-karim"}],
         "managingOrganization": {"reference": "Organization/atlas"},
         "meta": {"tag": [{"system": "https://fhir.sijill.ma/CodeSystem/source", "code": "amo"}],
                  "profile": ["https://fhir.sijill.ma/StructureDefinition/patient-ma"]}},
        {"resourceType": "Patient", "id": "p2", "gender": "female", "birthDate": "1992-11-03",
         "name": [{"family": "Benjelloun-Tazi", "given": ["Élodie"]}],
         "identifier": [{"system": f"{SID}/cin", "value": "BE98765"}, {"system": f"{SID}/cnops", "value": "C-5566"}],
         "address": [{"city": "Rabat", "country": "MA"}],
         "generalPractitioner": [{"reference": "Practitioner/dr-fatima"}],
         "managingOrganization": {"reference": "Organization/atlas"}},
        {"resourceType": "Patient", "id": "p3", "gender": "male", "birthDate": "2001-01-20", "deceasedDateTime": "2023-06-01",
         "name": [{"family": "Aït Ben Haddou", "given": ["M'hamed"]}],
         "identifier": [{"system": f"{SID}/amo-tadamon", "value": "T-777"}]},
        {"resourceType": "Patient", "id": "p4", "gender": "female", "birthDate": "1975",
         "name": [{"text": "آمنة بنت إبراهيم", "family": "إبراهيم", "given": ["آمنة"]}],
         "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso"}]},
        {"resourceType": "Encounter", "id": "e1", "status": "finished", "class": {"code": "AMB"},
         "subject": {"reference": "Patient/p1"}, "participant": [{"individual": {"reference": "Practitioner/dr-karim"}}],
         "serviceProvider": {"reference": "Organization/atlas"},
         "period": {"start": "2024-03-01T09:30:00+01:00", "end": "2024-03-01T10:15:00+01:00"}},
        {"resourceType": "Observation", "id": "o1", "status": "final",
         "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}], "text": "Fréquence cardiaque"},
         "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
         "performer": [{"reference": "Practitioner/dr-karim"}],
         "effectiveDateTime": "2024-03-01T10:00:00+01:00",
         "valueQuantity": {"value": 72, "unit": "beats/minute", "system": UCUM, "code": "/min"}},
        {"resourceType": "Observation", "id": "o2", "status": "final",
         "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
         "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-03-01",
         "component": [
             {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": {"value": 140, "system": UCUM, "code": "mm[Hg]"}},
             {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": {"value": 90, "system": UCUM, "code": "mm[Hg]"}}]},
        {"resourceType": "Observation", "id": "o3", "status": "final",
         "code": {"coding": [{"system": LOINC, "code": "2345-7", "display": "Glucose"}]},
         "subject": {"reference": "Patient/p2"}, "performer": [{"reference": "Practitioner/dr-fatima"}],
         "effectivePeriod": {"start": "2023-12-31T23:00:00Z", "end": "2024-01-01T01:00:00Z"},
         "valueQuantity": {"value": 1.05, "unit": "g/L", "system": UCUM, "code": "g/L"}},
        {"resourceType": "Observation", "id": "o4", "status": "preliminary",
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
         "code": {"coding": [{"system": LOINC, "code": "94500-6"}], "text": "SARS-CoV-2 PCR"},
         "subject": {"reference": "Patient/p2"}, "effectiveDateTime": "2022-01-15", "valueString": "Négatif"},
        {"resourceType": "Observation", "id": "o5", "status": "final",
         "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
         "subject": {"reference": "Patient/p3"}, "effectiveDateTime": "2019",
         "valueQuantity": {"value": 110, "system": UCUM, "code": "/min"}},
        {"resourceType": "Claim", "id": "c1", "status": "active", "use": "claim",
         "identifier": [{"system": f"{SID}/claim", "value": "FS-2024-0001"}],
         "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
         "patient": {"reference": "Patient/p1"}, "created": "2024-03-02",
         "provider": {"reference": "Organization/atlas"}, "insurer": {"reference": "Organization/cnss"},
         "priority": {"coding": [{"code": "normal"}]},
         "insurance": [{"sequence": 1, "focal": True, "coverage": {"identifier": {"system": f"{SID}/cnss", "value": "112233445"}}}],
         "total": {"value": 350.0, "currency": "MAD"}},
        {"resourceType": "MedicationRequest", "id": "rx1", "status": "active", "intent": "order",
         "identifier": [{"system": f"{SID}/prescription", "value": "RX-9"}],
         "medicationCodeableConcept": {"coding": [{"system": "https://fhir.sijill.ma/CodeSystem/medicaments", "code": "DOLIPRANE-1G", "display": "Doliprane 1 g"}]},
         "subject": {"reference": "Patient/p1"}, "requester": {"reference": "Practitioner/dr-karim"},
         "authoredOn": "2024-03-01"},
        {"resourceType": "RiskAssessment", "id": "ra1", "status": "final", "subject": {"reference": "Patient/p1"},
         "prediction": [{"probabilityDecimal": 0.02}, {"probabilityDecimal": 0.35}]},
        {"resourceType": "ValueSet", "id": "vs1", "status": "active", "url": "https://fhir.sijill.ma/ValueSet/actes-ngap", "version": "1.0"},
        {"resourceType": "ActivityDefinition", "id": "ad1", "status": "active",
         "library": ["https://fhir.sijill.ma/Library/base|2.0"]},
        {"resourceType": "Provenance", "id": "prov1", "recorded": "2024-03-01T10:05:00Z",
         "target": [{"reference": "Observation/o1"}], "agent": [{"who": {"reference": "Practitioner/dr-karim"}}]},
    ]

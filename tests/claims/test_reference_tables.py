"""Adjudication on the national reference tables once they are loaded (profiles/ loader)."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine

from claims.ports import TABLES, file_reference, reference_for, use_reference
from claims.uris import ATC, MEDICINE
from ehr.store.db import sync_url
from ehr.store.schema import metadata
from profiles.reference import tables as reference_tables
from profiles.reference.loader import load
from tests.claims import builders as b
from tests.claims.test_adjudication_scenarios import World, decided, drain, reasons, submit

SAMPLES = Path(reference_tables.__file__).resolve().parent / "sample"


def _create_reference_tables(url: str) -> None:
    engine = create_engine(sync_url(url))
    try:
        wanted = [t for t in metadata.sorted_tables if t.name in {
            "reference_table_version", "medicine", "medicine_fund", "act", "act_tariff", "ald", "ald_icd10"}]
        metadata.create_all(engine, tables=wanted, checkfirst=True)
    finally:
        engine.dispose()


async def test_loaded_tables_replace_the_sample_files(client, app, settings, database_url, tmp_path):
    _create_reference_tables(database_url)
    engine = app.state.engine
    async with engine.connect() as conn:
        assert await reference_for(conn) is file_reference()  # nothing loaded yet
    # a newer tariff table in which the GP consultation is 90 MAD
    csv = tmp_path / "tarifs-2026.csv"
    csv.write_text(
        "# version: TEST-2026\n# effective_from: 2024-01-01\n"
        "Code;Libellé;Libellé arabe;Lettre clé;Coefficient;Catégorie;CNSS;CNOPS;AMO-TADAMON\n"
        "C;Consultation du médecin généraliste;استشارة الطبيب العام;C;1;consultation;90.00;90.00;90.00\n",
        encoding="utf-8",
    )
    async with engine.begin() as conn:
        await load(conn, "tariffs", csv)
        await load(conn, "medicines", SAMPLES / "medicines.csv")
        await load(conn, "ald", SAMPLES / "ald.csv")
    use_reference(None)  # what a running worker does by itself once a minute
    async with engine.connect() as conn:
        assert await reference_for(conn) is TABLES

    w = await World().build(client, ald=["ALD09"])
    gp = await submit(client, w.sheet([b.act("C", 100, b.days_ago(1))]))
    specialist = await submit(client, w.sheet([b.act("CS", 150, b.days_ago(2))]))  # not in the loaded table
    pharmacy = await b.facility(client, "301234567", kind="pharmacie")
    rx = await b.create(client, {
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "A10BA02"}]},
        "subject": {"reference": f"Patient/{w.patient['id']}"}, "authoredOn": b.days_ago(1).isoformat(),
        "dispenseRequest": {"quantity": {"value": 1}},
    })
    await b.create(client, {
        "resourceType": "MedicationDispense", "status": "completed",
        "medicationCodeableConcept": {"coding": [{"system": MEDICINE, "code": "6118001032938"}, {"system": ATC, "code": "A10BA02"}]},
        "subject": {"reference": f"Patient/{w.patient['id']}"},
        "authorizingPrescription": [{"reference": f"MedicationRequest/{rx['id']}"}],
        "quantity": {"value": 1}, "whenHandedOver": b.days_ago(1).isoformat(),
    })
    sheet = w.sheet([b.medicine("6118001032938", 24.90, b.days_ago(1))], provider=b.provider_ref(pharmacy),
                    kind="pharmacy", diagnoses=["E11"])
    sheet["item"][0]["diagnosisSequence"] = [1]
    metformin = await submit(client, sheet)
    await drain(app, settings)
    assert b.amount((await decided(client, gp))["item"][0], "benefit") == 63  # 70 % of the loaded 90
    assert reasons((await decided(client, specialist))["item"][0]) == "no-tariff"
    line = (await decided(client, metformin))["item"][0]
    assert b.amount(line, "eligible") == 14.2 and b.amount(line, "benefit") == 14.2  # base 14.20, ALD at 100 %

"""Reference tables: CSV/XLSX loaders (all or nothing, bad rows by line number), versions and
effective dates, pricing on a service date — on SQLite and on PostgreSQL."""
from __future__ import annotations

import os
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from ehr.outcome import FHIRError
from ehr.store.db import create_engine, write_transaction
from profiles.cli import reference_app
from profiles.reference import (
    REFERENCE_TABLES,
    LoadRejected,
    ald_for,
    load,
    medicine_for,
    tariff_for,
    tariffs_for,
)
from profiles.reference.codesystems import SAMPLE_DIR, from_database
from profiles.reference.tables import act, act_tariff, medicine, reference_table_version
from profiles.terminology import TerminologyService, base_resources, moroccan_resources

PG_ADMIN = os.environ.get("SIJILL_PROFILES_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = "sijill_profiles"


def _postgres_url() -> str:
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            if not conn.execute("select 1 from pg_database where datname = %s", (PG_DB,)).fetchone():
                conn.execute(f'create database "{PG_DB}"')
    except psycopg.Error as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI and is unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    return f"postgresql+psycopg://{PG_ADMIN.split('://', 1)[1].rsplit('/', 1)[0]}/{PG_DB}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'reference.db'}"
    return _postgres_url()


@pytest.fixture
async def engine(db_url):
    eng = create_engine(db_url, pool_size=2)
    async with eng.begin() as conn:
        await conn.run_sync(lambda c: reference_table_version.metadata.drop_all(c, tables=list(REFERENCE_TABLES)))
        await conn.run_sync(lambda c: reference_table_version.metadata.create_all(c, tables=list(REFERENCE_TABLES)))
    yield eng
    await eng.dispose()


async def _load(engine, kind, path, **options):
    async with write_transaction(engine) as conn:
        return await load(conn, kind, path, **options)


async def _count(engine, table) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


def _csv(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


TARIFF_HEADER = "Code;Libellé;Lettre clé;Coefficient;Catégorie;CNSS;CNOPS\n"


# ---------------------------------------------------------------- good files


async def test_sample_tables_load_and_price(engine):
    progress: list[tuple[str, int, int]] = []
    report = await _load(engine, "tariffs", SAMPLE_DIR / "tariffs.csv", progress=lambda *a: progress.append(a))
    assert report.version == "SAMPLE-2024" and report.sample is True
    assert report.effective_from == date(2024, 1, 1) and report.rows > 250
    assert progress[-1] == ("chargement", report.rows, report.rows)
    assert ("validation", report.rows, report.rows) in progress
    await _load(engine, "medicines", SAMPLE_DIR / "medicines.csv")
    await _load(engine, "ald", SAMPLE_DIR / "ald.csv")
    async with engine.connect() as conn:
        consultation = await tariff_for(conn, "C", "CNSS", date(2024, 5, 2))
        assert consultation.amount == Decimal("80.00") and consultation.letter_key == "C"
        assert consultation.version == "SAMPLE-2024"
        batch = await tariffs_for(conn, ["C", "CS", "B1001", "NOPE"], "CNOPS", date(2024, 5, 2))
        assert set(batch) == {"C", "CS", "B1001"}
        assert batch["B1001"].amount == Decimal("44.00")  # B40 x 1.10 MAD
        assert await tariff_for(conn, "C", "CNSS", date(2023, 12, 31)) is None  # before the table existed
        doliprane = await medicine_for(conn, "6118001000371", date(2024, 5, 2))
        assert doliprane.name == "Doliprane" and doliprane.ppv == Decimal("11.70")
        assert doliprane.reimbursement_base == Decimal("8.90") and doliprane.reimbursable
        # Tahor 10 mg: reimbursed nationally and by CNSS, not by CNOPS; a fund without a column follows the nation
        tahor = {fund: (await medicine_for(conn, "6118001049950", date(2024, 5, 2), fund)).reimbursable
                 for fund in (None, "CNSS", "CNOPS", "MGPAP")}
        assert tahor == {None: True, "CNSS": True, "CNOPS": False, "MGPAP": True}
        assert [a.code for a in await ald_for(conn, "E11.9", date(2024, 5, 2))] == ["ALD09"]
        assert [a.code for a in await ald_for(conn, "I63.9", date(2024, 5, 2))] == ["ALD01"]
        assert [a.code for a in await ald_for(conn, "z94.0", date(2024, 5, 2))] == ["ALC01"]
        assert await ald_for(conn, "J06.9", date(2024, 5, 2)) == []


async def test_xlsx_with_meta_sheet(engine, tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.title = "Médicaments"
    ws.append(["Code", "Nom commercial", "DCI", "Dosage", "Forme", "PPV", "PBR", "Remboursable", "Type", "Colonne libre"])
    ws.append(["6111234567895", "Amoxil", "Amoxicilline", "1 g", "comprimé", 44.9, 39.5, "oui", "G", "x"])
    ws.append(["6111234567888", "Clamoxyl", "Amoxicilline", "1 g", "comprimé", 56.8, 39.5, "O", "P", None])
    ws.append([None] * 10)  # blank rows are skipped
    ws.append(["6111234567871", "Vitamine C", "Acide ascorbique", "500 mg", "comprimé", 12, None, "non", "princeps", None])
    meta = wb.create_sheet("meta")
    meta.append(["version", "LNM-2025-01"])
    meta.append(["effective_from", "01/01/2025"])
    meta.append(["source", "Liste nationale des médicaments"])
    path = tmp_path / "medicaments.xlsx"
    wb.save(path)

    report = await _load(engine, "medicines", path)
    assert (report.version, report.effective_from, report.rows) == ("LNM-2025-01", date(2025, 1, 1), 3)
    assert report.ignored_columns == ["Colonne libre"] and report.sample is False
    async with engine.connect() as conn:
        amoxil = await medicine_for(conn, "6111234567895", date(2025, 2, 1))
        assert amoxil.ppv == Decimal("44.90") and amoxil.reimbursement_base == Decimal("39.50")
        assert amoxil.originator is False
        vitamin = await medicine_for(conn, "6111234567871", date(2025, 2, 1))
        assert vitamin.reimbursable is False and vitamin.reimbursement_base is None


# ---------------------------------------------------------------- bad files


async def test_bad_rows_reported_by_line_and_nothing_loaded(engine, tmp_path):
    path = _csv(tmp_path, "lnm.csv", (
        "# version: LNM-BAD\n"
        "# effective_from: 2025-01-01\n"
        "Code;Nom;DCI;Dosage;Forme;PPV;Prix base remboursement;Remboursable;Princeps/Générique\n"
        "6111234567895;Amoxil;Amoxicilline;1 g;comprimé;44,90;39,50;oui;générique\n"  # line 4: good
        "6111234567893;Amoxil;Amoxicilline;1 g;comprimé;44,90;39,50;oui;générique\n"  # 5: bad check digit
        "6111234567888;Clamoxyl;Amoxicilline;1 g;comprimé;56,80;60,00;oui;princeps\n"  # 6: base > PPV
        "6111234567871;;Acide ascorbique;500 mg;comprimé;douze;;peut-être;X\n"  # 7: 4 problems
        "\n"
        "6111234567895;Amoxil bis;Amoxicilline;1 g;comprimé;44,90;39,50;oui;G\n"  # 9: duplicate of line 4
        "6111234567864;Zinnat;Céfuroxime;500 mg;comprimé;142,70;;oui;P\n"  # 10: reimbursable without base
    ))
    with pytest.raises(LoadRejected) as err:
        await _load(engine, "medicines", path)
    by_line: dict[int, list[str]] = {}
    for e in err.value.errors:
        by_line.setdefault(e.line, []).append(f"{e.column}: {e.message}")
    assert sorted(by_line) == [5, 6, 7, 9, 10]
    assert "clé de contrôle" in by_line[5][0]
    assert "supérieure au PPV" in by_line[6][0]
    assert len(by_line[7]) == 4 and any(m.startswith("Nom:") for m in by_line[7])
    assert any("PPV" in m and "montant invalide" in m for m in by_line[7])
    assert any("Remboursable" in m for m in by_line[7]) and any("princeps" in m for m in by_line[7])
    assert "déjà ligne 4" in by_line[9][0]
    assert "base de remboursement" in by_line[10][0]
    assert err.value.status == 422
    assert all(i.diagnostics.startswith("ligne ") for i in err.value.issues)
    assert await _count(engine, reference_table_version) == 0
    assert await _count(engine, medicine) == 0


async def test_a_fund_that_reimburses_a_pack_needs_its_base(engine, tmp_path):
    header = "Code;Nom;DCI;Dosage;Forme;PPV;Prix base remboursement;Remboursable;Princeps/Générique;CNSS;CNOPS\n"
    path = _csv(tmp_path, "medicaments.csv", "# version: V1\n# effective_from: 2024-01-01\n" + header +
                "6118001000371;Doliprane;Paracétamol;500 mg;comprimé;11,70;;non;P;oui;\n"  # line 4: CNSS pays, no base
                "6118001000746;Doliprane;Paracétamol;1000 mg;comprimé;13,90;10,50;oui;P;;peut-être\n")  # line 5
    with pytest.raises(LoadRejected) as refused:
        await _load(engine, "medicines", path)
    assert [(e.line, e.column) for e in refused.value.errors] == [(4, "Prix base remboursement"), (5, "CNOPS")]


async def test_missing_columns_and_unknown_values(engine, tmp_path):
    path = _csv(tmp_path, "tnr.csv", "Code;Libellé;Coefficient\nC;Consultation;1\n")
    with pytest.raises(LoadRejected) as err:
        await _load(engine, "tariffs", path, version="X", effective_from="2025-01-01")
    messages = [(e.line, e.column, e.message) for e in err.value.errors]
    assert (1, "Lettre clé", "colonne obligatoire absente de l'en-tête") in messages
    assert (1, "Catégorie", "colonne obligatoire absente de l'en-tête") in messages
    assert any("aucune colonne de tarif par organisme" in m for _, _, m in messages)

    path = _csv(tmp_path, "tnr2.csv", TARIFF_HEADER + "C;Consultation;Q;1;consultation;80;80\n"
                "CS;Consultation spécialiste;CS;-1;inconnue;150;abc\n" "K1;Acte;K;2;actes;;\n")
    with pytest.raises(LoadRejected) as err:
        await _load(engine, "tariffs", path, version="X", effective_from="2025-01-01")
    found = {(e.line, e.column) for e in err.value.errors}
    assert found == {(2, "Lettre clé"), (3, "Coefficient"), (3, "Catégorie"), (3, "CNOPS"), (4, None)}
    assert await _count(engine, act) == 0


async def test_metadata_is_required_and_checked(engine, tmp_path):
    path = _csv(tmp_path, "ald.csv", "Code;Libellé;Catégorie;CIM-10\nALD09;Diabète;ALD;E10-E14\n")
    with pytest.raises(FHIRError) as err:
        await _load(engine, "ald", path)
    assert {i.expression for i in err.value.issues} == {("version",), ("effective_from",)}
    with pytest.raises(FHIRError) as err:
        await _load(engine, "ald", path, version="1", effective_from="2025-02-01", effective_to="2025-01-01")
    assert err.value.issues[0].expression == ("effective_to",)
    with pytest.raises(FHIRError) as err:
        await _load(engine, "ald", _csv(tmp_path, "bad.csv", "Code;Libellé;Catégorie;CIM-10\nALD09;Diabète;ALD;E14-E10;\n"),
                    version="1", effective_from="2025-01-01")
    assert "plage CIM-10 inversée" in err.value.issues[0].diagnostics
    with pytest.raises(FHIRError) as err:
        await _load(engine, "vaccins", path, version="1", effective_from="2025-01-01")
    assert err.value.status == 400
    assert await _count(engine, reference_table_version) == 0


# ---------------------------------------------------------------- versions and service dates


async def test_pricing_uses_the_tariff_in_force_on_the_service_date(engine, tmp_path):
    v2024 = _csv(tmp_path, "tnr2024.csv", TARIFF_HEADER + "C;Consultation;C;1;consultation;80;80\nCS;Spécialiste;CS;1;consultation;150;150\n")
    v2025 = _csv(tmp_path, "tnr2025.csv", TARIFF_HEADER + "C;Consultation;C;1;consultation;120;110\nCS;Spécialiste;CS;1;consultation;250;\n")
    await _load(engine, "tariffs", v2024, version="TNR-2024", effective_from=date(2024, 1, 1))
    report = await _load(engine, "tariffs", v2025, version="TNR-2025", effective_from="2025-03-01")
    assert report.closed_version == "TNR-2024"

    async with engine.connect() as conn:
        versions = {r.version: (r.effective_from, r.effective_to) for r in (await conn.execute(select(reference_table_version))).all()}
        assert versions == {"TNR-2024": (date(2024, 1, 1), date(2025, 2, 28)), "TNR-2025": (date(2025, 3, 1), None)}
        assert (await tariff_for(conn, "C", "CNSS", date(2025, 2, 28))).amount == Decimal("80.00")
        assert (await tariff_for(conn, "C", "CNSS", date(2025, 3, 1))).amount == Decimal("120.00")
        assert (await tariff_for(conn, "C", "CNOPS", date(2025, 3, 1))).amount == Decimal("110.00")
        assert (await tariff_for(conn, "CS", "CNOPS", date(2024, 12, 1))).version == "TNR-2024"
        assert await tariff_for(conn, "CS", "CNOPS", date(2025, 6, 1)) is None  # not covered by CNOPS in 2025

    # A table for an earlier period is closed where the next one starts.
    v2023 = _csv(tmp_path, "tnr2023.csv", TARIFF_HEADER + "C;Consultation;C;1;consultation;70;70\n")
    backfill = await _load(engine, "tariffs", v2023, version="TNR-2023", effective_from="2023-01-01")
    assert backfill.effective_to == date(2023, 12, 31)
    async with engine.connect() as conn:
        assert (await tariff_for(conn, "C", "CNSS", date(2023, 6, 1))).amount == Decimal("70.00")
        assert (await tariff_for(conn, "C", "CNSS", date(2024, 6, 1))).amount == Decimal("80.00")


async def test_same_version_or_same_date_is_refused_and_previous_kept(engine, tmp_path):
    v1 = _csv(tmp_path, "a.csv", TARIFF_HEADER + "C;Consultation;C;1;consultation;80;80\n")
    await _load(engine, "tariffs", v1, version="TNR-1", effective_from="2024-01-01")
    with pytest.raises(FHIRError) as err:
        await _load(engine, "tariffs", v1, version="TNR-1", effective_from="2025-01-01")
    assert err.value.status == 409 and err.value.issues[0].expression == ("version",)
    with pytest.raises(FHIRError) as err:
        await _load(engine, "tariffs", v1, version="TNR-2", effective_from="2024-01-01")
    assert err.value.status == 409 and err.value.issues[0].expression == ("effective_from",)
    assert await _count(engine, reference_table_version) == 1
    assert await _count(engine, act_tariff) == 2


async def test_database_tables_become_the_terminology(engine, tmp_path):
    path = _csv(tmp_path, "ald.csv", "Code;Libellé;Libellé arabe;Catégorie;CIM-10\n"
                "ALD09;Diabète;داء السكري;ALD;E10-E14\nALD99;Affection nouvelle;;ALC;Z94.0\n")
    await _load(engine, "ald", path, version="ALD-2026", effective_from="2026-01-01")
    async with engine.connect() as conn:
        resources = await from_database(conn, date(2026, 2, 1))
        assert await from_database(conn, date(2025, 2, 1)) == []
    ald_cs = next(r for r in resources if r["resourceType"] == "CodeSystem")
    assert ald_cs["version"] == "ALD-2026" and [c["code"] for c in ald_cs["concept"]] == ["ALD09", "ALD99"]
    service = TerminologyService()
    service.install(base_resources())
    service.install(moroccan_resources())
    for r in resources:
        assert service.add(r) == []
    assert service.lookup("https://fhir.sijill.ma/CodeSystem/ald", "ALD99") is not None
    assert service.lookup("https://fhir.sijill.ma/CodeSystem/ald", "ALD01") is None  # the sample is replaced


# ---------------------------------------------------------------- CLI


def test_cli_load_list_and_reject(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    import asyncio

    async def create():
        eng = create_engine(url)
        async with eng.begin() as conn:
            await conn.run_sync(lambda c: reference_table_version.metadata.create_all(c, tables=list(REFERENCE_TABLES)))
        await eng.dispose()

    asyncio.run(create())
    runner = CliRunner(env={"COLUMNS": "220"})
    ok = runner.invoke(reference_app, ["load-sample", "--database-url", url])
    assert ok.exit_code == 0, ok.output
    assert "tariffs version SAMPLE-2024" in ok.output and "DONNÉES D'EXEMPLE" in ok.output
    again = runner.invoke(reference_app, ["load-sample", "--database-url", url])
    assert again.exit_code == 0 and "déjà chargée" in again.output
    bad = _csv(tmp_path, "bad.csv", TARIFF_HEADER + "C;Consultation;C;1;consultation;80;80\nCS;Spécialiste;XX;1;consultation;150;150\n")
    rejected = runner.invoke(reference_app, ["load", "tariffs", str(bad), "--version", "V2", "--effective-from", "2025-01-01",
                                             "--database-url", url])
    assert rejected.exit_code == 1
    assert "rien n'a été chargé" in rejected.output and "lettre-clé inconnu" in rejected.output
    listed = runner.invoke(reference_app, ["list", "--database-url", url])
    assert listed.exit_code == 0
    assert listed.output.count("SAMPLE-2024") == 3 and "V2" not in listed.output


def test_cli_without_the_tables_says_so(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    result = CliRunner(env={"COLUMNS": "220"}).invoke(reference_app, ["list", "--database-url", url])
    assert result.exit_code == 2 and "sijill db upgrade" in result.output

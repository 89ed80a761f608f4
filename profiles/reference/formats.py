"""Reading the published reference files (CSV or XLSX) into numbered rows of text cells.

Line numbers are those a person sees: the physical line of a CSV file, the row number of the
spreadsheet, so "ligne 812" in an error report is found at once.  A file may start with
``# clé: valeur`` lines (CSV) or carry a ``meta`` sheet (XLSX) giving its version, effective
dates and whether it is sample data.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Iterator

from ehr.outcome import FHIRError
from profiles.terminology.normalise import fold

META_SHEETS = ("meta", "metadonnees", "metadata")


@dataclass
class SourceTable:
    path: Path
    header: list[str]  # as written in the file
    header_line: int
    rows: list[tuple[int, list[str]]]  # (line number, cells as text)
    meta: dict[str, str] = field(default_factory=dict)


def column_key(header: str) -> str:
    """``"Prix public de vente (PPV)"`` -> ``"prix_public_de_vente_ppv"``."""
    return fold(header).replace(" ", "_")


def read_table(path: Path) -> SourceTable:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    if suffix in (".csv", ".txt"):
        return _read_csv(path)
    raise FHIRError.of(400, "not-supported", f"Format de fichier non pris en charge « {path.suffix} » : CSV ou XLSX attendu")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Spreadsheets exported on French Windows write CP1252.
        return raw.decode("cp1252")


def _read_csv(path: Path) -> SourceTable:
    text = _decode(path.read_bytes())
    lines = text.splitlines()
    meta: dict[str, str] = {}
    start = 0
    while start < len(lines) and (lines[start].startswith("#") or not lines[start].strip()):
        key, sep, value = lines[start].lstrip("#").partition(":")
        if sep and key.strip():
            meta[column_key(key)] = value.strip()
        start += 1
    if start >= len(lines):
        raise FHIRError.of(422, "required", f"Le fichier {path.name} ne contient pas de ligne d'en-tête")
    header_line = lines[start]
    delimiter = ";" if header_line.count(";") >= header_line.count(",") else ","
    reader = csv.reader(io.StringIO("\n".join(lines[start:])), delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    rows: list[tuple[int, list[str]]] = []
    for offset, cells in enumerate(reader):
        if any(c.strip() for c in cells):
            rows.append((start + 1 + offset + 1, [c.strip() for c in cells]))
    return SourceTable(path, header, start + 1, rows, meta)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, float):
        # 12.5 stays "12.5"; the binary noise of 0.1+0.2 is not carried into prices.
        return format(Decimal(repr(value)).normalize(), "f")
    return str(value).strip()


def _read_xlsx(path: Path) -> SourceTable:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a corrupt file
        raise FHIRError.of(422, "structure", f"Classeur XLSX illisible ({path.name}) : {exc}") from None
    try:
        meta: dict[str, str] = {}
        data_sheet = None
        for ws in wb.worksheets:
            if column_key(ws.title) in META_SHEETS:
                for row in ws.iter_rows(values_only=True):
                    if row and row[0] is not None and len(row) > 1:
                        meta[column_key(str(row[0]))] = _cell_text(row[1])
            elif data_sheet is None:
                data_sheet = ws
        if data_sheet is None:
            raise FHIRError.of(422, "required", f"Le classeur {path.name} n'a pas de feuille de données")
        header: list[str] | None = None
        header_line = 0
        rows: list[tuple[int, list[str]]] = []
        for number, row in enumerate(data_sheet.iter_rows(values_only=True), start=1):
            cells = [_cell_text(v) for v in row]
            if not any(cells):
                continue
            if header is None:
                header, header_line = cells, number
            else:
                rows.append((number, cells))
        if header is None:
            raise FHIRError.of(422, "required", f"Le classeur {path.name} ne contient pas de ligne d'en-tête")
        while header and not header[-1]:
            header.pop()
        return SourceTable(path, header, header_line, rows, meta)
    finally:
        wb.close()


def iter_records(table: SourceTable, keys: list[str | None]) -> Iterator[tuple[int, dict[str, str]]]:
    """Each row as ``{canonical column: text}`` for the columns that ``keys`` names."""
    for line, cells in table.rows:
        record = {}
        for i, key in enumerate(keys):
            if key is not None:
                record[key] = cells[i] if i < len(cells) else ""
        yield line, record

"""Loading one published reference file as a new version of its table: all or nothing.

Every row is checked before anything is written; a file with any bad row is rejected with
the full list (line, column, reason) and the tables are left as they were, so the version in
force does not change.  A good file is written in one transaction with its version and
effective dates; the version it supersedes is closed the day before.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.outcome import FHIRError, Issue
from profiles.reference import cells
from profiles.reference.formats import iter_records, read_table
from profiles.reference.kinds import KINDS, Kind, RowError
from profiles.reference.tables import (
    act, act_tariff, ald, ald_icd10, medicine, medicine_fund, reference_table_version, rsu_threshold,
)

BATCH = 1000
# progress(phase, done, total): phase is "validation" or "chargement".
Progress = Callable[[str, int, int], None]


@dataclass
class LoadReport:
    kind: str
    version: str
    version_id: int
    effective_from: date
    effective_to: date | None
    rows: int
    source: str
    sample: bool
    sha256: str
    ignored_columns: list[str] = field(default_factory=list)
    closed_version: str | None = None  # the previous version whose effective_to was set


class LoadRejected(FHIRError):
    """The file was not loaded; ``errors`` lists every bad row."""

    def __init__(self, errors: list[RowError], kind: str, path: Path):
        super().__init__(422, [e.issue() for e in errors])
        self.errors = errors
        self.kind = kind
        self.path = path


@dataclass
class ParsedFile:
    kind: Kind
    records: list[tuple[int, dict]]
    meta: dict[str, str]
    ignored: list[str]
    sha256: str


def parse_file(kind_name: str, path: Path, progress: Progress | None = None) -> ParsedFile:
    """Read and check every row; raise ``LoadRejected`` listing all problems."""
    kind = KINDS.get(kind_name)
    if kind is None:
        raise FHIRError.of(400, "not-supported", f"Type de table inconnu « {kind_name} » (attendu : {', '.join(KINDS)})")
    if not path.is_file():
        raise FHIRError.of(404, "not-found", f"Fichier introuvable : {path}")
    table = read_table(path)
    layout, errors = kind.layout(table.header, table.header_line)
    if errors:  # without the right columns every row would fail the same way
        raise LoadRejected(errors, kind.name, path)
    records: list[tuple[int, dict]] = []
    total = len(table.rows)
    for n, (line, values) in enumerate(iter_records(table, layout.keys), start=1):
        record, row_errors = kind.parse_row(line, values, layout)
        errors.extend(row_errors)
        if record is not None:
            records.append((line, record))
        if progress and (n % BATCH == 0 or n == total):
            progress("validation", n, total)
    errors.extend(kind.check_table(records))
    if not records and not errors:
        errors.append(RowError(table.header_line, None, "le fichier ne contient aucune ligne de données"))
    if errors:
        raise LoadRejected(sorted(errors, key=lambda e: e.line), kind.name, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ParsedFile(kind, records, table.meta, layout.ignored, digest)


def _metadata(meta: dict[str, str], version: str | None, effective_from: date | str | None,
              effective_to: date | str | None, source: str | None, sample: bool | None, path: Path):
    issues: list[Issue] = []

    def as_date(value, what: str) -> date | None:
        if value is None or isinstance(value, date):
            return value
        try:
            return cells.iso_or_french_date(str(value))
        except ValueError as exc:
            issues.append(Issue("value", f"{what} : {exc}", expression=(what,)))
            return None

    version = version or meta.get("version")
    start = as_date(effective_from or meta.get("effective_from") or meta.get("date_d_effet"), "effective_from")
    end = as_date(effective_to or meta.get("effective_to") or meta.get("date_de_fin"), "effective_to")
    if not version:
        issues.append(Issue("required", "La version de la table est obligatoire (--version ou « # version: » dans le fichier)",
                            expression=("version",)))
    elif len(version) > 64:
        issues.append(Issue("value", "La version fait plus de 64 caractères", expression=("version",)))
    if start is None and not any(i.expression == ("effective_from",) for i in issues):
        issues.append(Issue("required", "La date d'entrée en vigueur est obligatoire (--effective-from ou « # effective_from: »)",
                            expression=("effective_from",)))
    if start and end and end < start:
        issues.append(Issue("value", f"La date de fin ({end}) précède la date d'entrée en vigueur ({start})",
                            expression=("effective_to",)))
    if sample is None:
        try:
            sample = cells.boolean(meta.get("sample", "non"))
        except ValueError as exc:
            issues.append(Issue("value", f"sample : {exc}", expression=("sample",)))
    if issues:
        raise FHIRError(422, issues)
    return version, start, end, (source or meta.get("source") or path.name)[:512], bool(sample)


async def load(conn: AsyncConnection, kind: str, path: Path | str, *, version: str | None = None,
               effective_from: date | str | None = None, effective_to: date | str | None = None,
               source: str | None = None, sample: bool | None = None,
               progress: Progress | None = None) -> LoadReport:
    """Check ``path`` and load it as a new version of table ``kind`` (medicines, tariffs, ald).

    Version and dates come from the arguments, else from the file's metadata lines.  Raises
    ``LoadRejected`` (422, one issue per bad row) or ``FHIRError`` and writes nothing then."""
    path = Path(path)
    parsed = parse_file(kind, path, progress)
    version, start, end, source, sample = _metadata(parsed.meta, version, effective_from, effective_to, source, sample, path)
    return await load_parsed(conn, parsed, version, start, end, source, sample, progress)


async def load_parsed(conn: AsyncConnection, parsed: ParsedFile, version: str, start: date, end: date | None,
                      source: str, sample: bool = False, progress: Progress | None = None) -> LoadReport:
    """Write checked records as a new version (a file above, or the rows of a registry feed)."""
    txn = conn.begin_nested() if conn.in_transaction() else conn.begin()
    async with txn:
        version_id, closed_version, end = await _register_version(conn, parsed, version, start, end, source, sample)
        await _insert(conn, parsed, version_id, progress)
    return LoadReport(parsed.kind.name, version, version_id, start, end, len(parsed.records), source, sample,
                      parsed.sha256, parsed.ignored, closed_version)


async def _register_version(conn, parsed: ParsedFile, version: str, start: date, end: date | None,
                            source: str, sample: bool) -> tuple[int, str | None, date | None]:
    """Record the version; returns its id, the version it closed and its effective end."""
    v = reference_table_version
    existing = (await conn.execute(
        select(v.c.id, v.c.version, v.c.effective_from, v.c.effective_to).where(v.c.kind == parsed.kind.name)
    )).all()
    for row in existing:
        if row.version == version:
            raise FHIRError.of(409, "duplicate", f"La version « {version} » de la table {parsed.kind.name} est déjà chargée "
                               f"(en vigueur depuis le {row.effective_from}) : donner un autre numéro de version", "version")
        if row.effective_from == start:
            raise FHIRError.of(409, "conflict", f"La version « {row.version} » de la table {parsed.kind.name} entre déjà en "
                               f"vigueur le {start} : une seule version par date d'effet", "effective_from")
    earlier = [r for r in existing if r.effective_from < start]
    later = [r for r in existing if r.effective_from > start]
    # A version loaded for a past period (backfill) ends where the next one starts.
    if end is None and later:
        end = min(r.effective_from for r in later) - timedelta(days=1)
    result = await conn.execute(v.insert().values(
        kind=parsed.kind.name, version=version, effective_from=start, effective_to=end,
        loaded_at=time.time_ns() // 1000, source=source, sha256=parsed.sha256,
        row_count=len(parsed.records), sample=sample,
    ))
    version_id = result.inserted_primary_key[0]
    closed: str | None = None
    if earlier:
        previous = max(earlier, key=lambda r: r.effective_from)
        day_before = start - timedelta(days=1)
        if previous.effective_to is None or previous.effective_to >= start:
            await conn.execute(update(v).where(v.c.id == previous.id).values(effective_to=day_before))
            closed = previous.version
    return version_id, closed, end


async def _insert(conn, parsed: ParsedFile, version_id: int, progress: Progress | None) -> None:
    rows = [r for _, r in parsed.records]
    total = len(rows)
    for start in range(0, total, BATCH):
        chunk = rows[start:start + BATCH]
        kind = parsed.kind.name
        if kind == "medicines":
            await conn.execute(medicine.insert(), [{k: v for k, v in r.items() if k != "funds"} | {"version_id": version_id}
                                                   for r in chunk])
            by_fund = [{"version_id": version_id, "code": r["code"], "fund": fund, "reimbursable": yes}
                       for r in chunk for fund, yes in r["funds"].items()]
            if by_fund:
                await conn.execute(medicine_fund.insert(), by_fund)
        elif kind == "tariffs":
            await conn.execute(act.insert(), [
                {k: r[k] for k in ("code", "label_fr", "label_ar", "letter_key", "coefficient", "category")}
                | {"version_id": version_id} for r in chunk
            ])
            amounts = [{"version_id": version_id, "act_code": r["code"], "fund": fund, "amount_centimes": c}
                       for r in chunk for fund, c in r["tariffs"].items()]
            if amounts:
                await conn.execute(act_tariff.insert(), amounts)
        elif kind == "rsu-thresholds":
            await conn.execute(rsu_threshold.insert(), [
                {"version_id": version_id, "programme": r["code"], "threshold": r["threshold"]} for r in chunk
            ])
        else:
            await conn.execute(ald.insert(), [
                {k: r[k] for k in ("code", "label_fr", "label_ar", "category")} | {"version_id": version_id} for r in chunk
            ])
            await conn.execute(ald_icd10.insert(), [
                {"version_id": version_id, "ald_code": r["code"], "icd_from": low, "icd_to": high}
                for r in chunk for low, high in r["icd10"]
            ])
        if progress:
            progress("chargement", min(start + BATCH, total), total)

"""What adjudication needs from the Moroccan reference data, as small interfaces.

``profiles/`` owns the national tables (TNR per act and fund, medicines' public price and
reimbursement base, the ALD/ALC list with its ICD-10 ranges), versioned with effective dates.
Two implementations here:

* ``TablesReference`` reads the loaded tables (``profiles.reference.pricing``), one query per
  batch and date — used as soon as a version of the tariffs has been loaded;
Whether a medicine is reimbursed is the patient's fund's call: the list has a national column
and, where a fund differs, that fund's (``Product.reimbursed_by``; ``Medicines.bases`` per fund).

* ``FileReference`` reads the SAMPLE files ``profiles/reference/sample/*.csv`` through the same
  parser the loader uses (so the codes and figures are the very ones the tables would hold) —
  used when no table is loaded (a fresh embedded install, the tests).

``reference_for(conn)`` picks one; ``use_reference(...)`` forces one.  Lookups are batched:
adjudicating a batch of claims never queries per line.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Protocol

from sqlalchemy import and_, func, inspect, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

import profiles.reference as _reference_package
from profiles.reference.cells import icd10_in_range

SAMPLE_DIR = Path(_reference_package.__file__).resolve().parent / "sample"


@dataclass(frozen=True)
class LongTermCondition:
    code: str  # ALD01…, ALC01…
    fr: str
    ar: str | None
    ranges: tuple[tuple[str, str], ...]  # ICD-10 (low, high) ranges the exemption covers

    def covers(self, icd10_code: str) -> bool:
        return any(icd10_in_range(icd10_code, low, high) for low, high in self.ranges)


@dataclass(frozen=True)
class Pack:
    """A medicine presentation (EAN-13) with its prices, in MAD."""

    code: str
    atc: str | None
    ppv: Decimal
    base: Decimal | None  # None: not reimbursable


@dataclass(frozen=True)
class Product:
    """A pack of the national list as a prescription is checked against it."""

    code: str  # EAN-13
    name: str
    dci: str  # active ingredient(s), "A + B" for a combination
    strength: str  # "850 mg", "1 g/125 mg"
    atc: str | None
    reimbursable: bool  # the national column
    dose_min: Decimal | None  # usual daily dose, units of intake a day
    dose_max: Decimal | None
    ppv: Decimal  # public sale price, MAD
    funds: tuple[tuple[str, bool], ...] = ()  # (fund code, reimburses it) where the list names the fund

    def reimbursed_by(self, fund: str) -> bool:
        """Whether ``fund`` reimburses the pack: its own column, else the national one."""
        return dict(self.funds).get(fund.upper(), self.reimbursable)


def _product(r, funds: dict[str, bool]) -> Product:
    return Product(r["code"], r["name"], r["dci"], r["strength"], r.get("atc"), r["reimbursable"], r.get("dose_min"),
                   r.get("dose_max"), _cents(r["ppv_centimes"]) or Decimal(0), tuple(sorted(funds.items())))


class Tariffs(Protocol):
    async def tariffs(
        self, conn: AsyncConnection, fund: str, wanted: Iterable[tuple[str, date]]
    ) -> dict[tuple[str, date], Decimal]:
        """The TNR in force for each (act code, date of care) for ``fund``; unknown pairs absent."""


class Medicines(Protocol):
    async def bases(self, conn: AsyncConnection, fund: str,
                    wanted: Iterable[tuple[str, date]]) -> dict[tuple[str, date], Decimal]:
        """The reimbursement base per pack for each (EAN-13, date); those ``fund`` does not reimburse absent."""

    async def packs_for_atc(self, conn: AsyncConnection, atc_codes: Iterable[str], on: date) -> dict[str, list[Pack]]:
        """The reimbursable packs of each ATC substance (a prescription by substance → a pack)."""

    async def products(self, conn: AsyncConnection, codes: Iterable[str], atc_codes: Iterable[str], on: date) -> list[Product]:
        """The packs in force on ``on`` whose EAN-13 is in ``codes`` or whose ATC is in ``atc_codes``,
        reimbursed or not, with what each fund the list names decides."""


class LongTermConditions(Protocol):
    async def catalog(self, conn: AsyncConnection, on: date) -> dict[str, LongTermCondition]:
        """The ALD/ALC list in force on ``on``, by code."""


@dataclass
class Reference:
    tariffs: Tariffs
    medicines: Medicines
    conditions: LongTermConditions
    name: str


# --- the SAMPLE files, parsed by the profiles loader's own parser ------------------------------


@dataclass(frozen=True)
class _Version:
    start: date
    end: date | None

    def on(self, d: date) -> bool:
        return self.start <= d and (self.end is None or d <= self.end)


def _parse(kind: str, path: Path):
    from profiles.reference.loader import parse_file

    parsed = parse_file(kind, path)
    meta = parsed.meta
    end = meta.get("effective_to")
    version = _Version(date.fromisoformat(meta["effective_from"]), date.fromisoformat(end) if end else None)
    return version, [record for _, record in parsed.records]


def _cents(value: int | None) -> Decimal | None:
    return None if value is None else (Decimal(value) / 100).quantize(Decimal("0.01"))


class FileTariffs:
    def __init__(self, path: Path) -> None:
        self.version, rows = _parse("tariffs", path)
        self._by_code = {r["code"]: {f.upper(): c for f, c in r["tariffs"].items()} for r in rows}

    async def tariffs(self, conn, fund, wanted):
        out = {}
        for code, on in set(wanted):
            cents = self._by_code.get(code, {}).get(fund.upper())
            if cents is not None and self.version.on(on):
                out[(code, on)] = _cents(cents)
        return out


class FileMedicines:
    def __init__(self, path: Path) -> None:
        self.version, rows = _parse("medicines", path)
        self._packs = {
            r["code"]: Pack(r["code"], r.get("atc"), _cents(r["ppv_centimes"]),
                            _cents(r["base_centimes"]) if r["reimbursable"] else None)
            for r in rows
        }
        self._bases = {r["code"]: _cents(r["base_centimes"]) for r in rows}
        self._products = {r["code"]: _product(r, r["funds"]) for r in rows}

    async def bases(self, conn, fund, wanted):
        return {
            (code, on): self._bases[code]
            for code, on in set(wanted)
            if (p := self._products.get(code)) and p.reimbursed_by(fund) and self._bases[code] is not None
            and self.version.on(on)
        }

    async def packs_for_atc(self, conn, atc_codes, on):
        wanted = set(atc_codes)
        out: dict[str, list[Pack]] = defaultdict(list)
        if self.version.on(on):
            for pack in self._packs.values():
                if pack.atc in wanted and pack.base is not None:
                    out[pack.atc].append(pack)
        return {k: sorted(v, key=lambda p: p.code) for k, v in out.items()}

    async def products(self, conn, codes, atc_codes, on):
        codes, atc_codes = set(codes), set(atc_codes)
        if not self.version.on(on):
            return []
        return [p for p in self._products.values() if p.code in codes or p.atc in atc_codes]


class FileConditions:
    def __init__(self, path: Path) -> None:
        self.version, rows = _parse("ald", path)
        self._catalog = {r["code"]: LongTermCondition(r["code"], r["label_fr"], r.get("label_ar"), tuple(r["icd10"])) for r in rows}

    async def catalog(self, conn, on):
        return dict(self._catalog) if self.version.on(on) else {}


@lru_cache(maxsize=1)
def file_reference(directory: Path = SAMPLE_DIR) -> Reference:
    return Reference(FileTariffs(directory / "tariffs.csv"), FileMedicines(directory / "medicines.csv"),
                     FileConditions(directory / "ald.csv"), f"files:{directory.name}")


# --- the loaded tables ------------------------------------------------------------------------


async def _by_version(conn, kind: str, wanted) -> dict[int, list[tuple[str, date]]]:
    """(code, date of care) pairs grouped by the table version in force on their date."""
    from profiles.reference.pricing import versions_on

    wanted = set(wanted)
    versions = await versions_on(conn, kind, {on for _, on in wanted})
    out: dict[int, list[tuple[str, date]]] = defaultdict(list)
    for code, on in wanted:
        if on in versions:
            out[versions[on]].append((code, on))
    return out


class TablesTariffs:
    async def tariffs(self, conn, fund, wanted):
        from profiles.reference.pricing import tariffs_for

        out = {}
        for version_id, pairs in (await _by_version(conn, "tariffs", wanted)).items():  # one query per version
            found = await tariffs_for(conn, {code for code, _ in pairs}, fund.upper(), version_id=version_id)
            out.update({(code, on): found[code].amount for code, on in pairs if code in found})
        return out


class TablesMedicines:
    async def bases(self, conn, fund, wanted):
        from profiles.reference.pricing import medicines_for

        out = {}
        for version_id, pairs in (await _by_version(conn, "medicines", wanted)).items():
            found = await medicines_for(conn, {code for code, _ in pairs}, version_id=version_id, fund=fund.upper())
            out.update({
                (code, on): med.reimbursement_base for code, on in pairs
                if (med := found.get(code)) and med.reimbursable and med.reimbursement_base is not None
            })
        return out

    async def packs_for_atc(self, conn, atc_codes, on):
        from profiles.reference.pricing import version_in_force
        from profiles.reference.tables import medicine

        rows = await conn.execute(
            select(medicine.c.code, medicine.c.atc, medicine.c.ppv_centimes, medicine.c.base_centimes)
            .where(medicine.c.version_id == version_in_force("medicines", on), medicine.c.atc.in_(sorted(set(atc_codes))),
                   medicine.c.reimbursable.is_(True))
            .order_by(medicine.c.code)
        )
        out: dict[str, list[Pack]] = defaultdict(list)
        for code, atc, ppv, base in rows:
            out[atc].append(Pack(code, atc, _cents(ppv), _cents(base)))
        return dict(out)

    async def products(self, conn, codes, atc_codes, on):
        from profiles.reference.pricing import funds_reimbursing, version_in_force
        from profiles.reference.tables import medicine

        codes, atc_codes = sorted(set(codes)), sorted(set(atc_codes))
        if not codes and not atc_codes:
            return []
        rows = (await conn.execute(
            select(medicine).where(medicine.c.version_id == version_in_force("medicines", on),
                                   or_(medicine.c.code.in_(codes), medicine.c.atc.in_(atc_codes)))
        )).all()
        funds = await funds_reimbursing(conn, [r.code for r in rows], on) if rows else {}
        return [_product(r._mapping, funds.get(r.code, {})) for r in rows]


class TablesConditions:
    async def catalog(self, conn, on):
        from profiles.reference.pricing import version_in_force
        from profiles.reference.tables import ald, ald_icd10

        rows = await conn.execute(
            select(ald.c.code, ald.c.label_fr, ald.c.label_ar, ald_icd10.c.icd_from, ald_icd10.c.icd_to)
            .join(ald_icd10, and_(ald_icd10.c.version_id == ald.c.version_id, ald_icd10.c.ald_code == ald.c.code))
            .where(ald.c.version_id == version_in_force("ald", on))
        )
        found: dict[str, tuple[str, str | None, list]] = {}
        for code, fr, ar, low, high in rows:
            found.setdefault(code, (fr, ar, []))[2].append((low, high))
        return {code: LongTermCondition(code, fr, ar, tuple(ranges)) for code, (fr, ar, ranges) in found.items()}


TABLES = Reference(TablesTariffs(), TablesMedicines(), TablesConditions(), "tables")

# --- choosing ---------------------------------------------------------------------------------

_forced: Reference | None = None
_loaded: dict[str, tuple[float, bool]] = {}  # database url -> (checked at, tables hold a tariffs version)
_RECHECK_SECONDS = 60.0


def use_reference(ref: Reference | None) -> None:
    """Force the reference data (None: back to automatic choice)."""
    global _forced
    _forced = ref
    _loaded.clear()


async def _tables_loaded(conn: AsyncConnection) -> bool:
    def has_table(sync_conn) -> bool:
        return inspect(sync_conn).has_table("reference_table_version")

    if not await conn.run_sync(has_table):
        return False
    from profiles.reference.tables import reference_table_version as v

    count = (await conn.execute(select(func.count()).select_from(v).where(v.c.kind == "tariffs"))).scalar_one()
    return count > 0


async def reference_for(conn: AsyncConnection) -> Reference:
    """The loaded national tables if there are any, else the SAMPLE files (checked once a minute)."""
    if _forced is not None:
        return _forced
    key = str(conn.engine.url)
    checked = _loaded.get(key)
    if checked is None or time.monotonic() - checked[0] > _RECHECK_SECONDS:
        checked = (time.monotonic(), await _tables_loaded(conn))
        _loaded[key] = checked
    return TABLES if checked[1] else file_reference()

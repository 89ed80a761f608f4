"""The kinds of reference table Sijill loads, their columns and their row rules.

Headers are matched loosely (case, accents and punctuation folded, several spellings), since
each publisher writes them its own way; every cell is then checked and every problem kept
with its line number, so one pass tells the operator everything to fix.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from ehr.outcome import Issue
from profiles.reference import cells
from profiles.reference.formats import column_key
from profiles.terminology.content import codes_of


@dataclass(frozen=True)
class RowError:
    line: int
    column: str | None
    message: str

    def issue(self) -> Issue:
        where = f"ligne {self.line}" + (f", colonne « {self.column} »" if self.column else "")
        return Issue("value" if self.column else "invalid", f"{where} : {self.message}")


@dataclass(frozen=True)
class Column:
    key: str  # the record key (a table column)
    label: str  # as written in the reference layout, quoted in errors
    aliases: tuple[str, ...]
    parse: Callable[[str], Any] | None = None
    required: bool = True

    def names(self) -> set[str]:
        return {column_key(self.label), *(column_key(a) for a in self.aliases)}


@dataclass
class Layout:
    keys: list[str | None]  # per file column: the record key, or None if ignored
    labels: dict[str, str]  # record key -> header as written in the file
    ignored: list[str] = field(default_factory=list)


class Kind:
    name: str
    label: str
    columns: list[Column]

    def layout(self, header: list[str], header_line: int) -> tuple[Layout, list[RowError]]:
        by_name = {n: c for c in self.columns for n in c.names()}
        keys: list[str | None] = []
        labels: dict[str, str] = {}
        ignored: list[str] = []
        errors: list[RowError] = []
        for h in header:
            col = by_name.get(column_key(h))
            key = col.key if col else self.extra_column(h)
            if key is not None and key in labels:
                errors.append(RowError(header_line, h, f"colonne en double (déjà « {labels[key]} »)"))
                key = None
            elif key is not None:
                labels[key] = h
            elif h:
                ignored.append(h)
            keys.append(key)
        for c in self.columns:
            if c.required and c.key not in labels:
                errors.append(RowError(header_line, c.label, "colonne obligatoire absente de l'en-tête"))
        errors.extend(self.check_layout(labels, header_line))
        return Layout(keys, labels, ignored), errors

    def extra_column(self, header: str) -> str | None:
        return None

    def check_layout(self, labels: dict[str, str], header_line: int) -> list[RowError]:
        return []

    def parse_row(self, line: int, values: dict[str, str], layout: Layout) -> tuple[dict | None, list[RowError]]:
        record: dict[str, Any] = {}
        errors: list[RowError] = []
        for c in self.columns:
            raw = values.get(c.key, "").strip()
            label = layout.labels.get(c.key, c.label)
            if not raw:
                if c.required:
                    errors.append(RowError(line, label, "valeur obligatoire manquante"))
                record[c.key] = None
                continue
            try:
                record[c.key] = c.parse(raw) if c.parse else raw
            except ValueError as exc:
                errors.append(RowError(line, label, str(exc)))
        errors.extend(self.extra_cells(line, record, values, layout))
        if not errors:
            errors.extend(self.check_record(line, record, values, layout))
        return (record if not errors else None), errors

    def extra_cells(self, line: int, record: dict, values: dict[str, str], layout: Layout) -> list[RowError]:
        """Cells of the columns ``extra_column`` recognised; always checked."""
        return []

    def check_record(self, line: int, record: dict, values: dict[str, str], layout: Layout) -> list[RowError]:
        """Rules across the cells of a row, once each cell is valid."""
        return []

    def check_table(self, records: list[tuple[int, dict]]) -> list[RowError]:
        """Rules across rows; by default a code appears once."""
        seen: dict[str, int] = {}
        errors = []
        for line, r in records:
            first = seen.setdefault(r["code"], line)
            if first != line:
                errors.append(RowError(line, "code", f"code « {r['code']} » en double (déjà ligne {first})"))
        return errors


def _text(max_len: int) -> Callable[[str], str]:
    return lambda v: cells.text(v, max_len)


def _one_of(allowed: Callable[[], set[str]], what: str, fold_case: bool = False) -> Callable[[str], str]:
    def parse(v: str) -> str:
        value = v.lower() if fold_case else v.upper()
        if value not in allowed():
            raise ValueError(f"{what} inconnu(e) « {v} » (attendu : {', '.join(sorted(allowed()))})")
        return value
    return parse


def _code(max_len: int) -> Callable[[str], str]:
    pattern = re.compile(r"^[A-Z0-9][A-Z0-9.\-]*$")

    def parse(v: str) -> str:
        value = v.upper()
        if len(value) > max_len or not pattern.match(value):
            raise ValueError(f"code « {v} » : lettres, chiffres, « . » ou « - », {max_len} caractères au plus")
        return value
    return parse


def _fund_column(header: str) -> str | None:
    """``fund:CODE`` for a column headed by a fund's code (« AMO Tadamon » is AMO-TADAMON)."""
    code = header.strip().upper().replace(" ", "-")
    return f"fund:{code}" if code in codes_of("organisme") else None


def _originator(v: str) -> bool:
    kind = v.strip().lower()
    if kind in ("p", "princeps", "original", "référence", "reference"):
        return True
    if kind in ("g", "générique", "generique", "generic"):
        return False
    raise ValueError(f"« {v} » : princeps ou générique attendu")


def _atc(v: str) -> str:
    if not re.fullmatch(r"[A-Z][0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?", v.upper()):
        raise ValueError(f"code ATC invalide « {v} » (ex. N02BE01)")
    return v.upper()


class Medicines(Kind):
    name = "medicines"
    label = "Liste des médicaments (prix public de vente et base de remboursement)"
    columns = [
        Column("code", "Code", ("code ean", "ean13", "code barre", "code_medicament"), cells.ean13),
        Column("name", "Nom", ("nom commercial", "specialite", "designation", "produit"), _text(200)),
        Column("dci", "DCI", ("substance active", "principe actif", "composition"), _text(200)),
        Column("strength", "Dosage", ("dose",), _text(80)),
        Column("form", "Forme", ("forme galenique", "forme pharmaceutique"), _text(80)),
        Column("presentation", "Présentation", ("conditionnement",), _text(120), required=False),
        Column("ppv_centimes", "PPV", ("prix public de vente", "prix public"), cells.money_centimes),
        Column("base_centimes", "Prix base remboursement", ("pbr", "prix br", "base de remboursement", "base remboursement"),
               cells.money_centimes, required=False),
        Column("generic_group", "Groupe générique", ("groupe generique", "groupe"), _text(200), required=False),
        Column("reimbursable", "Remboursable", ("rembourse", "remboursement", "statut remboursement"), cells.boolean),
        Column("originator", "Princeps/Générique", ("princeps generique", "type", "p g"), _originator),
        Column("atc", "ATC", ("code atc",), _atc, required=False),
        Column("laboratory", "Laboratoire", ("titulaire", "fabricant"), _text(120), required=False),
        Column("name_ar", "Nom arabe", ("nom ar", "designation arabe"), _text(200), required=False),
        # Units of intake a day (tablets, sachets, ml...), where the publisher gives them.
        Column("dose_min", "Dose journalière min", ("dose min", "dose usuelle min", "posologie min"),
               cells.positive_decimal, required=False),
        Column("dose_max", "Dose journalière max", ("dose max", "dose usuelle max", "posologie max"),
               cells.positive_decimal, required=False),
    ]

    # One optional column per fund (header: its code, CNSS, CNOPS, AMO-TADAMON…): whether that fund
    # reimburses the pack (oui/non); an empty cell, or no column, leaves the national « Remboursable ».
    def extra_column(self, header: str) -> str | None:
        return _fund_column(header)

    def extra_cells(self, line, record, values, layout):
        errors = []
        funds: dict[str, bool] = {}
        for key, label in layout.labels.items():
            raw = values.get(key, "").strip() if key.startswith("fund:") else ""
            if raw:
                try:
                    funds[key[5:]] = cells.boolean(raw)
                except ValueError as exc:
                    errors.append(RowError(line, label, str(exc)))
        record["funds"] = funds
        return errors

    def check_record(self, line, record, values, layout):
        errors = []
        base, ppv = record.get("base_centimes"), record["ppv_centimes"]
        if (record["reimbursable"] or any(record["funds"].values())) and base is None:
            errors.append(RowError(line, layout.labels.get("base_centimes", "Prix base remboursement"),
                                   "un médicament remboursable doit avoir une base de remboursement"))
        if base is not None and base > ppv:
            errors.append(RowError(line, layout.labels.get("base_centimes"),
                                   f"base de remboursement ({base / 100:.2f}) supérieure au PPV ({ppv / 100:.2f})"))
        if ppv == 0:
            errors.append(RowError(line, layout.labels.get("ppv_centimes"), "le PPV doit être strictement positif"))
        low, high = record.get("dose_min"), record.get("dose_max")
        if low is not None and high is not None and low > high:
            errors.append(RowError(line, layout.labels.get("dose_min"),
                                   f"dose journalière min ({low}) supérieure à la max ({high})"))
        return errors


class Tariffs(Kind):
    """The national reference tariff (TNR): one row per act, one amount column per fund."""

    name = "tariffs"
    label = "Tarification nationale de référence des actes (TNR par organisme)"
    columns = [
        Column("code", "Code", ("code acte", "code_acte"), _code(16)),
        Column("label_fr", "Libellé", ("libelle", "designation", "libelle de l acte", "acte"), _text(255)),
        Column("label_ar", "Libellé arabe", ("libelle ar", "designation arabe"), _text(255), required=False),
        Column("letter_key", "Lettre clé", ("lettre cle", "lettre", "cle"), _one_of(lambda: codes_of("lettre-cle"), "lettre-clé")),
        Column("coefficient", "Coefficient", ("coef", "cotation"), cells.positive_decimal),
        Column("category", "Catégorie", ("categorie", "type"), _one_of(lambda: codes_of("type-feuille-soins") - {"pharmacie"}, "catégorie", True)),
    ]

    def extra_column(self, header: str) -> str | None:
        return _fund_column(header)

    def check_layout(self, labels, header_line):
        if not any(k.startswith("fund:") for k in labels):
            funds = ", ".join(sorted(codes_of("organisme")))
            return [RowError(header_line, None, f"aucune colonne de tarif par organisme (en-têtes attendus parmi : {funds})")]
        return []

    def extra_cells(self, line, record, values, layout):
        errors = []
        tariffs: dict[str, int] = {}
        for key, label in layout.labels.items():
            if not key.startswith("fund:"):
                continue
            raw = values.get(key, "").strip()
            if not raw:
                continue  # the act is not covered by that fund
            try:
                tariffs[key[5:]] = cells.money_centimes(raw)
            except ValueError as exc:
                errors.append(RowError(line, label, str(exc)))
        if not tariffs and not errors:
            errors.append(RowError(line, None, "aucun tarif renseigné pour cet acte"))
        record["tariffs"] = tariffs
        return errors


class AldList(Kind):
    name = "ald"
    label = "Liste des affections de longue durée (ALD) et lourdes et coûteuses (ALC)"
    columns = [
        Column("code", "Code", ("code ald", "numero"), _code(10)),
        Column("label_fr", "Libellé", ("libelle", "affection", "designation"), _text(255)),
        Column("label_ar", "Libellé arabe", ("libelle ar",), _text(255), required=False),
        Column("category", "Catégorie", ("categorie", "type"), _one_of(lambda: codes_of("type-exoneration"), "catégorie")),
        Column("icd10", "CIM-10", ("cim10", "codes cim 10", "icd 10", "icd10"), cells.icd10_ranges),
    ]


def rsu_index(v: str) -> Decimal:
    """An RSU socio-economic index or threshold: a positive decimal (the registry publishes 7 places)."""
    if not re.fullmatch(r"\d{1,4}([.,]\d{1,7})?", v.strip()):
        raise ValueError(f"indice RSU invalide « {v} » (ex. 9.3264284)")
    return Decimal(v.strip().replace(",", "."))


class RsuThresholds(Kind):
    """The RSU index threshold of each programme (AMO Tadamon…): above it a household leaves."""

    name = "rsu-thresholds"
    label = "Seuils de l'indice socio-économique RSU par programme"
    columns = [
        Column("code", "Programme", ("regime", "code programme"), _one_of(lambda: codes_of("regime"), "programme")),
        Column("threshold", "Seuil", ("seuil indice", "indice seuil", "threshold"), rsu_index),
    ]


KINDS: dict[str, Kind] = {k.name: k for k in (Medicines(), Tariffs(), AldList(), RsuThresholds())}


def money(centimes: int | None) -> Decimal | None:
    return None if centimes is None else (Decimal(centimes) / 100).quantize(Decimal("0.01"))

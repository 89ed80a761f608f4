"""A registry feed read into rows: CSV (one line per fact) or a FHIR Bundle, checked cell by cell.

CSV columns (header names folded like the reference tables'): ``type`` (seuil | indice |
couverture), ``menage`` (household), ``patient`` (``Patient/<id>`` or ``<system>|<value>``: CIN,
RNP…), ``programme`` (regime code: AMO-TADAMON…), ``organisme`` (fund code), ``valeur`` (index
or threshold), ``debut``, ``fin`` (ISO or French dates; ``fin`` empty: open).  In a Bundle a
threshold is an Observation coded ``rsu|threshold`` whose ``category`` is the regime, an index
an Observation ``rsu|index`` (``subject`` the member, ``focus.identifier`` the household), a
coverage period a Coverage (``beneficiary``, ``payor`` by ``sid/fund`` identifier, ``class``
plan = regime, ``period``).  Every problem is kept with where it is (line, or
``Bundle.entry[i]``), so one answer lists them all.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from claims.uris import FUND, HOUSEHOLD, REGIME, RSU
from ehr.outcome import Issue
from profiles.reference import cells
from profiles.reference.formats import column_key
from profiles.reference.kinds import rsu_index
from profiles.terminology.content import codes_of

KINDS = {"seuil": "threshold", "threshold": "threshold", "indice": "index", "index": "index",
         "couverture": "coverage", "coverage": "coverage"}
COLUMNS = {"type": "type", "menage": "household", "household": "household", "patient": "patient",
           "programme": "programme", "regime": "programme", "organisme": "fund", "fund": "fund",
           "valeur": "value", "value": "value", "debut": "start", "start": "start", "fin": "end", "end": "end"}


@dataclass(frozen=True)
class FeedRow:
    where: str  # "ligne 3" or "Bundle.entry[2]"
    expression: str | None  # FHIRPath for Bundle entries
    kind: str  # threshold | index | coverage
    programme: str | None = None
    patient: str | None = None  # "Patient/<id>" or "<system>|<value>"
    household: str | None = None
    fund: str | None = None  # fund code (CNSS, AMO-TADAMON…)
    value: Decimal | None = None
    start: date | None = None
    end: date | None = None

    def issue(self, message: str, code: str = "value") -> Issue:
        return Issue(code, f"{self.where} : {message}", expression=(self.expression,) if self.expression else ())


def _date(raw: str | None, what: str, errors: list[str]) -> date | None:
    if not raw:
        return None
    try:
        return cells.iso_or_french_date(raw.strip())
    except ValueError as exc:
        errors.append(f"{what} : {exc}")
        return None


def _check(kind: str | None, programme: str | None, patient: str | None, fund: str | None, value: str | None,
           start: date | None, end: date | None, errors: list[str]) -> Decimal | None:
    """Rules common to both formats; returns the parsed value."""
    if kind is None:
        errors.append("type inconnu (attendu : seuil, indice ou couverture)")
        return None
    if programme is not None and programme not in codes_of("regime"):
        errors.append(f"programme inconnu « {programme} »")
    if kind in ("threshold", "coverage") and not programme:
        errors.append("programme obligatoire")
    if kind in ("index", "coverage") and not patient:
        errors.append("patient obligatoire")
    if kind == "coverage" and (not fund or fund not in codes_of("organisme")):
        errors.append(f"organisme inconnu « {fund or ''} »")
    if start is None and not any(e.startswith("début") for e in errors):
        errors.append("date de début obligatoire")
    if start and end and end < start:
        errors.append(f"la fin ({end}) précède le début ({start})")
    parsed = None
    if kind in ("threshold", "index"):
        try:
            parsed = rsu_index(value or "")
        except ValueError as exc:
            errors.append(f"valeur : {exc}")
    return parsed


def rows_from_csv(text: str) -> tuple[list[FeedRow], list[Issue]]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return [], [Issue("required", "le fichier ne contient aucune ligne")]
    dialect = ";" if lines[0].count(";") > lines[0].count(",") else ","
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=dialect)
    header = [COLUMNS.get(column_key(h)) for h in next(reader)]
    missing = {"type", "patient", "programme", "value", "start", "end"} - set(header)
    if missing:
        return [], [Issue("required", f"ligne 1 : colonnes absentes de l'en-tête : {', '.join(sorted(missing))}")]
    rows, issues = [], []
    for n, cells_ in enumerate(reader, start=2):
        raw = {k: (v.strip() or None) for k, v in zip(header, cells_) if k}
        errors: list[str] = []
        kind = KINDS.get(column_key(raw.get("type") or ""))
        start, end = _date(raw.get("start"), "début", errors), _date(raw.get("end"), "fin", errors)
        programme = (raw.get("programme") or "").upper() or None
        fund = (raw.get("fund") or "").upper() or None
        value = _check(kind, programme, raw.get("patient"), fund, raw.get("value"), start, end, errors)
        where = f"ligne {n}"
        if errors:
            issues += [Issue("value", f"{where} : {e}") for e in errors]
        else:
            rows.append(FeedRow(where, None, kind, programme, raw.get("patient"), raw.get("household"), fund, value, start, end))
    return rows, issues


def _coding(concept: object, system: str) -> str | None:
    for c in (concept or {}).get("coding") or [] if isinstance(concept, dict) else []:
        if isinstance(c, dict) and c.get("system") == system and isinstance(c.get("code"), str):
            return c["code"]
    return None


def _who(ref: object) -> str | None:
    if not isinstance(ref, dict):
        return None
    if isinstance(ref.get("reference"), str) and ref["reference"].startswith("Patient/"):
        return ref["reference"]
    ident = ref.get("identifier")
    if isinstance(ident, dict) and isinstance(ident.get("system"), str) and isinstance(ident.get("value"), str):
        return f"{ident['system']}|{ident['value']}"
    return None


def _entry(i: int, res: dict) -> tuple[FeedRow | None, list[Issue]]:
    where, path = f"Bundle.entry[{i}]", f"Bundle.entry[{i}].resource"
    errors: list[str] = []
    rt = res.get("resourceType")
    if rt == "Observation":
        kind = {"index": "index", "threshold": "threshold"}.get(_coding(res.get("code"), RSU) or "")
        period = res.get("effectivePeriod") or {}
        programme = next((c for cat in res.get("category") or [] if (c := _coding(cat, REGIME))), None)
        patient = _who(res.get("subject"))
        focus = next((f.get("identifier") for f in res.get("focus") or [] if isinstance(f, dict)), None) or {}
        household = focus.get("value") if focus.get("system") == HOUSEHOLD else None
        fund, value = None, str((res.get("valueQuantity") or {}).get("value", ""))
    elif rt == "Coverage":
        kind = "coverage"
        period = res.get("period") or {}
        programme = next((cls.get("value") for cls in res.get("class") or [] if isinstance(cls, dict)
                          and _coding(cls.get("type"), "http://terminology.hl7.org/CodeSystem/coverage-class") == "plan"), None)
        patient, household, value = _who(res.get("beneficiary")), None, None
        fund = next(((p.get("identifier") or {}).get("value") for p in res.get("payor") or []
                     if isinstance(p, dict) and (p.get("identifier") or {}).get("system") == FUND), None)
    else:
        return None, [Issue("not-supported", f"{where} : ressource {rt!r} non prise en charge (Observation RSU ou Coverage)",
                            expression=(path,))]
    start, end = _date(period.get("start"), "début", errors), _date(period.get("end"), "fin", errors)
    parsed = _check(kind, programme, patient, fund, value, start, end, errors)
    if errors:
        return None, [Issue("value", f"{where} : {e}", expression=(path,)) for e in errors]
    return FeedRow(where, path, kind, programme, patient, household, fund, parsed, start, end), []


def rows_from_bundle(bundle: dict) -> tuple[list[FeedRow], list[Issue]]:
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        return [], [Issue("required", "Le Bundle ne contient aucune entrée", expression=("Bundle.entry",))]
    rows, issues = [], []
    for i, e in enumerate(entries):
        res = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(res, dict):
            issues.append(Issue("required", f"Bundle.entry[{i}] : ressource absente", expression=(f"Bundle.entry[{i}]",)))
            continue
        row, errs = _entry(i, res)
        issues += errs
        if row:
            rows.append(row)
    return rows, issues

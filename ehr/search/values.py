"""Turning the JSON values an expression selects into index rows, one function per search type.

Rows are tuples in the column order of ``COLUMNS`` (without ``rid``), collected in ordered
sets so a value reached twice (``name`` and ``name.given``...) is indexed once.  What each
FHIR data type contributes follows the spec's search page:

* string: the text; HumanName and Address also each part, plus the whole name in both
  "given family" and "family given" order (typing either finds it); each row's word starts
  (``normalize.word_starts``) go under ``word_hash(param)`` with an empty ``exact``, so only
  the plain search reads them (``:exact``, ``:contains``, ``:missing`` and ``_sort`` do not);
* token: Coding/CodeableConcept (system, code, folded display/text), Identifier and
  ContactPoint (system, value), code/boolean/string/id (no system).  Identifier types are
  also written as ``type-code|value`` under ``<code>:of-type`` for ``:of-type``;
* reference: (type, id) of local references, ``url`` for absolute and canonical ones; a
  Reference's ``identifier`` is a token row under ``<code>:identifier``;
* date: inclusive µs ranges; number/quantity: value with low/high bounds (Range keeps its
  bounds, open ends become +-1e308); uri: the text.
"""
from __future__ import annotations

from typing import Any, Callable

from ehr.search.dates import MAX_US, MIN_US, date_range
from ehr.search.normalize import normalize, word_starts

COLUMNS: dict[str, tuple[str, ...]] = {
    "string": ("param", "grp", "norm", "exact"),
    "token": ("param", "grp", "system", "code", "text"),
    "reference": ("param", "grp", "target_type", "target_id", "url"),
    "date": ("param", "grp", "low", "high"),
    "number": ("param", "grp", "value", "low", "high"),
    "quantity": ("param", "grp", "system", "code", "value", "low", "high"),
    "uri": ("param", "grp", "uri"),
    "compartment": ("comp_type", "comp_id"),
}
BIG = 1e308  # open end of a Range; finite so both databases store it as a plain float
CURRENCY_SYSTEM = "urn:iso:std:iso:4217"
Rows = dict[str, dict[tuple, None]]


def new_rows() -> Rows:
    return {key: {} for key in COLUMNS}


def _s(text: str, limit: int = 255) -> str:
    return text if len(text) <= limit else text[:limit]


def unwrap(value: Any) -> Any:
    """An Extension stands for its value (``Patient.extension('...mothersMaidenName')``)."""
    if type(value) is dict and "url" in value:
        for key, inner in value.items():
            if len(key) > 5 and key.startswith("value") and key[5].isupper():
                return inner
    return value


# -- string ----------------------------------------------------------------------------------
_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def _strings(value: Any) -> list[str]:
    if type(value) is str:
        return [value]
    if type(value) is not dict:
        return []
    out: list[str] = []
    if "family" in value or "given" in value:
        for part in _NAME_PARTS:
            _add_strs(out, value.get(part))
        given = [g for g in value.get("given") or () if type(g) is str]
        family = value.get("family") if type(value.get("family")) is str else None
        if family and given:
            out.append(" ".join(given + [family]))
            out.append(" ".join([family] + given))
        elif len(given) > 1:
            out.append(" ".join(given))
    elif any(k in value for k in _ADDRESS_PARTS[:-1]):
        for part in _ADDRESS_PARTS:
            _add_strs(out, value.get(part))
        whole = []
        for part in _ADDRESS_PARTS[:-1]:
            _add_strs(whole, value.get(part))
        if len(whole) > 1:
            out.append(" ".join(whole))
    elif type(value.get("text")) is str:
        out.append(value["text"])
    return out


def _add_strs(out: list[str], v: Any) -> None:
    if type(v) is str:
        out.append(v)
    elif type(v) is list:
        out.extend(x for x in v if type(x) is str)


_WORD_SALT = 0x2A5E_D0C5_77A1_3B49  # 63 bits: a word hash stays a non-negative param id


def word_hash(h: int) -> int:
    """The ``param`` of a string parameter's word-start rows (derived from its own, so the
    rows can be rebuilt from ``idx_string`` alone: migration 0021)."""
    return h ^ _WORD_SALT


def word_rows(h: int, grp: int, norm: str) -> list[tuple]:
    return [(word_hash(h), grp, start, "") for start in word_starts(norm)]


def emit_string(value: Any, h: int, grp: int, rows: Rows) -> None:
    target = rows["string"]
    for text in _strings(unwrap(value)):
        norm = _s(normalize(text))
        if norm:
            target[(h, grp, norm, _s(text))] = None
            for row in word_rows(h, grp, norm):
                target[row] = None


# -- token -----------------------------------------------------------------------------------
def _text(v: Any) -> str | None:
    return _s(normalize(v)) or None if type(v) is str else None


def token_rows(value: Any) -> list[tuple[str | None, str | None, str | None]]:
    """(system, code, folded text) of one value; used for composite components too."""
    value = unwrap(value)
    t = type(value)
    if t is str:
        return [(None, _s(value), None)]
    if t is bool:
        return [(None, "true" if value else "false", None)]
    if t is int:
        return [(None, str(value), None)]
    if t is not dict:
        return []
    if "concept" in value and type(value["concept"]) is dict:  # CodeableReference
        return token_rows(value["concept"])
    if "coding" in value or ("text" in value and "code" not in value and "value" not in value):
        out = []
        for coding in value.get("coding") or ():
            if type(coding) is dict:
                out.extend(token_rows(coding))
        if type(value.get("text")) is str:
            out.append((None, None, _text(value["text"])))
        return out
    system = value.get("system") if type(value.get("system")) is str else None
    if "code" in value or "display" in value:  # Coding
        code = value.get("code") if type(value.get("code")) is str else None
        if code is None and system is None:
            return [(None, None, _text(value.get("display")))] if value.get("display") else []
        return [(_s(system) if system else None, _s(code) if code else None, _text(value.get("display")))]
    if "value" in value or "system" in value:  # Identifier, ContactPoint
        val = value.get("value")
        val = str(val) if type(val) in (str, int) else None
        kind = value.get("type")
        text = _text(kind.get("text")) if type(kind) is dict else None
        if val is None and system is None:
            return []
        return [(_s(system) if system else None, _s(val) if val else None, text)]
    return []


def emit_token(value: Any, h: int, grp: int, rows: Rows, of_type: int | None = None) -> None:
    target = rows["token"]
    for system, code, text in token_rows(value):
        target[(h, grp, system, code, text)] = None
    value = unwrap(value)
    if of_type is not None and type(value) is dict and type(value.get("type")) is dict and value.get("value"):
        for coding in value["type"].get("coding") or ():
            if type(coding) is dict and coding.get("code"):
                code = _s(f"{coding['code']}|{value['value']}")
                target[(of_type, grp, coding.get("system"), code, None)] = None


# -- reference -------------------------------------------------------------------------------
def parse_reference(literal: str, own_base: str) -> tuple[str | None, str | None, str | None]:
    """(target_type, target_id, url) of a literal reference; our own absolute URLs become local."""
    if own_base and literal.startswith(own_base + "/"):
        literal = literal[len(own_base) + 1 :]
    parts = literal.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if "://" not in literal and not literal.startswith("urn:"):
        if len(parts) == 2 and parts[0][:1].isupper() and parts[1]:
            return _s(parts[0], 64), _s(parts[1], 64), None
        return None, None, None
    rtype = parts[-2] if len(parts) >= 2 and parts[-2][:1].isupper() else None
    return (_s(rtype, 64) if rtype else None), None, _s(literal, 512)


def emit_reference(
    value: Any, h: int, grp: int, rows: Rows, own_base: str, identifier_hash: int | None = None
) -> list[tuple[str, str]]:
    """Write the rows of one reference; return the local (type, id) pairs it points to."""
    value = unwrap(value)
    target = rows["reference"]
    t = type(value)
    if t is str:  # canonical or uri
        if "://" not in value and not value.startswith("urn:"):
            ttype, tid, url = parse_reference(value, own_base)
            if tid:
                target[(h, grp, ttype, tid, None)] = None
                return [(ttype, tid)]
            return []
        base, _, version = value.partition("|")
        target[(h, grp, None, None, _s(base, 512))] = None
        if version:
            target[(h, grp, None, None, _s(value, 512))] = None
        return []
    if t is not dict:
        return []
    if "resourceType" in value and type(value.get("id")) is str:  # a resource (Bundle.entry.resource)
        pair = (_s(value["resourceType"], 64), _s(value["id"], 64))
        target[(h, grp, *pair, None)] = None
        return [pair]
    if type(value.get("reference")) is dict:  # CodeableReference
        return emit_reference(value["reference"], h, grp, rows, own_base, identifier_hash)
    found: list[tuple[str, str]] = []
    literal = value.get("reference")
    if type(literal) is str and literal and not literal.startswith("#"):
        ttype, tid, url = parse_reference(literal, own_base)
        if ttype is None and type(value.get("type")) is str:
            ttype = _s(value["type"], 64)
        if ttype or tid or url:
            target[(h, grp, ttype, tid, url)] = None
            if tid:
                found.append((ttype, tid))
    elif type(value.get("identifier")) is dict or type(value.get("type")) is str:
        # A logical reference: present (for :missing) even though it cannot be resolved here.
        ttype = value.get("type")
        target[(h, grp, _s(ttype, 64) if type(ttype) is str else None, None, None)] = None
    ident = value.get("identifier")
    if identifier_hash is not None and type(ident) is dict:
        for system, code, text in token_rows(ident):
            rows["token"][(identifier_hash, grp, system, code, text)] = None
    return found


# -- date ------------------------------------------------------------------------------------
def date_rows(value: Any) -> list[tuple[int, int]]:
    value = unwrap(value)
    try:
        if type(value) is str:
            return [date_range(value)]
        if type(value) is not dict:
            return []
        if "start" in value or "end" in value:  # Period
            start, end = value.get("start"), value.get("end")
            low = date_range(start)[0] if type(start) is str else MIN_US
            high = date_range(end)[1] if type(end) is str else MAX_US
            return [(low, high)]
        out = []
        for event in value.get("event") or ():  # Timing
            if type(event) is str:
                out.append(date_range(event))
        repeat = value.get("repeat")
        if type(repeat) is dict and type(repeat.get("boundsPeriod")) is dict:
            out.extend(date_rows(repeat["boundsPeriod"]))
        return out
    except ValueError:  # stored data passed validation; an odd value is just not indexed
        return []


def emit_date(value: Any, h: int, grp: int, rows: Rows) -> None:
    target = rows["date"]
    for low, high in date_rows(value):
        target[(h, grp, low, high)] = None


# -- number / quantity -----------------------------------------------------------------------
def _num(v: Any) -> float | None:
    return float(v) if type(v) in (int, float) else None


def number_rows(value: Any) -> list[tuple[float, float, float]]:
    value = unwrap(value)
    n = _num(value)
    if n is not None:
        return [(n, n, n)]
    if type(value) is dict:
        if "low" in value or "high" in value:  # Range
            low = _num((value.get("low") or {}).get("value")) if type(value.get("low")) is dict else None
            high = _num((value.get("high") or {}).get("value")) if type(value.get("high")) is dict else None
            if low is None and high is None:
                return []
            return [(low if low is not None else high, low if low is not None else -BIG, high if high is not None else BIG)]
        n = _num(value.get("value"))
        if n is not None:
            return [(n, n, n)]
    return []


def emit_number(value: Any, h: int, grp: int, rows: Rows) -> None:
    target = rows["number"]
    for row in number_rows(value):
        target[(h, grp, *row)] = None


def quantity_rows(value: Any) -> list[tuple[str | None, str | None, float, float, float]]:
    value = unwrap(value)
    if type(value) is not dict:
        n = _num(value)
        return [(None, None, n, n, n)] if n is not None else []
    if "low" in value or "high" in value:  # Range: units from whichever bound has them
        bound = value.get("low") if type(value.get("low")) is dict else value.get("high")
        units = quantity_rows(bound)[:1] if type(bound) is dict else []
        numbers = number_rows(value)
        if not numbers:
            return []
        system, code = (units[0][0], units[0][1]) if units else (None, None)
        return [(system, code, *numbers[0])]
    n = _num(value.get("value"))
    if n is None:
        return []
    if "currency" in value:  # Money
        return [(CURRENCY_SYSTEM, _s(str(value["currency"])), n, n, n)]
    system = value.get("system") if type(value.get("system")) is str else None
    code = value.get("code") if type(value.get("code")) is str else None
    unit = value.get("unit") if type(value.get("unit")) is str else None
    out = [(_s(system) if system else None, _s(code or unit) if (code or unit) else None, n, n, n)]
    if unit and code and unit != code:  # ``5||mg`` may name the human unit
        out.append((None, _s(unit), n, n, n))
    return out


def emit_quantity(value: Any, h: int, grp: int, rows: Rows) -> None:
    target = rows["quantity"]
    for row in quantity_rows(value):
        target[(h, grp, *row)] = None


# -- uri -------------------------------------------------------------------------------------
def emit_uri(value: Any, h: int, grp: int, rows: Rows) -> None:
    value = unwrap(value)
    if type(value) is str and value:
        rows["uri"][(h, grp, _s(value, 512))] = None


EMITTERS: dict[str, Callable[[Any, int, int, Rows], None]] = {
    "string": emit_string,
    "token": emit_token,
    "date": emit_date,
    "number": emit_number,
    "quantity": emit_quantity,
    "uri": emit_uri,
}

"""Reading search parameter names and values as the FHIR search syntax writes them.

Nothing here touches SQL: names become (chain, code, modifier), values become typed,
validated pieces.  Every problem is a 400 OperationOutcome whose ``expression`` is
``http.<parameter name>``, as the spec suggests for query parameters.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ehr.outcome import FHIRError
from ehr.search.dates import date_range

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_ESCAPABLE = ",$|\\"


def invalid(name: str, diagnostics: str, code: str = "invalid") -> FHIRError:
    return FHIRError.of(400, code, diagnostics, f"http.{name}")


def not_supported(name: str, diagnostics: str) -> FHIRError:
    return FHIRError.of(400, "not-supported", diagnostics, f"http.{name}")


def split_escaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` unless backslash-escaped; escapes stay for the next level."""
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def or_values(raw: str) -> list[str]:
    """The comma-separated alternatives of one parameter value (escapes kept)."""
    return split_escaped(raw, ",")


def split_modifier(name: str) -> tuple[str, str | None]:
    code, sep, modifier = name.partition(":")
    return code, (modifier if sep else None)


def prefixed(name: str, value: str) -> tuple[str, str]:
    """(prefix, rest) of an ordered value such as ``ge2024`` (prefix defaults to ``eq``)."""
    if len(value) > 2 and value[:2].isalpha():
        if value[:2] not in PREFIXES:
            raise invalid(name, f"Unknown prefix {value[:2]!r} in {value!r}", "value")
        return value[:2], value[2:]
    return "eq", value


def parse_date(name: str, value: str) -> tuple[int, int]:
    try:
        return date_range(value)
    except ValueError:
        raise invalid(name, f"{value!r} is not a valid date/dateTime", "value") from None


@dataclass(frozen=True)
class Number:
    value: float
    low: float  # bounds implied by the precision written: 100 -> [99.5, 100.5)
    high: float
    closed: bool = False  # high is inclusive: the precision written is finer than a float's


def parse_number(name: str, value: str) -> Number:
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise invalid(name, f"{value!r} is not a number", "value") from None
    if not d.is_finite():
        raise invalid(name, f"{value!r} is not a finite number", "value")
    half = Decimal(5).scaleb(d.as_tuple().exponent - 1)
    v, low, high = float(d), float(d - half), float(d + half)
    if low == v or high == v:  # 66.89999999999999: the range collapses onto the float itself
        return Number(v, v, v, closed=True)
    return Number(v, low, high)


@dataclass(frozen=True)
class Token:
    system: str | None
    code: str | None
    any_system: bool  # "code" (no bar): any system, including none


def parse_token(value: str) -> Token:
    parts = split_escaped(value, "|")
    if len(parts) == 1:
        return Token(None, unescape(parts[0]) or None, True)
    system = unescape(parts[0])
    code = unescape("|".join(parts[1:]))
    return Token(system or None, code or None, False)


@dataclass(frozen=True)
class QuantityValue:
    prefix: str
    number: Number
    system: str | None
    code: str | None


def parse_quantity(name: str, value: str) -> QuantityValue:
    parts = split_escaped(value, "|")
    if len(parts) not in (1, 3):
        raise invalid(name, f"{value!r} is not number|system|code", "value")
    prefix, num = prefixed(name, unescape(parts[0]))
    number = parse_number(name, num)
    system = unescape(parts[1]) or None if len(parts) == 3 else None
    code = unescape(parts[2]) or None if len(parts) == 3 else None
    return QuantityValue(prefix, number, system, code)


def parse_bool(name: str, value: str) -> bool:
    if value == "true":
        return True
    if value == "false":
        return False
    raise invalid(name, f"{value!r} must be true or false", "value")

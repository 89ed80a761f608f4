"""FHIR primitive types in JSON: the JSON type each needs, and the regex HL7 gives it.

The regexes come from the base definitions (``<type>.value`` of each primitive type), not
from this file; this file adds only what a regex cannot say: JSON booleans and numbers,
the 32-bit integer range and real calendar dates (no 30 February).
"""
from __future__ import annotations

import calendar
import math
import re
from typing import Callable

INT32 = (-2147483648, 2147483647)


_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _real_date(value: str) -> bool:
    """The regex allows 2021-02-30; the calendar does not."""
    if len(value) < 10 or value[4] != "-" or value[7] != "-":
        return True        # year or year-month precision: nothing more to check
    day = int(value[8:10])
    if day <= 28:
        return True
    month = int(value[5:7])
    if month == 2 and day == 29:
        return calendar.isleap(int(value[:4]))
    return day <= _DAYS[month]


# Each checker returns None when the value is fine, else a message kind for the catalog.
Checker = Callable[[object], "str | None"]


def _boolean(v: object) -> str | None:
    return None if v is True or v is False else "json-type"


def _integer(low: int, high: int) -> Checker:
    def check(v: object) -> str | None:
        if type(v) is not int:
            return "json-type"
        return None if low <= v <= high else "integer-range"
    return check


def _decimal(v: object) -> str | None:
    if type(v) is int:
        return None
    if type(v) is float:
        return None if math.isfinite(v) else "format"
    return "json-type"


CACHE_SIZE = 4096    # verdicts remembered per type: codes, systems, dates repeat a lot


def _string(regex: str | None, dates: bool) -> Checker:
    # ASCII classes, as in the Java regexes HL7 wrote them for: \S also matches U+00A0
    match = re.compile(regex, re.ASCII).fullmatch if regex else None
    verdicts: dict[str, str | None] = {}

    def check(v: object) -> str | None:
        if type(v) is not str:
            return "json-type"
        try:
            return verdicts[v]
        except KeyError:
            pass
        if not v:
            verdict = "empty-string"
        elif match is not None and match(v) is None:
            verdict = "format"
        elif dates and not _real_date(v):
            verdict = "format"
        else:
            verdict = None
        if len(verdicts) < CACHE_SIZE and len(v) <= 256:
            verdicts[v] = verdict
        return verdict
    return check


def make_checker(code: str, regex: str | None) -> Checker:
    if code == "boolean":
        return _boolean
    if code == "integer":
        return _integer(*INT32)
    if code == "positiveInt":
        return _integer(1, INT32[1])
    if code == "unsignedInt":
        return _integer(0, INT32[1])
    if code == "decimal":
        return _decimal
    if code == "xhtml":
        return _string(None, False)
    return _string(regex, code in ("date", "dateTime", "instant"))


JSON_TYPE_NAMES = {"boolean": "boolean", "integer": "number", "positiveInt": "number",
                   "unsignedInt": "number", "decimal": "number"}


def json_type_name(code: str) -> str:
    return JSON_TYPE_NAMES.get(code, "string")

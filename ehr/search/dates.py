"""FHIR dates as ranges of epoch microseconds (UTC), for the index and for search values.

A date is as precise as it is written: ``2024`` is the whole year, ``2024-05-03T10:00`` the
whole minute.  Both indexed values and searched values become an inclusive ``(low, high)``
range, so every comparison prefix (eq, lt, sa, ap...) is integer arithmetic in SQL.  A value
without a timezone is taken as UTC (the spec leaves it to the server; UTC keeps results
independent of where the server runs).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from ehr.store.clock import from_datetime, shifted

# Open ends of a Period: far outside any real date yet safe in a signed 64-bit column.
MIN_US = -(2**62)
MAX_US = 2**62

_DATE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def _tz(text: str | None) -> timezone:
    if not text or text == "Z":
        return timezone.utc
    sign = 1 if text[0] == "+" else -1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 14 or minutes > 59:
        raise ValueError(f"bad timezone {text}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _add_months(dt: datetime, months: int) -> datetime | None:
    total = dt.year * 12 + (dt.month - 1) + months
    year, month = divmod(total, 12)
    if year > 9999:
        return None
    return dt.replace(year=year, month=month + 1)


@lru_cache(maxsize=32768)
def date_range(text: str) -> tuple[int, int]:
    """Inclusive (low, high) epoch µs covered by a FHIR date/dateTime/instant; ValueError if bad."""
    m = _DATE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a FHIR date")
    g = m.groupdict()
    tz = _tz(g["tz"])
    year = int(g["y"])
    month = int(g["m"] or 1)
    day = int(g["d"] or 1)
    hour = int(g["H"] or 0)
    minute = int(g["M"] or 0)
    second = int(g["S"] or 0)
    frac = g["f"] or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    start = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    end: datetime | None
    if frac:
        end = shifted(start, timedelta(microseconds=10 ** max(0, 6 - len(frac))))
    elif g["S"]:
        end = shifted(start, timedelta(seconds=1))
    elif g["M"]:
        end = shifted(start, timedelta(minutes=1))
    elif g["d"]:
        end = shifted(start, timedelta(days=1))
    elif g["m"]:
        end = _add_months(start, 1)
    else:
        end = _add_months(start, 12)
    low = from_datetime(start)
    high = (from_datetime(end) - 1) if end is not None else MAX_US
    return low, high


def period_range(start: str | None, end: str | None) -> tuple[int, int]:
    low = date_range(start)[0] if start else MIN_US
    high = date_range(end)[1] if end else MAX_US
    return low, high

"""Server time as epoch microseconds (what the store keeps) and FHIR instants (what clients see)."""
import re
from datetime import datetime, timedelta, timezone
import time

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def now_us() -> int:
    return time.time_ns() // 1000


def to_instant(us: int) -> str:
    dt = datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


def to_http_date(us: int) -> str:
    dt = datetime.fromtimestamp(us // 1_000_000, tz=timezone.utc)
    return dt.strftime("%a, %d %b %Y %H:%M:%S GMT")


def from_datetime(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def shifted(dt: datetime, delta: timedelta) -> datetime:
    """``dt + delta``, held at the ends of the calendar (years 1 and 9999: valid FHIR dates)."""
    try:
        return dt + delta
    except OverflowError:
        end = datetime.max if delta > timedelta(0) else datetime.min
        return end.replace(tzinfo=dt.tzinfo)


_DATE_FORMS = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def parse_instant_bounds(value: str) -> tuple[int, int]:
    """A FHIR date/dateTime/instant as the [low, high] epoch-µs range its precision covers."""
    m = _DATE_FORMS.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a FHIR date, dateTime or instant")
    year, month, day, hour, minute, second, frac, tz = m.groups()
    offset = timedelta(0)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        offset = sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    try:
        if month is None:
            low = datetime(int(year), 1, 1, tzinfo=timezone.utc)
            high = datetime(int(year) + 1, 1, 1, tzinfo=timezone.utc) if int(year) < 9999 else datetime.max.replace(tzinfo=timezone.utc)
        elif day is None:
            low = datetime(int(year), int(month), 1, tzinfo=timezone.utc)
            high = shifted(low, timedelta(days=32)).replace(day=1) if (int(year), int(month)) < (9999, 12) \
                else datetime.max.replace(tzinfo=timezone.utc)
        elif hour is None:
            low = datetime(int(year), int(month), int(day), tzinfo=timezone.utc)
            high = shifted(low, timedelta(days=1))
        else:
            low = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=timezone.utc)
            if frac:
                low = shifted(low, timedelta(microseconds=int(round(float(frac) * 1_000_000))))
                high = shifted(low, timedelta(microseconds=1))
            else:
                high = shifted(low, timedelta(seconds=1) if second else timedelta(minutes=1))
            low, high = shifted(low, -offset), shifted(high, -offset)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid date: {exc}") from None
    return from_datetime(low), from_datetime(high) - 1

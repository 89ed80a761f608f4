"""The 48-hour clock: receipt, deadline, Moroccan business days, all in epoch microseconds."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from ehr.store.clock import from_datetime, now_us, to_instant

HOUR_US = 3_600 * 1_000_000
DAY_US = 24 * HOUR_US

__all__ = ["HOUR_US", "DAY_US", "now_us", "to_instant", "local_date", "day_bounds", "deadline"]


def deadline(received_at: int, hours: int) -> int:
    return received_at + hours * HOUR_US


def local_date(us: int, tz: str) -> date:
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc).astimezone(ZoneInfo(tz)).date()


def day_bounds(day: date, tz: str) -> tuple[int, int]:
    """[start, end) of a local day in epoch µs (days are not always 24 h: DST and Ramadan shifts)."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return from_datetime(start), from_datetime(end)

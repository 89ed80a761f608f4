"""The 48-hour clock: receipt, deadline, Moroccan business days, all in epoch microseconds.

``now_us`` is the time every claims decision is stamped with (receipt, deadline, leases,
escalation, agents' decisions).  It is the real clock unless ``SIJILL_CLAIMS_CLOCK_SPEEDUP``
is above 1: then, **for benchmarks only**, it is a virtual clock that reads
``SIJILL_CLAIMS_CLOCK_START`` at the real instant ``SIJILL_CLAIMS_CLOCK_ORIGIN`` and runs
``speedup`` times faster than real time, so a replayed week of care sheets fits in minutes
(``bench/claims_replay.py``).  Every process of a run (server workers, claims workers) gets the
same three values and so reads the same virtual time.  Durations the worker adds to ``now_us``
(``SIJILL_CLAIMS_LEASE_SECONDS``, escalation, retry delays) are virtual too: a replay scales the
lease by the speedup so that it stays as long in real time.  Resource ``meta.lastUpdated``
keeps the real clock (``ehr.store.clock``).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from claims.settings import get_claims_settings
from ehr.store.clock import from_datetime, to_instant
from ehr.store.clock import now_us as real_now_us

HOUR_US = 3_600 * 1_000_000
DAY_US = 24 * HOUR_US

__all__ = ["HOUR_US", "DAY_US", "now_us", "real_now_us", "to_instant", "local_date", "day_bounds", "deadline",
           "virtual_clock"]


def virtual_clock(speedup: float, start: datetime | None, origin: datetime | None) -> Callable[[], int]:
    """``now_us`` for these settings: the real clock at speedup 1, else the benchmark's virtual one."""
    if speedup == 1 and start is None:
        return real_now_us
    if origin is None:
        raise ValueError("SIJILL_CLAIMS_CLOCK_ORIGIN (the real instant the virtual clock starts) is required "
                         "with SIJILL_CLAIMS_CLOCK_SPEEDUP")
    origin_us = from_datetime(origin)
    start_us = from_datetime(start) if start is not None else origin_us

    def virtual_now_us() -> int:
        return start_us + int((real_now_us() - origin_us) * speedup)

    return virtual_now_us


_built: tuple[object, Callable[[], int]] | None = None


def now_us() -> int:
    global _built
    settings = get_claims_settings()
    if _built is None or _built[0] is not settings:  # rebuilt when the settings cache is cleared
        _built = (settings, virtual_clock(settings.clock_speedup, settings.clock_start, settings.clock_origin))
    return _built[1]()


def deadline(received_at: int, hours: int) -> int:
    return received_at + hours * HOUR_US


def local_date(us: int, tz: str) -> date:
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc).astimezone(ZoneInfo(tz)).date()


def day_bounds(day: date, tz: str) -> tuple[int, int]:
    """[start, end) of a local day in epoch µs (days are not always 24 h: DST and Ramadan shifts)."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), tzinfo=zone)
    if day == date.max:  # 9999-12-31, the calendar's last day: it ends with the calendar
        return from_datetime(start), from_datetime(datetime.max.replace(tzinfo=zone)) + 1
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return from_datetime(start), from_datetime(end)

"""Determinism helpers: per-entity random streams, stable ids, dates and unique numbers.

Every patient gets its own ``random.Random`` seeded from ``(seed, index)``, so patient *i* is
the same whatever else is generated (a 10-patient run is a prefix of a 1M-patient run) and the
stream never has to be held in memory.  Nothing here reads the clock: "today" is fixed.
"""
from __future__ import annotations

import random
import uuid
from bisect import bisect_right
from datetime import date, datetime, timedelta
from functools import lru_cache
from hashlib import sha1
from itertools import accumulate
from math import gcd

# The generator's "today": data stays byte-identical across runs and years.
TODAY = date(2025, 6, 30)
# Morocco's legal time (UTC+1 outside Ramadan); dateTimes carry it explicitly.
TZ = "+01:00"
URN_NAMESPACE = uuid.UUID("5b0c1f3e-6a2d-4c8e-9f1a-53696a696c6c")  # "Sijill" in the tail
_NS_BYTES = URN_NAMESPACE.bytes


def stream(seed: int, *scope: object) -> random.Random:
    """An independent random stream for one entity; string seeds hash with SHA-512 (stable)."""
    return random.Random("/".join(map(str, (seed, *scope))))


def urn(res_type: str, res_id: str) -> str:
    """The bundle fullUrl of a resource: the name-based UUID (RFC 4122 version 5) of
    ``Type/id``, so it is a function of the id.  Computed inline: ``uuid.uuid5`` builds a UUID
    object per call and was most of the generator's time."""
    h = bytearray(sha1(_NS_BYTES + f"{res_type}/{res_id}".encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"urn:uuid:{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


# Number series, so that a person's CIN, member number and RNP id do not share digits.
CIN_SERIES, RNP_SERIES, RSU_SERIES, MEMBER_SERIES, MUTUELLE_SERIES, INPE_SERIES = range(1, 7)


def unique_number(index: int, digits: int, seed: int, series: int) -> int:
    """A number of ``digits`` digits, distinct for every ``index`` below 10**(digits-1).

    An affine map with a multiplier coprime to 10 is a bijection modulo 10**(digits-1) (a
    golden-ratio multiplier scatters neighbours); the leading digit is fixed to non-zero so
    values keep their width and look like real numbers.
    """
    span = 10 ** (digits - 1)
    salt = seed * 7 + series * 1_000_003
    lead = 1 + salt % 9
    return lead * span + (index * _multiplier(span) + salt * 104_729) % span


@lru_cache(maxsize=None)
def _multiplier(span: int) -> int:
    m = int(span * 0.6180339887)
    while gcd(m, 10) != 1:
        m += 1
    return m


def day(d: date) -> str:
    return d.isoformat()


def moment(d: date, minutes: int) -> str:
    """A local dateTime on day ``d``, ``minutes`` after midnight."""
    return (datetime(d.year, d.month, d.day) + timedelta(minutes=minutes)).isoformat() + TZ


def birth_date(rng: random.Random, age_years: int) -> date:
    return TODAY - timedelta(days=age_years * 365 + rng.randrange(365))


def age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for dd in (d.day, 28):  # clamp the 29th-31st to a day every month has
        try:
            return date(year, month, dd)
        except ValueError:
            continue
    raise AssertionError("unreachable")


class Weighted:
    """A weighted choice over ``((item, weight), ...)``, cumulative weights computed once."""

    __slots__ = ("items", "_cum", "_total")

    def __init__(self, pairs) -> None:
        pairs = tuple(pairs)
        self.items = tuple(item for item, _ in pairs)
        self._cum = tuple(accumulate(w for _, w in pairs))
        self._total = self._cum[-1]

    def pick(self, rng: random.Random):
        return self.items[bisect_right(self._cum, rng.random() * self._total)]

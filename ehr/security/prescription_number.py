"""The prescription number: what the patient hands over at the pharmacy, typed, printed or in a QR.

A number is 11 random Crockford Base32 symbols (55 bits from the operating system's CSPRNG) and
one check symbol, printed in three groups of four: ``7SE7-N65P-TKS7``.

* **Alphabet**: Crockford Base32 (``0-9 A-Z`` without ``I L O U``, https://www.crockford.com/base32.html):
  no letter is mistaken for a digit when read aloud or off a crumpled paper; on input ``I``/``L``
  are read as ``1``, ``O`` as ``0``, case, spaces and hyphens are ignored (``normalize``).
* **Check symbol**: the Damm algorithm (H. M. Damm, *Total anti-symmetrische Quasigruppen*,
  Marburg 2004) over a totally anti-symmetric quasigroup of order 32 with a zero diagonal,
  ``x ∘ y = α·(x ⊕ y)`` in GF(2⁵) (α the class of ``x`` modulo ``x⁵ + x² + 1``): it detects every
  single-symbol substitution and every transposition of adjacent symbols, check symbol
  included, and the check symbol is a symbol of the same alphabet.  A mistyped number is
  refused before any database access instead of being looked up.
* **Not guessable**: 2⁵⁵ ≈ 3.6·10¹⁶ numbers.  With 10⁹ prescriptions stored (about three years of
  the whole country), one guess in 3.6·10⁷ hits; a pharmacy is throttled after
  ``SIJILL_PRESCRIPTION_LOOKUP_MISSES`` misses (default 10 per 15 minutes, see
  ``ehr.security.prescription_lookup``), i.e. at most ~1,000 guesses a day, each audited.
* **Short enough to type**: 12 symbols; the QR code of the printed prescription carries the
  same text.
"""
from __future__ import annotations

import random
import re
import secrets

SYSTEM = "https://fhir.sijill.ma/sid/prescription"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RANDOM_SYMBOLS = 11
GROUP = 4
LENGTH = RANDOM_SYMBOLS + 1
_S = "[0-9A-HJKMNP-TV-Z]"
# Anchored pattern of the canonical (printed, stored) form; also the profile's FHIRPath constraint.
PATTERN = rf"^{_S}{{4}}-{_S}{{4}}-{_S}{{4}}$"
EXAMPLE = "7SE7-N65P-TKS7"

_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_VALUE.update({"I": 1, "L": 1, "O": 0})  # Crockford: read what people write for 1 and 0
_IGNORED = re.compile(r"[\s-]+")


def _gf32_times_alpha(x: int) -> int:
    """x·α in GF(2⁵) = GF(2)[x]/(x⁵ + x² + 1)."""
    x <<= 1
    return x ^ 0b100101 if x & 0b100000 else x


# The quasigroup table: row = interim digit, column = next symbol.
_TABLE = tuple(tuple(_gf32_times_alpha(row ^ col) for col in range(32)) for row in range(32))


def _interim(values: list[int]) -> int:
    state = 0
    for v in values:
        state = _TABLE[state][v]
    return state


def check_symbol(body: str) -> str:
    """The Damm check symbol of ``body`` (canonical symbols, no separators)."""
    return ALPHABET[_interim([_VALUE[c] for c in body])]


def format_number(bits: int) -> str:
    """The number made of these 55 bits (``new_number`` draws them; the demo its seeded ones)."""
    if not 0 <= bits < 1 << (5 * RANDOM_SYMBOLS):
        raise ValueError("a prescription number carries 55 bits")
    body = "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in reversed(range(RANDOM_SYMBOLS)))
    body += check_symbol(body)
    return "-".join(body[i:i + GROUP] for i in range(0, LENGTH, GROUP))


def new_number() -> str:
    """A fresh number from the operating system's cryptographic random source."""
    return format_number(secrets.randbits(5 * RANDOM_SYMBOLS))


def seeded_number(seed: str) -> str:
    """A number derived from ``seed``, for generated data (the demo, benchmarks): the same seed
    gives the same number, so a rerun writes the same prescriptions.  Predictable by design:
    never for a real prescription."""
    return format_number(random.Random(seed).getrandbits(5 * RANDOM_SYMBOLS))


def normalize(text: str) -> str | None:
    """The canonical form of what someone typed (case, spaces, hyphens, I/L/O forgiven), or None
    if it is not a prescription number: wrong length, a symbol outside the alphabet, or a check
    symbol that does not match."""
    compact = _IGNORED.sub("", text or "").upper()
    if len(compact) != LENGTH or any(c not in _VALUE for c in compact):
        return None
    canonical = "".join(ALPHABET[_VALUE[c]] for c in compact)
    if _interim([_VALUE[c] for c in canonical]) != 0:  # zero diagonal: a valid number ends at 0
        return None
    return "-".join(canonical[i:i + GROUP] for i in range(0, LENGTH, GROUP))


def is_valid(value: str) -> bool:
    """Whether ``value`` is a number in its canonical (stored) form."""
    return normalize(value) == value


def problem(value: str) -> str | None:
    """For ``profiles.identifiers``: why a well-shaped value is not a number (its check symbol)."""
    return None if is_valid(value) else "le caractère de contrôle ne correspond pas (numéro mal recopié ?)"


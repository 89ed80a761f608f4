"""Money in MAD as ``Decimal``, rounded to the centime; stored as integer centimes.

FHIR JSON carries amounts as numbers (the store reads them back as floats), so a value is
turned into a Decimal through its shortest decimal text, never through binary arithmetic.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CURRENCY = "MAD"
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def to_decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def cents(amount: Decimal) -> int:
    """Integer centimes (exact on SQLite and PostgreSQL alike)."""
    return int(round_cent(amount) * 100)


def from_cents(value: int | None) -> Decimal:
    return (Decimal(value or 0) / 100).quantize(CENT)


def round_cent(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def money(amount: Decimal) -> dict:
    """A FHIR Money element."""
    value = round_cent(amount)
    return {"value": int(value) if value == value.to_integral_value() else float(value), "currency": CURRENCY}

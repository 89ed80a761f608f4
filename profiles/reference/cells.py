"""Parsing one cell of a published table; a bad cell raises ``ValueError`` with a French
message that the row report quotes next to the line number and column name."""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

_MONEY = re.compile(r"^\d+(?:[.,]\d{1,2})?$")
_DECIMAL = re.compile(r"^\d+(?:[.,]\d+)?$")
_ICD10 = re.compile(r"^[A-Z][0-9]{2}(?:\.[0-9A-Z]{1,4})?$")
_YES = {"o", "oui", "y", "yes", "1", "true", "vrai", "x", "نعم"}
_NO = {"n", "non", "no", "0", "false", "faux", "لا"}


def text(value: str, max_len: int) -> str:
    if len(value) > max_len:
        raise ValueError(f"texte trop long ({len(value)} caractères, {max_len} au plus)")
    return value


def money_centimes(value: str) -> int:
    """ "1 234,50" / "1234.5" / "80" -> centimes.  No negatives, at most two decimals."""
    cleaned = value.replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    if not _MONEY.match(cleaned):
        raise ValueError(f"montant invalide « {value} » : un nombre positif avec au plus deux décimales est attendu (ex. 12,50)")
    return int((Decimal(cleaned.replace(",", ".")) * 100).to_integral_value())


def positive_decimal(value: str) -> Decimal:
    cleaned = value.replace(" ", "")
    if not _DECIMAL.match(cleaned):
        raise ValueError(f"nombre invalide « {value} »")
    try:
        number = Decimal(cleaned.replace(",", "."))
    except InvalidOperation:
        raise ValueError(f"nombre invalide « {value} »") from None
    if number <= 0:
        raise ValueError(f"le nombre doit être strictement positif (« {value} »)")
    if number.as_tuple().exponent < -2 or number >= Decimal("100000000"):
        raise ValueError(f"nombre hors format (au plus 8 chiffres et 2 décimales) : « {value} »")
    return number


def boolean(value: str) -> bool:
    v = value.strip().lower()
    if v in _YES:
        return True
    if v in _NO:
        return False
    raise ValueError(f"valeur « {value} » : oui ou non attendu")


def iso_or_french_date(value: str) -> date:
    """2024-01-31 or 31/01/2024."""
    v = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            return date.fromisoformat(v)
        m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", v)
        if m:
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    except ValueError:
        pass
    raise ValueError(f"date invalide « {value} » : AAAA-MM-JJ ou JJ/MM/AAAA attendu")


def ean13(value: str) -> str:
    """The GS1 EAN-13 of a medicine pack, its check digit verified."""
    if not re.fullmatch(r"\d{13}", value):
        raise ValueError(f"code « {value} » : 13 chiffres attendus (code-barres EAN-13 de la présentation)")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(value[:12]))
    if (10 - total % 10) % 10 != int(value[12]):
        raise ValueError(f"code « {value} » : clé de contrôle EAN-13 incorrecte")
    return value


def icd10_ranges(value: str) -> list[tuple[str, str]]:
    """ "I60-I64; G95.1" -> [("I60", "I64"), ("G95.1", "G95.1")]."""
    out: list[tuple[str, str]] = []
    for part in re.split(r"[;,]", value):
        part = part.strip().upper()
        if not part:
            continue
        low, _, high = part.partition("-")
        low, high = low.strip(), (high.strip() or low.strip())
        for code in (low, high):
            if not _ICD10.match(code):
                raise ValueError(f"code CIM-10 invalide « {code} » (ex. I63, E11.9, ou une plage I60-I64)")
        if high < low:
            raise ValueError(f"plage CIM-10 inversée « {part} »")
        out.append((low, high))
    if not out:
        raise ValueError("au moins un code ou une plage CIM-10 est attendu")
    return out


def icd10_in_range(code: str, low: str, high: str) -> bool:
    """Is ICD-10 ``code`` (e.g. "I63.9") inside ``low``..``high`` (categories or sub-codes)?
    A bound of three characters covers all its sub-codes: I64 includes I64.0."""
    code = code.strip().upper()
    if len(low) == 3 and code[:3] >= low and (code[:3] <= high if len(high) == 3 else code <= high):
        return True
    return low <= code <= high or (code.startswith(low) and low == high)

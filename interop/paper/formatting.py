"""How values are printed: Moroccan amounts (``1 234,50 DH``), ``dd/mm/yyyy`` dates, Moroccan
local times, identifiers masked to what a reader needs to recognise them, people's names."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from claims.money import round_cent
from interop.paper.catalogue import Bilingual

NBSP = "\u00a0"  # keeps "1 234,50 DH" on one line
MASK = "•"
LANGUAGE_EXT = "http://hl7.org/fhir/StructureDefinition/language"


def amount(value: Decimal) -> str:
    """``1234.5`` → ``1 234,50`` (groups of three, decimal comma, always two decimals)."""
    q = round_cent(value)
    whole, cents = f"{abs(q):.2f}".split(".")
    groups = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return ("-" if q < 0 else "") + NBSP.join(groups) + "," + cents


def day(value: date | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return value.strftime("%d/%m/%Y")


def local(us: int, tz: str) -> datetime:
    """An epoch-µs instant as Moroccan local time (what the reader's clock showed)."""
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc).astimezone(ZoneInfo(tz))


def instant_us(instant: str) -> int:
    """A FHIR instant (``2025-03-01T10:00:00.123Z``) as epoch µs."""
    parsed = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return int(parsed.timestamp() * 1_000_000)


def mask(value: str) -> str:
    """All but the last characters hidden: ``BK123456`` → ``•••••456`` (at most half shown)."""
    value = value.strip()
    keep = min(3, len(value) // 2)
    return MASK * (len(value) - keep) + value[len(value) - keep:]


def _name_text(name: dict) -> str | None:
    if isinstance(name.get("text"), str) and name["text"].strip():
        return name["text"].strip()
    parts = [*(name.get("prefix") or []), *(name.get("given") or []), name.get("family") or ""]
    joined = " ".join(p for p in parts if isinstance(p, str) and p.strip())
    return joined or None


def _language(name: dict) -> str | None:
    return next((e.get("valueCode") for e in name.get("extension") or [] if e.get("url") == LANGUAGE_EXT), None)


def person_name(resource: dict | None) -> Bilingual | None:
    """A person's name in each language: the name written in that language (language extension)
    when the record has one, else the usual or official one."""
    names = [n for n in (resource or {}).get("name") or [] if isinstance(n, dict) and n.get("use") not in ("old", "anonymous")]
    if not names:
        return None
    default = next((n for n in names if n.get("use") in ("usual", "official")), names[0])
    by_lang = {_language(n): n for n in names if _language(n)}

    def pick(lang: str) -> str | None:
        return _name_text(by_lang.get(lang) or default)

    fr, ar = pick("fr"), pick("ar")
    if fr is None and ar is None:
        return None
    return Bilingual(fr or ar, ar or fr)


def display_name(resource: dict | None) -> Bilingual | None:
    """What a person or an organisation is called."""
    if not resource:
        return None
    if resource.get("resourceType") == "Organization":
        name = resource.get("name")
        return Bilingual.same(name) if isinstance(name, str) and name else None
    return person_name(resource)

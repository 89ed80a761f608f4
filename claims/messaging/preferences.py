"""Where and in which language a patient is told: read from the Patient resource.

* Channel: the patient's ``telecom`` entries that can receive a notification — ``sms``, a
  ``phone`` with use ``mobile``, ``email`` — in ``rank`` order (unranked last), skipping those
  whose ``period`` has ended.  For a minor (under 18 on the day), the first ``contact`` whose
  relationship is a parent or guardian and who has such an entry is told instead.
* Language: the ``communication`` marked ``preferred`` (else the first); ``ar…`` → Arabic,
  ``fr…`` → French; none: the configured default.
* Opt-out: the extension ``notification-opt-out`` (valueBoolean true) on the Patient stops
  every channel, on one telecom entry that channel only.  A break-the-glass notice is sent
  anyway: the patient's right to know who opened their file in an emergency is not waivable.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

OPT_OUT = "https://fhir.sijill.ma/StructureDefinition/notification-opt-out"
NOT_WAIVABLE = {"break-glass"}
GUARDIANS = {"GUARD", "PRN", "MTH", "FTH", "PRNFOST", "N", "parent", "guardian"}


@dataclass(frozen=True)
class Route:
    channel: str  # sms | email
    to: str
    language: str  # fr | ar
    guardian: bool = False


def _opted_out(element: dict) -> bool:
    return any(e.get("url") == OPT_OUT and e.get("valueBoolean") is True for e in element.get("extension") or [])


def _reachable(telecom: list[dict], today: date, waivable: bool = True) -> list[tuple[str, str]]:
    found = []
    for t in sorted(telecom or [], key=lambda t: t.get("rank") or 10**6):
        end = (t.get("period") or {}).get("end")
        if not t.get("value") or (waivable and _opted_out(t)) or (end and end[:10] < today.isoformat()):
            continue
        if t.get("system") == "sms" or (t.get("system") == "phone" and t.get("use") == "mobile"):
            found.append(("sms", t["value"]))
        elif t.get("system") == "email":
            found.append(("email", t["value"]))
    return found


def language(patient: dict, default: str) -> str:
    comms = patient.get("communication") or []
    chosen = next((c for c in comms if c.get("preferred")), comms[0] if comms else None)
    for coding in ((chosen or {}).get("language") or {}).get("coding") or []:
        code = (coding.get("code") or "").lower()
        if code.startswith(("ar", "fr")):
            return code[:2]
    return default


def _minor(patient: dict, today: date) -> bool:
    born = patient.get("birthDate") or ""
    if len(born) < 10:
        return False
    b = date.fromisoformat(born[:10])
    return (today.year - b.year - ((today.month, today.day) < (b.month, b.day))) < 18


def is_guardian(contact: dict) -> bool:
    return any(c.get("code") in GUARDIANS for r in contact.get("relationship") or [] for c in r.get("coding") or [])


def route(patient: dict, event: str, today: date, default_language: str) -> Route | str:
    """The route to tell the patient on, or why there is none (``opted-out``, ``no-contact``)."""
    if _opted_out(patient) and event not in NOT_WAIVABLE:
        return "opted-out"
    lang = language(patient, default_language)
    if _minor(patient, today):
        for contact in filter(is_guardian, patient.get("contact") or []):
            reachable = _reachable(contact.get("telecom") or [], today)
            if reachable:
                return Route(*reachable[0], lang, guardian=True)
    telecom = patient.get("telecom") or []
    reachable = _reachable(telecom, today, waivable=event not in NOT_WAIVABLE)
    if reachable:
        return Route(*reachable[0], lang)
    return "opted-out" if any(_opted_out(t) for t in telecom) else "no-contact"

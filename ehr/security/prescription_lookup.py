"""Looking a prescription up by its number: one number per search, misses throttled.

``GET /fhir/MedicationRequest?group-identifier=https://fhir.sijill.ma/sid/prescription|<number>``
returns every line of the prescription (``identifier=`` with the same system is the older
spelling of the same lookup; a bare ``group-identifier=<number>`` works too).  Whoever searches,
a search naming a prescription number must name exactly one, exactly (``parse_lookup``, 400
before any database access):

* one parameter, one value: no second parameter, no comma list;
* no modifier (``:missing``, ``:not``, ``:text``, ``:of-type``...);
* a well-formed number: twelve symbols whose check symbol matches (what the patient's paper
  says, typed with any case, spaces or hyphens — ``ehr.security.prescription_number``);
* nothing that brings in other resources than the prescription's lines and what they refer
  to (``_revinclude``, ``_include:iterate``, ``_filter``, ``_query``, ``_list``, ``_has``,
  ``_contained``, ``_containedType``).

A pharmacist's lookup presents the prescription (``ehr.security.dispensing``).  A number that
no prescription carries is a miss: audited (outcome 4, the number tried, no patient) and
counted per pharmacist and per pharmacy (``ehr.security.presence.MissThrottle``, in the rate
limiter's storage: a Redis storage shares the counts between server processes); past
``SIJILL_PRESCRIPTION_LOOKUP_MISSES`` within the window, lookups answer 429 with Retry-After.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ehr.outcome import FHIRError
from ehr.security.presence import MissThrottle
from ehr.security.prescription_number import SYSTEM, normalize

NUMBER_PARAMS = ("group-identifier", "identifier")
_BROADENING = ("_revinclude", "_filter", "_query", "_list", "_has", "_contained", "_containedType")


@dataclass(frozen=True)
class Lookup:
    number: str  # canonical
    params: list[tuple[str, str]]  # the search, the number as group-identifier=<system>|<number>


def _names_a_number(name: str, value: str) -> bool:
    base = name.partition(":")[0]
    if base == "group-identifier":
        return True
    return base == "identifier" and any(part.partition("|")[0] == SYSTEM for part in value.split(","))


def _bad(name: str, message: str) -> FHIRError:
    return FHIRError.of(400, "invalid", message, f"http.{name}")


def parse_lookup(res_type: str | None, params: list[tuple[str, str]]) -> Lookup | None:
    """The prescription number a MedicationRequest search names, or None; 400 unless it names
    exactly one well-formed number and nothing broader."""
    if res_type != "MedicationRequest":
        return None
    named = [(name, value) for name, value in params if _names_a_number(name, value)]
    if not named:
        return None
    name, value = named[0]
    if len(named) > 1:
        raise _bad(named[1][0], "Une recherche d'ordonnance porte sur un seul numéro (un seul paramètre)")
    if ":" in name:
        raise _bad(name, "Une recherche d'ordonnance se fait sur le numéro exact, sans modificateur")
    if "," in value:
        raise _bad(name, "Une recherche d'ordonnance porte sur un seul numéro (pas de liste)")
    for other, _ in params:
        base, _, modifier = other.partition(":")
        if base in _BROADENING or (base == "_include" and modifier == "iterate"):
            raise _bad(other, f"{other} ne peut accompagner une recherche d'ordonnance par numéro")
    system, bar, code = value.rpartition("|")
    if (bar and system != SYSTEM) or (name == "identifier" and not bar):
        raise _bad(name, f"Le numéro d'ordonnance a pour système {SYSTEM}")
    number = normalize(code)
    if number is None:
        raise _bad(name, f"« {code} » n'est pas un numéro d'ordonnance : 12 caractères dont le dernier est un caractère "
                         "de contrôle — vérifiez la saisie")
    rewritten = [(n, v) for n, v in params if (n, v) != (name, value)]
    return Lookup(number, [("group-identifier", f"{SYSTEM}|{number}"), *rewritten])


def miss_throttle(request: Request) -> MissThrottle:
    """The server process's count of pharmacies' misses (``SecurityServices``)."""
    return request.app.state.security.prescription_misses


Misses = Annotated[MissThrottle, Depends(miss_throttle)]

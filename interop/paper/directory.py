"""What people, organisations and codes are called, for a letter: names in both languages,
patients' identifiers masked, funds and acts by their terminology labels, who an actor is."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from sqlalchemy.ext.asyncio import AsyncConnection

from claims.lookups import identifier_value, resources_by_id
from claims.uris import FUND, INPE
from ehr.security.identity import directory_refs, split_reference
from ehr.security.roles import Role
from interop.paper.catalogue import Bilingual
from interop.paper.formatting import display_name, mask
from profiles.identifiers import SID, SYSTEMS
from profiles.terminology import get_terminology

FUND_CODES = "https://fhir.sijill.ma/CodeSystem/organisme"
# What identifies a patient on a letter: the national identity card, then the funds' numbers.
PATIENT_ID_SYSTEMS = (SID + "cin", SID + "cnss", SID + "cnops", SID + "amo-tadamon", SID + "mutuelle")


async def load(conn: AsyncConnection, references: Iterable[str | None]) -> dict[str, dict]:
    """Current resources by ``Type/id`` reference (missing or deleted ones are left out)."""
    refs = {r for r in (split_reference(x) for x in references if x) if r}
    found = await resources_by_id(conn, refs)
    return {f"{t}/{i}": res for (t, i), res in found.items()}


@dataclass(frozen=True)
class Identifier:
    label: Bilingual
    masked: str


def patient_identifiers(patient: dict | None) -> list[Identifier]:
    out = []
    for system in PATIENT_ID_SYSTEMS:
        value = identifier_value(patient or {}, system)
        if value:
            spec = SYSTEMS[system]
            out.append(Identifier(Bilingual(spec.label_fr, spec.label_ar), mask(value)))
    return out


def concept_label(system: str | None, code: str | None) -> Bilingual | None:
    """A code's display in each language from the terminology (Arabic where it has one)."""
    cs = get_terminology().codesystem(system) if system else None
    concept = cs.get(code) if cs is not None and code else None
    if concept is None:
        return None
    fr = concept.display_in("fr")
    return Bilingual(fr or code, concept.display_in("ar") or fr or code)


def fund_name(fund_code: str, organization: dict | None) -> Bilingual:
    """A fund as the funds name themselves (terminology), else its Organization's name."""
    return (concept_label(FUND_CODES, fund_code) or display_name(organization)
            or Bilingual.same(fund_code))


@dataclass(frozen=True)
class Party:
    """A patient, provider or payee as a letter prints them."""

    name: Bilingual | None
    identifiers: list[Identifier] = field(default_factory=list)
    inpe: str | None = None


def party(resource: dict | None, *, inpe: str | None = None, identify: bool = False) -> Party:
    return Party(display_name(resource), patient_identifiers(resource) if identify else [],
                 inpe or identifier_value(resource or {}, INPE))


# --- who did something ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    name: Bilingual | None
    role: str  # a catalogue key: role.doctor, role.paper-agent, …
    organisations: tuple[Bilingual, ...] = ()


async def actor(conn: AsyncConnection, reference: str | None, role: Role | str | None, patient_id: str | None) -> Actor:
    """Who a user is: their name, their role (as the trail recorded it, else as far as their
    directory entries tell) and the organisations they work for."""
    ref = split_reference(reference)
    if ref is None:
        return Actor(None, _role_key(role) or "role.unknown")
    res = (await load(conn, [reference])).get(reference)
    orgs: dict[str, dict] = {}
    if ref[0] in ("Practitioner", "PractitionerRole"):
        orgs = await load(conn, [f"Organization/{i}" for t, i in await directory_refs(conn, ref) if t == "Organization"])
    organisations = tuple(n for n in (display_name(orgs[o]) for o in sorted(orgs)) if n)
    key = _role_key(role) or _role_from_directory(ref, res, patient_id, list(orgs.values()))
    return Actor(display_name(res), key, organisations)


def _role_key(role: Role | str | None) -> str | None:
    value = role.value if isinstance(role, Role) else role
    # The patient role is the patient or a guardian: their reference tells which.
    if not value or value in (Role.UNRESTRICTED.value, Role.PATIENT.value):
        return None
    return f"role.{value}"


def _role_from_directory(ref: tuple[str, str], res: dict | None, patient_id: str | None, organisations: list[dict]) -> str:
    """For events recorded without the user's role: what their directory entries say of them
    (health professionals carry an INPE; a fund's agents work for an organisation with a fund code)."""
    if ref[0] == "Patient":
        return "role.patient" if ref[1] == patient_id else "role.guardian"
    if ref[0] == "RelatedPerson":
        return "role.guardian"
    if ref[0] == "Organization":
        return "role.insurer" if identifier_value(res or {}, FUND) else "role.organization"
    if res is not None and identifier_value(res, INPE):
        return "role.professional"
    if any(identifier_value(o, FUND) for o in organisations):
        return "role.insurer"
    return "role.unknown"

"""What the access policy knows about a user before any query: their references and small sets.

Everything here is read from the index tables (and the grant/presentation tables) with a few
indexed queries, and cached per user for ``identity_cache_seconds``; the per-row SQL of the
policy then tests bound lists instead of re-deriving them in every statement (a doctor's care
relationships span their whole history; re-walking it, or planning it, in every query would cost
more than the query itself).

* ``refs``: the user's own reference plus the PractitionerRoles and Organizations they act for
  (Consents may name a role or an organisation; prescriptions are presented to the pharmacy);
* ``care``: patients the doctor started care for (``$start-care``, still running), and those of
  the Encounters, CareTeams and EpisodesOfCare naming the doctor that have started, are not
  planned or void, and did not end (or start, when no end is given) before the care window;
* ``permitted`` / ``denied``: patients whose Consent in force permits / denies one of ``refs``;
* ``hidden``: ``patient|system|code`` — security labels a Consent in force hides from the user;
* ``glass``: the doctor's break-the-glass grants and when they end;
* ``mine``: for the patient role, the user's record and their dependants';
* ``presented``: for pharmacists, prescriptions presented to them (and their patients);
* ``assisted``: for counter agents, the patients in front of them (``$assist``, still running).

Freshness: the user's own writes, break-the-glass and presentations drop their entry at once;
any Consent written in this process drops every entry; changes made through another worker
process count within ``identity_cache_seconds`` (0 disables the cache).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ehr.search.registry import param_hash as H
from ehr.security import rules
from ehr.security.principal import Principal
from ehr.security.roles import Role
from ehr.security.sqltext import Q, probe_int, probe_str
from ehr.security.tables import PRESENCE_ASSIST, PRESENCE_CARE
from ehr.store.clock import now_us
from ehr.store.db import read_connection

Ref = tuple[str, str]

_ROLE_PRACTITIONER = H("PractitionerRole", "practitioner")
_ROLE_ORGANIZATION = H("PractitionerRole", "organization")
_ROLE_ACTIVE = H("PractitionerRole", "active")
_MR_SUBJECT = H("MedicationRequest", "subject")
_DAY_US = 86_400_000_000
_YEAR_US = int(365.2425 * _DAY_US)


@dataclass(frozen=True)
class Identity:
    own: Ref | None
    refs: frozenset[Ref]
    care: frozenset[str] = frozenset()
    permitted: frozenset[str] = frozenset()
    denied: frozenset[str] = frozenset()
    hidden: frozenset[str] = frozenset()
    glass: tuple[tuple[str, int], ...] = ()  # (patient id, expires_at µs)
    mine: frozenset[str] = frozenset()
    presented: tuple[tuple[int, str | None, int], ...] = ()  # (MedicationRequest rid, patient id, expires_at µs)
    assisted: frozenset[str] = frozenset()

    @property
    def organizations(self) -> frozenset[Ref]:
        return frozenset(r for r in self.refs if r[0] == "Organization")

    def glass_patients(self, at_us: int) -> frozenset[str]:
        return frozenset(p for p, until in self.glass if until > at_us)

    def presented_now(self, at_us: int) -> tuple[frozenset[int], frozenset[str]]:
        live = [(rid, pid) for rid, pid, until in self.presented if until > at_us]
        return frozenset(r for r, _ in live), frozenset(p for _, p in live if p)


def split_reference(reference: str | None) -> Ref | None:
    if not reference or "/" not in reference:
        return None
    rtype, _, rid = reference.partition("/")
    return rtype, rid


def ref_text(ref: Ref) -> str:
    return f"{ref[0]}/{ref[1]}"


# --- the queries ---------------------------------------------------------------------------------


def _roles_of(q: Q, practitioner_id: str) -> str:
    """(role id, organisation type, id) of a practitioner's active PractitionerRoles."""
    return (
        f"SELECT r.res_id, o.target_type, o.target_id FROM idx_reference p JOIN resource r ON r.rid = p.rid"
        f" LEFT JOIN idx_reference o ON o.rid = p.rid AND {probe_int('o.param')} = {_ROLE_ORGANIZATION}"
        f" WHERE p.param = {_ROLE_PRACTITIONER} AND p.target_type = 'Practitioner' AND p.target_id = {q.bind(practitioner_id)}"
        f" AND NOT r.deleted AND NOT EXISTS (SELECT 1 FROM idx_token a WHERE a.rid = p.rid"
        f" AND {probe_int('a.param')} = {_ROLE_ACTIVE} AND {probe_str('a.code')} = 'false')"
    )


def _role_holder(q: Q, role_id: str) -> str:
    return (
        f"SELECT p.target_type, p.target_id, o.target_type, o.target_id FROM resource r"
        f" JOIN idx_reference p ON p.rid = r.rid AND {probe_int('p.param')} = {_ROLE_PRACTITIONER}"
        f" LEFT JOIN idx_reference o ON o.rid = r.rid AND {probe_int('o.param')} = {_ROLE_ORGANIZATION}"
        f" WHERE r.res_type = 'PractitionerRole' AND r.res_id = {q.bind(role_id)} AND NOT r.deleted"
    )


async def _rows(conn: AsyncConnection, build) -> list:
    q = Q()
    return (await conn.execute(q.statement(build(q), conn.dialect.name))).all()


async def _ids(conn: AsyncConnection, build) -> frozenset[str]:
    return frozenset(r[0] for r in await _rows(conn, build))


async def directory_refs(conn: AsyncConnection, own: Ref) -> frozenset[Ref]:
    refs: set[Ref] = {own}
    if own[0] == "Practitioner":
        for role_id, org_type, org_id in await _rows(conn, lambda q: _roles_of(q, own[1])):
            refs.add(("PractitionerRole", role_id))
            if org_type == "Organization" and org_id:
                refs.add(("Organization", org_id))
    elif own[0] == "PractitionerRole":
        for p_type, p_id, org_type, org_id in await _rows(conn, lambda q: _role_holder(q, own[1])):
            if p_type == "Practitioner" and p_id:
                refs.add(("Practitioner", p_id))
            if org_type == "Organization" and org_id:
                refs.add(("Organization", org_id))
    return frozenset(refs)


async def hidden_labels(conn: AsyncConnection, refs: frozenset[Ref], at_us: int, except_patient: str | None) -> frozenset[str]:
    found = await _rows(conn, lambda q: rules.hidden_labels(q, refs, at_us))
    return frozenset(f"{pid}|{system or '*'}|{code}" for pid, system, code in found if pid != except_patient)


async def resolve(conn: AsyncConnection, principal: Principal, care_window_days: int) -> Identity:
    """The identity and sets of one user, read now."""
    own = split_reference(principal.fhir_user)
    at = now_us()
    refs: set[Ref] = {own} if own else set()
    if principal.role is Role.INSURER and (fund := split_reference(principal.fund)):
        refs.add(fund)
    if own and own[0] in ("Practitioner", "PractitionerRole"):
        refs |= await directory_refs(conn, own)
    refs_f = frozenset(refs)
    role = principal.role
    if role is Role.DOCTOR:
        window = care_window_days * _DAY_US
        glass = await _rows(conn, lambda q: rules.break_glass_grants(q, principal.fhir_user or "", at))
        started = await _ids(conn, lambda q: rules.presence_grants(q, principal.fhir_user or "", PRESENCE_CARE, at))
        return Identity(
            own, refs_f,
            care=started | await _ids(conn, lambda q: rules.care_patients(q, refs_f, at, window)),
            permitted=await _ids(conn, lambda q: rules.consent_patients(q, refs_f, at, "permit")),
            denied=await _ids(conn, lambda q: rules.consent_patients(q, refs_f, at, "deny")),
            hidden=await hidden_labels(conn, refs_f, at, None),
            glass=tuple((pid, until) for pid, until in glass),
        )
    if role is Role.PATIENT:
        minor_cutoff = at - rules.MAJORITY_YEARS * _YEAR_US
        mine: frozenset[str] = frozenset()
        if own and own[0] == "Patient":
            mine = {own[1]} | await _ids(conn, lambda q: rules.dependants(q, rules.related_persons_of_patient(q, own[1]), minor_cutoff))
        elif own and own[0] == "RelatedPerson":
            mine = await _ids(conn, lambda q: rules.dependants(q, rules.related_person_rid(q, own[1]), minor_cutoff))
        own_patient = own[1] if own and own[0] == "Patient" else None
        return Identity(own, refs_f, mine=frozenset(mine), hidden=await hidden_labels(conn, refs_f, at, own_patient))
    if role is Role.PHARMACIST:
        actors = sorted(ref_text(r) for r in refs_f)
        presented = await _rows(conn, lambda q: rules.presentations(q, actors, at, _MR_SUBJECT))
        return Identity(own, refs_f, presented=tuple((rid, pid, until) for rid, pid, until in presented))
    if role is Role.PAPER_AGENT and principal.fhir_user:
        assisted = await _ids(conn, lambda q: rules.presence_grants(q, principal.fhir_user, PRESENCE_ASSIST, at))
        return Identity(own, refs_f, assisted=assisted)
    return Identity(own, refs_f)


class IdentityDirectory:
    """Resolves and caches ``Identity`` per user (one entry per active user)."""

    def __init__(
        self, engine: AsyncEngine | None, ttl_seconds: float = 30.0, care_window_days: int = 365, max_entries: int = 10_000
    ):
        self.engine = engine
        self.ttl = ttl_seconds
        self.care_window_days = care_window_days
        self.max_entries = max_entries
        self.generation = 0  # bumped when any Consent is written: every entry is then stale
        self._cache: dict[str, tuple[float, int, Identity]] = {}

    @staticmethod
    def key(principal: Principal) -> str:
        return f"{principal.role.value}|{principal.fhir_user or ''}|{principal.fund or ''}|{principal.subject}"

    async def identity(self, principal: Principal) -> Identity:
        if principal.role is Role.UNRESTRICTED or self.engine is None:
            own = split_reference(principal.fhir_user)
            return Identity(own, frozenset({own} if own else ()))
        key = self.key(principal)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now and hit[1] == self.generation:
            return hit[2]
        generation = self.generation
        async with read_connection(self.engine) as conn:
            found = await resolve(conn, principal, self.care_window_days)
        if self.ttl > 0:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[key] = (now + self.ttl, generation, found)
        return found

    def forget(self, principal: Principal) -> None:
        """Drop one user's entry: what they just did (a relationship, a grant, a presentation) counts at once."""
        self._cache.pop(self.key(principal), None)

    def consents_changed(self) -> None:
        self.generation += 1

"""SQL of the access policy: semi-joins over the index tables, nothing else.

Each function writes one piece of SQL (text, see ``ehr.security.sqltext``) about a row: the
``resource`` table the engine filters, or an alias the policy itself opens.  They read
``idx_reference`` / ``idx_token`` / ``idx_date`` / ``idx_compartment`` (written with each
version), the rows' ``rid/res_type/res_id`` and the policy tables (grants, presentations,
entries): no JSON is parsed at query time.

Two shapes, chosen for the query plans:

* **probes** (``EXISTS … WHERE x.rid = <row>.rid``), for everything that depends on the row:
  one index lookup by ``rid`` per candidate row, whatever the size of the caller's world (a
  fund with millions of claims costs the same per row as a patient with ten).  Inside a probe
  the other columns are written ``(col + 0)`` / ``(col || '')`` so that no planner (SQLite has
  no statistics) scans a ``(param, …)`` index instead of looking the row up;
* **small sets** (``IN (SELECT …)``), computed once per statement: the patients whose Consent
  names the caller, break-the-glass grants, presented prescriptions, a patient's dependants —
  each found from the caller's own references through an index.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Iterable, Sequence

from ehr.search.dates import MAX_US, MIN_US
from ehr.search.registry import get_registry, param_hash
from ehr.security.sqltext import Q, Row, literal, literal_list, probe_int, probe_str

Ref = tuple[str, str]
H = param_hash
IdCondition = Callable[[str], str]  # SQL condition on a patient-id column


def _ints(values: Sequence[int]) -> str:
    return literal_list(values)


# --- generic ------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def type_in(row: Row, types: frozenset[str], universe: frozenset[str]) -> str:
    """``row.res_type`` in ``types``, written as the shorter of IN and NOT IN."""
    if not types:
        return "1 = 0"
    others = universe - types
    if not others:
        return "1 = 1"
    if len(others) < len(types):
        return f"{row.res_type} NOT IN {literal_list(sorted(others))}"
    return f"{row.res_type} IN {literal_list(sorted(types))}"


def refs_match(q: Q, ref: str, refs: Iterable[Ref], probing: bool = False) -> str:
    """The ``idx_reference`` row aliased ``ref`` points at one of ``refs``."""
    by_type: dict[str, list[str]] = {}
    for rtype, rid in refs:
        by_type.setdefault(rtype, []).append(rid)
    if not by_type:
        return "1 = 0"
    ttype, tid = f"{ref}.target_type", f"{ref}.target_id"
    if probing:
        ttype, tid = probe_str(ttype), probe_str(tid)
    return "(" + " OR ".join(f"({ttype} = {literal(t)} AND {q.one_of(tid, ids)})" for t, ids in sorted(by_type.items())) + ")"


def references(q: Q, row: Row, params: Sequence[int], refs: Iterable[Ref]) -> str:
    """Probe: ``row`` references one of ``refs`` through one of ``params``."""
    r = q.alias("ref")
    return (f"EXISTS (SELECT 1 FROM idx_reference {r} WHERE {r}.rid = {row.rid} AND {probe_int(r + '.param')} IN {_ints(params)}"
            f" AND {refs_match(q, r, refs, probing=True)})")


def references_where(q: Q, row: Row, params: Sequence[int], target_type: str, target: Callable[[Row], str]) -> str:
    """Probe: ``row`` references, through ``params``, a current ``target_type`` that satisfies ``target``."""
    r, t = q.alias("ref"), q.alias("res")
    return (f"EXISTS (SELECT 1 FROM idx_reference {r} JOIN resource {t} ON {t}.res_type = {r}.target_type AND {t}.res_id = {r}.target_id"
            f" WHERE {r}.rid = {row.rid} AND {probe_int(r + '.param')} IN {_ints(params)}"
            f" AND {probe_str(r + '.target_type')} = {literal(target_type)} AND NOT {t}.deleted AND {target(Row.alias(t))})")


def targets_of(q: Q, params: Sequence[int], target_type: str, rids: str) -> str:
    """SELECT the ids of the ``target_type`` resources the (few) ``rids`` reference through ``params``."""
    r = q.alias("ref")
    return (f"SELECT {r}.target_id FROM idx_reference {r} WHERE {r}.rid IN ({rids})"
            f" AND {probe_int(r + '.param')} IN {_ints(params)} AND {probe_str(r + '.target_type')} = {literal(target_type)}")


def pointing_to(q: Q, params: Sequence[int], target_type: str, target_ids: str) -> str:
    """SELECT the rids of resources whose ``params`` reference a ``target_type`` among the (few) ``target_ids``."""
    r = q.alias("ref")
    return (f"SELECT {r}.rid FROM idx_reference {r} WHERE {r}.param IN {_ints(params)}"
            f" AND {r}.target_type = {literal(target_type)} AND {r}.target_id IN ({target_ids})")


def in_patient_compartment(q: Q, row: Row, patients: IdCondition) -> str:
    """Probe: ``row`` is in the compartment of a patient satisfying ``patients(comp_id)``."""
    c = q.alias("cmp")
    return (f"EXISTS (SELECT 1 FROM idx_compartment {c} WHERE {c}.rid = {row.rid}"
            f" AND {probe_str(c + '.comp_type')} = 'Patient' AND {patients(c + '.comp_id')})")


def in_compartment_of(q: Q, row: Row, comp_type: str, ids: Sequence[str]) -> str:
    c = q.alias("cmp")
    return (f"EXISTS (SELECT 1 FROM idx_compartment {c} WHERE {c}.rid = {row.rid}"
            f" AND {probe_str(c + '.comp_type')} = {literal(comp_type)} AND {q.one_of(probe_str(c + '.comp_id'), ids)})")


@lru_cache(maxsize=1)
def security_labels_param_list() -> str:
    """``<Type>._security`` for every type, inline: labels are looked up whatever the row's type."""
    return _ints([H(t, "_security") for t in sorted(get_registry().resource_types)])


def _has_token(q: Q, rid: str, param: int, codes: Sequence[str] | None = None) -> str:
    t = q.alias("tok")
    cond = f" AND {probe_str(t + '.code')} IN {literal_list(codes)}" if codes else ""
    return f"EXISTS (SELECT 1 FROM idx_token {t} WHERE {t}.rid = {rid} AND {probe_int(t + '.param')} = {param}{cond})"


# --- care relationships (doctors) ------------------------------------------------------------

_REL_LINK = (H("Encounter", "participant"), H("CareTeam", "participant"), H("EpisodeOfCare", "care-manager"))
_REL_PATIENT = (H("Encounter", "patient"), H("CareTeam", "patient"), H("EpisodeOfCare", "patient"))
_REL_PERIOD = (H("Encounter", "date"), H("CareTeam", "date"), H("EpisodeOfCare", "date"))
# Relationships that are not (or not yet) care: planned or proposed, cancelled, void.
_REL_VOID = (
    (H("Encounter", "status"), ("planned", "cancelled", "entered-in-error")),
    (H("CareTeam", "status"), ("proposed", "inactive", "entered-in-error")),
    (H("EpisodeOfCare", "status"), ("planned", "waitlist", "cancelled", "entered-in-error")),
)


def care_patients(q: Q, refs: Iterable[Ref], now_us: int, window_us: int) -> str:
    """SELECT the patients of the Encounters, CareTeams and EpisodesOfCare naming one of ``refs``
    (participant, member, care manager) that are not void, have started (``period.start`` given,
    not after now) and count until their end — else their start — plus ``window_us``: found from
    the caller's references, then each relationship's own rows.  An open end is indexed as
    ``MAX_US``: the start then bounds the relationship.  An end further than one window past the
    start counts as that: a far-future end typed once does not keep a file open for years (a
    long follow-up is renewed by its visits)."""
    rel, p, d, s = q.alias("rel"), q.alias("pat"), q.alias("dat"), q.alias("tok")
    void = " OR ".join(f"({probe_int(s + '.param')} = {h} AND {probe_str(s + '.code')} IN {literal_list(codes)})" for h, codes in _REL_VOID)
    span = q.bind(window_us)
    until = f"(CASE WHEN {d}.high = {MAX_US} THEN {d}.low WHEN {d}.high > {d}.low + {span} THEN {d}.low + {span} ELSE {d}.high END)"
    return (
        f"SELECT {p}.target_id FROM idx_reference {rel} JOIN idx_reference {p} ON {p}.rid = {rel}.rid"
        f" WHERE {rel}.param IN {_ints(_REL_LINK)} AND {refs_match(q, rel, refs)}"
        f" AND {probe_int(p + '.param')} IN {_ints(_REL_PATIENT)} AND {probe_str(p + '.target_type')} = 'Patient'"
        f" AND EXISTS (SELECT 1 FROM idx_date {d} WHERE {d}.rid = {rel}.rid AND {probe_int(d + '.param')} IN {_ints(_REL_PERIOD)}"
        f" AND {d}.low > {MIN_US} AND {d}.low <= {q.bind(now_us)} AND {until} >= {q.bind(now_us - window_us)})"
        f" AND NOT EXISTS (SELECT 1 FROM idx_token {s} WHERE {s}.rid = {rel}.rid AND ({void}))"
    )


def break_glass_grants(q: Q, actor: str, now_us: int) -> str:
    """SELECT (patient id, expires_at) of the doctor's running grants."""
    return f"SELECT patient_id, expires_at FROM break_glass_grant WHERE actor = {q.bind(actor)} AND expires_at > {q.bind(now_us)}"


def presence_grants(q: Q, actor: str, purpose: str, now_us: int) -> str:
    """SELECT the patients of the user's running grants opened by a proof of presence."""
    return (f"SELECT patient_id FROM presence_grant WHERE actor = {q.bind(actor)} AND purpose = {literal(purpose)}"
            f" AND expires_at > {q.bind(now_us)}")


# --- consent -----------------------------------------------------------------------------------

C_PATIENT = H("Consent", "patient")
C_STATUS = H("Consent", "status")
C_RULE = H("Consent", "provision-type")
C_ACTOR = H("Consent", "actor")
C_LABEL = H("Consent", "security-label")
C_EXEMPT = H("Consent", "exempt-actor")
C_PERIOD = H("Consent", "period")


def _consent_in_force(q: Q, rid: str, now: str, rule: str) -> str:
    d = q.alias("dat")
    return (f"{_has_token(q, rid, C_STATUS, ['active'])} AND {_has_token(q, rid, C_RULE, [rule])}"
            f" AND NOT EXISTS (SELECT 1 FROM idx_date {d} WHERE {d}.rid = {rid} AND {probe_int(d + '.param')} = {C_PERIOD}"
            f" AND ({d}.high < {now} OR {d}.low > {now}))")


def _names(q: Q, rid: str, param: int, refs: Iterable[Ref]) -> str:
    a = q.alias("ref")
    return (f"EXISTS (SELECT 1 FROM idx_reference {a} WHERE {a}.rid = {rid} AND {probe_int(a + '.param')} = {param}"
            f" AND {refs_match(q, a, refs, probing=True)})")


def consent_patients(q: Q, refs: Iterable[Ref], now_us: int, rule: str) -> str:
    """SELECT the patients whose Consent in force permits (``rule='permit'``) or denies (``'deny'``,
    without security labels: the whole record) one of ``refs``: found from the caller's references."""
    act, pat = q.alias("act"), q.alias("pat")
    now = q.bind(now_us)
    return (
        f"SELECT {pat}.target_id FROM idx_reference {act} JOIN idx_reference {pat} ON {pat}.rid = {act}.rid"
        f" WHERE {act}.param = {C_ACTOR} AND {refs_match(q, act, refs)}"
        f" AND {probe_int(pat + '.param')} = {C_PATIENT} AND {probe_str(pat + '.target_type')} = 'Patient'"
        f" AND {_consent_in_force(q, act + '.rid', now, rule)} AND NOT {_has_token(q, act + '.rid', C_LABEL)}"
    )


def hidden_labels(q: Q, refs: Iterable[Ref], now_us: int) -> str:
    """SELECT (patient id, label system, label code) that Consents in force hide from the caller:
    deny provisions with security labels that name no actor (everyone) or name the caller, and
    whose permitting exceptions do not name the caller.  Driven by the label rows of Consents."""
    refs = list(refs)
    cl, cp, top = q.alias("clab"), q.alias("cpat"), q.alias("ref")
    now = q.bind(now_us)
    return (
        f"SELECT {cp}.target_id, {cl}.system, {cl}.code FROM idx_token {cl}"
        f" JOIN idx_reference {cp} ON {cp}.rid = {cl}.rid AND {probe_int(cp + '.param')} = {C_PATIENT}"
        f" AND {probe_str(cp + '.target_type')} = 'Patient'"
        f" WHERE {cl}.param = {C_LABEL} AND {_consent_in_force(q, cl + '.rid', now, 'deny')}"
        f" AND (NOT EXISTS (SELECT 1 FROM idx_reference {top} WHERE {top}.rid = {cl}.rid AND {probe_int(top + '.param')} = {C_ACTOR})"
        f" OR {_names(q, cl + '.rid', C_ACTOR, refs)})"
        f" AND NOT {_names(q, cl + '.rid', C_EXEMPT, refs)}"
    )


def hidden(q: Q, row: Row, labels: frozenset[str]) -> str:
    """Probe: ``row`` is in the compartment of a patient and carries a label that ``labels``
    (``patient|system|code``, system ``*`` = any) hide; "1 = 0" when nothing is hidden."""
    if not labels:
        return "1 = 0"
    lab, pc = q.alias("lab"), q.alias("cmp")
    hidden_set = q.bind(sorted(labels))
    return (
        f"EXISTS (SELECT 1 FROM idx_token {lab} JOIN idx_compartment {pc} ON {pc}.rid = {lab}.rid"
        f" AND {probe_str(pc + '.comp_type')} = 'Patient'"
        f" WHERE {lab}.rid = {row.rid} AND {probe_int(lab + '.param')} IN {security_labels_param_list()}"
        f" AND (({pc}.comp_id || '|' || COALESCE({lab}.system, '') || '|' || {lab}.code) IN {hidden_set}"
        f" OR ({pc}.comp_id || '|*|' || {lab}.code) IN {hidden_set}))"
    )


# --- guardianship (patients acting for dependants) ----------------------------------------------

_LINK = H("Patient", "link")
_RP_PATIENT = H("RelatedPerson", "patient")
_RP_RELATIONSHIP = H("RelatedPerson", "relationship")
_RP_ACTIVE = H("RelatedPerson", "active")
_BIRTHDATE = H("Patient", "birthdate")
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
# Legal representatives: whatever the dependant's age.
LEGAL_GUARDIAN_CODES = ("GUARD", "POWATT", "DPOWATT", "HPOWATT")
# Parents: only while the dependant is a minor (under 18 in Morocco).
PARENT_CODES = ("PRN", "MTH", "FTH", "NPRN", "NMTH", "NFTH", "ADOPTP", "ADOPTM", "ADOPTF", "PRNFOST", "MTHFOST", "FTHFOST")
MAJORITY_YEARS = 18


def related_persons_of_patient(q: Q, patient_id: str) -> str:
    """SELECT the rids of the RelatedPerson records a Patient links to as the same individual (Patient.link)."""
    pr, link, rp = q.alias("res"), q.alias("ref"), q.alias("res")
    return (
        f"SELECT {rp}.rid FROM resource {pr} JOIN idx_reference {link} ON {link}.rid = {pr}.rid"
        f" JOIN resource {rp} ON {rp}.res_type = 'RelatedPerson' AND {rp}.res_id = {link}.target_id"
        f" WHERE {pr}.res_type = 'Patient' AND {pr}.res_id = {q.bind(patient_id)} AND {probe_int(link + '.param')} = {_LINK}"
        f" AND {probe_str(link + '.target_type')} = 'RelatedPerson' AND NOT {rp}.deleted"
    )


def related_person_rid(q: Q, related_person_id: str) -> str:
    rp = q.alias("res")
    return f"SELECT {rp}.rid FROM resource {rp} WHERE {rp}.res_type = 'RelatedPerson' AND {rp}.res_id = {q.bind(related_person_id)} AND NOT {rp}.deleted"


def dependants(q: Q, related_person_rids: str, minor_born_after_us: int) -> str:
    """SELECT the patients these RelatedPerson records act for: legal guardians always, parents of minors."""
    p, rel, dp, bd = q.alias("ref"), q.alias("tok"), q.alias("res"), q.alias("dat")

    def relationship(codes: Sequence[str]) -> str:
        return (f"EXISTS (SELECT 1 FROM idx_token {rel} WHERE {rel}.rid = {p}.rid AND {probe_int(rel + '.param')} = {_RP_RELATIONSHIP}"
                f" AND {probe_str(rel + '.system')} = {literal(ROLE_CODE)} AND {probe_str(rel + '.code')} IN {literal_list(codes)})")

    minor = (f"EXISTS (SELECT 1 FROM resource {dp} JOIN idx_date {bd} ON {bd}.rid = {dp}.rid WHERE {dp}.res_type = 'Patient'"
             f" AND {dp}.res_id = {p}.target_id AND {probe_int(bd + '.param')} = {_BIRTHDATE} AND {bd}.low > {q.bind(minor_born_after_us)})")
    return (
        f"SELECT {p}.target_id FROM idx_reference {p} WHERE {p}.rid IN ({related_person_rids})"
        f" AND {probe_int(p + '.param')} = {_RP_PATIENT} AND {probe_str(p + '.target_type')} = 'Patient'"
        f" AND NOT {_has_token(q, p + '.rid', _RP_ACTIVE, ['false'])}"
        f" AND ({relationship(LEGAL_GUARDIAN_CODES)} OR ({relationship(PARENT_CODES)} AND {minor}))"
    )


# --- entries and presentations -----------------------------------------------------------------


def entered(q: Q, row: Row, agent: str) -> str:
    """Probe: ``agent`` entered ``row`` (primary key lookup)."""
    e = q.alias("ent")
    return f"EXISTS (SELECT 1 FROM entered_by {e} WHERE {e}.agent = {q.bind(agent)} AND {e}.rid = {row.rid})"


def presentations(q: Q, actors: Sequence[str], now_us: int, subject_param: int) -> str:
    """SELECT (MedicationRequest rid, patient id, expires_at) presented to ``actors`` and still valid."""
    s = q.alias("ref")
    return (
        f"SELECT p.rid, {s}.target_id, p.expires_at FROM prescription_presentation p"
        f" LEFT JOIN idx_reference {s} ON {s}.rid = p.rid AND {probe_int(s + '.param')} = {subject_param}"
        f" AND {probe_str(s + '.target_type')} = 'Patient'"
        f" WHERE {q.one_of('p.actor', actors)} AND p.expires_at > {q.bind(now_us)}"
    )

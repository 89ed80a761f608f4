"""Prescription numbers on write: the server assigns them, callers cannot choose one.

A ``MedicationRequest`` is one line of a prescription; the prescription is its number in
``groupIdentifier`` (system ``https://fhir.sijill.ma/sid/prescription``, format in
``ehr.security.prescription_number``).  Before a line is stored (``ehr.hooks.preparer``):

* a line without a number gets one, drawn at random; the lines of one patient, one prescriber,
  one encounter and one day (``authoredOn``) written in the same request or transaction Bundle
  share it — a Bundle of a patient's history keeps its prescriptions apart (a batch Bundle's
  entries are separate writes: a prescription is written all or nothing, in a transaction);
* an update without a number keeps the number of the version it replaces;
* a line with a number is refused (422 at ``MedicationRequest.groupIdentifier``) unless the
  number is that of a prescription of the same prescriber for the same patient the caller can
  see — adding or changing a line — or the line keeps its own number;
* the number is never a line ``identifier`` (422): pharmacies look prescriptions up by number,
  and a line identifier in that system would be a number nobody assigned.

The unrestricted in-process caller (imports, the demo loader, a server run without tokens) is
not a prescriber: what it writes is stored as it is.
"""
from __future__ import annotations

from sqlalchemy import and_, exists, select

from ehr.hooks import preparer
from ehr.interactions.context import Context
from ehr.outcome import FHIRError
from ehr.search.registry import param_hash as H
from ehr.search.values import parse_reference
from ehr.security.prescription_number import SYSTEM, new_number, normalize
from ehr.security.roles import Role
from ehr.store.repository import Stored
from ehr.store.schema import idx_reference, idx_token, resource

_GROUP = H("MedicationRequest", "group-identifier")
_SUBJECT = H("MedicationRequest", "subject")
_REQUESTER = H("MedicationRequest", "requester")
_WHERE = "MedicationRequest.groupIdentifier"


def _importing(ctx: Context) -> bool:
    """In-process writers (imports, the demo, a server run without tokens) store lines as they are."""
    return ctx.guard is None or ctx.guard.principal.role is Role.UNRESTRICTED


@preparer
async def prescription_number(ctx: Context, res: dict, prior: Stored | None) -> None:
    if res.get("resourceType") != "MedicationRequest" or _importing(ctx):
        return
    _refuse_line_numbers(res)
    old = prior.resource() if prior is not None and not prior.deleted else {}
    if res.get("groupIdentifier") is None and old.get("groupIdentifier") is not None:
        res["groupIdentifier"] = old["groupIdentifier"]  # the number is the server's: an update keeps it
    group = res.get("groupIdentifier")
    subject, requester = _ref(ctx, res, "subject"), _ref(ctx, res, "requester")
    if group is None:
        one_prescription = (subject, requester, _ref(ctx, res, "encounter"), str(res.get("authoredOn") or "")[:10])
        res["groupIdentifier"] = {"system": SYSTEM, "value": await _shared_number(ctx, one_prescription)}
        return
    number = normalize(group.get("value", "")) if isinstance(group, dict) and group.get("system") == SYSTEM else None
    if number is None:
        raise _refused(f"groupIdentifier est le numéro d'ordonnance Sijill ({SYSTEM}) attribué par le serveur : "
                       "omettez-le pour une nouvelle ordonnance")
    res["groupIdentifier"] = {**group, "value": number}
    if ctx.access is None or _same_line(ctx, old, number, subject, requester):  # in-process: its own numbers
        return
    if subject is None or requester is None or not await _existing(ctx, number, subject, requester):
        raise _refused(f"Le numéro d'ordonnance {number} n'est pas une ordonnance de ce prescripteur pour ce patient : "
                       "les numéros sont attribués par le serveur (omettez groupIdentifier pour une nouvelle ordonnance)")


def _refused(message: str) -> FHIRError:
    return FHIRError.of(422, "business-rule", message, _WHERE)


def _refuse_line_numbers(res: dict) -> None:
    for i, ident in enumerate(res.get("identifier") or ()):
        if isinstance(ident, dict) and ident.get("system") == SYSTEM:
            raise FHIRError.of(422, "business-rule", "Le numéro d'ordonnance se porte dans groupIdentifier (attribué par "
                               "le serveur), pas dans l'identifiant d'une ligne", f"MedicationRequest.identifier[{i}]")


def _ref(ctx: Context, res: dict, element: str) -> tuple[str, str] | None:
    literal = (res.get(element) or {}).get("reference")
    if not isinstance(literal, str):
        return None
    res_type, res_id, _ = parse_reference(literal, ctx.base_url.rstrip("/"))
    return (res_type, res_id) if res_type and res_id else None


def _same_line(ctx: Context, old: dict, number: str, subject, requester) -> bool:
    """An update that keeps the line's own number, patient and prescriber."""
    return ((old.get("groupIdentifier") or {}).get("value") == number
            and _ref(ctx, old, "subject") == subject and _ref(ctx, old, "requester") == requester)


async def _shared_number(ctx: Context, prescription: tuple) -> str:
    key = ("prescription", *prescription)
    number = ctx.shared.get(key)
    if number is None:
        number = ctx.shared[key] = await _fresh(ctx)
    return number


async def _fresh(ctx: Context) -> str:
    """A number no stored prescription carries (a collision is ~1 in 10⁷ even with 10⁹ stored)."""
    while True:
        number = new_number()
        taken = await ctx.conn.scalar(select(exists().where(
            idx_token.c.param == _GROUP, idx_token.c.system == SYSTEM, idx_token.c.code == number
        )))
        if not taken:
            return number


async def _existing(ctx: Context, number: str, subject: tuple[str, str], requester: tuple[str, str]) -> bool:
    """A current line with this number, patient and prescriber, that the caller may see."""
    t, s, r = idx_token, idx_reference.alias("subj"), idx_reference.alias("req")
    cond = [
        t.c.param == _GROUP, t.c.system == SYSTEM, t.c.code == number,
        resource.c.rid == t.c.rid, resource.c.res_type == "MedicationRequest", ~resource.c.deleted,
        exists().where(and_(s.c.rid == t.c.rid, s.c.param == _SUBJECT, s.c.target_type == subject[0], s.c.target_id == subject[1])),
        exists().where(and_(r.c.rid == t.c.rid, r.c.param == _REQUESTER, r.c.target_type == requester[0], r.c.target_id == requester[1])),
    ]
    visible = ctx.access.clause(resource)
    if visible is not None:
        cond.append(visible)
    return (await ctx.conn.scalar(select(exists().where(and_(*cond))))) is True

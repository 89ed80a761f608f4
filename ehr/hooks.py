"""Where domain packages plug into the generic server without per-type handlers in it.

``submission_handlers``: a resource type whose ``create`` is a business submission (a care
sheet ``Claim`` answers with a ``ClaimResponse``, not with itself) registers the coroutine that
handles it; the REST create endpoint and transaction entries call it instead of the plain
create.  ``base_checks``: the check of every resource written against the FHIR base definition
(cardinality, JSON types, primitive formats, required bindings, invariants, the narrative's XHTML
subset): the in-house validator's walk, registered by ``profiles``, run once per write before
anything else sees the resource's content.  ``write_validators``: checks run on every write of
a type (the deltas of claimed profiles), before anything is stored, inside the same transaction;
``write_preparers`` run just before them and may complete the resource with what the server
assigns (a prescription number), knowing the version it replaces.  ``routers``: endpoints a package serves ahead
of the generic ``/fhir/{type}`` ones, negotiating their own media types (raw ``Binary`` bodies).
``write_observers``: run after every create, update, patch or delete (batched: a Bundle's plain
entries come together), inside the same transaction, with the versions written: what a package
keeps beside the store (the statistics' patient placement) follows every write path at once.
``representations``: formats other than FHIR JSON a package serves and accepts at the edge (FHIR
XML): each converts a whole body to and from FHIR JSON, so nothing behind the edge sees them.
``patient_notifier``: how the server tells a patient of an event concerning their file
(``$start-care``, ``$break-glass``): the messaging package's ``notify`` (claims/messaging).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection

from ehr.interactions.context import Context, Result
from ehr.outcome import FHIRError, Issue
from ehr.store.repository import Stored

# (context, resource, id): the id is the one the server already assigned (a transaction's
# entry others reference by its fullUrl), else None and the handler assigns one.
SubmissionHandler = Callable[[Context, dict, str | None], Awaitable[Result]]
# Many submissions at once, one answer each (a Result or the FHIRError refusing that one).
BulkSubmissionHandler = Callable[[Context, list[tuple[dict, str | None]]], Awaitable[list[Result | FHIRError]]]
# (resource) -> its problems against the base definition, in the caller's language.
BaseCheck = Callable[[dict], list[Issue]]
WriteValidator = Callable[[Context, dict], Awaitable[None]]
# (context, resource about to be stored, the current version it replaces or None on create).
WritePreparer = Callable[[Context, dict, Stored | None], Awaitable[None]]

# (context, the versions just written, each with its resource — None for a deletion).
WriteObserver = Callable[[Context, list[tuple[Stored, dict | None]]], Awaitable[None]]

submission_handlers: dict[str, SubmissionHandler] = {}
bulk_submission_handlers: dict[str, BulkSubmissionHandler] = {}
base_checks: list[BaseCheck] = []
write_validators: list[WriteValidator] = []
write_preparers: list[WritePreparer] = []
write_observers: list[WriteObserver] = []
routers: list = []  # fastapi.APIRouter, included by ehr.app before the generic routes


@dataclass(frozen=True)
class Representation:
    format: str                      # the short ``_format`` value ("xml")
    media_type: str                  # what responses are labelled ("application/fhir+xml")
    media_types: frozenset[str]      # Accept, Content-Type and ``_format`` values that name it
    from_json: Callable[[bytes], bytes]   # a FHIR JSON body in this format
    to_json: Callable[[bytes], bytes]     # this format as FHIR JSON (FHIRError 4xx when it is not valid)


representations: list[Representation] = []
# (connection, patient id, event, the resource concerned, parameters of the text)
PatientNotifier = Callable[[AsyncConnection, str, str, str, dict], Awaitable[None]]
patient_notifiers: list[PatientNotifier] = []


async def notify_patient(conn: AsyncConnection, patient_id: str, event: str, about: str, params: dict) -> None:
    """Tell the patient (in their record, then by SMS or e-mail), in the caller's transaction."""
    for notifier in patient_notifiers:
        await notifier(conn, patient_id, event, about, params)


# Per submitted type: why it is not rewritten in place, and what the caller does instead.
rewrite_refusals: dict[str, str] = {}


def submission(res_type: str, *, instead: str) -> Callable[[SubmissionHandler], SubmissionHandler]:
    def register(handler: SubmissionHandler) -> SubmissionHandler:
        submission_handlers[res_type] = handler
        rewrite_refusals[res_type] = instead
        return handler

    return register


def refuse_rewrite(res_type: str) -> None:
    """What callers submit through a handler has a business life of its own (a care sheet has a
    ledger row, a clock, a decision; a dispense took boxes off a line): they may not rewrite or
    delete it in place."""
    if res_type in submission_handlers:
        raise FHIRError.of(
            405, "not-supported", f"Un {res_type} soumis ne se modifie ni ne se supprime : {rewrite_refusals[res_type]}", res_type,
        )


def bulk_submission(res_type: str) -> Callable[[BulkSubmissionHandler], BulkSubmissionHandler]:
    """The handler a batch Bundle's POST entries of ``res_type`` go to together, in one transaction."""
    def register(handler: BulkSubmissionHandler) -> BulkSubmissionHandler:
        bulk_submission_handlers[res_type] = handler
        return handler

    return register


def base_check(fn: BaseCheck) -> BaseCheck:
    base_checks.append(fn)
    return fn


def conform(ctx: Context, res: dict) -> None:
    """422 with every error unless ``res`` conforms to the base definition of its type.  The
    interactions call it before the write checks read the content (the caller's write rules, a
    submission handler); ``validate_write`` calls it for everything else stored (in-process
    writers); a resource is walked once per context."""
    if ctx.conformant.get(id(res)) is res:
        return
    errors = [i for check in base_checks for i in check(res) if i.severity in ("error", "fatal")]
    if errors:
        raise FHIRError(422, errors)
    ctx.conformant[id(res)] = res


def validator(fn: WriteValidator) -> WriteValidator:
    write_validators.append(fn)
    return fn


def preparer(fn: WritePreparer) -> WritePreparer:
    write_preparers.append(fn)
    return fn


def observer(fn: WriteObserver) -> WriteObserver:
    write_observers.append(fn)
    return fn


async def observe_writes(ctx: Context, written: list[tuple[Stored, dict | None]]) -> None:
    for observe in write_observers:
        await observe(ctx, written)


async def validate_write(ctx: Context, res: dict, res_id: str, prior: Stored | None = None) -> None:
    # Hooks see the resource under the id it is stored with: a check may name a resource written
    # earlier in the same transaction Bundle, before any of it is stored.
    res["id"] = res_id
    conform(ctx, res)
    for prepare in write_preparers:
        await prepare(ctx, res, prior)
    for check in write_validators:
        await check(ctx, res)

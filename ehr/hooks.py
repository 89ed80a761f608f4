"""Where domain packages plug into the generic server without per-type handlers in it.

``submission_handlers``: a resource type whose ``create`` is a business submission (a care
sheet ``Claim`` answers with a ``ClaimResponse``, not with itself) registers the coroutine that
handles it; the REST create endpoint and transaction entries call it instead of the plain
create.  ``write_validators``: checks run on every write of a type (profile validation), before
anything is stored, inside the same transaction.
"""
from __future__ import annotations

from typing import Awaitable, Callable

from ehr.interactions.context import Context, Result

SubmissionHandler = Callable[[Context, dict], Awaitable[Result]]
WriteValidator = Callable[[Context, dict], Awaitable[None]]

submission_handlers: dict[str, SubmissionHandler] = {}
write_validators: list[WriteValidator] = []


def submission(res_type: str) -> Callable[[SubmissionHandler], SubmissionHandler]:
    def register(handler: SubmissionHandler) -> SubmissionHandler:
        submission_handlers[res_type] = handler
        return handler

    return register


def validator(fn: WriteValidator) -> WriteValidator:
    write_validators.append(fn)
    return fn


async def validate_write(ctx: Context, res: dict) -> None:
    for check in write_validators:
        await check(ctx, res)

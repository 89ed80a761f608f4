"""The short status code of a care sheet, and ``GET /status/{code}``: where the sheet stands.

A code is 7 random characters of an alphabet without look-alikes (no 0/O, 1/I/L, U) and a
check character (Luhn mod 30), e.g. ``K7QM-4RZ9`` — given at a counter or typed on a basic
phone, a typo is caught before any lookup.  It is random (never derived from an id), so a code
says nothing by itself and codes cannot be enumerated from one another.  Created when the sheet
is received (in the submission's transaction: a resubmission finds the same one), returned in
its ClaimResponses (``identifier``, system ``claims.uris.STATUS_CODE``) and printed on its letters.

``GET /status/{code}`` (public, no token): ``{"code", "stage"}`` with stage ``received`` (from
the submission on: being processed),
``under-review``, ``decided``, ``paid`` or ``replaced`` — nothing else (no name, no amount, no
fund).  400 for a malformed code or a wrong check character, 404 for an unknown one; throttled
per address (``claims_status_code_rate``); every answered lookup is audited in the patient's
trail (who: the network address).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from claims.tables import claim_ledger, claim_status_code
from ehr.outcome import FHIRError
from ehr.security.audit import append, audit_event
from ehr.settings import get_settings
from ehr.store.db import write_transaction

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # 30 characters, no look-alikes
LENGTH = 8
STAGES = {"queued": "received", "in-review": "under-review", "decided": "decided", "paid": "paid",
          "superseded": "replaced"}


def check_character(body: str) -> str:
    """Luhn mod N over ``ALPHABET``: catches any single wrong character and most swaps."""
    n, total = len(ALPHABET), 0
    for i, ch in enumerate(reversed(body)):
        v = ALPHABET.index(ch) * (2 if i % 2 == 0 else 1)
        total += v // n + v % n
    return ALPHABET[(n - total % n) % n]


def new_code() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH - 1))
    return body + check_character(body)


def normalise(typed: str) -> str:
    """What the patient typed, as stored: upper case, separators dropped; ValueError if invalid."""
    code = "".join(c for c in typed.upper() if c not in " -.")
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        raise ValueError(f"a status code is {LENGTH} characters of {ALPHABET}")
    if check_character(code[:-1]) != code[-1]:
        raise ValueError("the check character does not match: the code was mistyped")
    return code


def shown(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


async def codes_for(conn: AsyncConnection, claim_ids: list[str]) -> dict[str, str]:
    """The sheets' codes by Claim id, created for those without one, in a fixed number of
    statements (concurrent first uses agree on one; a code drawn twice is drawn again)."""
    ids = sorted(set(claim_ids))
    codes = await codes_of(conn, ids)
    while missing := [i for i in ids if i not in codes]:
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(claim_status_code)
        await conn.execute(insert.values([{"code": new_code(), "claim_id": i} for i in missing]).on_conflict_do_nothing())
        codes = await codes_of(conn, ids)
    return codes


async def code_for(conn: AsyncConnection, claim_id: str) -> str:
    return (await codes_for(conn, [claim_id]))[claim_id]


async def codes_of(conn: AsyncConnection, claim_ids: list[str]) -> dict[str, str]:
    """The codes the sheets already have (readers: letters never create one)."""
    c = claim_status_code.c
    return dict((await conn.execute(select(c.claim_id, c.code).where(c.claim_id.in_(claim_ids)))).all()) if claim_ids else {}


async def existing_code(conn: AsyncConnection, claim_id: str) -> str | None:
    return (await codes_of(conn, [claim_id])).get(claim_id)


router = APIRouter()


def limiter(request: Request) -> MovingWindowRateLimiter:
    """The status lookups' limiter (web and SMS): one per server, like its other limits."""
    state = request.app.state
    if getattr(state, "status_code_limiter", None) is None:
        state.status_code_limiter = MovingWindowRateLimiter(storage_from_string(get_settings().rate_limit_storage))
    return state.status_code_limiter


async def _throttle(request: Request) -> None:
    item = parse(get_settings().claims_status_code_rate)
    address = request.client.host if request.client else "unknown"
    if not await limiter(request).hit(item, "status-code", address):
        raise FHIRError.of(429, "throttled", f"Too many status lookups: the limit is {item}", headers={"Retry-After": "60"})


@dataclass(frozen=True)
class Sheet:
    """Where the sheet with a code stands, and whose it is (never answered beyond ``stage``)."""

    claim_id: str
    patient_id: str
    stage: str


async def sheet_with(conn: AsyncConnection, code: str) -> Sheet | None:
    """The sheet a (normalised) code is on; its stage is that of its AMO claim."""
    c, led = claim_status_code.c, claim_ledger.c
    found = (await conn.execute(
        select(led.claim_id, led.patient_id, led.status).join(claim_status_code, c.claim_id == led.claim_id)
        .where(c.code == code).order_by(led.payer_rank).limit(1)
    )).first()
    return Sheet(found.claim_id, found.patient_id, STAGES.get(found.status, "received")) if found else None


@router.get("/status/{typed}")
async def status(typed: str, request: Request) -> JSONResponse:
    await _throttle(request)
    try:
        code = normalise(typed)
    except ValueError as exc:
        raise FHIRError.of(400, "value", f"Code de suivi invalide : {exc}", "code") from None
    async with write_transaction(request.app.state.engine) as conn:
        sheet = await sheet_with(conn, code)
        if sheet is None:
            raise FHIRError.of(404, "not-found", "Aucune feuille de soins ne porte ce code")
        await append(conn, [audit_event("operation", None, patient=f"Patient/{sheet.patient_id}", operation="$status-code",
                                        address=request.client.host if request.client else None)])
    return JSONResponse({"code": shown(code), "stage": sheet.stage})

"""The short status code of a care sheet, and ``GET /status/{code}``: where the sheet stands.

A code is 7 random characters of an alphabet without look-alikes (no 0/O, 1/I/L, U) and a
check character (Luhn mod 30), e.g. ``K7QM-4RZ9`` — given at a counter or typed on a basic
phone, a typo is caught before any lookup.  It is random (never derived from an id), so a code
says nothing by itself and codes cannot be enumerated from one another.  Created with the first
notification about the sheet and printed on its letters.

``GET /status/{code}`` (public, no token): ``{"code", "stage"}`` with stage ``received``,
``under-review``, ``decided``, ``paid`` or ``replaced`` — nothing else (no name, no amount, no
fund).  400 for a malformed code or a wrong check character, 404 for an unknown one; throttled
per address (``claims_status_code_rate``); every answered lookup is audited in the patient's
trail (who: the network address).
"""
from __future__ import annotations

import secrets

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


async def code_for(conn: AsyncConnection, claim_id: str) -> str:
    """The sheet's code, created on first use (concurrent first uses agree on one)."""
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(claim_status_code)
    await conn.execute(insert.values(code=new_code(), claim_id=claim_id).on_conflict_do_nothing())
    return await existing_code(conn, claim_id)


async def existing_code(conn: AsyncConnection, claim_id: str) -> str | None:
    return (await conn.execute(select(claim_status_code.c.code).where(claim_status_code.c.claim_id == claim_id))).scalar()


router = APIRouter()
_limiter: MovingWindowRateLimiter | None = None


async def _throttle(request: Request) -> None:
    global _limiter
    settings = get_settings()
    if _limiter is None:
        _limiter = MovingWindowRateLimiter(storage_from_string(settings.rate_limit_storage))
    item = parse(settings.claims_status_code_rate)
    address = request.client.host if request.client else "unknown"
    if not await _limiter.hit(item, "status-code", address):
        raise FHIRError.of(429, "throttled", f"Too many status lookups: the limit is {item}", headers={"Retry-After": "60"})


@router.get("/status/{typed}")
async def status(typed: str, request: Request) -> JSONResponse:
    await _throttle(request)
    try:
        code = normalise(typed)
    except ValueError as exc:
        raise FHIRError.of(400, "value", f"Code de suivi invalide : {exc}", "code") from None
    c, led = claim_status_code.c, claim_ledger.c
    async with write_transaction(request.app.state.engine) as conn:
        found = (await conn.execute(
            select(led.status, led.patient_id).join(claim_status_code, c.claim_id == led.claim_id)
            .where(c.code == code).order_by(led.payer_rank).limit(1)
        )).first()
        if found is None:
            raise FHIRError.of(404, "not-found", "Aucune feuille de soins ne porte ce code")
        await append(conn, [audit_event("operation", None, patient=f"Patient/{found.patient_id}", operation="$status-code",
                                        address=request.client.host if request.client else None)])
    return JSONResponse({"code": shown(code), "stage": STAGES.get(found.status, "received")})

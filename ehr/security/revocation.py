"""Revoked token ids (``jti``): a token is refused until its own expiry once revoked.

Checking every request against the database would add a round trip to each call, so the set of
still-relevant revoked ids (those whose token has not expired yet: small) is kept in memory and
reloaded at most every ``refresh_seconds``.  A revocation made in this process is effective at
once; one made by another process within ``refresh_seconds``.
"""
from __future__ import annotations

import asyncio
import time

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ehr.security.tables import revoked_token
from ehr.store.clock import now_us
from ehr.store.db import write_transaction


async def revoke(conn: AsyncConnection, jti: str, expires_at_us: int, reason: str | None = None) -> None:
    """Record a revocation (idempotent: revoking twice keeps the first record)."""
    try:
        async with conn.begin_nested():
            await conn.execute(
                revoked_token.insert().values(jti=jti, expires_at=expires_at_us, revoked_at=now_us(), reason=reason)
            )
    except IntegrityError:
        pass


async def is_revoked(conn: AsyncConnection, jti: str) -> bool:
    row = await conn.execute(select(revoked_token.c.jti).where(revoked_token.c.jti == jti))
    return row.first() is not None


async def purge_expired(conn: AsyncConnection, at_us: int | None = None) -> int:
    """Forget revocations of tokens that have expired anyway."""
    result = await conn.execute(delete(revoked_token).where(revoked_token.c.expires_at < (at_us or now_us())))
    return result.rowcount or 0


class RevokedTokens:
    """The in-memory view the token verifier consults."""

    def __init__(self, engine: AsyncEngine, refresh_seconds: float = 5.0):
        self._engine = engine
        self._refresh_seconds = refresh_seconds
        self._ids: frozenset[str] = frozenset()
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def contains(self, jti: str) -> bool:
        if time.monotonic() - self._loaded_at >= self._refresh_seconds:
            await self._reload()
        return jti in self._ids

    async def revoke(self, jti: str, expires_at_us: int, reason: str | None = None) -> None:
        async with write_transaction(self._engine) as conn:
            await revoke(conn, jti, expires_at_us, reason)
        self._ids = self._ids | {jti}

    async def _reload(self) -> None:
        async with self._lock:
            if time.monotonic() - self._loaded_at < self._refresh_seconds:
                return
            async with self._engine.connect() as conn:
                rows = await conn.execute(select(revoked_token.c.jti).where(revoked_token.c.expires_at >= now_us()))
                self._ids = frozenset(r[0] for r in rows)
            self._loaded_at = time.monotonic()

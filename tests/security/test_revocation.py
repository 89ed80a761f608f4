"""Revoked token ids, stored in revoked_token and honoured by the verifier."""
from __future__ import annotations

import time

import pytest

from ehr.security.jwks import StaticKeySet
from ehr.security.revocation import RevokedTokens, is_revoked, purge_expired, revoke
from ehr.security.tokens import RevokedToken, TokenVerifier
from ehr.store.clock import now_us
from ehr.store.db import write_transaction

from .conftest import AUDIENCE, ISSUER, claims


async def test_revoke_is_idempotent_and_purgeable(db):
    async with write_transaction(db) as conn:
        await revoke(conn, "j1", now_us() + 60_000_000, "lost phone")
        await revoke(conn, "j1", now_us() + 60_000_000, "again")
        await revoke(conn, "old", now_us() - 1, "expired anyway")
    async with db.connect() as conn:
        assert await is_revoked(conn, "j1") and not await is_revoked(conn, "j2")
    async with write_transaction(db) as conn:
        assert await purge_expired(conn) == 1
    async with db.connect() as conn:
        assert not await is_revoked(conn, "old") and await is_revoked(conn, "j1")


async def test_verifier_refuses_revoked_token(db, rsa_key):
    revoked = RevokedTokens(db, refresh_seconds=0.2)
    verifier = TokenVerifier({ISSUER: StaticKeySet({"keys": [rsa_key.public_jwk]})}, AUDIENCE, revocations=revoked)
    token_claims = claims(jti="to-revoke")
    token = rsa_key.sign(token_claims)
    assert await verifier.verify(token)
    await revoked.revoke("to-revoke", token_claims["exp"] * 1_000_000, "compromised")
    with pytest.raises(RevokedToken):
        await verifier.verify(token)  # at once in this process


async def test_revocation_by_another_process_seen_after_refresh(db, rsa_key):
    revoked = RevokedTokens(db, refresh_seconds=0.2)
    verifier = TokenVerifier({ISSUER: StaticKeySet({"keys": [rsa_key.public_jwk]})}, AUDIENCE, revocations=revoked)
    token = rsa_key.sign(claims(jti="elsewhere"))
    assert await verifier.verify(token)
    async with write_transaction(db) as conn:  # as another server process would
        await revoke(conn, "elsewhere", now_us() + 600_000_000)
    time.sleep(0.25)
    with pytest.raises(RevokedToken):
        await verifier.verify(token)

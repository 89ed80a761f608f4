"""Forged and unusable tokens against the full server: each gets 401 (or 403 when the token is
genuine but names no usable role), never data, and each rejected credential is audited."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid

import orjson
import pytest
from sqlalchemy import select

from ehr.security.audit import seal_pending
from ehr.security.tables import audit_log
from ehr.store.db import read_connection

from .conftest import b64url, compact

ISSUER = "http://test"  # the built-in issuer: the origin of the FHIR base
AUDIENCE = "http://test/fhir"


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "forger", "iat": now, "nbf": now, "exp": now + 300, "jti": uuid.uuid4().hex,
            "scope": "openid fhirUser user/*.cruds", "role": "doctor", "fhirUser": f"{AUDIENCE}/Practitioner/d1"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256_with_public_key(public_pem: str, payload: dict, kid: str) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(payload))}"
    sig = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def tampered(token: str) -> str:
    header, payload, sig = token.split(".")
    body = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
    body["fhirUser"] = f"{AUDIENCE}/Practitioner/d3"  # become D3, who sees more
    return f"{header}.{b64url(orjson.dumps(body))}.{sig}"


def forgeries(rsa_key, other_rsa_key) -> dict[str, str]:
    return {
        "alg none": compact({"alg": "none", "typ": "JWT"}, claims()),
        "HS256 keyed with the public key": hs256_with_public_key(rsa_key.public_pem, claims(), rsa_key.kid),
        "unknown kid": rsa_key.sign(claims(), kid="no-such-key"),
        "another key under our kid": other_rsa_key.sign(claims(), kid=rsa_key.kid),
        "wrong issuer": rsa_key.sign(claims(iss="https://evil.example")),
        "wrong audience": rsa_key.sign(claims(aud="https://other-server.example/fhir")),
        "expired": rsa_key.sign(claims(exp=int(time.time()) - 600, iat=int(time.time()) - 900, nbf=int(time.time()) - 900)),
        "not yet valid": rsa_key.sign(claims(nbf=int(time.time()) + 600)),
        "no expiry": rsa_key.sign(claims(exp=None)),
        "tampered payload": tampered(rsa_key.sign(claims())),
        "garbage": "a.b.c",
    }


@pytest.mark.parametrize("case", [
    "alg none", "HS256 keyed with the public key", "unknown kid", "another key under our kid", "wrong issuer", "wrong audience",
    "expired", "not yet valid", "no expiry", "tampered payload", "garbage",
])
async def test_forged_tokens_get_401_and_are_audited(world, rsa_key, other_rsa_key, case):
    token = forgeries(rsa_key, other_rsa_key)[case]
    async with world.client(None, Authorization=f"Bearer {token}") as c:
        for url in ("/Patient/pa", "/Observation", "/AuditEvent"):
            r = await c.get(url)
            assert r.status_code == 401, (case, url, r.text)
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
            assert "resourceType" in r.json() and r.json()["resourceType"] == "OperationOutcome"
    await seal_pending(world.app.state.engine)
    async with read_connection(world.app.state.engine) as conn:
        events = [orjson.loads(e) for e in (await conn.execute(select(audit_log.c.event))).scalars()]
    failures = [e for e in events if e["type"].get("code") == "110114"]
    assert len(failures) == 3 and all(e["outcome"] == "4" for e in failures)


async def test_revoked_token(world, rsa_key):
    good = claims()
    token = rsa_key.sign(good)
    async with world.client(None, Authorization=f"Bearer {token}") as c:
        assert (await c.get("/Patient/pa")).status_code == 200
        await world.app.state.security.revocations.revoke(good["jti"], good["exp"] * 1_000_000, "stolen laptop")
        r = await c.get("/Patient/pa")
        assert r.status_code == 401 and "revoked" in r.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"role": "unrestricted"}, "Unknown role"),
    ({"role": ["doctor", "insurer"]}, "several roles"),
    ({"role": "insurer", "fund": None}, "must name its fund"),
    ({"role": None, "fhirUser": f"{AUDIENCE}/Practitioner/d1"}, "names no role"),
    ({"role": "patient", "fhirUser": f"{AUDIENCE}/Practitioner/d1"}, "patient token"),
])
async def test_genuine_tokens_without_a_usable_role_get_403(world, rsa_key, overrides, reason):
    token = rsa_key.sign(claims(**overrides))
    async with world.client(None, Authorization=f"Bearer {token}") as c:
        r = await c.get("/Observation")
    assert r.status_code == 403 and reason in r.json()["issue"][0]["diagnostics"]


async def test_a_genuine_token_works_and_bearer_scheme_is_required(world, rsa_key):
    token = rsa_key.sign(claims())
    async with world.client(None, Authorization=f"Bearer {token}") as c:
        assert (await c.get("/Patient/pa")).status_code == 200
    async with world.client(None, Authorization=f"Basic {token}") as c:
        assert (await c.get("/Patient/pa")).status_code == 401

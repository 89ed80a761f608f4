"""Token verification against forgeries: each must be refused with a 401-worthy TokenError."""
from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from ehr.outcome import FHIRError
from ehr.security.jwks import StaticKeySet
from ehr.security.tokens import (
    ExpiredToken,
    InvalidToken,
    MissingToken,
    RevokedToken,
    TokenVerifier,
    bearer_token,
    unauthorized,
)

from .conftest import AUDIENCE, ISSUER, b64url, claims, compact


class Revoked:
    def __init__(self, *ids: str):
        self.ids = set(ids)

    async def contains(self, jti: str) -> bool:
        return jti in self.ids


@pytest.fixture
def verifier(rsa_key, ec_key):
    keys = StaticKeySet({"keys": [rsa_key.public_jwk, ec_key.public_jwk]})
    return TokenVerifier({ISSUER: keys}, AUDIENCE, leeway_seconds=30, revocations=Revoked("revoked-jti"))


async def test_valid_rs256(verifier, rsa_key):
    got = await verifier.verify(rsa_key.sign(claims(sub="alice")))
    assert got["sub"] == "alice"


async def test_valid_es256(verifier, ec_key):
    got = await verifier.verify(ec_key.sign(claims(sub="bob")))
    assert got["sub"] == "bob"


async def test_alg_none_rejected(verifier, rsa_key):
    token = compact({"alg": "none", "typ": "JWT", "kid": rsa_key.kid}, claims())
    with pytest.raises(InvalidToken, match="'none' is not accepted"):
        await verifier.verify(token)


async def test_hs256_signed_with_public_key_rejected(verifier, rsa_key):
    # The classic key-confusion attack: HMAC keyed with the (public) PEM the server trusts.
    header = {"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}
    unsigned = compact(header, claims(sub="mallory"))[:-1].rstrip(".")
    signing_input = unsigned.encode()
    for secret in (rsa_key.public_pem.encode(), str(rsa_key.public_jwk).encode()):
        sig = hmac.new(secret, signing_input, hashlib.sha256).digest()
        with pytest.raises(InvalidToken, match="HS256"):
            await verifier.verify(f"{unsigned}.{b64url(sig)}")


async def test_unknown_kid_rejected(verifier, other_rsa_key):
    with pytest.raises(InvalidToken, match="No RS256 key with id"):
        await verifier.verify(other_rsa_key.sign(claims()))


async def test_known_kid_signed_by_another_key_rejected(verifier, rsa_key, other_rsa_key):
    with pytest.raises(InvalidToken, match="signature"):
        await verifier.verify(other_rsa_key.sign(claims(), kid=rsa_key.kid))


async def test_rsa_kid_with_es256_header_rejected(verifier, rsa_key, ec_key):
    # An ES256 token pointing at the RSA key: the key does not fit the algorithm.
    with pytest.raises(InvalidToken, match="No ES256 key"):
        await verifier.verify(ec_key.sign(claims(), kid=rsa_key.kid))


async def test_missing_kid_is_ambiguous_with_two_keys(verifier, rsa_key):
    # Two keys are published but only one RSA key: no kid is acceptable when unambiguous.
    assert (await verifier.verify(rsa_key.sign(claims(), kid=None)))["iss"] == ISSUER


async def test_wrong_issuer_rejected(verifier, rsa_key):
    with pytest.raises(InvalidToken, match="not trusted"):
        await verifier.verify(rsa_key.sign(claims(iss="https://evil.example/")))


async def test_wrong_audience_rejected(verifier, rsa_key):
    with pytest.raises(InvalidToken, match="audience"):
        await verifier.verify(rsa_key.sign(claims(aud="https://other-server/fhir")))


async def test_audience_list_containing_ours_accepted(verifier, rsa_key):
    assert await verifier.verify(rsa_key.sign(claims(aud=["account", AUDIENCE])))


async def test_expired_rejected(verifier, rsa_key):
    now = int(time.time())
    with pytest.raises(ExpiredToken):
        await verifier.verify(rsa_key.sign(claims(iat=now - 3600, nbf=now - 3600, exp=now - 120)))


async def test_expiry_within_leeway_accepted(verifier, rsa_key):
    now = int(time.time())
    assert await verifier.verify(rsa_key.sign(claims(exp=now - 5)))


async def test_token_without_exp_rejected(verifier, rsa_key):
    with pytest.raises(InvalidToken, match="exp"):
        await verifier.verify(rsa_key.sign(claims(exp=None)))


async def test_nbf_in_future_rejected(verifier, rsa_key):
    now = int(time.time())
    with pytest.raises(InvalidToken, match="not yet valid"):
        await verifier.verify(rsa_key.sign(claims(nbf=now + 600, exp=now + 900)))


async def test_revoked_jti_rejected(verifier, rsa_key):
    with pytest.raises(RevokedToken):
        await verifier.verify(rsa_key.sign(claims(jti="revoked-jti")))


async def test_tampered_payload_rejected(verifier, rsa_key):
    token = rsa_key.sign(claims(role="patient"))
    header, _, signature = token.split(".")
    forged_payload = compact({}, claims(role="admin")).split(".")[1]
    with pytest.raises(InvalidToken, match="signature"):
        await verifier.verify(f"{header}.{forged_payload}.{signature}")


async def test_garbage_rejected(verifier):
    for junk in ("abc", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9"):
        with pytest.raises(InvalidToken):
            await verifier.verify(junk)


def test_bearer_header_parsing():
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer   tok ") == "tok"
    with pytest.raises(MissingToken):
        bearer_token(None)
    with pytest.raises(InvalidToken):
        bearer_token("Basic dXNlcjpwYXNz")
    with pytest.raises(InvalidToken):
        bearer_token("Bearer ")


def test_unauthorized_maps_to_401_with_www_authenticate():
    err = unauthorized(ExpiredToken('The token has "expired"'))
    assert isinstance(err, FHIRError) and err.status == 401
    assert err.issues[0].code == "expired" and err.issues[0].expression == ("http.Authorization",)
    header = err.headers["WWW-Authenticate"]
    assert header.startswith('Bearer realm="sijill", error="invalid_token", error_description="')
    assert '"expired"' not in header  # quotes inside the description are neutralised
    missing = unauthorized(MissingToken("no token"))
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="sijill"'

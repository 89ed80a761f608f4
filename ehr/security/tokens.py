"""Bearer token verification (python-jose): signature, issuer, audience, lifetime, revocation.

Only RS256 and ES256 are accepted, with the key chosen by the issuer and ``kid``: ``alg: none``,
HMAC algorithms (where a public key would be misused as the shared secret) and keys that do not
fit the algorithm are refused before any signature check.  Every failure is a ``TokenError``
that ``unauthorized`` turns into a 401 carrying ``WWW-Authenticate`` as RFC 6750 asks.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol

from jose import jwt
from jose.exceptions import ExpiredSignatureError, JWTClaimsError, JWTError

from ehr.outcome import FHIRError
from ehr.security.jwks import ALGORITHMS, KeySet, KeySourceUnavailable

REALM = "sijill"


class TokenError(Exception):
    issue_code = "login"
    error: str | None = "invalid_token"

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


class MissingToken(TokenError):
    error = None  # RFC 6750 §3.1: no error code when the request carried no credentials


class InvalidToken(TokenError):
    pass


class ExpiredToken(TokenError):
    issue_code = "expired"


class RevokedToken(InvalidToken):
    pass


def www_authenticate(err: TokenError | None = None) -> str:
    value = f'Bearer realm="{REALM}"'
    if err is not None and err.error:
        # Quotes and backslashes cannot appear inside a quoted-string unescaped.
        desc = err.description.replace("\\", "").replace('"', "'")
        value += f', error="{err.error}", error_description="{desc}"'
    return value


def unauthorized(err: TokenError) -> FHIRError:
    return FHIRError.of(
        401, err.issue_code, err.description, "http.Authorization", headers={"WWW-Authenticate": www_authenticate(err)}
    )


class Revocations(Protocol):
    async def contains(self, jti: str) -> bool: ...


def bearer_token(authorization: str | None) -> str:
    """The token from an ``Authorization: Bearer …`` header (MissingToken/InvalidToken otherwise)."""
    if not authorization:
        raise MissingToken("This server requires a bearer token (Authorization: Bearer …)")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("The Authorization header must use the Bearer scheme")
    return token


class TokenVerifier:
    def __init__(
        self,
        issuers: Mapping[str, KeySet],
        audience: str,
        *,
        leeway_seconds: int = 30,
        revocations: Revocations | None = None,
    ):
        # Issuer URLs compare without a trailing slash; the token's iss must still match exactly.
        self._issuers = dict(issuers)
        self._audience = audience
        self._leeway = leeway_seconds
        self._revocations = revocations

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, once everything about it has been checked."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.get_unverified_claims(token)
        except JWTError:
            raise InvalidToken("The token is not a well-formed JWS compact serialisation") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidToken(f"Signature algorithm {alg!r} is not accepted (RS256 or ES256 only)")
        issuer = unverified.get("iss")
        key_set = self._issuers.get(issuer) if isinstance(issuer, str) else None
        if key_set is None:
            raise InvalidToken(f"The issuer {issuer!r} is not trusted")
        kid = header.get("kid")
        try:
            key = await key_set.key_for(kid if isinstance(kid, str) else None, alg)
        except KeySourceUnavailable as exc:
            raise FHIRError.of(503, "transient", f"The token issuer's keys are unavailable: {exc}") from None
        if key is None:
            raise InvalidToken(f"No {alg} key with id {kid!r} is published by {issuer}")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=issuer,
                options={"leeway": self._leeway, "require_exp": True, "verify_at_hash": False},
            )
        except ExpiredSignatureError:
            raise ExpiredToken("The token has expired") from None
        except JWTClaimsError as exc:
            raise InvalidToken(f"The token's claims are not acceptable: {exc}") from None
        except JWTError as exc:
            raise InvalidToken(f"The token's signature does not verify: {exc}") from None
        jti = claims.get("jti")
        if self._revocations is not None and isinstance(jti, str) and await self._revocations.contains(jti):
            raise RevokedToken("The token has been revoked")
        return claims

"""The built-in token issuer, for development, the demo and system clients without an IdP.

It signs with one key: ``SIJILL_DEV_ISSUER_PRIVATE_KEY`` (PEM, RSA or EC P-256) or, when that is
absent, a key generated once into ``<data_dir>/dev-issuer-key.pem`` (mode 0600).  It publishes
its JWKS and an OpenID discovery document, and its token endpoint serves two grants:
``client_credentials`` for system clients (secret from ``SIJILL_CLIENT_SECRETS``) and, only while
``dev_issuer_enabled``, a password-less demo-user grant.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import unquote

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt

from ehr.security.demo import DemoDirectory, DemoUser, SystemClient, demo_directory
from ehr.security.jwks import StaticKeySet
from ehr.security.roles import Role
from ehr.security.scopes import ScopeError, ScopeSet
from ehr.settings import Settings
from ehr.store.clock import now_us

log = logging.getLogger("sijill.security.issuer")

DEMO_USER_GRANT = "https://fhir.sijill.ma/oauth/grant-type/demo-user"
CLIENT_CREDENTIALS = "client_credentials"


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: token endpoints answer in OAuth's format, not OperationOutcome."""

    def __init__(self, error: str, description: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(description)
        self.error, self.description, self.status, self.headers = error, description, status, headers or {}

    def body(self) -> bytes:
        return orjson.dumps({"error": self.error, "error_description": self.description})


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    claims: dict

    def response(self) -> dict:
        body = {"access_token": self.access_token, "token_type": "Bearer", "expires_in": self.expires_in, "scope": self.scope}
        if "patient" in self.claims:
            body["patient"] = self.claims["patient"]  # SMART launch context
        return body


def _generate_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load_or_create_key(settings: Settings) -> str:
    """The signing key PEM: from the environment, else from (or freshly into) the key file."""
    if settings.dev_issuer_private_key is not None:
        return settings.dev_issuer_private_key.get_secret_value()
    path: Path = settings.effective_key_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() and publish_key(path, _generate_pem()):
        log.warning("dev issuer: generated a new signing key at %s (set SIJILL_DEV_ISSUER_PRIVATE_KEY to pin one)", path)
    return path.read_text()


def publish_key(path: Path, pem: bytes) -> bool:
    """Write a fresh key beside ``path``, complete and synced, then link it into place: a link
    is atomic and fails if the name exists, so when several workers start at once exactly one
    key wins and every reader sees it whole (never a half-written file).  False: another
    worker's key won (use it).  The prescription signing key is published the same way."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def _algorithm(pem: str) -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ValueError("the dev issuer's RSA key must have at least 2048 bits")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError("the dev issuer's key must be RSA or EC P-256")


def thumbprint(public_jwk: Mapping[str, str]) -> str:
    """RFC 7638 JWK thumbprint: a key id that is a pure function of the key."""
    members = ("e", "kty", "n") if public_jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = orjson.dumps({m: public_jwk[m] for m in members}, option=orjson.OPT_SORT_KEYS)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def default_scopes(role: Role) -> str:
    if role is Role.PATIENT:
        return "openid fhirUser launch/patient patient/*.cruds"
    return "openid fhirUser user/*.cruds"


class DevIssuer:
    def __init__(
        self,
        private_pem: str,
        *,
        issuer_url: str,
        audience: str,
        fhir_base_url: str,
        ttl_seconds: int = 3600,
        client_secrets: Mapping[str, str] | None = None,
        directory: DemoDirectory | None = None,
        demo_users_enabled: bool = True,
    ):
        self.alg = _algorithm(private_pem)
        self._signing_key = jwk.construct(private_pem, self.alg)  # parsed once: signing is hot in tests/demo
        public = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self._signing_key.public_key().to_dict().items()}
        self.kid = thumbprint(public)
        self.public_jwk = {**public, "kid": self.kid, "use": "sig", "alg": self.alg}
        self.issuer_url = issuer_url.rstrip("/")
        self.audience = audience
        self.fhir_base_url = fhir_base_url.rstrip("/")
        self.ttl = ttl_seconds
        self._secrets = dict(client_secrets or {})
        self.directory = directory or demo_directory()
        self.demo_users_enabled = demo_users_enabled
        self.key_set = StaticKeySet(self.jwks())

    @classmethod
    def from_settings(cls, settings: Settings, fhir_base_url: str) -> "DevIssuer":
        return cls(
            load_or_create_key(settings),
            issuer_url=settings.effective_dev_issuer_url(),
            audience=settings.effective_audience(),
            fhir_base_url=fhir_base_url,
            ttl_seconds=settings.token_ttl_seconds,
            client_secrets={k: v.get_secret_value() for k, v in settings.client_secrets.items()},
            demo_users_enabled=settings.dev_issuer_enabled,
        )

    # --- published documents ----------------------------------------------------------------
    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer_url}/auth/token"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer_url}/auth/jwks"

    def jwks(self) -> dict:
        return {"keys": [self.public_jwk]}

    def discovery(self) -> dict:
        grants = [CLIENT_CREDENTIALS] + ([DEMO_USER_GRANT] if self.demo_users_enabled else [])
        return {
            "issuer": self.issuer_url,
            "jwks_uri": self.jwks_uri,
            "token_endpoint": self.token_endpoint,
            "grant_types_supported": grants,
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.alg],
            "claims_supported": ["sub", "fhirUser", "role", "fund", "patient", "scope", "client_id", "jti"],
        }

    # --- issuing ------------------------------------------------------------------------------
    def _sign(self, claims: dict) -> str:
        return jwt.encode(claims, self._signing_key, algorithm=self.alg, headers={"kid": self.kid})

    def _claims(self, subject: str, role: Role, scope: ScopeSet, fhir_user: str | None, fund: str | None, client_id: str, ttl: int) -> dict:
        now = now_us() // 1_000_000
        claims = {
            "iss": self.issuer_url,
            "sub": subject,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "client_id": client_id,
            "scope": str(scope),
            "role": role.value,
        }
        if fhir_user:
            claims["fhirUser"] = f"{self.fhir_base_url}/{fhir_user}"
        if fund:
            claims["fund"] = fund
        if role is Role.PATIENT and fhir_user and fhir_user.startswith("Patient/"):
            claims["patient"] = fhir_user.split("/", 1)[1]
        return claims

    def issue_token(self, user: DemoUser | str, scopes: str | None = None, ttl_seconds: int | None = None) -> IssuedToken:
        """A token for a demo user (by username or DemoUser), with their role's default scopes."""
        if isinstance(user, str):
            found = self.directory.users.get(user)
            if found is None:
                raise OAuthError("invalid_grant", f"No demo user {user!r}; known: {', '.join(sorted(self.directory.users))}")
            user = found
        scope = _requested(scopes or default_scopes(user.role))
        ttl = ttl_seconds or self.ttl
        claims = self._claims(f"demo-{user.username}", user.role, scope, user.fhir_user, user.fund, "sijill-cli", ttl)
        return IssuedToken(self._sign(claims), ttl, claims["scope"], claims)

    def issue_client_token(self, client: SystemClient, scopes: str | None = None) -> IssuedToken:
        granted = client.allowed_scopes if not scopes else _requested(scopes).narrowed_to(client.allowed_scopes)
        if not granted.scopes:
            raise OAuthError("invalid_scope", f"None of the requested scopes is allowed for client {client.client_id!r}")
        claims = self._claims(client.client_id, client.role, granted, client.fhir_user, client.fund, client.client_id, self.ttl)
        return IssuedToken(self._sign(claims), self.ttl, claims["scope"], claims)

    # --- the token endpoint ---------------------------------------------------------------------
    def token_request(self, form: Mapping[str, str], authorization: str | None = None) -> IssuedToken:
        grant = form.get("grant_type")
        if grant == CLIENT_CREDENTIALS:
            return self.issue_client_token(self._authenticate_client(form, authorization), form.get("scope"))
        if grant == DEMO_USER_GRANT and self.demo_users_enabled:
            username = form.get("username")
            if not username:
                raise OAuthError("invalid_request", "The demo-user grant needs a username")
            return self.issue_token(username, form.get("scope"))
        raise OAuthError("unsupported_grant_type", f"Grant type {grant!r} is not supported here")

    def _authenticate_client(self, form: Mapping[str, str], authorization: str | None) -> SystemClient:
        client_id, secret, basic = form.get("client_id"), form.get("client_secret"), False
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raise OAuthError("invalid_client", "Malformed Basic credentials", 401, {"WWW-Authenticate": 'Basic realm="sijill"'}) from None
            # RFC 6749 §2.3.1: id and secret are form-urlencoded inside the Basic credentials.
            raw_id, _, raw_secret = decoded.partition(":")
            client_id, secret, basic = unquote(raw_id.replace("+", " ")), unquote(raw_secret.replace("+", " ")), True
        expected = self._secrets.get(client_id or "")
        client = self.directory.clients.get(client_id or "")
        # Compare even for unknown clients so that timing does not reveal which ids exist.
        matches = hmac.compare_digest((secret or "").encode(), (expected or "\0unset").encode())
        if client is None or expected is None or not matches:
            headers = {"WWW-Authenticate": 'Basic realm="sijill"'} if basic else {}
            raise OAuthError("invalid_client", "Unknown client or wrong secret", 401, headers)
        return client


def _requested(text: str) -> ScopeSet:
    try:
        return ScopeSet.parse(text, strict=True)
    except ScopeError as exc:
        raise OAuthError("invalid_scope", str(exc)) from None

"""The security runtime of one server process: verifier, issuers, revocations, OAuth endpoints.

Built once at startup (``setup_security``) and kept on ``app.state.security``; the FastAPI
dependencies, the rate limiter and the metadata route read it from there.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from ehr.outcome import FHIRError
from ehr.security.audit import append, login_failure_event
from ehr.security.guard import RequestGuard
from ehr.security.identity import IdentityDirectory
from ehr.security.issuer import DevIssuer
from ehr.security.jwks import KeySet, KeySourceUnavailable, RemoteKeySet
from ehr.security.policy import AccessPolicy
from ehr.security.presence import MissThrottle
from ehr.security.principal import Principal, principal_from_claims
from ehr.security.request import RequestSecurity
from ehr.security.revocation import RevokedTokens
from ehr.security.tokens import TokenError, TokenVerifier, bearer_token, unauthorized
from ehr.security.trail import AuditWriter, RequestAudit
from ehr.settings import Settings, get_settings
from ehr.store.clock import now_us
from ehr.store.db import write_transaction

log = logging.getLogger("sijill.security")


@dataclass(frozen=True)
class OAuthEndpoints:
    issuer: str
    token: str | None
    jwks: str | None
    authorize: str | None = None
    revoke: str | None = None
    introspect: str | None = None
    grant_types: tuple[str, ...] = ()
    auth_methods: tuple[str, ...] = ()


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


class SecurityServices:
    def __init__(
        self,
        settings: Settings,
        *,
        engine: AsyncEngine | None = None,
        fhir_base_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
    ):
        self.settings = settings
        self.engine = engine
        self.fhir_base_url = (fhir_base_url or settings.base_url).rstrip("/")
        self._owns_http = http_client is None
        self.http = http_client or httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False)
        issuers: dict[str, KeySet] = {}
        self.issuer: DevIssuer | None = None
        if settings.dev_issuer_enabled:
            self.issuer = DevIssuer.from_settings(settings, self.fhir_base_url)
            issuers[self.issuer.issuer_url] = self.issuer.key_set
        self.remote: RemoteKeySet | None = None
        if settings.issuer_url or settings.jwks_url:
            if not settings.issuer_url:
                raise ValueError("SIJILL_JWKS_URL needs SIJILL_ISSUER_URL: tokens are matched to keys by issuer")
            self.remote = RemoteKeySet(
                self.http,
                issuer_url=settings.issuer_url,
                jwks_url=settings.jwks_url,
                ttl=settings.jwks_cache_seconds,
                refetch_after=settings.jwks_refetch_seconds,
            )
            issuers[settings.issuer_url.rstrip("/")] = self.remote
            issuers[settings.issuer_url] = self.remote  # whichever spelling the provider puts in iss
        if settings.auth_required and not issuers:
            log.warning("no token issuer configured (SIJILL_ISSUER_URL or SIJILL_DEV_ISSUER_ENABLED): every request will get 401")
        self.revocations = RevokedTokens(engine, settings.revocation_refresh_seconds) if engine is not None else None
        self.verifier = TokenVerifier(
            issuers,
            settings.effective_audience(),
            leeway_seconds=settings.clock_skew_seconds,
            revocations=self.revocations,
        )
        self.identities = IdentityDirectory(engine, settings.identity_cache_seconds, settings.care_window_days)
        self.audit_writer = AuditWriter(engine) if engine is not None else None
        self.presence_misses = MissThrottle(settings.presence_miss_limit, settings.rate_limit_storage)
        self.prescription_misses = MissThrottle(
            settings.prescription_lookup_misses, settings.rate_limit_storage, "unknown prescription numbers looked up"
        )

    async def principal(self, authorization: str | None) -> Principal:
        """The caller, or FHIRError 401 (no/bad token) / 403 (token says no usable role)."""
        if not authorization and not self.settings.auth_required:
            return Principal.unrestricted()
        try:
            token = bearer_token(authorization)
            claims = await self.verifier.verify(token)
        except TokenError as err:
            raise unauthorized(err) from None
        return principal_from_claims(claims, self.settings)

    async def authenticate_request(self, request: Request, *, audit: bool = True) -> Principal | FHIRError:
        """Authenticate once per request (the rate limiter and the endpoint share the result).

        A rejected credential is audited as a login failure, once, and only when ``audit``: the
        rate limiter passes False so that throttled floods of bad tokens cost no audit writes.
        A missing credential is no login attempt.
        """
        state = request.state
        result = getattr(state, "auth_result", None)
        authorization = request.headers.get("authorization")
        if result is None:
            try:
                result = await self.principal(authorization)
            except FHIRError as err:
                result = err
            state.auth_result = result
        if audit and isinstance(result, FHIRError) and result.status in (401, 403) and authorization and not getattr(state, "auth_failure_audited", False):
            state.auth_failure_audited = True
            await self.record_login_failure(result, client_address(request))
        return result

    async def request_security(self, request: Request, principal: Principal) -> RequestSecurity:
        """The policy, guard and audit of one request (the identity lookup is cached)."""
        identity = await self.identities.identity(principal)
        policy = AccessPolicy(principal, identity, now_us())
        audit = RequestAudit(
            self.engine, principal, address=client_address(request), site=self.fhir_base_url, writer=self.audit_writer,
            glass=identity.glass,
        )
        return RequestSecurity(principal, policy, RequestGuard(policy, self.identities), audit)

    async def record_login_failure(self, err: FHIRError | TokenError, address: str | None) -> None:
        """Audit a rejected credential (not a missing one: that is no login attempt)."""
        if self.engine is None:
            return
        description = err.description if isinstance(err, TokenError) else "; ".join(i.diagnostics for i in err.issues)
        async with write_transaction(self.engine) as conn:
            await append(conn, [login_failure_event(description, address=address, site=self.fhir_base_url)])

    async def endpoints(self) -> OAuthEndpoints:
        """What clients should use: the external provider when configured, else the built-in issuer."""
        if self.remote is not None:
            try:
                doc = await self.remote.discovery()
            except KeySourceUnavailable as exc:
                raise FHIRError.of(503, "transient", f"The identity provider is unreachable: {exc}") from None
            return OAuthEndpoints(
                issuer=self.remote.issuer_url or "",
                token=doc.get("token_endpoint"),
                jwks=doc.get("jwks_uri") or self.settings.jwks_url,
                authorize=doc.get("authorization_endpoint"),
                revoke=doc.get("revocation_endpoint"),
                introspect=doc.get("introspection_endpoint"),
                grant_types=tuple(doc.get("grant_types_supported") or ("authorization_code", "client_credentials")),
                auth_methods=tuple(doc.get("token_endpoint_auth_methods_supported") or ("client_secret_basic",)),
            )
        if self.issuer is not None:
            disc = self.issuer.discovery()
            return OAuthEndpoints(
                issuer=self.issuer.issuer_url,
                token=self.issuer.token_endpoint,
                jwks=self.issuer.jwks_uri,
                grant_types=tuple(disc["grant_types_supported"]),
                auth_methods=tuple(disc["token_endpoint_auth_methods_supported"]),
            )
        return OAuthEndpoints(issuer="", token=None, jwks=None)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()


def setup_security(
    app: FastAPI, engine: AsyncEngine | None, settings: Settings | None = None, **kwargs
) -> SecurityServices:
    """Build the runtime and keep it on ``app.state.security`` (call from the lifespan)."""
    services = SecurityServices(settings or get_settings(), engine=engine, **kwargs)
    app.state.security = services
    return services

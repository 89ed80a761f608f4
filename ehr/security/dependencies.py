"""FastAPI dependencies and routes of the security layer.

``CurrentPrincipal`` authenticates the request (401 with ``WWW-Authenticate`` on a missing or
bad token).  ``security_router`` serves SMART discovery and the built-in issuer; the lead
mounts it at the root and ``smart_router`` once more under the FHIR base, where SMART clients
look for ``.well-known/smart-configuration``.
"""
from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ehr.outcome import FHIRError
from ehr.security.issuer import OAuthError
from ehr.security.principal import Principal
from ehr.security.services import OAuthEndpoints, SecurityServices, client_address
from ehr.security.tokens import TokenError

_MAX_TOKEN_REQUEST = 16 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1
SMART_SERVICE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR",
            "display": "SMART-on-FHIR",
        }
    ],
    "text": "OAuth2 bearer tokens using the SMART App Launch profile (scopes v2, v1 accepted)",
}
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def security_services(request: Request) -> SecurityServices:
    services = getattr(request.app.state, "security", None)
    if services is None:
        raise FHIRError.of(500, "exception", "The security layer is not set up (setup_security was not called)")
    return services


async def _services(request: Request) -> SecurityServices:
    return security_services(request)  # as a coroutine: no thread-pool hop per request


Services = Annotated[SecurityServices, Depends(_services)]


async def current_principal(request: Request, services: Services) -> Principal:
    result = await services.authenticate_request(request)
    if isinstance(result, FHIRError):
        raise result
    return result


async def optional_principal(request: Request, services: Services) -> Principal | None:
    """For endpoints open to anonymous callers: None without a token, 401 for a bad one."""
    if not request.headers.get("authorization"):
        return None
    return await current_principal(request, services)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


# --- discovery documents -----------------------------------------------------------------------
SCOPES_SUPPORTED = (
    "openid", "fhirUser", "launch/patient",
    "patient/*.cruds", "patient/*.rs", "user/*.cruds", "user/*.rs", "system/*.cruds", "system/*.rs",
)


def smart_configuration_document(endpoints: OAuthEndpoints) -> dict:
    """SMART App Launch 2.x ``.well-known/smart-configuration``: only what really works here."""
    capabilities = ["permission-v1", "permission-v2", "permission-patient", "permission-user", "client-confidential-symmetric"]
    doc: dict = {
        "issuer": endpoints.issuer,
        "jwks_uri": endpoints.jwks,
        "token_endpoint": endpoints.token,
        "grant_types_supported": list(endpoints.grant_types),
        "token_endpoint_auth_methods_supported": list(endpoints.auth_methods),
        "scopes_supported": list(SCOPES_SUPPORTED),
        "capabilities": capabilities,
    }
    if endpoints.authorize:
        doc["authorization_endpoint"] = endpoints.authorize
        doc["response_types_supported"] = ["code"]
        doc["code_challenge_methods_supported"] = ["S256"]
        capabilities += ["launch-standalone", "context-standalone-patient", "sso-openid-connect", "client-public"]
    if endpoints.revoke:
        doc["revocation_endpoint"] = endpoints.revoke
    if endpoints.introspect:
        doc["introspection_endpoint"] = endpoints.introspect
    return {k: v for k, v in doc.items() if v is not None}


def capability_security_block(endpoints: OAuthEndpoints, cors: bool) -> dict:
    """CapabilityStatement.rest.security with the SMART oauth-uris extension."""
    uris = [
        {"url": name, "valueUri": value}
        for name, value in (("token", endpoints.token), ("authorize", endpoints.authorize), ("revoke", endpoints.revoke), ("introspect", endpoints.introspect))
        if value
    ]
    block: dict = {
        "cors": cors,
        "service": [SMART_SERVICE],
        "description": "Bearer tokens (RS256/ES256) from "
        + (endpoints.issuer or "no configured issuer")
        + "; access is the caller's role narrowed by SMART scopes; every access is audited.",
    }
    if uris:
        block["extension"] = [{"url": OAUTH_URIS, "extension": uris}]
    return block


async def capability_security(services: SecurityServices) -> dict:
    return capability_security_block(await services.endpoints(), bool(services.settings.cors_origins))


async def _capability_security(services: Services) -> dict:
    return await capability_security(services)


CapabilitySecurity = Annotated[dict, Depends(_capability_security)]


# --- routes --------------------------------------------------------------------------------------
smart_router = APIRouter(tags=["security"])
security_router = APIRouter(tags=["security"])


@smart_router.get("/.well-known/smart-configuration")
async def smart_configuration(services: Services) -> JSONResponse:
    return JSONResponse(smart_configuration_document(await services.endpoints()))


security_router.include_router(smart_router)


def _issuer(services: SecurityServices):
    if services.issuer is None:
        raise FHIRError.of(404, "not-found", "The built-in token issuer is not enabled (SIJILL_DEV_ISSUER_ENABLED)")
    return services.issuer


@security_router.get("/.well-known/openid-configuration")
async def openid_configuration(services: Services) -> JSONResponse:
    return JSONResponse(_issuer(services).discovery())


@security_router.get("/auth/jwks")
async def jwks(services: Services) -> JSONResponse:
    return JSONResponse(_issuer(services).jwks(), headers={"Cache-Control": "public, max-age=300"})


def _token_form(content_type: str, body: bytes) -> dict[str, str]:
    if content_type.split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "Send the token request as application/x-www-form-urlencoded")
    if len(body) > _MAX_TOKEN_REQUEST:
        raise OAuthError("invalid_request", "The token request is too large")
    form: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=False):
        if name in form:  # RFC 6749 §3.2: no parameter more than once
            raise OAuthError("invalid_request", f"Parameter {name!r} is repeated")
        form[name] = value
    return form


@security_router.post("/auth/token")
async def token(request: Request, services: Services) -> Response:
    issuer = _issuer(services)
    try:
        form = _token_form(request.headers.get("content-type", ""), await request.body())
        issued = issuer.token_request(form, request.headers.get("authorization"))
    except OAuthError as err:
        if err.error == "invalid_client":
            await services.record_login_failure(TokenError(f"client authentication failed: {err.description}"), client_address(request))
        return Response(err.body(), err.status, {**_NO_STORE, **err.headers}, media_type="application/json")
    return JSONResponse(issued.response(), headers=_NO_STORE)

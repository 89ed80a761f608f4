"""An external OpenID Connect provider, reached over real HTTP on 127.0.0.1."""
from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from ehr.outcome import FHIRError
from ehr.security.jwks import KeySourceUnavailable, RemoteKeySet
from ehr.security.services import SecurityServices
from ehr.settings import Settings

from .conftest import AUDIENCE, asgi_client, claims, make_app


class LocalIdP:
    """Discovery + JWKS served by uvicorn in a thread; keys can be rotated, fetches are counted."""

    def __init__(self):
        self.keys: list[dict] = []
        self.jwks_fetches = 0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.issuer = f"http://127.0.0.1:{self.port}/realms/sijill"
        app = Starlette(
            routes=[
                Route("/realms/sijill/.well-known/openid-configuration", self._discovery),
                Route("/realms/sijill/protocol/openid-connect/certs", self._jwks),
                # A provider whose discovery document names someone else as issuer.
                Route("/realms/liar/.well-known/openid-configuration", self._discovery),
            ]
        )
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def _discovery(self, _request):
        return JSONResponse(
            {
                "issuer": self.issuer,
                "jwks_uri": f"{self.issuer}/protocol/openid-connect/certs",
                "authorization_endpoint": f"{self.issuer}/protocol/openid-connect/auth",
                "token_endpoint": f"{self.issuer}/protocol/openid-connect/token",
                "revocation_endpoint": f"{self.issuer}/protocol/openid-connect/revoke",
                "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
            }
        )

    async def _jwks(self, _request):
        self.jwks_fetches += 1
        return JSONResponse({"keys": self.keys})

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the local IdP did not start")
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def idp():
    server = LocalIdP()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def remote_settings(idp, **extra) -> Settings:
    return Settings(_env_file=None, issuer_url=idp.issuer, audience=AUDIENCE, jwks_refetch_seconds=0.2, **extra)


async def test_tokens_verified_with_keys_found_by_discovery(idp, http, rsa_key, ec_key):
    idp.keys = [rsa_key.public_jwk, ec_key.public_jwk]
    services = SecurityServices(remote_settings(idp), http_client=http, fhir_base_url=AUDIENCE)
    for key in (rsa_key, ec_key):
        principal = await services.principal(f"Bearer {key.sign(claims(iss=idp.issuer, sub='dr-1'))}")
        assert principal.subject == "dr-1" and principal.issuer == idp.issuer


async def test_unknown_kid_refetches_once_then_rejects(idp, http, rsa_key, other_rsa_key):
    idp.keys = [rsa_key.public_jwk]
    keys = RemoteKeySet(http, issuer_url=idp.issuer, ttl=3600, refetch_after=0.2)
    assert await keys.key_for(rsa_key.kid, "RS256") is not None
    fetches = idp.jwks_fetches
    # Rotation: the provider now publishes a new key; a token signed with it triggers one refetch.
    time.sleep(0.25)
    idp.keys = [rsa_key.public_jwk, other_rsa_key.public_jwk]
    assert await keys.key_for(other_rsa_key.kid, "RS256") is not None
    assert idp.jwks_fetches == fetches + 1
    # A made-up kid right after: refused without hammering the provider.
    assert await keys.key_for("made-up", "RS256") is None
    assert await keys.key_for("made-up-2", "RS256") is None
    assert idp.jwks_fetches == fetches + 1
    # Later, one more refetch is allowed, and a still-unknown kid is rejected.
    time.sleep(0.25)
    assert await keys.key_for("made-up", "RS256") is None
    assert idp.jwks_fetches == fetches + 2


async def test_unknown_kid_token_rejected_end_to_end(idp, http, rsa_key, other_rsa_key):
    idp.keys = [rsa_key.public_jwk]
    services = SecurityServices(remote_settings(idp), http_client=http, fhir_base_url=AUDIENCE)
    with pytest.raises(FHIRError) as exc:
        await services.principal(f"Bearer {other_rsa_key.sign(claims(iss=idp.issuer))}")
    assert exc.value.status == 401 and "No RS256 key" in exc.value.issues[0].diagnostics


async def test_smart_configuration_describes_the_provider(idp, http, rsa_key):
    idp.keys = [rsa_key.public_jwk]
    app = make_app(remote_settings(idp, cors_origins=["https://portal.sijill.ma"]), http_client=http)
    async with asgi_client(app) as client:
        smart = (await client.get("/fhir/.well-known/smart-configuration")).json()
        assert smart["issuer"] == idp.issuer
        assert smart["authorization_endpoint"].endswith("/protocol/openid-connect/auth")
        assert smart["revocation_endpoint"].endswith("/revoke")
        assert "S256" in smart["code_challenge_methods_supported"] and "launch-standalone" in smart["capabilities"]
        security = (await client.get("/fhir/metadata")).json()["rest"][0]["security"]
        assert security["cors"] is True
        assert {e["url"] for e in security["extension"][0]["extension"]} == {"token", "authorize", "revoke"}
        token = rsa_key.sign(claims(iss=idp.issuer, role="doctor"))
        assert (await client.get("/fhir/Observation", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_unreachable_provider(http, rsa_key):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/realm"
    keys = RemoteKeySet(http, issuer_url=dead)
    with pytest.raises(KeySourceUnavailable):
        await keys.key_for("k", "RS256")
    services = SecurityServices(Settings(_env_file=None, issuer_url=dead, audience=AUDIENCE), http_client=http, fhir_base_url=AUDIENCE)
    with pytest.raises(FHIRError) as exc:
        await services.principal(f"Bearer {rsa_key.sign(claims(iss=dead))}")
    assert exc.value.status == 503  # our problem, not the client's token


async def test_discovery_must_name_its_issuer(idp, http):
    liar = RemoteKeySet(http, issuer_url=f"http://127.0.0.1:{idp.port}/realms/liar")
    with pytest.raises(KeySourceUnavailable, match="names issuer"):
        await liar.discovery()

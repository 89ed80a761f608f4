"""Shared fixtures: signing keys, token minting, and the two databases the audit trail runs on."""
from __future__ import annotations

import base64
import os
import time
import uuid

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import text

from ehr.outcome import FHIRError, outcome_bytes
from ehr.security.dependencies import CapabilitySecurity, CurrentPrincipal, security_router, smart_router
from ehr.security.services import setup_security

from ehr.security.issuer import thumbprint
from ehr.security.tables import SECURITY_TABLES
from ehr.store.db import create_engine
from ehr.store.schema import metadata

ISSUER = "https://idp.example.ma/realms/sijill"
AUDIENCE = "https://fhir.example.ma/fhir"
# Same variable as the suite-wide conftest; our own database so parallel suites do not collide.
PG_ADMIN_URL = os.environ.get("SIJILL_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres").replace(
    "postgresql://", "postgresql+psycopg://", 1
)
PG_DB = "sijill_security_tests"


class SigningKey:
    """A private key with its published JWK, able to mint tokens."""

    def __init__(self, private_pem: str, alg: str):
        self.pem, self.alg = private_pem, alg
        self.key = jwk.construct(private_pem, alg)
        public = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self.key.public_key().to_dict().items()}
        self.kid = thumbprint(public)
        self.public_jwk = {**public, "kid": self.kid, "use": "sig"}
        self.public_pem = self.key.public_key().to_pem().decode()

    def sign(self, claims: dict, headers: dict | None = None, kid: str | None = "same") -> str:
        hdrs = dict(headers or {})
        if kid == "same":
            hdrs["kid"] = self.kid
        elif kid is not None:
            hdrs["kid"] = kid
        return jwt.encode(claims, self.key, algorithm=self.alg, headers=hdrs)


def _pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return SigningKey(_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)), "RS256")


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    return SigningKey(_pem(ec.generate_private_key(ec.SECP256R1())), "ES256")


@pytest.fixture(scope="session")
def other_rsa_key() -> SigningKey:
    return SigningKey(_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)), "RS256")


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "scope": "openid fhirUser user/*.cruds",
        "role": "doctor",
        "fhirUser": f"{AUDIENCE}/Practitioner/p1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict, payload: dict, signature: bytes = b"") -> str:
    return f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(payload))}.{b64url(signature)}"


# --- databases -------------------------------------------------------------------------------------
async def _create_tables(engine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: metadata.drop_all(c, tables=list(SECURITY_TABLES)))
        await conn.run_sync(lambda c: metadata.create_all(c, tables=list(SECURITY_TABLES)))


async def _pg_engine():
    if not await _postgres_available():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is required in CI (127.0.0.1:5432, user postgres)")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    return create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{PG_DB}")


@pytest.fixture
async def sqlite_engine(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'security.db'}")
    await _create_tables(engine)
    yield engine
    await engine.dispose()


async def _postgres_available() -> bool:
    admin = create_engine(PG_ADMIN_URL)
    try:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            exists = (await conn.execute(text("select 1 from pg_database where datname = :n"), {"n": PG_DB})).first()
            if not exists:
                await conn.execute(text(f'create database "{PG_DB}"'))
        return True
    except Exception:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        return False
    finally:
        await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request, tmp_path):
    """A fresh set of security tables on each backend (PostgreSQL: our own database)."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'security.db'}")
    else:
        engine = await _pg_engine()
    await _create_tables(engine)
    yield engine
    await engine.dispose()


# --- a small app wired like the real one ------------------------------------------------------------
def make_app(settings, engine=None, fhir_base_url: str = AUDIENCE, http_client=None):
    """The security router plus one protected FHIR-ish endpoint, errors as OperationOutcomes."""
    app = FastAPI()
    app.include_router(security_router)
    app.include_router(smart_router, prefix="/fhir")

    @app.exception_handler(FHIRError)
    async def _fhir_error(_request: Request, exc: FHIRError):
        return Response(outcome_bytes(exc.issues), exc.status, exc.headers, media_type="application/fhir+json")

    @app.get("/fhir/Observation")
    async def search_observations(principal: CurrentPrincipal):
        principal.require("Observation", "s")
        return {"resourceType": "Bundle", "type": "searchset", "total": 0, "role": principal.role.value}

    @app.post("/fhir/Observation")
    async def create_observation(request: Request, principal: CurrentPrincipal):
        principal.require("Observation", "c")
        return {"size": len(await request.body())}

    @app.get("/fhir/metadata")
    async def metadata_route(security: CapabilitySecurity):
        return {"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "security": security}]}

    setup_security(app, engine, settings, fhir_base_url=fhir_base_url, http_client=http_client)
    return app


def asgi_client(app, base_url: str = "http://testserver"):
    import httpx

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 4242)), base_url=base_url)


# --- the real server with tokens: apps, callers and a seeded world -------------------------------------
from tests.conftest import BASE, TEST_LIMITS, running_app  # noqa: E402
from tests.security.world import World, seed_world  # noqa: E402


def secure_settings_for(database_url: str, tmp_path, rsa_key: SigningKey):
    """The full server, tokens required, the built-in issuer signing with ``rsa_key``."""
    from pydantic import SecretStr

    from ehr.settings import Settings

    return Settings(
        _env_file=None, database_url=database_url, base_url=BASE, data_dir=tmp_path / "data",
        auth_required=True, dev_issuer_enabled=True, dev_issuer_private_key=SecretStr(rsa_key.pem),
        identity_cache_seconds=0, **TEST_LIMITS,
    )


@pytest.fixture
def secure_settings(database_url, tmp_path, rsa_key):
    """The full server, tokens required, the built-in issuer signing with a session key."""
    return secure_settings_for(database_url, tmp_path, rsa_key)


@pytest.fixture
async def secure_app(secure_settings):
    async with running_app(secure_settings) as app:
        yield app


@pytest.fixture
async def world(secure_app) -> World:
    """The scenario every access test reads: patients, doctors, a pharmacy, two funds..."""
    return await seed_world(secure_app)


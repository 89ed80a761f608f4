"""The built-in issuer: keys, demo users, client credentials, and its HTTP endpoints."""
from __future__ import annotations

import base64
import stat

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import SecretStr
from sqlalchemy import select

from ehr.security.demo import demo_directory, demo_resources
from ehr.security.issuer import DEMO_USER_GRANT, DevIssuer, OAuthError, load_or_create_key
from ehr.security.principal import principal_from_claims
from ehr.security.roles import Role
from ehr.settings import Settings
from ehr.security.audit import seal_pending
from ehr.security.tables import audit_log
from ehr.security.tokens import TokenVerifier

from .conftest import AUDIENCE, asgi_client, make_app

DEV_ISSUER = "http://testserver"
SECRETS = {"cnss-gateway": "s3cret-cnss", "pharmacy-software": "s3cret-pharm"}


def dev_settings(tmp_path, pem: str | None = None, **extra) -> Settings:
    return Settings(
        _env_file=None,
        dev_issuer_enabled=True,
        dev_issuer_url=DEV_ISSUER,
        dev_issuer_private_key=SecretStr(pem) if pem else None,
        dev_issuer_key_file=tmp_path / "keys" / "dev-issuer-key.pem",
        audience=AUDIENCE,
        client_secrets={k: SecretStr(v) for k, v in SECRETS.items()},
        **extra,
    )


def make_issuer(pem: str) -> DevIssuer:
    return DevIssuer(pem, issuer_url=DEV_ISSUER, audience=AUDIENCE, fhir_base_url=AUDIENCE, client_secrets=SECRETS)


async def verify(issuer: DevIssuer, token: str):
    claims = await TokenVerifier({issuer.issuer_url: issuer.key_set}, AUDIENCE).verify(token)
    return principal_from_claims(claims, Settings(_env_file=None))


@pytest.mark.parametrize("username", sorted(demo_directory().users))
async def test_every_demo_user_round_trips(rsa_key, username):
    issuer = make_issuer(rsa_key.pem)
    user = demo_directory().users[username]
    principal = await verify(issuer, issuer.issue_token(username).access_token)
    assert principal.role is user.role and principal.fhir_user == user.fhir_user and principal.fund == user.fund
    assert principal.token_id and principal.subject == f"demo-{username}"
    if user.role is Role.PATIENT:
        assert principal.patient_context == user.fhir_user
        assert principal.allows("Observation", "r") and principal.scopes.patient_only("Observation", "r")


def test_demo_users_cover_every_role_and_fund():
    directory = demo_directory()
    users = directory.users.values()
    # The registries are system clients only (no person signs in as the RSU register).
    assert {u.role for u in users} == set(Role) - {Role.UNRESTRICTED, Role.REGISTRY}
    assert {c.role for c in directory.clients.values()} >= {Role.INSURER, Role.PHARMACIST, Role.REGISTRY}
    assert {u.fund for u in users if u.role is Role.INSURER} == {"Organization/cnss", "Organization/cnops", "Organization/amo-tadamon"}


def test_demo_resources_are_valid_and_referenced():
    found = demo_resources()
    ids = set()
    for resource in found:
        model = get_fhir_model_class(resource["resourceType"])
        model.model_validate(resource)  # raises on anything the R4B model rejects
        ids.add(f"{resource['resourceType']}/{resource['id']}")
    directory = demo_directory()
    for who in (*directory.users.values(), *directory.clients.values()):
        assert who.fhir_user in ids and (who.fund is None or who.fund in ids)


async def test_es256_issuer(ec_key):
    issuer = make_issuer(ec_key.pem)
    assert issuer.alg == "ES256" and issuer.public_jwk["crv"] == "P-256" and "d" not in issuer.public_jwk
    assert (await verify(issuer, issuer.issue_token("doctor").access_token)).role is Role.DOCTOR


async def test_explicit_scopes_and_unknown_user(rsa_key):
    issuer = make_issuer(rsa_key.pem)
    principal = await verify(issuer, issuer.issue_token("doctor", "user/Observation.rs").access_token)
    assert principal.allows("Observation", "r") and not principal.allows("Condition", "r")
    with pytest.raises(OAuthError, match="No demo user"):
        issuer.issue_token("nobody")
    with pytest.raises(OAuthError) as bad:
        issuer.issue_token("doctor", "user/Observation.zz")
    assert bad.value.error == "invalid_scope"


def test_key_generated_once_with_private_mode(tmp_path, caplog):
    settings = dev_settings(tmp_path)
    with caplog.at_level("WARNING"):
        first = load_or_create_key(settings)
    path = settings.effective_key_file()
    assert "generated a new signing key" in caplog.text and str(path) in caplog.text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(settings) == first  # reused, not regenerated
    assert make_issuer(first).kid == make_issuer(load_or_create_key(settings)).kid


def test_key_from_environment_wins(tmp_path, ec_key):
    settings = dev_settings(tmp_path, ec_key.pem)
    assert load_or_create_key(settings) == ec_key.pem
    assert not settings.effective_key_file().exists()


async def test_client_credentials_narrowed(rsa_key):
    issuer = make_issuer(rsa_key.pem)
    issued = issuer.token_request(
        {"grant_type": "client_credentials", "client_id": "pharmacy-software", "client_secret": SECRETS["pharmacy-software"],
         "scope": "system/MedicationRequest.rs system/Observation.rs system/Patient.rs"}
    )
    assert issued.scope == "system/MedicationRequest.rs"  # the others exceed what the client may hold
    principal = await verify(issuer, issued.access_token)
    assert principal.is_system and principal.role is Role.PHARMACIST and principal.fhir_user == "Organization/demo-pharmacy"


def test_client_credentials_failures(rsa_key):
    issuer = make_issuer(rsa_key.pem)
    cases = [
        ({"grant_type": "client_credentials", "client_id": "cnss-gateway", "client_secret": "wrong"}, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "cnops-gateway", "client_secret": ""}, "invalid_client"),  # no secret configured
        ({"grant_type": "client_credentials", "client_id": "ghost", "client_secret": "x"}, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "pharmacy-software", "client_secret": SECRETS["pharmacy-software"], "scope": "system/Observation.rs"}, "invalid_scope"),
        ({"grant_type": "password", "username": "doctor", "password": "x"}, "unsupported_grant_type"),
        ({"grant_type": DEMO_USER_GRANT}, "invalid_request"),
    ]
    for form, error in cases:
        with pytest.raises(OAuthError) as exc:
            issuer.token_request(form)
        assert exc.value.error == error, form


# --- over HTTP ----------------------------------------------------------------------------------------
def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def test_token_endpoint_and_protected_route(tmp_path, sqlite_engine, rsa_key):
    app = make_app(dev_settings(tmp_path, rsa_key.pem), sqlite_engine)
    async with asgi_client(app) as http:
        issued = await http.post("/auth/token", data={"grant_type": "client_credentials", "scope": "system/Claim.rs"},
                                 headers={"Authorization": basic("cnss-gateway", SECRETS["cnss-gateway"])})
        assert issued.status_code == 200 and issued.headers["cache-control"] == "no-store"
        body = issued.json()
        assert body["token_type"] == "Bearer" and body["scope"] == "system/Claim.rs"
        # The insurer's token may search Claims only: Observation is refused by role and scope.
        refused = await http.get("/fhir/Observation", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert refused.status_code == 403 and refused.json()["issue"][0]["code"] == "forbidden"

        demo = await http.post("/auth/token", data={"grant_type": DEMO_USER_GRANT, "username": "doctor"})
        token = demo.json()["access_token"]
        ok = await http.get("/fhir/Observation", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()["role"] == "doctor"

        missing = await http.get("/fhir/Observation")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == 'Bearer realm="sijill"'
        assert missing.json()["issue"][0]["code"] == "login"

        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        bad = await http.get("/fhir/Observation", headers={"Authorization": f"Bearer {forged}"})
        assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]

        wrong_client = await http.post("/auth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": basic("cnss-gateway", "nope")})
        assert wrong_client.status_code == 401 and wrong_client.json()["error"] == "invalid_client"
        assert wrong_client.headers["www-authenticate"].startswith("Basic")

        not_form = await http.post("/auth/token", json={"grant_type": "client_credentials"})
        assert not_form.status_code == 400 and not_form.json()["error"] == "invalid_request"

    # The forged token and the wrong client secret were both audited as login failures; the
    # request without any token was not (no credential, no attempt).
    await seal_pending(sqlite_engine)
    async with sqlite_engine.connect() as conn:
        events = [orjson.loads(r[0]) for r in await conn.execute(select(audit_log.c.event).order_by(audit_log.c.seq))]
    assert [e["type"]["code"] for e in events] == ["110114", "110114"]
    assert all(e["outcome"] == "4" and e["agent"][0]["network"]["address"] == "10.1.2.3" for e in events)


async def test_discovery_documents(tmp_path, ec_key):
    app = make_app(dev_settings(tmp_path, ec_key.pem))
    async with asgi_client(app) as http:
        oidc = (await http.get("/.well-known/openid-configuration")).json()
        assert oidc["issuer"] == DEV_ISSUER and oidc["jwks_uri"] == f"{DEV_ISSUER}/auth/jwks"
        jwks = (await http.get("/auth/jwks")).json()
        assert len(jwks["keys"]) == 1 and "d" not in jwks["keys"][0] and jwks["keys"][0]["kid"]
        for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
            smart = (await http.get(path)).json()
            assert smart["token_endpoint"] == f"{DEV_ISSUER}/auth/token"
            assert "client_credentials" in smart["grant_types_supported"] and "permission-v2" in smart["capabilities"]
            assert "authorization_endpoint" not in smart  # the built-in issuer has no user login
        meta = (await http.get("/fhir/metadata")).json()
        security = meta["rest"][0]["security"]
        assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
        uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
        assert uris == {"token": f"{DEV_ISSUER}/auth/token"}
        get_fhir_model_class("CapabilityStatementRestSecurity").model_validate(security)


async def test_issuer_routes_absent_when_disabled(tmp_path):
    settings = Settings(_env_file=None, dev_issuer_enabled=False, audience=AUDIENCE)
    app = make_app(settings)
    async with asgi_client(app) as http:
        assert (await http.get("/auth/jwks")).status_code == 404
        assert (await http.post("/auth/token", data={"grant_type": "client_credentials"})).status_code == 404
        assert (await http.get("/fhir/Observation")).status_code == 401


async def test_auth_not_required_means_unrestricted_without_token(tmp_path):
    app = make_app(Settings(_env_file=None, auth_required=False, audience=AUDIENCE))
    async with asgi_client(app) as http:
        ok = await http.get("/fhir/Observation")
        assert ok.status_code == 200 and ok.json()["role"] == "unrestricted"
        # A token that is sent is still checked.
        assert (await http.get("/fhir/Observation", headers={"Authorization": "Bearer junk"})).status_code == 401

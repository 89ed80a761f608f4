"""Fixtures of the paper channel's specifications: the exchange's tables and a server that
requires tokens, with the built-in issuer to mint them."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from ehr.settings import Settings
from tests.claims.conftest import claims_tables, fresh_reference_choice  # noqa: F401  (shared fixtures)
from tests.conftest import BASE, TEST_LIMITS, running_app


@pytest.fixture(scope="module")
def signing_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


@pytest.fixture
def secure_extra() -> dict:
    """More settings for the secured server (a test module overrides it: the object store)."""
    return {}


@pytest.fixture
async def secure_app(claims_tables, tmp_path, signing_key, secure_extra):  # noqa: F811
    settings = Settings(
        _env_file=None, database_url=claims_tables, base_url=BASE, data_dir=tmp_path / "data", auth_required=True,
        dev_issuer_enabled=True, dev_issuer_private_key=SecretStr(signing_key), identity_cache_seconds=0,
        **secure_extra, **TEST_LIMITS,
    )
    async with running_app(settings) as app:
        yield app

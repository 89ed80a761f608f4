"""Fixtures of the care-sheet exchange: the claim tables and the app with the exchange plugged in.

Until the lead's migration adds ``claim_*`` tables, they are created here from the metadata
(``create_all`` only creates what is missing, so a migrated database is left as it is).
"""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine

import claims.register  # noqa: F401  (handlers and operations)
from claims.ports import use_reference
from claims.tables import CLAIM_TABLES
from ehr.store.db import sync_url
from ehr.store.schema import metadata
from tests.conftest import running_app


def create_claim_tables(database_url: str) -> None:
    engine = create_engine(sync_url(database_url))
    try:
        metadata.create_all(engine, tables=list(CLAIM_TABLES), checkfirst=True)
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def fresh_reference_choice():
    """Each test's database decides afresh whether reference tables are loaded."""
    use_reference(None)
    yield
    use_reference(None)


@pytest.fixture
def claims_tables(database_url) -> str:
    create_claim_tables(database_url)
    return database_url


@pytest.fixture
async def app(settings, claims_tables):
    async with running_app(settings) as app:
        yield app

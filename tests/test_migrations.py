"""The Alembic migrations build exactly the schema the code declares, on both databases."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from ehr.store.db import sync_url
from ehr.store.schema import metadata
from ehr.store.tables import load_all_tables


def test_migrated_schema_matches_the_tables_in_code(database_url):
    load_all_tables()
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == [], f"a migration is missing: {diff}"

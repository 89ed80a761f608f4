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


def test_0021_gives_the_rows_already_indexed_their_word_starts(database_url):
    """An existing database gets the word-start rows the indexer writes since 0021, from
    ``idx_string`` alone; going back removes them."""
    from sqlalchemy import delete, insert, select

    from ehr.search.indexer import extract
    from ehr.store.migrate import downgrade, upgrade
    from ehr.store.schema import idx_string

    patient = {"resourceType": "Patient", "id": "p", "name": [{"family": "El Haddad", "given": ["Karim"]}]}
    indexed = sorted((1, r["param"], r["grp"], r["norm"], r["exact"]) for r in extract(patient)["string"])
    engine = create_engine(sync_url(database_url))
    rows = lambda conn: sorted(tuple(r) for r in conn.execute(select(idx_string)))  # noqa: E731
    try:
        downgrade(database_url, "0019")
        with engine.begin() as conn:
            conn.execute(delete(idx_string))
            conn.execute(insert(idx_string), [dict(zip(("rid", "param", "grp", "norm", "exact"), r)) for r in indexed
                                              if r[4] != ""])  # as 0019 indexed it
        upgrade(database_url)
        with engine.connect() as conn:
            assert rows(conn) == indexed  # exactly what indexing it today writes
        downgrade(database_url, "0019")
        with engine.connect() as conn:
            assert all(r[4] != "" for r in rows(conn)) and len(rows(conn)) < len(indexed)
    finally:
        upgrade(database_url)
        engine.dispose()

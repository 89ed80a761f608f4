"""Alembic environment: the same migrations for SQLite and PostgreSQL."""
from alembic import context
from sqlalchemy import engine_from_config, pool

from ehr.store.db import sync_url
from ehr.store.schema import metadata
from ehr.store.tables import load_all_tables

load_all_tables()
config = context.config


def run_migrations_online() -> None:
    url = sync_url(config.get_main_option("sqlalchemy.url"))
    connectable = engine_from_config({"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()

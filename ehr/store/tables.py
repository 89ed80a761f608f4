"""Every package's tables live on the one ``metadata``; importing them here lets Alembic see all."""
import importlib

# Modules that define tables on ehr.store.schema.metadata, beyond the store's own.
TABLE_MODULES = (
    "ehr.store.schema",
    "ehr.security.tables",
    "profiles.reference.tables",
    "claims.tables",
)


def load_all_tables() -> None:
    for name in TABLE_MODULES:
        importlib.import_module(name)

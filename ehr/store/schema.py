"""Tables of the versioned store and of the search index.

One row per logical resource in ``resource`` (its current version, stored bytes included, so
a read is one primary-key lookup) and one row per version in ``resource_version``.  Search
index rows are keyed by the resource's surrogate ``rid`` and by ``param``, a stable 63-bit
hash of ``"<ResourceType>.<code>"`` (see ``ehr.search.registry.param_hash``), so one B-tree
serves each parameter of each type.  ``grp`` ties together the components of one composite
value (0 for plain values).  Dates are epoch microseconds (UTC) so both databases compare
them as integers; ``low``/``high`` are the inclusive bounds of the value's precision range.
"""
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
)

metadata = MetaData()


def PrefixString(length: int) -> String:
    """Folded strings and URIs are matched by prefix (``LIKE 'x%'``): PostgreSQL only turns
    that into a B-tree range under the "C" collation, which also sorts them by code point
    exactly as SQLite does."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT.
RowId = BigInteger().with_variant(Integer(), "sqlite")

resource = Table(
    "resource",
    metadata,
    Column("rid", RowId, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", LargeBinary, nullable=True),
    Index("ux_resource_type_id", "res_type", "res_id", unique=True),
    Index("ix_resource_type_updated", "res_type", "last_updated"),
)

resource_version = Table(
    "resource_version",
    metadata,
    Column("seq", RowId, primary_key=True, autoincrement=True),
    Column("rid", BigInteger, nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    # The HTTP verb that made this version (POST, PUT, PATCH, DELETE), for history entries.
    Column("method", String(8), nullable=False),
    Column("content", LargeBinary, nullable=True),
    Index("ux_version_rid_vid", "rid", "version_id", unique=True),
    Index("ix_version_type_updated", "res_type", "last_updated"),
    Index("ix_version_updated", "last_updated"),
)

def _index_table(name: str, *columns: Column, indexes: dict[str, tuple[str, ...]]) -> Table:
    """An index table: (rid, param, grp) plus the value columns of its parameter type."""
    return Table(
        name,
        metadata,
        Column("rid", BigInteger, nullable=False),
        Column("param", BigInteger, nullable=False),
        Column("grp", SmallInteger, nullable=False, default=0),
        *columns,
        *(Index(ix, *cols) for ix, cols in indexes.items()),
        Index(f"ix_{name.removeprefix('idx_')}_rid", "rid"),
    )


idx_string = _index_table(
    "idx_string",
    Column("norm", PrefixString(255), nullable=False),  # lower-cased, accents and Arabic variants folded
    Column("exact", String(255), nullable=False),
    indexes={"ix_string_param_norm": ("param", "norm")},
)
idx_token = _index_table(
    "idx_token",
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    Column("text", String(255), nullable=True),  # normalised display/text for :text
    indexes={"ix_token_param_code": ("param", "code", "system"), "ix_token_param_system": ("param", "system")},
)
idx_reference = _index_table(
    "idx_reference",
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    Column("url", String(512), nullable=True),  # absolute or canonical references
    indexes={
        "ix_reference_param_target": ("param", "target_id", "target_type"),
        "ix_reference_target": ("target_type", "target_id"),
        "ix_reference_param_url": ("param", "url"),
    },
)
idx_date = _index_table(
    "idx_date",
    Column("low", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
    indexes={"ix_date_param_low": ("param", "low"), "ix_date_param_high": ("param", "high")},
)
idx_number = _index_table(
    "idx_number",
    Column("value", Float(53), nullable=False),
    Column("low", Float(53), nullable=False),
    Column("high", Float(53), nullable=False),
    indexes={"ix_number_param_value": ("param", "value")},
)
idx_quantity = _index_table(
    "idx_quantity",
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    Column("value", Float(53), nullable=False),
    Column("low", Float(53), nullable=False),
    Column("high", Float(53), nullable=False),
    indexes={"ix_quantity_param_value": ("param", "value")},
)
idx_uri = _index_table(
    "idx_uri",
    Column("uri", PrefixString(512), nullable=False),
    indexes={"ix_uri_param_uri": ("param", "uri")},
)

# Which patient (practitioner, encounter…) compartments a resource belongs to, from the
# CompartmentDefinitions: makes $everything and access checks one indexed lookup.
idx_compartment = Table(
    "idx_compartment",
    metadata,
    Column("rid", BigInteger, nullable=False),
    Column("comp_type", String(32), nullable=False),
    Column("comp_id", String(64), nullable=False),
    Index("ix_compartment_owner", "comp_type", "comp_id", "rid"),
    Index("ix_compartment_rid", "rid"),
)

INDEX_TABLES = {
    "string": idx_string,
    "token": idx_token,
    "reference": idx_reference,
    "date": idx_date,
    "number": idx_number,
    "quantity": idx_quantity,
    "uri": idx_uri,
    "compartment": idx_compartment,
}

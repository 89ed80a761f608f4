"""Reference tables (medicines list, tariff tables, ALD/ALC list), versioned by effective date.

Every loaded file becomes one ``reference_table_version`` row; its rows carry that
``version_id``.  The version in force on a date is the one of that kind with the latest
``effective_from`` on or before the date whose ``effective_to`` (if any) is not before it,
so a claim is priced with the tariff of its service date even after a newer tariff is loaded.
Money is integer centimes (MAD x 100), never float.  The tables live on the store's
``metadata`` so the store's Alembic migrations create them.
"""
from sqlalchemy import BigInteger, Boolean, Column, Date, Index, Integer, Numeric, String, Table, UniqueConstraint

from ehr.store.schema import RowId, metadata

reference_table_version = Table(
    "reference_table_version",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),  # medicines | tariffs | ald | rsu-thresholds
    Column("version", String(64), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("effective_to", Date, nullable=True),  # inclusive; NULL = until a later version
    Column("loaded_at", BigInteger, nullable=False),  # epoch microseconds, UTC
    Column("source", String(512), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("sample", Boolean, nullable=False, default=False),
    UniqueConstraint("kind", "version", name="ux_reference_kind_version"),
    Index("ix_reference_kind_from", "kind", "effective_from"),
)

medicine = Table(
    "medicine",
    metadata,
    Column("version_id", BigInteger, primary_key=True),
    Column("code", String(13), primary_key=True),  # GS1 EAN-13 of the pack
    Column("name", String(200), nullable=False),  # brand name
    Column("dci", String(200), nullable=False),  # international non-proprietary name
    Column("strength", String(80), nullable=False),
    Column("form", String(80), nullable=False),
    Column("presentation", String(120), nullable=True),
    Column("ppv_centimes", BigInteger, nullable=False),  # public sale price
    Column("base_centimes", BigInteger, nullable=True),  # reimbursement base: closest generic's price
    Column("generic_group", String(200), nullable=True),
    Column("reimbursable", Boolean, nullable=False),
    Column("originator", Boolean, nullable=False),  # princeps (True) or generic
    Column("atc", String(8), nullable=True),
    Column("laboratory", String(120), nullable=True),
    Column("name_ar", String(200), nullable=True),
    # Usual daily dose, in units of intake of the pack (tablets, sachets, ml...) a day: what
    # the checks at prescribing compare a prescription's dosage with.
    Column("dose_min", Numeric(10, 2), nullable=True),
    Column("dose_max", Numeric(10, 2), nullable=True),
)

# Whether one fund reimburses a pack, where it differs from (or states) the national column
# ``medicine.reimbursable``: a pack without a row for a fund follows the national column.
medicine_fund = Table(
    "medicine_fund",
    metadata,
    Column("version_id", BigInteger, primary_key=True),
    Column("code", String(13), primary_key=True),
    Column("fund", String(32), primary_key=True),
    Column("reimbursable", Boolean, nullable=False),
)

act = Table(
    "act",
    metadata,
    Column("version_id", BigInteger, primary_key=True),
    Column("code", String(16), primary_key=True),
    Column("label_fr", String(255), nullable=False),
    Column("label_ar", String(255), nullable=True),
    Column("letter_key", String(8), nullable=False),
    Column("coefficient", Numeric(10, 2), nullable=False),
    Column("category", String(32), nullable=False),
)

act_tariff = Table(
    "act_tariff",
    metadata,
    Column("version_id", BigInteger, primary_key=True),
    Column("act_code", String(16), primary_key=True),
    Column("fund", String(32), primary_key=True),
    Column("amount_centimes", BigInteger, nullable=False),  # national reference tariff (TNR)
)

ald = Table(
    "ald",
    metadata,
    Column("version_id", BigInteger, primary_key=True),
    Column("code", String(10), primary_key=True),
    Column("label_fr", String(255), nullable=False),
    Column("label_ar", String(255), nullable=True),
    Column("category", String(3), nullable=False),  # ALD | ALC
)

# One row per ICD-10 code or range of an ALD/ALC ("I60-I64" -> I60..I64; "G95.1" -> G95.1).
ald_icd10 = Table(
    "ald_icd10",
    metadata,
    Column("version_id", BigInteger, nullable=False),
    Column("ald_code", String(10), nullable=False),
    Column("icd_from", String(8), nullable=False),
    Column("icd_to", String(8), nullable=False),
    Index("ix_ald_icd10_version", "version_id", "icd_from"),
)

# The RSU index threshold per programme (regime code), above which a household leaves it.
rsu_threshold = Table(
    "rsu_threshold",
    metadata,
    Column("version_id", BigInteger, primary_key=True),
    Column("programme", String(16), primary_key=True),
    Column("threshold", Numeric(12, 7), nullable=False),
)

REFERENCE_TABLES = (reference_table_version, medicine, medicine_fund, act, act_tariff, ald, ald_icd10, rsu_threshold)

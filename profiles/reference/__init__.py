"""Reference tables: the national medicines list, the tariff tables (TNR) and the ALD/ALC list,
loaded from their published CSV/XLSX files as dated versions and queried on a service date."""
from profiles.reference.kinds import KINDS, RowError
from profiles.reference.loader import LoadRejected, LoadReport, load, parse_file
from profiles.reference.pricing import (
    Ald,
    Medicine,
    Tariff,
    ald_for,
    medicine_for,
    medicines_for,
    tariff_for,
    tariffs_for,
    version_in_force,
)
from profiles.reference.tables import REFERENCE_TABLES

__all__ = [
    "KINDS", "RowError", "LoadRejected", "LoadReport", "load", "parse_file", "Ald", "Medicine", "Tariff",
    "ald_for", "medicine_for", "medicines_for", "tariff_for", "tariffs_for", "version_in_force", "REFERENCE_TABLES",
]

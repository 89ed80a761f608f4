"""Security tables, defined on the store's metadata so migrations pick them up.

``break_glass_grant``, ``presence_grant``, ``prescription_presentation`` and ``entered_by`` are
the durable facts the access policy reads besides the search index: emergency grants, care
started and counter sessions opened with a proof of presence, prescriptions presented at a
pharmacy, and who entered what.  The policy joins them by ``rid`` or
``patient_id`` inside the same SQL as the rest of its rules.

``audit_log`` is append-only and hash-chained: row ``seq`` stores ``hash = SHA-256(prev_hash ||
event)`` where ``event`` is the canonical JSON of the AuditEvent.  ``audit_chain`` holds the
single chain-head row: the sealer locks it (so the chain stays linear) and the retention purge
moves its anchor (the last purged link) forward so what remains still verifies.  Requests never
lock it: they insert their events into ``audit_inbox``, which the sealer moves into the chain.
"""
from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, String, Table, false

from ehr.store.schema import metadata

revoked_token = Table(
    "revoked_token",
    metadata,
    Column("jti", String(255), primary_key=True),
    # After the token's own expiry the row is useless and can be purged (epoch µs).
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=False),
    Column("reason", String(255), nullable=True),
    Index("ix_revoked_token_expires", "expires_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # assigned under the head lock
    Column("recorded", BigInteger, nullable=False),  # epoch µs, for retention
    Column("patient_ref", String(80), nullable=True),  # "Patient/<id>": patients search their own
    Column("event", LargeBinary, nullable=False),
    Column("prev_hash", LargeBinary(32), nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    Index("ix_audit_patient_seq", "patient_ref", "seq"),
    Index("ix_audit_recorded", "recorded"),
)

audit_chain = Table(
    "audit_chain",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("head_seq", BigInteger, nullable=False),
    Column("head_hash", LargeBinary(32), nullable=False),
    # Everything up to anchor_seq was purged; the first kept row must link to anchor_hash.
    Column("anchor_seq", BigInteger, nullable=False),
    Column("anchor_hash", LargeBinary(32), nullable=False),
    # True only inside a purge transaction: the append-only triggers let that DELETE through.
    Column("purging", Boolean, nullable=False, default=False),
    # True only inside a sealing transaction: the inbox's triggers let the sealer's DELETE through.
    Column("sealing", Boolean, nullable=False, default=False, server_default=false()),
)

# Events recorded but not chained yet: a plain INSERT in the request's transaction (no shared row
# locked), moved into audit_log in id order by the sealer.  ``event`` is the canonical JSON
# without ``id`` (the chain assigns it: id = seq).  AUTOINCREMENT keeps SQLite from reusing the
# ids of sealed rows, so ids follow insertion order on both databases.
audit_inbox = Table(
    "audit_inbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("recorded", BigInteger, nullable=False),  # epoch µs
    Column("patient_ref", String(80), nullable=True),
    Column("event", LargeBinary, nullable=False),
    sqlite_autoincrement=True,
)

# A doctor's emergency access to one patient, outside any care relationship (time-limited).
break_glass_grant = Table(
    "break_glass_grant",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("actor", String(140), nullable=False),  # the doctor's fhirUser, "Practitioner/<id>"
    Column("subject", String(255), nullable=False),  # token subject, for the audit trail
    Column("patient_id", String(64), nullable=False),
    Column("reason", String(1000), nullable=False),
    Column("granted_at", BigInteger, nullable=False),  # epoch µs
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_break_glass_actor", "actor", "expires_at"),
)

# Access opened by a proof of presence (the patient's identifier and birth date, given in person):
# a doctor's care relationship ($start-care) or a counter agent's assisted session ($assist).
PRESENCE_CARE, PRESENCE_ASSIST = "care", "assist"
presence_grant = Table(
    "presence_grant",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("purpose", String(16), nullable=False),  # PRESENCE_CARE | PRESENCE_ASSIST
    Column("actor", String(140), nullable=False),  # the user's fhirUser, "Practitioner/<id>"
    Column("subject", String(255), nullable=False),  # token subject, for the audit trail
    Column("patient_id", String(64), nullable=False),
    Column("reason", String(1000), nullable=True),
    Column("granted_at", BigInteger, nullable=False),  # epoch µs
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_presence_grant_actor", "actor", "purpose", "expires_at"),
)

# A prescription (MedicationRequest) found at a pharmacy by its number: readable there for a while.
prescription_presentation = Table(
    "prescription_presentation",
    metadata,
    Column("actor", String(140), primary_key=True),  # pharmacy Organization or pharmacist reference
    Column("rid", BigInteger, primary_key=True),  # the MedicationRequest's resource row
    Column("presented_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

# What each (non in-process) caller wrote: everyone may read what they entered, and that is all a
# paper-channel agent may read.  One row per (agent, resource), kept when the resource changes.
entered_by = Table(
    "entered_by",
    metadata,
    Column("agent", String(140), primary_key=True),  # fhirUser, or "sub:<subject>" without one
    Column("rid", BigInteger, primary_key=True),
    Column("entered_at", BigInteger, nullable=False),
)

POLICY_TABLES = (break_glass_grant, presence_grant, prescription_presentation, entered_by)
SECURITY_TABLES = (revoked_token, audit_log, audit_chain, audit_inbox, *POLICY_TABLES)


def append_only_ddl(dialect: str) -> list[str]:
    """The statements a migration runs (in order) to make ``audit_log`` append-only."""
    from ehr.security.audit_log import APPEND_ONLY_DDL

    if dialect not in APPEND_ONLY_DDL:
        raise ValueError(f"no append-only DDL for dialect {dialect!r}")
    return list(APPEND_ONLY_DDL[dialect])

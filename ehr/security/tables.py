"""Security tables, defined on the store's metadata so migrations pick them up.

``audit_log`` is append-only and hash-chained: row ``seq`` stores ``hash = SHA-256(prev_hash ||
event)`` where ``event`` is the canonical JSON of the AuditEvent.  ``audit_chain`` holds the
single chain-head row: appenders lock it (so the chain stays linear) and the retention purge
moves its anchor (the last purged link) forward so what remains still verifies.
"""
from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, String, Table

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
)

SECURITY_TABLES = (revoked_token, audit_log, audit_chain)

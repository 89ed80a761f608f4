"""The audit trail's public API: build AuditEvents (IHE BALP style), record them, seal them into
the hash chain, verify, purge.

Builders live in ``audit_events`` (pure functions); requests record events with ``append`` (the
inbox, ``audit_inbox``: a plain INSERT in their transaction); ``seal`` / ``seal_pending`` chain
them into ``audit_log`` (the append-only, hash-chained table); callers import all from here.
"""
from ehr.security.audit_events import (
    ACCESS_PURPOSE,
    ACTIONS,
    ASSISTED,
    USER_ROLE,
    assisted_access,
    audit_event,
    audit_events,
    break_glass_event,
    event_patient,
    login_failure_event,
    outcome_for_status,
    retention_purge_event,
)
from ehr.security.audit_inbox import append, pending_count
from ehr.security.audit_log import (
    APPEND_ONLY_DDL,
    GENESIS,
    INBOX_APPEND_ONLY_DDL,
    SEAL_BATCH,
    PurgeReport,
    SealConflict,
    VerifyReport,
    install_append_only,
    purge,
    seal,
    verify,
)
from ehr.security.audit_sealer import AuditSealer, seal_pending

__all__ = [
    "ACCESS_PURPOSE", "ACTIONS", "ASSISTED", "USER_ROLE", "assisted_access", "audit_event", "audit_events", "break_glass_event", "event_patient", "login_failure_event",
    "outcome_for_status", "retention_purge_event",
    "append", "pending_count",
    "APPEND_ONLY_DDL", "GENESIS", "INBOX_APPEND_ONLY_DDL", "SEAL_BATCH", "PurgeReport", "SealConflict", "VerifyReport",
    "install_append_only", "purge", "seal", "verify",
    "AuditSealer", "seal_pending",
]

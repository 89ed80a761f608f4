"""The audit trail's public API: build AuditEvents (IHE BALP style), chain them, verify, purge.

Builders live in ``audit_events`` (pure functions), storage in ``audit_log`` (the append-only,
hash-chained table); callers import both from here.
"""
from ehr.security.audit_events import (
    ACTIONS,
    audit_event,
    audit_events,
    break_glass_event,
    event_patient,
    login_failure_event,
    outcome_for_status,
    retention_purge_event,
)
from ehr.security.audit_log import (
    APPEND_ONLY_DDL,
    GENESIS,
    PurgeReport,
    VerifyReport,
    append,
    install_append_only,
    purge,
    verify,
)

__all__ = [
    "ACTIONS", "audit_event", "audit_events", "break_glass_event", "event_patient", "login_failure_event",
    "outcome_for_status", "retention_purge_event",
    "APPEND_ONLY_DDL", "GENESIS", "PurgeReport", "VerifyReport", "append", "install_append_only", "purge", "verify",
]

"""The care-sheet exchange's own tables, on the store's ``metadata`` (Alembic sees them).

Times are epoch microseconds (UTC) like the store's; money is integer centimes (exact on both
databases, no float and no NUMERIC dialect quirks); dates of care are ISO ``YYYY-MM-DD`` text,
which sorts and compares as dates on both databases.
"""
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ehr.store.schema import RowId, metadata

# One row per submitted care sheet and payer (rank 1: the AMO fund; rank 2: a complementary
# insurer, created after the primary decision).  The unique key is the idempotency key.
claim_ledger = Table(
    "claim_ledger",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("provider_inpe", String(16), nullable=False),
    Column("claim_identifier", String(64), nullable=False),
    Column("payer_rank", SmallInteger, nullable=False, default=1),
    Column("claim_id", String(64), nullable=False),
    Column("response_id", String(64), nullable=False),  # the ClaimResponse, queued then decided
    Column("eob_id", String(64), nullable=True),
    Column("patient_id", String(64), nullable=False),
    Column("provider_ref", String(130), nullable=True),  # Practitioner/… or Organization/…
    Column("fund_ref", String(130), nullable=False),  # Organization/<fund>
    Column("fund_code", String(32), nullable=False),  # rule sets and reports are per fund code
    Column("coverage_id", String(64), nullable=True),  # the Coverage the claim was routed by
    Column("use", String(20), nullable=False),  # claim | preauthorization
    Column("care_setting", String(20), nullable=False),
    # The statistics' finer setting of an ambulatory sheet, from its acts (claims.caresheet.care_kind):
    # gp | specialist | lab; None for other ambulatory sheets and other settings.
    Column("care_kind", String(16), nullable=True),
    Column("service_date", String(10), nullable=False),  # earliest date of care on the sheet
    Column("fingerprint", String(64), nullable=False),  # hash of the lines: same key, other lines = conflict
    Column("parent_id", BigInteger, nullable=True),  # complementary row → the primary row
    Column("related_claim_id", String(64), nullable=True),  # Claim.related.claim, as the sheet names it
    Column("received_at", BigInteger, nullable=False),
    Column("due_at", BigInteger, nullable=False),  # received + 48 h, extended only by allowed pauses
    Column("status", String(12), nullable=False),  # queued | in-review | decided | paid | superseded
    Column("escalated_at", BigInteger, nullable=True),
    Column("decided_at", BigInteger, nullable=True),
    Column("decided_by", String(130), nullable=True),  # "system" or the agent's reference
    Column("outcome", String(12), nullable=True),  # approved | partial | rejected
    Column("ald", SmallInteger, nullable=True),  # 1: a line was decided under an ALD/ALC exemption (None: undecided)
    Column("submitted_cents", BigInteger, nullable=False, default=0),
    Column("benefit_cents", BigInteger, nullable=True),
    Column("patient_share_cents", BigInteger, nullable=True),
    Column("payee", String(10), nullable=True),  # provider (tiers payant) | insured
    Column("ruleset_version", String(40), nullable=True),
    Column("preauth_ref", String(40), nullable=True),
    Column("preauth_from", String(10), nullable=True),
    Column("preauth_until", String(10), nullable=True),
    # A correction → the row it replaces (its original, or the original's complementary row for
    # a complementary row).  Unique: a row is replaced at most once; corrections of corrections chain.
    Column("corrects_id", BigInteger, nullable=True),
    UniqueConstraint("provider_inpe", "claim_identifier", "payer_rank", name="ux_claim_ledger_key"),
    UniqueConstraint("claim_id", "payer_rank", name="ux_claim_ledger_claim"),
    UniqueConstraint("preauth_ref", name="ux_claim_ledger_preauth"),
    Index("ix_claim_ledger_fund_received", "fund_code", "received_at"),
    Index("ix_claim_ledger_status_decided", "status", "decided_at"),
    Index("ix_claim_ledger_patient", "patient_id", "use"),
    Index("ux_claim_ledger_corrects", "corrects_id", unique=True),
)

# The durable queue: a job is taken by leasing it (locked_by/locked_until) and done by being
# deleted in the transaction that writes its result.  Priority is the deadline (µs), lowered
# for escalated claims so they go first.
claim_job = Table(
    "claim_job",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # adjudicate
    Column("ledger_id", BigInteger, ForeignKey("claim_ledger.id"), nullable=False),
    Column("run_after", BigInteger, nullable=False),
    Column("priority", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("locked_by", String(64), nullable=True),
    Column("locked_until", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("ledger_id", "kind", name="ux_claim_job_ledger_kind"),
    Index("ix_claim_job_priority", "priority", "run_after"),
)

# Pended claims waiting for an agent of the fund.
claim_review_task = Table(
    "claim_review_task",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("ledger_id", BigInteger, ForeignKey("claim_ledger.id"), nullable=False, unique=True),
    Column("fund_code", String(32), nullable=False),
    Column("reason_code", String(40), nullable=False),
    Column("detail", Text, nullable=True),
    Column("proposal", LargeBinary, nullable=False),  # the automatic decision, as JSON, for the agent
    Column("status", String(12), nullable=False),  # open | waiting-info | closed
    Column("due_at", BigInteger, nullable=False),
    Column("escalated", SmallInteger, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
    Column("info_request_id", String(64), nullable=True),  # CommunicationRequest to the provider
    Column("paused_at", BigInteger, nullable=True),
    Column("paused_total_us", BigInteger, nullable=False, default=0),
    Column("closed_at", BigInteger, nullable=True),
    Column("closed_by", String(130), nullable=True),
    Column("resolution", Text, nullable=True),  # the agent's why, for the whole claim
    Index("ix_claim_review_queue", "fund_code", "status", "due_at"),
    Index("ix_claim_review_info", "info_request_id"),
)

# Decided lines, one row per line: the answer's detail, the duplicate/frequency/ceiling
# history, and (unique per claim and line) the guard against deciding a claim twice.
claim_decision_line = Table(
    "claim_decision_line",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("ledger_id", BigInteger, ForeignKey("claim_ledger.id"), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("provider_inpe", String(16), nullable=False),
    Column("fund_code", String(32), nullable=False),
    Column("code_system", String(255), nullable=True),
    Column("code", String(64), nullable=True),
    Column("service_date", String(10), nullable=False),
    Column("quantity", Float(53), nullable=False, default=1),
    Column("submitted_cents", BigInteger, nullable=False),
    Column("eligible_cents", BigInteger, nullable=False),
    Column("benefit_cents", BigInteger, nullable=False),
    Column("patient_share_cents", BigInteger, nullable=False),
    Column("rate_permille", Integer, nullable=False),
    Column("reasons", String(255), nullable=True),  # space-separated reason codes
    Column("decided_by", String(130), nullable=False),
    Column("note", Text, nullable=True),  # the agent's why
    UniqueConstraint("ledger_id", "sequence", name="ux_claim_decision_line"),
    Index("ix_claim_line_patient_date", "patient_id", "service_date"),
)

# What was paid, once per ledger row: the unique ledger_id is the "never paid twice" guard.
claim_payment = Table(
    "claim_payment",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("ledger_id", BigInteger, ForeignKey("claim_ledger.id"), nullable=False, unique=True),
    Column("fund_code", String(32), nullable=False),
    Column("payee_ref", String(130), nullable=False),
    Column("payee", String(10), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("paid_on", String(10), nullable=False),
    Column("reconciliation_id", String(64), nullable=False),
    Column("notice_id", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_claim_payment_day", "paid_on", "fund_code"),
)

# Notifications to rest-hook Subscriptions, written with the decision and delivered after.
claim_outbox = Table(
    "claim_outbox",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("subscription_id", String(64), nullable=False),
    Column("endpoint", String(1024), nullable=False),
    Column("headers", LargeBinary, nullable=True),  # JSON list of "Name: value"
    Column("content_type", String(64), nullable=True),  # None: empty notification (no payload)
    Column("focus", String(130), nullable=False),  # ClaimResponse/<id>
    Column("status", String(12), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    Index("ix_claim_outbox_due", "status", "next_attempt_at"),
    Index("ix_claim_outbox_subscription", "subscription_id", "id"),
)

# Appeals (recours) against a decision: each one is an agent's review task with its own
# deadline, then the revised decision.  ``open_ledger_id`` is the claim's ledger id while the
# appeal is open and NULL once closed: unique, so a claim has at most one open appeal.  An
# increase decided on a claim already paid is paid through the daily payment run, once
# (``paid_on`` is set in that run's transaction).  A row with ``follows_id`` is no appeal of
# its own: the complementary insurer's decision revised because the appeal it names changed the
# AMO benefit (closed when written; its difference is paid or recovered the same way).
claim_appeal = Table(
    "claim_appeal",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("ledger_id", BigInteger, ForeignKey("claim_ledger.id"), nullable=False),
    Column("open_ledger_id", BigInteger, nullable=True),
    Column("fund_code", String(32), nullable=False),
    Column("party", String(10), nullable=False),  # whose appeal: provider | patient
    Column("appellant", String(130), nullable=False),  # who filed it (the party, or an agent for them)
    Column("reason", Text, nullable=False),
    Column("lines", String(255), nullable=True),  # contested line numbers, space-separated (none: all)
    Column("documents", LargeBinary, nullable=True),  # JSON list of Attachments / References
    Column("contested", String(200), nullable=False),  # ClaimResponse/<id>/_history/<v> appealed against
    Column("status", String(12), nullable=False),  # open | waiting-info | closed
    Column("received_at", BigInteger, nullable=False),
    Column("due_at", BigInteger, nullable=False),  # received + 48 h, extended only by allowed pauses
    Column("escalated_at", BigInteger, nullable=True),
    Column("info_request_id", String(64), nullable=True),  # CommunicationRequest to the appellant
    Column("paused_at", BigInteger, nullable=True),
    Column("paused_total_us", BigInteger, nullable=False, default=0, server_default="0"),
    Column("follows_id", BigInteger, nullable=True),  # a complementary revision → the appeal it follows
    Column("closed_at", BigInteger, nullable=True),
    Column("closed_by", String(130), nullable=True),
    Column("resolution", Text, nullable=True),  # the agent's why
    Column("before_cents", BigInteger, nullable=False),  # benefit decided before the appeal
    Column("after_cents", BigInteger, nullable=True),
    Column("payable_cents", BigInteger, nullable=False, default=0),  # the increase paid on its own (claim already paid)
    Column("paid_on", String(10), nullable=True),
    Column("reconciliation_id", String(64), nullable=True),
    Column("notice_id", String(64), nullable=True),
    Index("ux_claim_appeal_open", "open_ledger_id", unique=True),
    Index("ix_claim_appeal_ledger", "ledger_id"),
    Index("ix_claim_appeal_queue", "fund_code", "status", "due_at"),
    Index("ix_claim_appeal_clock", "status", "due_at"),  # escalation, pauses that run out
    Index("ix_claim_appeal_info", "info_request_id"),
    Index("ix_claim_appeal_received", "fund_code", "received_at"),  # the SLA report
)

# What has been handed over on each prescription line (MedicationRequest), all pharmacies together:
# the row a dispense locks, so the check against what was prescribed is one indexed row and two
# pharmacies dispensing the same line at once are serialised.  Quantities in thousandths of a unit.
dispense_line = Table(
    "dispense_line",
    metadata,
    Column("line_id", String(64), primary_key=True),  # MedicationRequest id
    Column("prescription", String(64), nullable=False),  # the prescription number (groupIdentifier)
    Column("dispensed_milli", BigInteger, nullable=False, default=0),
    Column("dispenses", Integer, nullable=False, default=0),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_dispense_line_prescription", "prescription"),
)

# One row per registry feed accepted (RSU index, thresholds, coverage periods): who sent what.
registry_feed = Table(
    "registry_feed",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("sender", String(140), nullable=False),  # the client or fund gateway (token subject)
    Column("format", String(8), nullable=False),  # csv | bundle
    Column("sha256", String(64), nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("patients", Text, nullable=False),  # JSON list of "Patient/<id>" the feed touched
)

# A coverage ended by a feed because the household's RSU index crossed the threshold: the
# fund's list ($coverage-transitions), the notices sent, the worker's reminder before the end
# of an ALD transition.  Closed when a later feed restores the cover.
coverage_transition = Table(
    "coverage_transition",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("patient_id", String(64), nullable=False),
    Column("coverage_id", String(64), nullable=False),
    Column("fund_ref", String(80), nullable=False),  # Organization/<id>
    Column("regime", String(16), nullable=True),
    Column("next_regime", String(16), nullable=True),
    Column("ends_on", String(10), nullable=False),  # last day of cover (ISO date)
    Column("ald", SmallInteger, nullable=False),
    Column("transition_until", String(10), nullable=True),  # ALD patients: last day of ALD cover
    Column("feed_id", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("notified_at", BigInteger, nullable=True),
    Column("reminded_at", BigInteger, nullable=True),
    Column("closed_at", BigInteger, nullable=True),
    Column("closed_feed_id", BigInteger, nullable=True),
    Index("ix_coverage_transition_fund", "fund_ref", "closed_at", "ends_on"),
    Index("ix_coverage_transition_coverage", "coverage_id", "closed_at"),
    Index("ix_coverage_transition_remind", "closed_at", "reminded_at", "transition_until"),
)

# Patient notifications to send by SMS or e-mail (claims.messaging): one row per (patient,
# event, resource concerned), unique, so a retry or a replay of the same event never sends
# twice.  The row is written with its Communication, in the event's own transaction.  An
# answer to an inbound SMS goes to the number that texted (``reply_to``, in ``language``), and
# has no patient when the answer is the generic one.
message_outbox = Table(
    "message_outbox",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("patient_id", String(64), nullable=True),
    Column("event", String(40), nullable=False),  # claim-decided, payment, care-started …
    Column("about", String(130), nullable=False),  # ClaimResponse/<id>, Patient/<id> …
    Column("communication_id", String(64), nullable=False),
    Column("status", String(12), nullable=False),  # pending | sent | not-done
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger, nullable=True),
    Column("reply_to", String(32), nullable=True),
    Column("language", String(2), nullable=True),
    UniqueConstraint("patient_id", "event", "about", name="ux_message_outbox_event"),
    Index("ix_message_outbox_due", "status", "next_attempt_at"),
)

# The short status code printed on letters and receipts (claims.messaging.status_code): a
# random code per care sheet, so a code reveals nothing and cannot be derived from an id.
claim_status_code = Table(
    "claim_status_code",
    metadata,
    Column("code", String(8), primary_key=True),
    Column("claim_id", String(64), nullable=False, unique=True),
)

# Where each patient lives, for the statistics (claims.statistics.placement): province and region
# from the Patient's address, kept by a write hook on every Patient write (none for an address
# naming no known area), so an aggregate joins one indexed row per patient instead of reading
# addresses.  ``sijill statistics refresh`` rebuilds it from the stored Patients.
patient_place = Table(
    "patient_place",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("province", String(40), nullable=True),  # None: the address names a region only
    Column("region", String(2), nullable=False),
    Index("ix_patient_place_region", "region", "province"),
)

# When each AMO Coverage starts (Coverage.period.start, order 1), kept by the same hook: the
# time to the first care after the start of a coverage reads it.
coverage_start = Table(
    "coverage_start",
    metadata,
    Column("coverage_id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("fund_code", String(32), nullable=False),  # CNSS, CNOPS… (the payor's sid/fund identifier)
    Column("starts_on", String(10), nullable=False),  # ISO date
    Index("ix_coverage_start_starts_on", "starts_on"),
    Index("ix_coverage_start_patient", "patient_id"),
)

# Inbound SMS the gateway posted (claims.messaging.inbound), by the gateway's message id: a
# message posted again (the gateway retries until it gets a 2xx) is answered once.
sms_inbound = Table(
    "sms_inbound",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("received_at", BigInteger, nullable=False),
)

CLAIM_TABLES = (claim_ledger, claim_job, claim_review_task, claim_decision_line, claim_payment, claim_outbox, claim_appeal, dispense_line,
                registry_feed, coverage_transition, message_outbox, claim_status_code, patient_place, coverage_start, sms_inbound)

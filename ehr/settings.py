"""All runtime configuration, read once from the environment (prefix ``SIJILL_``).

One class for the whole server: storage, HTTP, and the security layer (tokens, access policy,
hardening, audit).  Secrets (the dev issuer's private key, system clients' secrets) come only
from the environment or from the key file the dev issuer generates under ``data_dir``.
"""
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from limits import parse as parse_rate_limit
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIJILL_", env_file=".env", extra="ignore")

    # Embedded default: a SQLite file under ./data; production: postgresql+psycopg://...
    database_url: str = "sqlite+aiosqlite:///./data/sijill.db"
    # Public base of the FHIR API, used in Location headers, Bundle links and fullUrls.
    base_url: str = "http://127.0.0.1:8000/fhir"
    data_dir: Path = Path("./data")
    # Connections kept open per process: above the requests one process serves at once, so that
    # none is opened and closed per request (each is a PostgreSQL backend process).
    db_pool_size: int = Field(default=20, ge=1)
    # One limit for every body: the REST layer and the ASGI middleware both enforce it.
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    default_page_size: int = Field(default=20, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    # Bundles larger than this are refused with 413 before any work is done.
    max_bundle_entries: int = Field(default=10_000, ge=1)
    # A write the database picks as a deadlock or serialization victim is run again up to this
    # many times in all (then 503 transient); docs/operations.md "Contention and outages".
    db_retry_attempts: int = Field(default=5, ge=1, le=20)
    # Cost limits of the API (docs/operations.md "Limits"): a statement running longer is stopped
    # (503 too-costly; 0 = none; the worker and the command line tools have none).
    statement_timeout_ms: int = Field(default=10_000, ge=0)
    # Shapes of a search refused before any SQL (400 too-costly naming the limit): parameters in
    # all, values of one parameter (repeats x comma alternatives), _sort keys, includes, "*" ones.
    max_search_params: int = Field(default=60, ge=1)
    max_search_param_values: int = Field(default=50, ge=1)
    max_sort_keys: int = Field(default=5, ge=1)
    max_includes: int = Field(default=10, ge=0)
    max_wildcard_includes: int = Field(default=3, ge=0)
    # Searches (GET entries without an id) in one batch or transaction Bundle.
    max_bundle_searches: int = Field(default=50, ge=0)
    log_level: str = "info"
    # One JSON object per log line, whitelisted fields only (no clinical data); off for tests.
    log_json: bool = True

    # --- object storage (documents: Binary bytes) — interop/storage, docs/storage.md -----------
    # None: a local directory, <data_dir>/objects (= file:./data/objects by default);
    # file:/some/dir, or s3://bucket[/prefix] with the s3_* settings below (MinIO, any S3).
    storage_url: str | None = None
    s3_endpoint: str | None = None  # host:port of the S3 API, e.g. minio:9000
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_secure: bool = True  # HTTPS to the S3 endpoint
    s3_region: str | None = None
    # Largest Binary accepted (raw upload or decoded base64); Binary.data's size is an integer.
    max_binary_bytes: int = Field(default=100 * 1024 * 1024, ge=1024, le=2**31 - 1)
    # Largest Binary served inline (base64) in its FHIR JSON form; larger ones are fetched raw.
    max_binary_inline_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    # --- authentication ---------------------------------------------------------------------
    # False only for tests and tools that run without tokens: requests then act unrestricted.
    auth_required: bool = True
    # Any OpenID Connect provider: its keys come from jwks_url, or from the provider's discovery
    # document at issuer_url + /.well-known/openid-configuration.
    issuer_url: str | None = None
    jwks_url: str | None = None
    # The "aud" tokens must carry; defaults to the FHIR base URL (what SMART clients send).
    audience: str | None = None
    jwks_cache_seconds: int = Field(default=3600, ge=1)
    # An unknown kid triggers at most one refetch per this many seconds (random kids must not
    # turn the server into a load generator against the provider).
    jwks_refetch_seconds: float = Field(default=30.0, ge=0)
    clock_skew_seconds: int = Field(default=30, ge=0, le=300)
    revocation_refresh_seconds: float = Field(default=5.0, ge=0)
    # Claim names, for providers that cannot emit ours.
    role_claim: str = "role"
    fund_claim: str = "fund"
    fhir_user_claim: str = "fhirUser"

    # --- built-in issuer (development and demo only) ----------------------------------------
    dev_issuer_enabled: bool = False
    # Defaults to the origin of the FHIR base URL, so discovery lives at /.well-known/....
    dev_issuer_url: str | None = None
    dev_issuer_private_key: SecretStr | None = None  # PEM (RSA or EC P-256)
    dev_issuer_key_file: Path | None = None  # default: <data_dir>/dev-issuer-key.pem
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)
    # System clients (client-credentials grant): {"client-id": "secret", ...} as JSON.
    client_secrets: dict[str, SecretStr] = Field(default_factory=dict)

    # --- access policy --------------------------------------------------------------------
    # An Encounter, CareTeam or EpisodeOfCare naming a doctor gives access for this long after it ends.
    care_window_days: int = Field(default=365, ge=1)
    break_glass_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # A doctor's $start-care (walk-in patient identified with a proof of presence) lasts this long.
    care_start_days: int = Field(default=30, ge=1, le=365)
    # A counter agent's $assist session (printing for the patient in front of them) lasts this long.
    assist_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # Failed proofs of presence ($match, $start-care, $assist) allowed per caller before 429 (limits syntax).
    presence_miss_limit: str = "10/hour"
    # A prescription presented at a pharmacy stays readable there for this long.
    prescription_presentation_hours: int = Field(default=72, ge=1, le=24 * 31)
    # A pharmacy (the pharmacist and each of their organisations) that looks up this many
    # unknown prescription numbers within the window gets 429 until the window slides (stored
    # in rate_limit_storage: a shared Redis makes the count hold across server processes).
    prescription_lookup_misses: str = "10/15 minutes"
    # The key signing printed prescriptions' QR codes (PEM, Ed25519 or EC P-256); absent: one is
    # generated once into <data_dir>/prescription-signing-key.pem.  Every server process that
    # scans must hold the same key (ehr.security.prescription_signature).
    prescription_signing_key: SecretStr | None = None
    # How long a user's PractitionerRole/Organization memberships are cached in the process.
    identity_cache_seconds: float = Field(default=30.0, ge=0)

    # --- HTTP hardening -------------------------------------------------------------------
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit: str = "600/minute"  # per authenticated client
    rate_limit_anonymous: str = "60/minute"  # per network address, requests without a token
    rate_limit_storage: str = "async+memory://"  # e.g. async+redis://host:6379 for several workers
    hsts_seconds: int = Field(default=31_536_000, ge=0)

    # --- audit ----------------------------------------------------------------------------
    audit_retention_days: int = Field(default=3650, ge=1)
    # Requests put their events in the audit inbox; each server process seals the inbox into the
    # hash chain this often (AuditEvent searches seal first, so they never miss an event).
    audit_seal_interval_seconds: float = Field(default=1.0, gt=0)

    # --- operations: health, metrics, tracing, process supervision (docs/operations.md) -------
    # /health/ready: each check's time bound, and the audit backlog beyond which it fails (0: none).
    health_timeout_seconds: float = Field(default=2.0, gt=0)
    health_max_audit_inbox: int = Field(default=100_000, ge=0)
    # /metrics is off (404) unless this is set; Prometheus then sends it as a bearer token.
    metrics_token: SecretStr | None = None
    # Gauges read from the database are computed at scrape time and reused this long.
    metrics_cache_seconds: float = Field(default=10.0, ge=0)
    # OTLP/HTTP collector for traces (e.g. http://otel-collector:4318); unset and no standard
    # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT in the environment: no tracing.
    otel_endpoint: str | None = None
    # `sijill serve --workers N`: how long a worker may take to answer its supervisor's ping
    # (uvicorn's timeout_worker_healthcheck, 5 s by default: too short on a loaded machine).
    serve_worker_healthcheck_seconds: int = Field(default=60, ge=1)

    # --- care-sheet exchange (claims/) ------------------------------------------------------
    # Every claim is decided within this many hours of its receipt.
    claims_deadline_hours: int = Field(default=48, ge=1)
    # Claims whose deadline is nearer than this are escalated (priority bump + flag).
    claims_escalate_before_hours: int = Field(default=8, ge=0)
    # A worker's hold on a job; a crashed worker's jobs are retaken after it expires.
    claims_lease_seconds: int = Field(default=60, ge=1)
    # Claims leased and decided per transaction: the statements per batch are fixed, so larger
    # batches cost less per claim (200: ~30 % more claims/s than 50 on two cores).
    claims_batch_size: int = Field(default=200, ge=1)
    # After this many failed attempts a job is pended for an agent instead of retried.
    claims_max_attempts: int = Field(default=5, ge=1)
    claims_idle_sleep_seconds: float = Field(default=0.5, gt=0)
    claims_rulesets_dir: Path | None = None  # default: the rule sets shipped in claims/rulesets
    # Notifications: attempts before an outbox entry is given up, and the backoff bounds.
    claims_notify_max_attempts: int = Field(default=8, ge=1)
    claims_notify_backoff_seconds: float = Field(default=30.0, gt=0)
    claims_notify_backoff_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    claims_notify_timeout_seconds: float = Field(default=5.0, gt=0)
    # /health/ready fails when more claims than this wait in the queue (0: no bound).
    claims_ready_max_queue: int = Field(default=500_000, ge=0)
    # `sijill worker` serves its Prometheus metrics on this port (unset: none).
    claims_worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Business day boundaries (SLA report, daily payments) are Moroccan days.
    # Patient notifications by SMS and e-mail (claims/messaging, docs/messaging.md).  No gateway
    # or SMTP host configured: that channel is not used (the Communication is marked not-done).
    claims_sms_gateway_url: str | None = None  # POST {"to": "+212…", "text": "…"} (JSON)
    claims_sms_gateway_token: SecretStr | None = None  # sent as "Authorization: Bearer …"
    claims_smtp_host: str | None = None
    claims_smtp_port: int = Field(default=25, ge=1, le=65535)
    claims_smtp_starttls: bool = False
    claims_smtp_username: str | None = None
    claims_smtp_password: SecretStr | None = None
    claims_smtp_sender: str = "Sijill <no-reply@sijill.ma>"
    claims_messaging_language: str = Field(default="fr", pattern="^(fr|ar)$")  # when the patient states none
    claims_messaging_quick_retries: int = Field(default=3, ge=1)  # in-process tries of one round
    claims_messaging_max_rounds: int = Field(default=4, ge=1)  # rounds (spaced by the notify backoff) before not-done
    claims_status_code_rate: str = "10/minute"  # GET /status/{code} per network address
    # The SMS gateway posts the messages texted to our number to POST /sms/inbound with this
    # secret ("Authorization: Bearer …"); unset, that endpoint does not exist (404).
    claims_sms_inbound_secret: SecretStr | None = None
    # Answers per sender's phone: beyond it a message is logged and audited but not answered
    # (each answer is an SMS we pay for, and a phone trying codes learns nothing faster).
    claims_sms_inbound_rate: str = "5/hour"
    claims_timezone: str = "Africa/Casablanca"
    # A lab or imaging test ordered again within this many days of the same test done or
    # ordered warns the doctor (claims/prescribing); SIJILL_DUPLICATE_TEST_DAYS, 0 turns it off.
    duplicate_test_days: int = Field(default=30, ge=0)
    # Coverage cliff: days an ALD patient keeps the cover of their long-term illness after a
    # threshold-driven end, per fund code (SAMPLE values, JSON); funds not listed: 90.
    claims_ald_transition_days: dict[str, int] = Field(default_factory=lambda: {"AMO-TADAMON": 90, "CNSS": 90, "CNOPS": 90})
    # The worker tells the patient and the fund again this many days before a transition ends.
    claims_transition_renotify_days: int = Field(default=15, ge=1)
    # Benchmarks only (bench/claims_replay.py): the claims clock reads claims_clock_start at the
    # real instant claims_clock_origin and runs claims_clock_speedup times faster (claims/clock.py).
    claims_clock_speedup: float = Field(default=1.0, ge=1.0)
    claims_clock_start: datetime | None = None
    claims_clock_origin: datetime | None = None

    @field_validator("rate_limit", "rate_limit_anonymous", "presence_miss_limit", "prescription_lookup_misses",
                     "claims_status_code_rate", "claims_sms_inbound_rate")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        parse_rate_limit(value)  # raises ValueError on "ten per minute"
        return value

    @field_validator("storage_url")
    @classmethod
    def _known_storage(cls, value: str | None) -> str | None:
        if value is None or value.startswith("file:") or (value.startswith("s3://") and urlsplit(value).netloc):
            return value
        raise ValueError("storage_url is file:<dir> or s3://<bucket>[/prefix]")

    @model_validator(mode="after")
    def _s3_needs_endpoint(self) -> "Settings":
        if self.storage_url and self.storage_url.startswith("s3://") and not self.s3_endpoint:
            raise ValueError("storage_url is s3://…: set s3_endpoint (host:port) too")
        return self

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard_origin(cls, value: list[str]) -> list[str]:
        if "*" in value:
            raise ValueError("cors_origins is an allow-list: name each origin, '*' is refused")
        return [origin.rstrip("/") for origin in value]

    # Derived values.
    def effective_audience(self) -> str:
        return self.audience or self.base_url

    def effective_dev_issuer_url(self) -> str:
        if self.dev_issuer_url:
            return self.dev_issuer_url.rstrip("/")
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    def effective_key_file(self) -> Path:
        return self.dev_issuer_key_file or self.data_dir / "dev-issuer-key.pem"


@lru_cache
def get_settings() -> Settings:
    return Settings()

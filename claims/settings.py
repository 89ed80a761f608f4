"""Tunables of the care-sheet exchange: the ``claims_*`` fields of the one settings class
(environment ``SIJILL_CLAIMS_…``), seen here without their prefix."""
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

RULESETS_DIR = Path(__file__).resolve().parent / "rulesets"


class ClaimsSettings(BaseModel):
    deadline_hours: int = Field(default=48, ge=1)
    escalate_before_hours: int = Field(default=8, ge=0)
    lease_seconds: int = Field(default=60, ge=1)
    batch_size: int = Field(default=200, ge=1)
    max_attempts: int = Field(default=5, ge=1)
    idle_sleep_seconds: float = Field(default=0.5, gt=0)
    rulesets_dir: Path = RULESETS_DIR
    notify_max_attempts: int = Field(default=8, ge=1)
    notify_backoff_seconds: float = Field(default=30.0, gt=0)
    notify_backoff_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    notify_timeout_seconds: float = Field(default=5.0, gt=0)
    timezone: str = "Africa/Casablanca"
    ald_transition_days: dict[str, int] = Field(default_factory=dict)  # per fund code; others: 90
    transition_renotify_days: int = Field(default=15, ge=1)
    sms_gateway_url: str | None = None
    sms_gateway_token: SecretStr | None = None
    sms_inbound_secret: SecretStr | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = "Sijill <no-reply@sijill.ma>"
    messaging_language: str = "fr"
    messaging_quick_retries: int = Field(default=3, ge=1)
    messaging_max_rounds: int = Field(default=4, ge=1)
    clock_speedup: float = Field(default=1.0, ge=1.0)  # benchmarks only: see claims/clock.py
    clock_start: datetime | None = None
    clock_origin: datetime | None = None
    duplicate_test_days: int = Field(default=30, ge=0)  # SIJILL_DUPLICATE_TEST_DAYS (named by the contract)


    def transition_days(self, fund_code: str) -> int:
        """How long an ALD patient keeps the cover of their illness after a threshold-driven end."""
        return self.ald_transition_days.get(fund_code.upper(), 90)


@lru_cache
def get_claims_settings() -> ClaimsSettings:
    from ehr.settings import get_settings

    settings = get_settings()
    values = {k.removeprefix("claims_"): v for k, v in settings.model_dump().items() if k.startswith("claims_")}
    values["duplicate_test_days"] = settings.duplicate_test_days
    if values.get("rulesets_dir") is None:
        values.pop("rulesets_dir", None)
    return ClaimsSettings(**values)

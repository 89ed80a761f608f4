"""Tunables of the care-sheet exchange (environment prefix ``SIJILL_CLAIMS_``)."""
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

RULESETS_DIR = Path(__file__).resolve().parent / "rulesets"


class ClaimsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIJILL_CLAIMS_", env_file=".env", extra="ignore")

    # Every claim is decided within this many hours of its receipt (the promise).
    deadline_hours: int = Field(default=48, ge=1)
    # Claims whose deadline is nearer than this are escalated (priority bump + flag).
    escalate_before_hours: int = Field(default=8, ge=0)
    # A worker's hold on a job; a crashed worker's jobs are retaken after it expires.
    lease_seconds: int = Field(default=60, ge=1)
    batch_size: int = Field(default=50, ge=1)
    # After this many failed attempts a job is pended for an agent instead of retried.
    max_attempts: int = Field(default=5, ge=1)
    idle_sleep_seconds: float = Field(default=0.5, gt=0)
    rulesets_dir: Path = RULESETS_DIR
    # Notifications: attempts before an outbox entry is given up, and the backoff bounds.
    notify_max_attempts: int = Field(default=8, ge=1)
    notify_backoff_seconds: float = Field(default=30.0, gt=0)
    notify_backoff_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    notify_timeout_seconds: float = Field(default=5.0, gt=0)
    # Business day boundaries (SLA report, daily payments) are Moroccan days.
    timezone: str = "Africa/Casablanca"


@lru_cache
def get_claims_settings() -> ClaimsSettings:
    return ClaimsSettings()

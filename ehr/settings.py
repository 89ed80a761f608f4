"""All runtime configuration, read once from the environment (prefix ``SIJILL_``)."""
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIJILL_", env_file=".env", extra="ignore")

    # Embedded default: a SQLite file under ./data; production: postgresql+psycopg://...
    database_url: str = "sqlite+aiosqlite:///./data/sijill.db"
    # Public base of the FHIR API, used in Location headers, Bundle links and fullUrls.
    base_url: str = "http://127.0.0.1:8000/fhir"
    data_dir: Path = Path("./data")
    db_pool_size: int = Field(default=10, ge=1)
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    default_page_size: int = Field(default=20, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    # Bundles larger than this are refused with 413 before any work is done.
    max_bundle_entries: int = Field(default=10_000, ge=1)
    log_level: str = "info"


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""The one settings object. Every value can be set with a DEALFLOW_ environment variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEALFLOW_", env_file=".env", extra="ignore")

    # Where embedded state lives (.dealflow/ next to the working directory by default).
    home: Path = Path(".dealflow")

    # CRM database. Empty means the embedded SQLite file under `home`.
    database_url: str = ""

    # Temporal. Empty address means `dealflow up` starts the embedded dev server.
    temporal_address: str = ""
    temporal_namespace: str = "default"
    temporal_task_queue: str = "dealflow"
    temporal_api_key: str | None = None  # Temporal Cloud API key
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None  # mTLS client certificate (PEM)
    temporal_tls_key: Path | None = None
    embedded_temporal_port: int = 7233
    embedded_temporal_ui_port: int = 8233

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Public base URL (used in links and by providers' signature checks behind a proxy).
    public_url: str = ""

    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")

    default_tenant: str = "demo"
    default_region: str = "US"  # phone numbers without a country code are read in this region

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        # Heroku/compose style URLs mean psycopg 3 here.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix):]
        allowed = ("postgresql+psycopg://", "sqlite://", "sqlite+pysqlite://")
        if not value.startswith(allowed):
            raise ValueError(
                f"unsupported database URL scheme in {value.split('://')[0]!r}: "
                "use postgresql+psycopg://... or sqlite:///path"
            )
        return value

    @field_validator("temporal_address")
    @classmethod
    def _check_temporal_address(cls, value: str) -> str:
        value = value.strip()
        if value and ("://" in value or ":" not in value):
            raise ValueError("temporal address must be host:port, e.g. 127.0.0.1:7233")
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("public URL must start with http:// or https://")
        return value

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'crm.db').resolve()}"

    @property
    def effective_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.embedded_temporal_port}"

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.api_host}:{self.api_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()

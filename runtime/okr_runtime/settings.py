"""Settings read from the environment (``OKR_`` prefix), shared by every service.

Shared keys have one fixed name for all services (``OKR_KAFKA_BOOTSTRAP``);
a service's own keys use its prefix (``OKR_CHECKINS_PORT``) in a subclass.
Settings are passed in, never read from ``os.environ`` by library code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict


class RuntimeSettings(BaseSettings):
    """What every service needs: Kafka, logs, telemetry, HTTP, dead-lettering, event store."""

    model_config = SettingsConfigDict(env_prefix="OKR_", extra="ignore", frozen=True, populate_by_name=True)

    service_name: str = Field(default="okrstream", description="Service name in logs, traces and client ids.")
    kafka_bootstrap: str = Field(
        default="127.0.0.1:19092",
        validation_alias="OKR_KAFKA_BOOTSTRAP",
        description="Kafka bootstrap servers, comma-separated.",
    )
    kafka_replication_factor: PositiveInt = Field(
        default=1,
        validation_alias="OKR_KAFKA_REPLICATION_FACTOR",
        description="Replication factor when this service creates topics (3 in production, via deploy/).",
    )
    kafka_create_topics: bool = Field(
        default=True,
        validation_alias="OKR_KAFKA_CREATE_TOPICS",
        description="Create missing topics at start-up; when false (topics managed by deploy/), a missing topic stops the start.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", validation_alias="OKR_LOG_LEVEL")
    log_format: Literal["json", "text"] = Field(default="json", validation_alias="OKR_LOG_FORMAT")
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias="OKR_OTLP_ENDPOINT",
        description="OTLP/HTTP collector base URL, e.g. http://otel-collector:4318; unset disables export.",
    )
    http_host: str = Field(default="127.0.0.1", validation_alias="OKR_HTTP_HOST")
    http_port: int = Field(default=8000, ge=0, le=65535, validation_alias="OKR_HTTP_PORT")
    dlq_max_attempts: PositiveInt = Field(
        default=5,
        validation_alias="OKR_DLQ_MAX_ATTEMPTS",
        description="Attempts at a message failing for a reason other than an outage before it is dead-lettered.",
    )
    dlq_retry_backoff_s: PositiveFloat = Field(
        default=0.5,
        validation_alias="OKR_DLQ_RETRY_BACKOFF_S",
        description="First retry delay; doubles per attempt.",
    )
    consumer_batch_max_records: PositiveInt = Field(
        default=500,
        validation_alias="OKR_CONSUMER_BATCH_MAX_RECORDS",
        description="Most messages a consumer takes from Kafka at once; their offsets are committed together.",
    )
    consumer_batch_wait_ms: PositiveInt = Field(
        default=50,
        validation_alias="OKR_CONSUMER_BATCH_WAIT_MS",
        description="How long an idle consumer waits for messages per poll (and pauses after an empty poll), and the broker holds a fetch.",
    )
    consumer_outage_max_backoff_s: PositiveFloat = Field(
        default=30.0,
        validation_alias="OKR_CONSUMER_OUTAGE_MAX_BACKOFF_S",
        description="Longest wait between retries of a message while the database or Kafka is unreachable (retried until it is back).",
    )
    event_store: Literal["sqlite", "postgres"] = Field(default="sqlite", validation_alias="OKR_EVENT_STORE")
    sqlite_path: Path = Field(default=Path(".local/okrstream.sqlite"), validation_alias="OKR_SQLITE_PATH")
    postgres_dsn: str | None = Field(
        default=None,
        validation_alias="OKR_POSTGRES_DSN",
        description="postgresql://user:password@host:port/dbname, required when OKR_EVENT_STORE=postgres.",
    )
    postgres_schema: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        validation_alias="OKR_POSTGRES_SCHEMA",
        description="Schema holding the event store's tables (created if missing); the DSN user's default when unset.",
    )

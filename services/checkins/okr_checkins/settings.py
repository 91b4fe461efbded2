"""The check-in service's settings: the shared runtime ones plus its own (``OKR_CHECKINS_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PositiveFloat, PositiveInt

from okr_runtime.settings import RuntimeSettings


class CheckinsSettings(RuntimeSettings):
    """Settings of the check-in service."""

    service_name: str = Field(default="checkins", description="Service name in logs, traces and client ids.")
    tokens_file: Path | None = Field(
        default=None,
        validation_alias="OKR_CHECKINS_TOKENS_FILE",
        description="JSON file mapping SHA-256 hashes of bearer tokens to principals and roles (docs/checkins.md).",
    )
    relay_batch: PositiveInt = Field(
        default=500, validation_alias="OKR_CHECKINS_RELAY_BATCH", description="Events the outbox relay reads per batch."
    )
    relay_idle_s: PositiveFloat = Field(
        default=0.5,
        validation_alias="OKR_CHECKINS_RELAY_IDLE_S",
        description="How often the relay looks for events stored by other processes when idle.",
    )
    relay_retry_s: PositiveFloat = Field(
        default=1.0, validation_alias="OKR_CHECKINS_RELAY_RETRY_S", description="First delay after Kafka refused a batch; doubles to 30 s."
    )
    kpi_group: str = Field(
        default="checkins.kpi", validation_alias="OKR_CHECKINS_KPI_GROUP", description="Consumer group reading okr.metrics.v1."
    )

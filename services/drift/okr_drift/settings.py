"""The drift service's settings: the shared runtime ones plus its own (``OKR_DRIFT_*``)."""

from __future__ import annotations

import zlib
from pathlib import Path

from pydantic import Field, model_validator

from okr_runtime.settings import RuntimeSettings


class DriftSettings(RuntimeSettings):
    """Settings of the drift service."""

    service_name: str = Field(default="drift", description="Service name in logs, traces and client ids.")
    tokens_file: Path | None = Field(
        default=None,
        validation_alias="OKR_DRIFT_TOKENS_FILE",
        description="JSON file of SHA-256 hashes of bearer tokens (the same format as checkins'; docs/checkins.md).",
    )
    group: str = Field(
        default="drift.alerts",
        validation_alias="OKR_DRIFT_GROUP",
        description="Consumer group prefix; with several shards each shard's group is `<prefix>.shard-<i>-of-<n>`.",
    )
    store_path: Path = Field(
        default=Path(".local/drift.sqlite"),
        validation_alias="OKR_DRIFT_SQLITE_PATH",
        description="SQLite file of drift's facts and alerts (when OKR_EVENT_STORE=sqlite).",
    )
    tick_seconds: float = Field(default=60.0, gt=0, validation_alias="OKR_DRIFT_TICK_SECONDS", description="Seconds between clock ticks.")
    shard_index: int = Field(default=0, ge=0, validation_alias="OKR_DRIFT_SHARD_INDEX", description="This replica's shard, 0-based.")
    shard_count: int = Field(default=1, ge=1, validation_alias="OKR_DRIFT_SHARD_COUNT", description="How many shards share the portfolios.")

    @model_validator(mode="after")
    def _shard_in_range(self) -> DriftSettings:
        if self.shard_index >= self.shard_count:
            raise ValueError(f"OKR_DRIFT_SHARD_INDEX={self.shard_index} must be below OKR_DRIFT_SHARD_COUNT={self.shard_count}")
        return self

    @property
    def consumer_group(self) -> str:
        """This shard's consumer group."""
        return self.group if self.shard_count == 1 else f"{self.group}.shard-{self.shard_index}-of-{self.shard_count}"

    def owns(self, portfolio_id: str) -> bool:
        """Whether this shard evaluates the portfolio: CRC-32 of its id modulo the shard count."""
        return zlib.crc32(portfolio_id.encode()) % self.shard_count == self.shard_index

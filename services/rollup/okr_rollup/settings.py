"""The rollup service's settings: the shared runtime ones plus its own (``OKR_ROLLUP_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from okr_runtime.settings import RuntimeSettings


class RollupSettings(RuntimeSettings):
    """Settings of the rollup service."""

    service_name: str = Field(default="rollup", description="Service name in logs, traces and client ids.")
    tokens_file: Path | None = Field(
        default=None,
        validation_alias="OKR_ROLLUP_TOKENS_FILE",
        description="JSON file of SHA-256 hashes of bearer tokens (the same format as checkins'; docs/checkins.md).",
    )
    group: str = Field(default="rollup.scores", validation_alias="OKR_ROLLUP_GROUP", description="Consumer group reading okr.kr-events.v1.")
    store_path: Path = Field(
        default=Path(".local/rollup.sqlite"),
        validation_alias="OKR_ROLLUP_SQLITE_PATH",
        description="SQLite file of the rollup's inputs and score records (when OKR_EVENT_STORE=sqlite).",
    )

"""The web service's settings: the shared runtime ones plus its own (``OKR_WEB_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from okr_runtime.settings import RuntimeSettings


class WebSettings(RuntimeSettings):
    """Settings of the web service: where the APIs it reads are, and how it signs people in."""

    service_name: str = Field(default="web", description="Service name in logs, traces and client ids.")
    tokens_file: Path | None = Field(
        default=None,
        validation_alias="OKR_WEB_TOKENS_FILE",
        description="The bearer tokens file the APIs use (docs/checkins.md); signing in checks a token against it.",
    )
    checkins_url: str = Field(default="http://127.0.0.1:8001", validation_alias="OKR_WEB_CHECKINS_URL", description="Checkins API.")
    rollup_url: str = Field(default="http://127.0.0.1:8002", validation_alias="OKR_WEB_ROLLUP_URL", description="Rollup API.")
    drift_url: str = Field(default="http://127.0.0.1:8003", validation_alias="OKR_WEB_DRIFT_URL", description="Drift API.")
    portfolios: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        validation_alias="OKR_WEB_PORTFOLIOS",
        description="Portfolio ids listed on the start page, comma-separated (any other is reachable by its address).",
    )
    time_zone: str = Field(
        default="UTC",
        validation_alias="OKR_WEB_TIME_ZONE",
        description="Time zone for dates until the browser has told its own (IANA name, e.g. Europe/Berlin).",
    )
    secure_cookies: bool = Field(
        default=False,
        validation_alias="OKR_WEB_SECURE_COOKIES",
        description="Mark the session cookie Secure (set it wherever the pages are served over HTTPS).",
    )
    api_timeout_s: float = Field(default=10.0, gt=0, validation_alias="OKR_WEB_API_TIMEOUT_S", description="Per request to an API.")

    @field_validator("portfolios", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from exc
        return value

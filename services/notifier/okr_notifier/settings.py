"""The notifier's settings: the shared runtime ones plus its own (``OKR_NOTIFIER_*``). Secrets never have defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from okr_runtime.settings import RuntimeSettings


class NotifierSettings(RuntimeSettings):
    """Settings of the notifier service."""

    service_name: str = Field(default="notifier", description="Service name in logs, traces and client ids.")
    group: str = Field(
        default="notifier.alerts", validation_alias="OKR_NOTIFIER_GROUP", description="Consumer group reading okr.alerts.v1."
    )
    store_path: Path = Field(
        default=Path(".local/notifier.sqlite"),
        validation_alias="OKR_NOTIFIER_SQLITE_PATH",
        description="SQLite file of the send log (when OKR_EVENT_STORE=sqlite).",
    )
    routing_file: Path | None = Field(
        default=None,
        validation_alias="OKR_NOTIFIER_ROUTING_FILE",
        description="JSON or YAML routing per portfolio: people's Slack ids and e-mails, routes, quiet hours, links.",
    )
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="OKR_NOTIFIER_SLACK_BOT_TOKEN", description="Slack bot token.")
    slack_api_base: str = Field(
        default="https://slack.com/api", validation_alias="OKR_NOTIFIER_SLACK_API_BASE", description="Slack Web API base URL."
    )
    slack_allowed_hosts: str = Field(
        default="slack.com,hooks.slack.com",
        validation_alias="OKR_NOTIFIER_SLACK_ALLOWED_HOSTS",
        description="Comma-separated hosts Slack requests may go to (API base and incoming webhooks).",
    )
    smtp_host: str | None = Field(default=None, validation_alias="OKR_NOTIFIER_SMTP_HOST", description="SMTP server.")
    smtp_port: int = Field(default=587, validation_alias="OKR_NOTIFIER_SMTP_PORT", description="SMTP port.")
    smtp_starttls: bool = Field(default=True, validation_alias="OKR_NOTIFIER_SMTP_STARTTLS", description="Upgrade with STARTTLS.")
    smtp_username: str | None = Field(default=None, validation_alias="OKR_NOTIFIER_SMTP_USERNAME", description="SMTP user.")
    smtp_password: SecretStr | None = Field(default=None, validation_alias="OKR_NOTIFIER_SMTP_PASSWORD", description="SMTP password.")
    mail_from: str = Field(
        default="okrstream <okrstream@localhost>", validation_alias="OKR_NOTIFIER_MAIL_FROM", description="From address."
    )
    drift_url: str | None = Field(
        default=None, validation_alias="OKR_NOTIFIER_DRIFT_URL", description="Drift's API, for reminders and digests."
    )
    rollup_url: str | None = Field(default=None, validation_alias="OKR_NOTIFIER_ROLLUP_URL", description="Rollup's API, for the readout.")
    api_token: SecretStr | None = Field(
        default=None, validation_alias="OKR_NOTIFIER_API_TOKEN", description="Bearer token the notifier reads drift and rollup with."
    )
    cadence_tick_s: float = Field(
        default=300, gt=0, validation_alias="OKR_NOTIFIER_CADENCE_TICK_S", description="Seconds between cadence checks."
    )
    max_attempts: int = Field(default=5, ge=1, validation_alias="OKR_NOTIFIER_MAX_ATTEMPTS", description="Attempts before dead-lettering.")
    dispatch_idle_s: float = Field(
        default=1.0, gt=0, validation_alias="OKR_NOTIFIER_DISPATCH_IDLE_S", description="Dispatcher wait when nothing is due."
    )

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Hosts outbound Slack requests may reach."""
        return frozenset(h.strip().lower() for h in self.slack_allowed_hosts.split(",") if h.strip())

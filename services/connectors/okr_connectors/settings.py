"""The connectors' settings: the shared runtime ones plus their own (``OKR_CONNECTORS_*``). Secrets never have defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from okr_runtime.settings import RuntimeSettings


class ConnectorsSettings(RuntimeSettings):
    """Settings of the connectors service."""

    service_name: str = Field(default="connectors", description="Service name in logs, traces and client ids.")
    tokens_file: Path | None = Field(
        default=None, validation_alias="OKR_CONNECTORS_TOKENS_FILE", description="Bearer-token hashes of the status API (checkins' format)."
    )
    store_path: Path = Field(
        default=Path(".local/connectors.sqlite"),
        validation_alias="OKR_CONNECTORS_SQLITE_PATH",
        description="SQLite file of the inbox, outbox, checkpoints and unmapped items (when OKR_EVENT_STORE=sqlite).",
    )
    mapping_file: Path | None = Field(
        default=None,
        validation_alias="OKR_CONNECTORS_MAPPING_FILE",
        description="JSON or YAML mapping of Jira/Linear projects, epics, labels and Slack channels to portfolios and KRs.",
    )
    kpi_file: Path | None = Field(
        default=None,
        validation_alias="OKR_CONNECTORS_KPI_FILE",
        description="JSON or YAML KPI sources to pull; none disables KPI pulls.",
    )
    inbox_retention_days: float = Field(
        default=7,
        gt=0,
        validation_alias="OKR_CONNECTORS_INBOX_RETENTION_DAYS",
        description="Days dedup keys are kept (beyond Jira's ~30 min, Linear's 6 h and Slack's retries); published outbox rows go hourly.",
    )
    relay_idle_s: float = Field(
        default=0.5, gt=0, validation_alias="OKR_CONNECTORS_RELAY_IDLE_S", description="Outbox relay wait when idle."
    )
    jira_webhook_secret: SecretStr | None = Field(
        default=None, validation_alias="OKR_CONNECTORS_JIRA_WEBHOOK_SECRET", description="Secret of the Jira admin webhook."
    )
    linear_webhook_secret: SecretStr | None = Field(
        default=None, validation_alias="OKR_CONNECTORS_LINEAR_WEBHOOK_SECRET", description="Signing secret of the Linear webhook."
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias="OKR_CONNECTORS_SLACK_SIGNING_SECRET", description="Slack app signing secret."
    )
    jira_url: str | None = Field(
        default=None, validation_alias="OKR_CONNECTORS_JIRA_URL", description="Jira site, e.g. https://acme.atlassian.net."
    )
    jira_email: str | None = Field(default=None, validation_alias="OKR_CONNECTORS_JIRA_EMAIL", description="Account of the Jira API token.")
    jira_api_token: SecretStr | None = Field(default=None, validation_alias="OKR_CONNECTORS_JIRA_API_TOKEN", description="Jira API token.")
    jira_jql: str = Field(
        default="",
        validation_alias="OKR_CONNECTORS_JIRA_JQL",
        description="The polled scope, e.g. `project in (ABC, DEF)`; the poller adds the `updated` bound and the order.",
    )
    jira_timezone: str = Field(
        default="UTC", validation_alias="OKR_CONNECTORS_JIRA_TIMEZONE", description="Time zone of the Jira user (JQL dates are in it)."
    )
    jira_poll_s: float = Field(
        default=0, ge=0, validation_alias="OKR_CONNECTORS_JIRA_POLL_S", description="Seconds between Jira polls; 0 is off."
    )
    linear_url: str = Field(
        default="https://api.linear.app/graphql", validation_alias="OKR_CONNECTORS_LINEAR_URL", description="Linear GraphQL endpoint."
    )
    linear_api_key: SecretStr | None = Field(default=None, validation_alias="OKR_CONNECTORS_LINEAR_API_KEY", description="Linear API key.")
    linear_poll_s: float = Field(
        default=0, ge=0, validation_alias="OKR_CONNECTORS_LINEAR_POLL_S", description="Seconds between Linear polls; 0 is off."
    )
    poll_since: str | None = Field(
        default=None,
        validation_alias="OKR_CONNECTORS_POLL_SINCE",
        description="ISO time a poller without a checkpoint starts from (default: 30 days ago).",
    )

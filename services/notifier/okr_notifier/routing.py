"""Who is told about an alert, on which channel and when: the routing config and the pure `plan` of notifications.

The config is per portfolio and holds no secrets (tokens, webhook URLs and SMTP passwords
come from the environment). Choices where the issue is silent:

- A portfolio without routing gets nothing sent: `plan` returns an empty plan.
- A route matches an alert when its `rules` (empty: any) contain the alert's rule, the
  alert's severity is at least `min_severity`, and its `audience` (empty: any) shares an
  audience with the alert. Every recipient of the alert gets a matching route's
  channels, except a person whose `roles` are listed and share none with the route's
  audience (so a product lead can be kept off the owner-only route).
- A route with `slack_channel` posts once to that channel instead of a DM per recipient;
  its quiet hours are read in the portfolio's `time_zone`.
- Acknowledged and resolved follow-ups go to the same recipients and channels as the
  raised alert, only for `warning` and `critical` alerts; without the raised event
  (unknown recipients) nothing is sent.
- Quiet hours `[start, end)` are read in each recipient's time zone; a notification that
  falls inside waits until `end` (`not_before`); `critical` alerts ignore them.
- The same recipient, channel and address is notified once even when several routes match.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from okr_contracts.alerts import AlertAcknowledged, AlertRaised, AlertResolved, Audience, DriftRule, Severity

Channel = Literal["slack", "email"]
AlertState = Literal["raised", "acknowledged", "resolved"]
WEBHOOK_PREFIX = "webhook:"
"""Address of a notification posted through an incoming webhook: the prefix and the environment variable holding the URL."""

SEVERITY_RANK: dict[Severity, int] = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
FOLLOW_UP_MIN_SEVERITY = Severity.WARNING
SECRET_KEYS = frozenset({"token", "bot_token", "password", "smtp_password", "secret", "webhook_url", "api_key"})
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class RoutingConfigError(ValueError):
    """The routing config cannot be read or is invalid; the message says where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin')") from error
    return name


TimeZoneName = Annotated[str, AfterValidator(_time_zone)]
"""An IANA time zone, e.g. `Europe/Berlin`."""


class Person(_Model):
    """How to reach one principal."""

    slack_user: str | None = Field(default=None, min_length=1, description="Slack user id for DMs, e.g. `U012AB3CD`.")
    email: str | None = Field(default=None, min_length=3, pattern=r"^[^@\s]+@[^@\s]+$", description="E-mail address.")
    time_zone: TimeZoneName = Field(default="UTC", description="Where quiet hours are read.")
    roles: tuple[Audience, ...] = Field(default=(), description="If set, only routes for one of these audiences reach this person.")


class QuietHours(_Model):
    """A daily window `[start, end)` in local time, e.g. 22:00 to 07:00, that may wrap past midnight."""

    start: time = Field(description="`HH:MM`, local time.")
    end: time = Field(description="`HH:MM`, local time.")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hh_mm(cls, value: object) -> object:
        if isinstance(value, str):
            match = _HHMM.match(value)
            if match is None:
                raise ValueError(f"expected HH:MM (00:00 to 23:59), got {value!r}")
            return time(int(match[1]), int(match[2]))
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours start and end must differ")
        return self

    def ends_after(self, local: datetime) -> datetime | None:
        """The end of the quiet period `local` falls in (local time), or None outside quiet hours."""
        now = local.time().replace(tzinfo=None)
        day = local.date()
        if self.start < self.end:
            return _at(day, self.end, local) if self.start <= now < self.end else None
        if now >= self.start:
            return _at(day + timedelta(days=1), self.end, local)
        return _at(day, self.end, local) if now < self.end else None


def _at(day: date, moment: time, local: datetime) -> datetime:
    return datetime.combine(day, moment, tzinfo=local.tzinfo)


class Route(_Model):
    """Which alerts go where: a match on rule, severity and audience, and the channels to use."""

    rules: tuple[DriftRule, ...] = Field(default=(), description="Rules matched; empty matches every rule.")
    min_severity: Severity = Field(default=Severity.INFO, description="Lowest severity matched.")
    audience: tuple[Audience, ...] = Field(default=(), description="Audiences matched; empty matches every audience.")
    channels: tuple[Channel, ...] = Field(min_length=1, description="Where to send.")
    slack_channel: str | None = Field(default=None, min_length=1, description="Post to this channel id instead of DMs.")
    slack_webhook_env: str | None = Field(
        default=None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Post through the incoming webhook whose URL is in this environment variable (the URL is a secret).",
    )
    quiet_hours: QuietHours | None = Field(default=None, description="Postpone non-critical notifications in this window.")

    @model_validator(mode="after")
    def _slack_channel_needs_slack(self) -> Route:
        if (self.slack_channel is not None or self.slack_webhook_env is not None) and "slack" not in self.channels:
            raise ValueError("slack_channel or slack_webhook_env is set but 'slack' is not among the channels")
        if self.slack_channel is not None and self.slack_webhook_env is not None:
            raise ValueError("give slack_channel or slack_webhook_env, not both")
        return self

    def matches(self, raised: AlertRaised) -> bool:
        """Whether this route is for the alert."""
        return (
            (not self.rules or raised.rule in self.rules)
            and SEVERITY_RANK[raised.severity] >= SEVERITY_RANK[self.min_severity]
            and (not self.audience or bool(set(self.audience) & set(raised.audience)))
        )


class Cadence(_Model):
    """The portfolio's rhythm: weekly check-in reminders, the bi-weekly sync digest and the monthly readout (times in UTC)."""

    reminders: bool = Field(default=True, description="Remind owners whose key results had no check-in this week.")
    reminder_weekday: int = Field(default=2, ge=0, le=6, description="Day of the reminders (0 Monday); the week starts Monday 00:00.")
    reminder_hour: int = Field(default=9, ge=0, le=23, description="Hour of the reminders.")
    digest_to: tuple[str, ...] = Field(default=(), description="Who gets the bi-weekly sync digest (exceptions only).")
    digest_anchor: date = Field(default=date(2026, 1, 5), description="A sync day; digests go every `digest_every_days` from it.")
    digest_every_days: int = Field(default=14, ge=1, description="Days between sync digests.")
    readout_to: tuple[str, ...] = Field(default=(), description="Who gets the monthly executive readout (by e-mail).")
    readout_day: int = Field(default=1, ge=1, le=28, description="Day of the month the readout goes out.")
    name: str = Field(default="", max_length=200, description="Portfolio name shown in the digest and readout (default its id).")


class PortfolioRouting(_Model):
    """The people and routes of one portfolio."""

    people: dict[str, Person] = Field(default_factory=dict, description="Principal → how to reach them.")
    rules: tuple[Route, ...] = Field(default=(), description="Routes; every matching one applies.")
    time_zone: TimeZoneName = Field(default="UTC", description="Where a Slack channel's quiet hours are read.")
    cadence: Cadence | None = Field(default=None, description="Reminders, sync digest and readout; none sends none.")


class RoutingConfig(_Model):
    """Routing of every portfolio, and the base of the links to key results."""

    link_base: str = Field(pattern=r"^https?://[^\s<>|\"']+$", max_length=500, description="e.g. `https://okr.example.com`.")
    portfolios: dict[str, PortfolioRouting] = Field(default_factory=dict, description="Portfolio id → its routing.")

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        found = sorted(_secret_paths(data, ""))
        if found:
            raise ValueError(f"secrets belong in the environment, not in the routing config: {', '.join(found)}")
        return data

    @field_validator("link_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def load(cls, path: str | Path) -> RoutingConfig:
        """Read a JSON or YAML file; raise `RoutingConfigError` saying which file and which field is wrong."""
        path = Path(path)
        try:
            raw = path.read_text(encoding="utf-8")
            data = json.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
            raise RoutingConfigError(f"{path}: cannot read the routing config: {error}") from error
        if not isinstance(data, dict):
            raise RoutingConfigError(f"{path}: expected a mapping with link_base and portfolios, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise RoutingConfigError(f"{path}: invalid routing config:\n{_describe(error)}") from error


def _secret_paths(data: object, where: str) -> list[str]:
    if isinstance(data, dict):
        found = [f"{where}{key}" for key in data if str(key).lower() in SECRET_KEYS]
        for key, value in data.items():
            found += _secret_paths(value, f"{where}{key}.")
        return found
    if isinstance(data, list):
        return [hit for index, item in enumerate(data) for hit in _secret_paths(item, f"{where}{index}.")]
    return []


def _describe(error: ValidationError) -> str:
    return "\n".join(f"  {'.'.join(str(part) for part in item['loc']) or '(top)'}: {item['msg']}" for item in error.errors())


@dataclass(frozen=True)
class Notification:
    """One message to send: an alert's state to one address on one channel, not before a moment."""

    alert_id: str
    state: AlertState
    recipient: str
    channel: Channel
    address: str
    not_before: datetime


class Skip(NamedTuple):
    """A recipient who cannot be reached on a channel, and why."""

    principal: str
    channel: Channel
    reason: str


@dataclass(frozen=True)
class Plan:
    """What to send, and who was skipped."""

    notifications: list[Notification] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)


AlertLifecycleEvent = AlertRaised | AlertAcknowledged | AlertResolved


def plan(event: AlertLifecycleEvent, raised: AlertRaised | None, config: RoutingConfig, now: datetime) -> Plan:
    """The notifications for one lifecycle event, given the raised event it belongs to (the event itself when raised)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    raised = event if isinstance(event, AlertRaised) else raised
    if raised is None:
        return Plan()
    if raised.alert_id != event.alert_id:
        raise ValueError(f"the raised event is for alert {raised.alert_id!r}, not {event.alert_id!r}")
    portfolio = config.portfolios.get(raised.portfolio_id)
    state = _state(event)
    if portfolio is None or (state != "raised" and SEVERITY_RANK[raised.severity] < SEVERITY_RANK[FOLLOW_UP_MIN_SEVERITY]):
        return Plan()
    result = Plan()
    seen: set[tuple[str, str, str]] = set()
    for route in portfolio.rules:
        if route.matches(raised):
            for note in _route(route, raised, state, portfolio, now, result.skipped):
                if (note.recipient, note.channel, note.address) not in seen:
                    seen.add((note.recipient, note.channel, note.address))
                    result.notifications.append(note)
    return result


def _state(event: AlertLifecycleEvent) -> AlertState:
    if isinstance(event, AlertAcknowledged):
        return "acknowledged"
    if isinstance(event, AlertResolved):
        return "resolved"
    return "raised"


def _route(
    route: Route, raised: AlertRaised, state: AlertState, portfolio: PortfolioRouting, now: datetime, skipped: list[Skip]
) -> list[Notification]:
    notes: list[Notification] = []
    critical = raised.severity is Severity.CRITICAL
    for channel in route.channels:
        if channel == "slack" and route.slack_channel is not None:
            when = _not_before(route.quiet_hours, portfolio.time_zone, now, critical)
            notes.append(Notification(raised.alert_id, state, route.slack_channel, channel, route.slack_channel, when))
            continue
        if channel == "slack" and route.slack_webhook_env is not None:
            when = _not_before(route.quiet_hours, portfolio.time_zone, now, critical)
            hook = f"{WEBHOOK_PREFIX}{route.slack_webhook_env}"
            notes.append(Notification(raised.alert_id, state, hook, channel, hook, when))
            continue
        for principal in raised.recipients:
            person = portfolio.people.get(principal)
            if person is not None and person.roles and route.audience and not set(person.roles) & set(route.audience):
                continue
            address = _address(person, channel)
            if person is None or address is None:
                reason = "not listed in the portfolio's people" if person is None else f"no {_field(channel)} configured"
                skip = Skip(principal, channel, reason)
                if skip not in skipped:
                    skipped.append(skip)
                continue
            when = _not_before(route.quiet_hours, person.time_zone, now, critical)
            notes.append(Notification(raised.alert_id, state, principal, channel, address, when))
    return notes


def _field(channel: Channel) -> str:
    return "slack_user" if channel == "slack" else "email"


def _address(person: Person | None, channel: Channel) -> str | None:
    if person is None:
        return None
    return person.slack_user if channel == "slack" else person.email


def _not_before(quiet: QuietHours | None, zone: str, now: datetime, critical: bool) -> datetime:
    if quiet is None or critical:
        return now.astimezone(UTC)
    end = quiet.ends_after(now.astimezone(ZoneInfo(zone)))
    return (end or now).astimezone(UTC)

"""Drift alerts and their lifecycle, published on ``okr.alerts.v1``, keyed by portfolio id."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field

from okr_contracts.envelope import EventPayload
from okr_contracts.types import FiniteFloat, Id, Principal, Text


class DriftRule(StrEnum):
    """The drift rule that raised an alert."""

    STALE = "stale"
    RETIRE_RECOMMENDED = "retire_recommended"
    OFF_TRACK = "off_track"
    PLAN_OVERDUE = "plan_overdue"
    NOT_MOVING = "not_moving"
    CONFIDENCE_FALLING = "confidence_falling"
    BUSY_BUT_FLAT = "busy_but_flat"
    OUTPUT_PHRASED = "output_phrased"
    NOT_MEASURABLE = "not_measurable"
    TOO_MANY_OBJECTIVES = "too_many_objectives"
    TOO_MANY_KEY_RESULTS = "too_many_key_results"
    OVER_ALLOCATED = "over_allocated"
    OFF_BALANCE = "off_balance"


class Severity(StrEnum):
    """How urgent; `critical` ignores quiet hours."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Audience(StrEnum):
    """Who an alert is for."""

    OWNER = "owner"
    PRODUCT_LEAD = "product_lead"
    PORTFOLIO_LEAD = "portfolio_lead"


class AlertEvent(EventPayload):
    """Fields common to every alert lifecycle event."""

    alert_id: Id = Field(description="The alert; one open alert per rule and node.")
    portfolio_id: Id = Field(description="The portfolio; the Kafka key of this topic.")
    rule: DriftRule = Field(description="The rule.")
    node_id: Id = Field(description="The key result, objective, team, or cycle (for a balance) the alert is about.")


class AlertRaised(AlertEvent):
    """A drift rule fired for a node that had no open alert for it."""

    severity: Severity = Field(description="How urgent.")
    audience: tuple[Audience, ...] = Field(min_length=1, description="Who it is for.")
    recipients: tuple[Principal, ...] = Field(default=(), description="Resolved principals for the audience.")
    summary: Text = Field(description="What happened, in one sentence.")
    asked: Text = Field(description="What is asked: update, retire, escalate, or file a recovery plan.")
    facts: dict[str, FiniteFloat | int | bool | str | None] = Field(default_factory=dict, description="The facts that triggered it.")
    raised_at: AwareDatetime = Field(description="When the rule fired (the evaluation clock).")


class AlertAcknowledged(AlertEvent):
    """Someone responsible acknowledged an open alert."""

    by: Principal = Field(description="Who acknowledged.")
    note: str = Field(default="", max_length=4000, description="Optional note.")
    acknowledged_at: AwareDatetime = Field(description="When.")


class AlertResolved(AlertEvent):
    """The condition cleared (or it was resolved by an action such as a recovery plan)."""

    reason: Text = Field(description="Why it is resolved, e.g. `check-in recorded`.")
    resolved_at: AwareDatetime = Field(description="When.")


ALERT_EVENTS: tuple[type[AlertEvent], ...] = (AlertRaised, AlertAcknowledged, AlertResolved)

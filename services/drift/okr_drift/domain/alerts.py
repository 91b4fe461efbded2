"""The alert lifecycle: raised → acknowledged → resolved, one open alert per rule and node.

An alert's id is derived from the portfolio, rule, node and the occurrence of the
condition (the finding's anchor), so re-evaluating the same facts, after a
redelivery or a rebuild, names the same alert and never raises a second one.
Every change comes back as a :class:`Change` carrying the lifecycle event to publish.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from okr_contracts.alerts import AlertAcknowledged, AlertEvent, AlertRaised, AlertResolved, Audience, DriftRule, Severity
from okr_drift.domain.rules import Finding

EVENT_NAMESPACE = uuid.UUID("4f9d6a52-3b51-4c8e-9a3e-0d5b2f7c1e60")


class AlertState(StrEnum):
    """Where an alert is in its lifecycle."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AlertNotFound(LookupError):
    """No alert with that id in the portfolio."""


class AlertClosed(ValueError):
    """The alert is resolved; there is nothing to acknowledge."""


class Subject(BaseModel):
    """The node an alert is about, as the read API filters it."""

    node_kind: str
    title: str = ""
    product_id: str | None = None
    owner: str | None = None
    cycle_id: str | None = None
    recipients: dict[Audience, str] = Field(default_factory=dict)


class Alert(BaseModel):
    """An alert as drift stores and serves it."""

    alert_id: str
    portfolio_id: str
    rule: DriftRule
    node_id: str
    subject: Subject
    state: AlertState = AlertState.OPEN
    severity: Severity
    audience: tuple[Audience, ...]
    recipients: tuple[str, ...]
    summary: str
    asked: str
    facts: dict[str, float | int | bool | str | None]
    raised_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    note: str = ""
    resolved_at: datetime | None = None
    resolved_reason: str | None = None

    @property
    def is_open(self) -> bool:
        """Open or acknowledged: not resolved."""
        return self.state != AlertState.RESOLVED


@dataclass(frozen=True)
class Change:
    """An alert after a lifecycle step and the event that announces it."""

    alert: Alert
    event: AlertEvent
    event_id: uuid.UUID
    at: datetime


def alert_id(portfolio_id: str, rule: DriftRule, node_id: str, anchor: str) -> str:
    """A stable id: readable (`rule:node:digest`) unless the node id is too long for that."""
    digest = hashlib.sha256(f"{portfolio_id}\x1f{rule}\x1f{node_id}\x1f{anchor}".encode()).hexdigest()
    readable = f"{rule}:{node_id}:{digest[:12]}"
    return readable if len(readable) <= 200 else f"{rule}:{digest[:32]}"


class AlertBook:
    """One portfolio's open (and acknowledged) alerts, indexed by node and by id."""

    def __init__(self, portfolio_id: str) -> None:
        self.portfolio_id = portfolio_id
        self.by_node: dict[str, dict[DriftRule, Alert]] = {}
        self.by_id: dict[str, Alert] = {}
        self.used: set[str] = set()
        """Every alert id ever given in this portfolio: a condition that returns after it cleared gets a new one."""

    def load(self, alert: Alert) -> None:
        """Hold an alert read from the store (only open ones are kept)."""
        self.used.add(alert.alert_id)
        if alert.is_open:
            self.by_node.setdefault(alert.node_id, {})[alert.rule] = alert
            self.by_id[alert.alert_id] = alert

    def open_for(self, node_id: str) -> dict[DriftRule, Alert]:
        """The node's open alerts by rule."""
        return self.by_node.get(node_id, {})

    def raise_alert(self, finding: Finding, subject: Subject, at: datetime) -> Change:
        """Open an alert for a finding whose rule has none open on the node."""
        recipients = tuple(dict.fromkeys(p for a in finding.audience if (p := subject.recipients.get(a))))
        base = given = alert_id(self.portfolio_id, finding.rule, finding.node_id, finding.anchor)
        repeat = 1
        while given in self.used:
            repeat += 1
            given = f"{base}.{repeat}"
        alert = Alert(
            alert_id=given,
            portfolio_id=self.portfolio_id,
            rule=finding.rule,
            node_id=finding.node_id,
            subject=subject,
            severity=finding.severity,
            audience=finding.audience,
            recipients=recipients,
            summary=finding.summary,
            asked=finding.asked,
            facts=finding.facts,
            raised_at=at,
        )
        self.load(alert)
        event = AlertRaised(
            **self._common(alert),
            severity=alert.severity,
            audience=alert.audience,
            recipients=alert.recipients,
            summary=alert.summary,
            asked=alert.asked,
            facts=alert.facts,
            raised_at=at,
        )
        return Change(alert, event, _event_id(alert.alert_id, "raised"), at)

    def resolve(self, alert: Alert, reason: str, at: datetime) -> Change:
        """Resolve an open alert because its condition cleared."""
        self._forget(alert)
        done = alert.model_copy(update={"state": AlertState.RESOLVED, "resolved_at": at, "resolved_reason": reason})
        event = AlertResolved(**self._common(done), reason=reason, resolved_at=at)
        return Change(done, event, _event_id(alert.alert_id, "resolved"), at)

    def acknowledge(self, alert: Alert, by: str, note: str, at: datetime) -> Change | None:
        """Acknowledge an open alert; ``None`` if it was acknowledged before (the first acknowledgement stands)."""
        if not alert.is_open:
            raise AlertClosed(f"alert {alert.alert_id} was resolved at {alert.resolved_at}: {alert.resolved_reason}")
        if alert.state == AlertState.ACKNOWLEDGED:
            return None
        done = alert.model_copy(update={"state": AlertState.ACKNOWLEDGED, "acknowledged_by": by, "acknowledged_at": at, "note": note})
        self.load(done)
        event = AlertAcknowledged(**self._common(done), by=by, note=note, acknowledged_at=at)
        return Change(done, event, _event_id(alert.alert_id, "acknowledged"), at)

    def _forget(self, alert: Alert) -> None:
        self.by_id.pop(alert.alert_id, None)
        rules = self.by_node.get(alert.node_id, {})
        rules.pop(alert.rule, None)
        if not rules:
            self.by_node.pop(alert.node_id, None)

    def _common(self, alert: Alert) -> dict[str, str]:
        return {"alert_id": alert.alert_id, "portfolio_id": alert.portfolio_id, "rule": alert.rule, "node_id": alert.node_id}


def _event_id(alert: str, step: str) -> uuid.UUID:
    """Each step of an alert happens once, so its event id is derived from the alert and the step."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{alert}\x1f{step}")

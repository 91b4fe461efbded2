"""The notifier's service layer: alert lifecycle events in, rendered sends in the send log; the dispatcher delivers them.

An event is planned (who, on which channel, not before when), each notification is rendered
once and stored under its key (alert id, state, recipient, channel) before the offset is
committed: a redelivered or replayed event finds its keys taken and adds nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from okr_contracts.alerts import AlertAcknowledged, AlertEvent, AlertRaised, AlertResolved
from okr_contracts.envelope import Envelope, EventPayload
from okr_notifier.messages import alert_link, email_message, slack_message
from okr_notifier.routing import WEBHOOK_PREFIX, Notification, RoutingConfig, plan
from okr_notifier.senders import EmailSender, SendFailed, SlackSender
from okr_notifier.sendlog import Send, SendLog
from okr_runtime.consumer import Delivery, Received, Rejected

log = logging.getLogger(__name__)


class NotifierService:
    """Plans and stores the notifications of each alert lifecycle event."""

    def __init__(self, sends: SendLog, routing: RoutingConfig, clock: Callable[[], datetime]) -> None:
        self.sends = sends
        self.routing = routing
        self.clock = clock

    async def on_alert(self, envelope: Envelope[EventPayload], delivery: Delivery | None = None) -> None:
        """An okr.alerts.v1 event."""
        event = envelope.data
        if not isinstance(event, AlertEvent):
            raise Rejected(f"{envelope.type} is not an alert lifecycle event")
        if isinstance(event, AlertRaised):
            await asyncio.to_thread(self.sends.remember_raised, event.alert_id, event.model_dump_json())
            raised: AlertRaised | None = event
        else:
            kept = await asyncio.to_thread(self.sends.raised, event.alert_id)
            raised = AlertRaised.model_validate_json(kept) if kept else None
        now = self.clock()
        planned = plan(event, raised, self.routing, now)  # type: ignore[arg-type]
        for skip in planned.skipped:
            log.warning("alert %s: %s not notified on %s: %s", event.alert_id, skip.principal, skip.channel, skip.reason)
        if raised is None or not planned.notifications:
            return
        sends = [self._send(n, event, raised) for n in planned.notifications]
        new = await asyncio.to_thread(self.sends.enqueue, sends, now=now)
        log.info("alert %s %s: %d notifications queued (%d already known)", event.alert_id, sends[0].state, new, len(sends) - new)

    async def on_alerts(self, received: Sequence[Received]) -> list[Rejected | None]:
        """Many okr.alerts.v1 events at once: planned in order as :meth:`on_alert` plans each, stored in one transaction."""
        verdicts: list[Rejected | None] = []
        events: list[AlertEvent] = []
        for envelope, _ in received:
            if isinstance(envelope.data, AlertEvent):
                events.append(envelope.data)
                verdicts.append(None)
            else:
                verdicts.append(Rejected(f"{envelope.type} is not an alert lifecycle event"))
        if events:
            await asyncio.to_thread(self._intake, events)
        return verdicts

    def _intake(self, events: Sequence[AlertEvent]) -> None:
        kept = self.sends.raised_many([e.alert_id for e in events if not isinstance(e, AlertRaised)])
        known: dict[str, AlertRaised] = {}
        raised_rows: list[tuple[str, str]] = []
        planned: list[tuple[Sequence[Send], datetime]] = []
        for event in events:
            raised: AlertRaised | None
            if isinstance(event, AlertRaised):
                raised_rows.append((event.alert_id, event.model_dump_json()))
                known.setdefault(event.alert_id, event)
                raised = event
            else:
                raised = known.get(event.alert_id)
            if raised is None and event.alert_id in kept:
                raised = known[event.alert_id] = AlertRaised.model_validate_json(kept[event.alert_id])
            now = self.clock()
            plan_of = plan(event, raised, self.routing, now)  # type: ignore[arg-type]
            for skip in plan_of.skipped:
                log.warning("alert %s: %s not notified on %s: %s", event.alert_id, skip.principal, skip.channel, skip.reason)
            if raised is not None and plan_of.notifications:
                planned.append(([self._send(n, event, raised) for n in plan_of.notifications], now))
        news = self.sends.intake(raised_rows, planned)
        queued = sum(news)
        log.info(
            "%d alert events: %d notifications queued (%d already known)", len(events), queued, sum(len(s) for s, _ in planned) - queued
        )

    def _send(self, notification: Notification, event: AlertEvent, raised: AlertRaised) -> Send:
        link = alert_link(self.routing.link_base, raised)
        details: dict[str, Any] = {}
        if isinstance(event, AlertAcknowledged):
            details = {"acknowledged_by": event.by, "note": event.note}
        elif isinstance(event, AlertResolved):
            details = {"resolved_reason": event.reason}
        if notification.channel == "slack":
            payload: dict[str, Any] = {
                "channel": notification.address,
                "message": slack_message(raised, notification.state, link=link, **details),
            }
        else:
            mail = email_message(raised, notification.state, link=link, **details)
            payload = {"to": notification.address, "subject": mail.subject, "text": mail.text, "html": mail.html}
        return Send(
            alert_id=notification.alert_id,
            state=notification.state,
            recipient=notification.recipient,
            channel=notification.channel,
            address=notification.address,
            payload=payload,
            next_attempt_at=notification.not_before,
        )


def deliverer(slack: SlackSender | None, email: EmailSender | None, env: Mapping[str, str]) -> Callable[[Send], Any]:
    """Sends one stored notification on its channel; a channel that is not configured is a permanent failure.

    An incoming-webhook address names the environment variable that holds the URL, read at send time.
    """

    async def deliver(send: Send) -> None:
        if send.channel == "slack" and send.address.startswith(WEBHOOK_PREFIX):
            name = send.address.removeprefix(WEBHOOK_PREFIX)
            url = env.get(name)
            if slack is None or not url:
                raise SendFailed(f"incoming webhook not configured: set {name} to its URL", retryable=False)
            await slack.post_webhook(url, send.payload["message"])
        elif send.channel == "slack":
            if slack is None:
                raise SendFailed("Slack is not configured (OKR_NOTIFIER_SLACK_BOT_TOKEN)", retryable=False)
            await slack.post_message(send.payload["channel"], send.payload["message"])
        elif send.channel == "email":
            if email is None:
                raise SendFailed("e-mail is not configured (OKR_NOTIFIER_SMTP_HOST)", retryable=False)
            p = send.payload
            await email.send(p["to"], p["subject"], p["text"], p["html"])
        else:
            raise SendFailed(f"unknown channel {send.channel!r}", retryable=False)

    return deliver

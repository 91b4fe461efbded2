"""The notifier's delivery outcomes as OpenTelemetry counters: ``okr.notifications.sent`` and ``okr.notifications.failed``."""

from __future__ import annotations

from okr_notifier.sendlog import Send
from okr_runtime.instruments import NOTIFICATIONS_FAILED, NOTIFICATIONS_SENT
from okr_runtime.telemetry import Telemetry


class SendCounters:
    """Counts each delivery attempt by channel (and, for a failure, its reason class)."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._sent = telemetry.counter(NOTIFICATIONS_SENT)
        self._failed = telemetry.counter(NOTIFICATIONS_FAILED)

    def sent(self, send: Send) -> None:
        """One notification delivered."""
        self._sent.add(1, {"channel": send.channel})

    def failed(self, send: Send, reason: str) -> None:
        """One attempt failed."""
        self._failed.add(1, {"channel": send.channel, "reason": reason})

"""Drift's alerts as an OpenTelemetry counter: ``okr.alerts.raised``, by rule and severity."""

from __future__ import annotations

from okr_drift.application import Raised
from okr_drift.domain.alerts import Alert
from okr_runtime.instruments import ALERTS_RAISED
from okr_runtime.telemetry import Telemetry


def count_raised(telemetry: Telemetry) -> Raised:
    """What DriftService tells of each alert it raised and stored: one more on ``okr.alerts.raised``."""
    raised = telemetry.counter(ALERTS_RAISED)

    def count(alert: Alert) -> None:
        raised.add(1, {"rule": alert.rule.value, "severity": alert.severity.value})

    return count

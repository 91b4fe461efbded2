"""Every metric okrstream defines, named once: the services create them from here, the docs and the dashboard read them.

``INSTRUMENTS`` lists our own instruments; ``INSTRUMENTATION`` the ones FastAPI's and
FastStream's OpenTelemetry instrumentation emit, as installed (without
``OTEL_SEMCONV_STABILITY_OPT_IN``). :func:`prometheus_name` is the name a metric
gets in Prometheus through the OpenTelemetry Collector's Prometheus exporters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "histogram", "observable_gauge", "up_down_counter"]

TOPIC = "messaging.destination.name"
GROUP = "messaging.consumer.group.name"
PARTITION = "messaging.destination.partition.id"


@dataclass(frozen=True)
class Instrument:
    """A metric's name, kind, unit, description, attributes, who emits it and what deserves an alert."""

    name: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...]
    emitted_by: str
    alert: str = ""


MESSAGES_PROCESSED = Instrument(
    "okr.messages.processed",
    "counter",
    "{message}",
    "Messages a consumer finished with, by outcome: processed, retried (a transient failure, redelivered) or dead_lettered.",
    (TOPIC, GROUP, "outcome"),
    "checkins, rollup, drift, notifier (every consumer)",
    "any dead_lettered; retried climbing for minutes (a dependency is down)",
)
CONSUMER_LAG = Instrument(
    "okr.consumer.lag",
    "observable_gauge",
    "{message}",
    "Messages in a partition after the consumer group's committed offset (the whole partition before its first commit).",
    (GROUP, TOPIC, PARTITION),
    "checkins, rollup, drift, notifier (measured from Kafka every 15 s)",
    "group lag growing for 10 minutes; the scaling signal",
)
OUTBOX_BACKLOG = Instrument(
    "okr.outbox.backlog",
    "observable_gauge",
    "{record}",
    "Records stored but not yet published to Kafka (for the notifier: notifications not yet delivered).",
    ("outbox",),
    "checkins, rollup, drift, connectors, notifier",
    "above zero and not falling for 10 minutes (Kafka or Slack/SMTP unreachable)",
)
ALERTS_RAISED = Instrument(
    "okr.alerts.raised",
    "counter",
    "{alert}",
    "Drift alerts raised, counted once when first stored.",
    ("rule", "severity"),
    "drift",
    "a burst after a deploy (a rule misfiring)",
)
NOTIFICATIONS_SENT = Instrument(
    "okr.notifications.sent",
    "counter",
    "{notification}",
    "Notifications delivered to Slack or by e-mail.",
    ("channel",),
    "notifier",
)
NOTIFICATIONS_FAILED = Instrument(
    "okr.notifications.failed",
    "counter",
    "{notification}",
    "Failed delivery attempts, by reason: transient (retried), permanent, or the class of an unexpected error.",
    ("channel", "reason"),
    "notifier",
    "any permanent; transient for every attempt of a channel",
)

INSTRUMENTS: tuple[Instrument, ...] = (
    MESSAGES_PROCESSED,
    CONSUMER_LAG,
    OUTBOX_BACKLOG,
    ALERTS_RAISED,
    NOTIFICATIONS_SENT,
    NOTIFICATIONS_FAILED,
)
"""okrstream's own instruments."""

INSTRUMENTATION: tuple[Instrument, ...] = (
    Instrument(
        "http.server.duration",
        "histogram",
        "ms",
        "Duration of inbound HTTP requests.",
        ("http.method", "http.status_code", "http.target"),
        "every service (FastAPI instrumentation)",
        "p95 above the SLO; 5xx rate",
    ),
    Instrument(
        "http.server.active_requests",
        "up_down_counter",
        "{request}",
        "HTTP requests in flight.",
        ("http.method",),
        "every service (FastAPI instrumentation)",
    ),
    Instrument(
        "messaging.process.duration",
        "histogram",
        "s",
        "Duration of handling one consumed message.",
        ("messaging.destination.name", "messaging.system"),
        "every consumer (FastStream middleware)",
    ),
    Instrument(
        "messaging.publish.duration",
        "histogram",
        "s",
        "Duration of one publish to Kafka.",
        ("messaging.destination.name", "messaging.system"),
        "every publisher (FastStream middleware)",
    ),
)
"""What FastAPI's and FastStream's instrumentation emit on the same meter provider."""

_UNITS = {"ms": "milliseconds", "s": "seconds", "By": "bytes", "1": "ratio"}


def prometheus_name(instrument: Instrument) -> str:
    """The metric's base name in Prometheus, as the Collector's exporters normalise it.

    Dots become underscores, a unit in braces is dropped, a known unit is spelled
    out as a suffix, and a counter ends in ``_total``; a histogram's series add
    ``_bucket``, ``_sum`` and ``_count`` to this name.
    """
    name = re.sub(r"[^a-zA-Z0-9_]+", "_", instrument.name).strip("_")
    unit = "" if instrument.unit.startswith("{") else _UNITS.get(instrument.unit, instrument.unit)
    if unit and not name.endswith(f"_{unit}"):
        name = f"{name}_{unit}"
    return f"{name}_total" if instrument.kind == "counter" else name


def prometheus_label(attribute: str) -> str:
    """An attribute's label name in Prometheus."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", attribute)

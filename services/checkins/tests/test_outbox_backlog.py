"""The outbox backlog gauge: stored history events the relay has not published yet (bindings are not history)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.persistence import Tracking
from faststream.kafka import KafkaBroker

from okr_checkins.outbox import HISTORY_TOPICS, TRACKING_NAME, OutboxRelay, SingleProcessLease, tracking_recorder
from okr_runtime.instruments import OUTBOX_BACKLOG
from okr_runtime.telemetry import observe_backlog
from okr_runtime.testing import MetricsProbe


@pytest.fixture
def probe() -> Iterator[MetricsProbe]:
    probe = MetricsProbe("checkins")
    yield probe
    probe.close()


def test_the_backlog_counts_history_events_after_the_relays_position_and_drops_to_zero_once_published(
    seeded: Any, store_env: dict[str, str], probe: MetricsProbe
) -> None:
    relay = OutboxRelay(seeded.checkins, KafkaBroker("localhost:9092"), tracking_recorder(store_env), SingleProcessLease())
    observe_backlog(probe.telemetry, "checkins_outbox", relay.backlog)
    history = seeded.checkins.recorder.select_notifications(1, 10_000, topics=HISTORY_TOPICS)
    assert len(history) < seeded.checkins.recorder.max_notification_id()  # the seed's KPI binding is stored, and never relayed

    assert probe.value(OUTBOX_BACKLOG, {"outbox": "checkins_outbox"}) == len(history)
    relay.tracking.insert_tracking(Tracking(TRACKING_NAME, history[2].id))  # Kafka acknowledged the first three
    assert probe.value(OUTBOX_BACKLOG, {"outbox": "checkins_outbox"}) == len(history) - 3
    relay.tracking.insert_tracking(Tracking(TRACKING_NAME, history[-1].id))
    assert probe.value(OUTBOX_BACKLOG, {"outbox": "checkins_outbox"}) == 0

"""okrstream's own instruments: the consumer's outcome counter over FastStream's in-memory broker, gauges fed by sources."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.metrics import Observation

from okr_contracts import Envelope, dead_letter_topic, topic
from okr_contracts.envelope import EventPayload
from okr_contracts.kr_events import CheckInRecorded
from okr_runtime.consumer import Delivery, Rejected, subscribe
from okr_runtime.instruments import (
    ALERTS_RAISED,
    CONSUMER_LAG,
    GROUP,
    INSTRUMENTATION,
    INSTRUMENTS,
    MESSAGES_PROCESSED,
    OUTBOX_BACKLOG,
    TOPIC,
    prometheus_name,
)
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import observe_backlog
from okr_runtime.testing import MetricsProbe

KR_EVENTS = topic("okr.kr-events.v1")
GROUP_ID = "metrics-test"
SETTINGS = RuntimeSettings(service_name="metrics-test", dlq_max_attempts=3, dlq_retry_backoff_s=0.001)


@pytest.fixture
def probe() -> Iterator[MetricsProbe]:
    probe = MetricsProbe("metrics-test")
    yield probe
    probe.close()


def checkin(kr_id: str) -> bytes:
    payload = CheckInRecorded(
        portfolio_id="p", aggregate_id=kr_id, aggregate_version=2, actor="ana", kr_id=kr_id, confidence=0.5, what_changed="x"
    )
    return json.dumps(Envelope.wrap(payload, producer="test").as_json()).encode()


def outcomes(probe: MetricsProbe) -> dict[str, float]:
    counted: dict[str, float] = {}
    for attributes, value in probe.read(MESSAGES_PROCESSED).items():
        labels = dict(attributes)
        assert (labels[TOPIC], labels[GROUP]) == (KR_EVENTS.name, GROUP_ID)
        counted[str(labels["outcome"])] = value
    return counted


def consumer_broker(probe: MetricsProbe, dead_letters: list[bytes]) -> KafkaBroker:
    broker = KafkaBroker("localhost:9092")

    async def handle(envelope: Envelope[EventPayload], delivery: Delivery) -> None:
        kr_id = str(getattr(envelope.data, "kr_id", ""))
        if kr_id == "retired":
            raise Rejected("kr retired is retired")
        if kr_id == "flaky":
            raise ValueError("projection bug")

    subscribe(broker, KR_EVENTS, group_id=GROUP_ID, handler=handle, settings=SETTINGS, telemetry=probe.telemetry)

    @broker.subscriber(dead_letter_topic(GROUP_ID))
    async def dead(message: KafkaMessage) -> None:
        dead_letters.append(message.body)

    return broker


async def test_the_consumer_counts_each_message_it_processes_or_dead_letters_with_its_topic_and_group(probe: MetricsProbe) -> None:
    dead: list[bytes] = []
    async with TestKafkaBroker(consumer_broker(probe, dead)) as broker:
        for value in (checkin("a"), checkin("b"), b"not json", checkin("retired")):
            await broker.publish(value, topic=KR_EVENTS.name, key=b"p")

    assert outcomes(probe) == {"processed": 2, "dead_lettered": 2}
    assert len(dead) == 2


async def test_a_transient_failure_counts_as_retried_until_its_last_attempt_is_dead_lettered(probe: MetricsProbe) -> None:
    dead: list[bytes] = []
    flaky = checkin("flaky")
    async with TestKafkaBroker(consumer_broker(probe, dead)) as broker:
        for _ in range(SETTINGS.dlq_max_attempts):  # the in-memory broker's offset is always 0: this is the same message again
            await broker.publish(flaky, topic=KR_EVENTS.name, key=b"p")

    assert outcomes(probe) == {"retried": SETTINGS.dlq_max_attempts - 1, "dead_lettered": 1}
    assert dead == [flaky]


def test_a_gauge_reads_every_source_and_skips_one_that_fails(probe: MetricsProbe) -> None:
    counts = {"a_outbox": 3}

    def broken() -> int:
        raise ConnectionError("database unreachable")

    observe_backlog(probe.telemetry, "a_outbox", lambda: counts["a_outbox"])
    observe_backlog(probe.telemetry, "b_outbox", broken)
    probe.telemetry.observe(CONSUMER_LAG, lambda: [Observation(7, {GROUP: "g"})])

    assert probe.read(OUTBOX_BACKLOG) == {frozenset({("outbox", "a_outbox")}): 3}
    counts["a_outbox"] = 0
    assert probe.value(OUTBOX_BACKLOG, {"outbox": "a_outbox"}) == 0
    assert probe.value(CONSUMER_LAG, {GROUP: "g"}) == 7


def test_an_instrument_is_created_only_as_the_kind_the_registry_says(probe: MetricsProbe) -> None:
    with pytest.raises(ValueError, match="not a counter"):
        probe.telemetry.counter(OUTBOX_BACKLOG)
    with pytest.raises(ValueError, match="not an observable gauge"):
        probe.telemetry.observe(ALERTS_RAISED, list)


def test_prometheus_names_follow_the_collectors_normalisation() -> None:
    names = {i.name: prometheus_name(i) for i in (*INSTRUMENTS, *INSTRUMENTATION)}
    assert names["okr.messages.processed"] == "okr_messages_processed_total"
    assert names["okr.consumer.lag"] == "okr_consumer_lag"
    assert names["okr.outbox.backlog"] == "okr_outbox_backlog"
    assert names["http.server.duration"] == "http_server_duration_milliseconds"
    assert names["messaging.process.duration"] == "messaging_process_duration_seconds"
    assert len(set(names.values())) == len(names)

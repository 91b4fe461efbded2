"""Faults survived: after each, nothing is lost, nothing is scored, alerted or notified twice, and the
portfolio ends exactly where a clean run of the same stream ends.

The system runs on a Kafka broker of the module's own (`restartable_kafka`), so a stopped
broker and poison messages disturb no other test. One clean run is the reference for all.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from okr_contracts.envelope import Headers
from okr_contracts.topics import ALERTS_TOPIC, DELIVERY_TOPIC, KR_EVENTS_TOPIC, METRICS_TOPIC, SCORES_TOPIC

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:6]
PORTFOLIOS = [f"f-{RUN}-{n}" for n in range(12)]


@pytest.fixture(scope="module")
def stream(restartable_kafka: Any, launch: Any, vendors: Any, stream_factory: Any) -> Any:
    """All five services on the module's broker, and the clean run's reference."""
    system = launch(restartable_kafka.bootstrap, portfolios=PORTFOLIOS, slack=vendors.slack, mailbox=vendors.mailbox)
    found = stream_factory(system, PORTFOLIOS)
    found.clean = found.run_clean()
    return found


@pytest.mark.parametrize("service", ["rollup", "drift", "notifier", "checkins", "connectors"])
def test_a_service_killed_mid_stream_and_restarted_converges_to_the_clean_run(stream: Any, service: str) -> None:
    pid = stream.portfolio()
    items = stream.inputs(pid)
    half = len(items) // 2
    stream.feed(pid, items[:half])
    stream.system.kill(service)
    restart = stream.in_background(lambda: stream.system.start(service))
    stream.feed(pid, items[half:])  # checkins and connectors: the client retries until they are back
    restart.join(120)
    stream.converged(pid)


def test_the_broker_stopped_and_restarted_mid_stream_loses_and_repeats_nothing(stream: Any, restartable_kafka: Any) -> None:
    pid = stream.portfolio()
    items = stream.inputs(pid)
    half = len(items) // 2
    stream.feed(pid, items[:half])
    restartable_kafka.stop()
    restart = stream.in_background(restartable_kafka.start)
    stream.feed(pid, items[half:])  # check-ins and webhooks are stored meanwhile; KPI samples wait for the broker
    restart.join(180)
    stream.converged(pid)


POISON = b'{"event_id": "not-a-uuid", "type": "Nonsense"'


def test_a_poison_message_on_each_input_topic_is_dead_lettered_with_its_reason_and_what_follows_is_processed(
    stream: Any,
) -> None:
    pid = stream.portfolio()
    items = stream.inputs(pid)
    half = len(items) // 2
    stream.feed(pid, items[:half])
    keys = {
        KR_EVENTS_TOPIC.name: pid,
        SCORES_TOPIC.name: f"{pid}/poison",
        DELIVERY_TOPIC.name: pid,
        METRICS_TOPIC.name: pid,
        ALERTS_TOPIC.name: pid,
    }
    for topic, key in keys.items():
        stream.system.publish(topic, POISON, key.encode(), {"content-type": "application/json"})
    stream.feed(pid, items[half:])
    stream.converged(pid)

    groups = {
        "rollup": [KR_EVENTS_TOPIC.name],
        "drift": [KR_EVENTS_TOPIC.name, SCORES_TOPIC.name, DELIVERY_TOPIC.name],
        "checkins.kpi": [METRICS_TOPIC.name],
        "notifier": [ALERTS_TOPIC.name],
    }
    for group, topics in groups.items():
        dead = [r for r in stream.read_all(stream.system.dead_letter_topic(group), pid) if r.value == POISON]
        headers = [{name: value.decode() for name, value in r.headers} for r in dead]
        assert sorted(h[Headers.DLQ_SOURCE_TOPIC] for h in headers) == sorted(topics), group
        assert all(h[Headers.DLQ_REASON] and h[Headers.DLQ_CONSUMER_GROUP] == stream.system.groups[group] for h in headers)


def test_every_delivery_twice_doubles_nothing(stream: Any) -> None:
    pid = stream.portfolio()
    stream.feed(pid, stream.inputs(pid), twice=True)  # each request, webhook and sample again
    for topic in (KR_EVENTS_TOPIC.name, SCORES_TOPIC.name, DELIVERY_TOPIC.name, ALERTS_TOPIC.name):  # and every record between services
        for record in stream.read_all(topic, pid):
            stream.system.publish(topic, record.value, record.key, {name: value.decode() for name, value in record.headers})
    stream.converged(pid)

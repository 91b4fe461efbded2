"""The consumer takes messages in batches from a real broker: one commit per batch, exact dead letters, rewinds that lose nothing.

Every test publishes its messages before the consumer starts, so its first poll takes
many of them at once (what a consumer catching up after a deploy or an outage sees).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faststream.kafka import KafkaBroker

from okr_contracts import Envelope, Headers, TopicSpec, dead_letter_topic, topic
from okr_contracts.envelope import EventPayload
from okr_contracts.kr_events import CheckInRecorded
from okr_runtime.consumer import Delivery, Received, Rejected, subscribe
from okr_runtime.kafka import create_broker, ensure_topics
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import create_telemetry

pytestmark = pytest.mark.integration
CommittedOffset = Callable[..., Awaitable[int | None]]
WAIT_S = 60


def checkin(kr_id: str) -> bytes:
    payload = CheckInRecorded(
        portfolio_id="p", aggregate_id=kr_id, aggregate_version=2, actor="ana", kr_id=kr_id, confidence=0.5, what_changed="x"
    )
    return json.dumps(Envelope.wrap(payload, producer="test").as_json()).encode()


def kr_of(envelope: Envelope[EventPayload]) -> str:
    return str(getattr(envelope.data, "kr_id", ""))


async def topic_with(
    bootstrap: str, unique: str, values: Sequence[bytes], headers: dict[int, list[tuple[str, bytes | None]]] | None = None
) -> TopicSpec:
    """A one-partition copy of okr.kr-events.v1 holding `values` (with raw `headers` at some indexes), in order."""
    spec = dataclasses.replace(topic("okr.kr-events.v1"), name=f"okr.kr-events.v1.{unique}", partitions=1)
    await ensure_topics(bootstrap, [spec], replication_factor=1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for index, value in enumerate(values):
            await producer.send_and_wait(spec.name, value, key=b"p", headers=(headers or {}).get(index, []))
    finally:
        await producer.stop()
    return spec


def settings_for(bootstrap: str, batch_max: int = 500) -> RuntimeSettings:
    return RuntimeSettings(
        service_name="batch-consumer",
        kafka_bootstrap=bootstrap,
        dlq_max_attempts=3,
        dlq_retry_backoff_s=0.05,
        consumer_batch_max_records=batch_max,
        consumer_outage_max_backoff_s=0.2,
    )


@asynccontextmanager
async def running(broker: KafkaBroker) -> AsyncIterator[None]:
    await broker.start()
    try:
        yield
    finally:
        await broker.stop()


async def dead_letters(bootstrap: str, group: str, expected: int) -> list[bytes]:
    """The values on the group's dead-letter topic: `expected` of them, then whatever else comes within 2 s (a duplicate would)."""
    consumer = AIOKafkaConsumer(
        dead_letter_topic(group), bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(values) < expected:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    values.extend(r.value for r in records)
        for records in (await consumer.getmany(timeout_ms=2000)).values():
            values.extend(r.value for r in records)
    finally:
        await consumer.stop()
    return values


async def test_a_transient_failure_mid_batch_commits_what_came_before_and_dead_letters_nothing_twice(
    kafka_bootstrap: str, unique: str, committed_offset: CommittedOffset
) -> None:
    values = [checkin("a"), b"not json", checkin("b"), checkin("flaky"), b"{also not json", checkin("c"), checkin("broken")]
    spec = await topic_with(kafka_bootstrap, unique, values)
    group = f"batch-retry-{unique}"
    settings = settings_for(kafka_bootstrap)
    broker = create_broker(settings, create_telemetry(settings))
    handled: list[str] = []
    failures = {"flaky": 2}
    done = asyncio.Event()

    async def handle(envelope: Envelope[EventPayload], delivery: Delivery) -> None:
        kr = kr_of(envelope)
        if failures.get(kr, 0) > 0:
            failures[kr] -= 1
            raise ValueError("a bug that goes away")
        if kr == "broken":
            done.set()
            raise ValueError("a bug that stays")
        handled.append(kr)

    subscribe(broker, spec, group_id=group, handler=handle, settings=settings, telemetry=create_telemetry(settings))
    async with running(broker):
        await asyncio.wait_for(done.wait(), WAIT_S)
        await asyncio.sleep(0.5)  # room for a wrong redelivery to show

    # what came before the failure was committed, so it is not handled again after the rewind
    assert handled == ["a", "b", "flaky", "c"]
    assert await dead_letters(kafka_bootstrap, group, 3) == [b"not json", b"{also not json", values[-1]]
    assert await committed_offset(kafka_bootstrap, group, spec.name) == len(values)


async def test_a_batch_handler_takes_many_messages_at_once_and_its_refusals_are_dead_lettered(
    kafka_bootstrap: str, unique: str, committed_offset: CommittedOffset
) -> None:
    krs = [f"kr-{n}" for n in range(40)]
    values = [checkin(kr) for kr in krs]
    values[7] = b"\x00 not json"
    values[21] = checkin("retired")
    spec = await topic_with(kafka_bootstrap, unique, values)
    group = f"batch-handler-{unique}"
    settings = settings_for(kafka_bootstrap, batch_max=16)
    broker = create_broker(settings, create_telemetry(settings))
    sizes: list[int] = []
    applied: list[str] = []
    one_by_one: list[str] = []
    done = asyncio.Event()

    async def handle(envelope: Envelope[EventPayload], delivery: Delivery) -> None:
        one_by_one.append(kr_of(envelope))
        applied.append(kr_of(envelope))
        if kr_of(envelope) == krs[-1]:
            done.set()

    async def handle_batch(received: Sequence[Received]) -> list[Rejected | None]:
        sizes.append(len(received))
        verdicts: list[Rejected | None] = []
        for envelope, _ in received:
            if kr_of(envelope) == "retired":
                verdicts.append(Rejected("kr retired is retired"))
                continue
            applied.append(kr_of(envelope))
            verdicts.append(None)
        if krs[-1] in applied:
            done.set()
        return verdicts

    subscribe(
        broker, spec, group_id=group, handler=handle, batch_handler=handle_batch, settings=settings, telemetry=create_telemetry(settings)
    )
    async with running(broker):
        await asyncio.wait_for(done.wait(), WAIT_S)
        await asyncio.sleep(0.5)

    assert 1 < max(sizes) <= 16
    assert applied == [kr for n, kr in enumerate(krs) if n not in (7, 21)]
    assert await dead_letters(kafka_bootstrap, group, 2) == [values[7], values[21]]
    assert await committed_offset(kafka_bootstrap, group, spec.name) == len(values)
    # the messages a batch handler applied and any one-at-a-time ones are the same events once each
    assert len(applied) == len(set(applied))
    assert not one_by_one or set(one_by_one) <= set(applied)


async def test_a_batch_handler_that_fails_hands_the_batch_to_the_handler_one_message_at_a_time(
    kafka_bootstrap: str, unique: str, committed_offset: CommittedOffset
) -> None:
    values = [checkin(f"kr-{n}") for n in range(10)] + [checkin("retired")]
    spec = await topic_with(kafka_bootstrap, unique, values)
    group = f"batch-fallback-{unique}"
    settings = settings_for(kafka_bootstrap)
    broker = create_broker(settings, create_telemetry(settings))
    one_by_one: list[str] = []
    batches = 0
    done = asyncio.Event()

    async def handle(envelope: Envelope[EventPayload], delivery: Delivery) -> None:
        kr = kr_of(envelope)
        if kr == "retired":
            done.set()
            raise Rejected("kr retired is retired")
        one_by_one.append(kr)

    async def handle_batch(received: Sequence[Received]) -> list[Rejected | None]:
        nonlocal batches
        batches += 1
        raise ConnectionError("event store unavailable for a whole batch")

    subscribe(
        broker, spec, group_id=group, handler=handle, batch_handler=handle_batch, settings=settings, telemetry=create_telemetry(settings)
    )
    async with running(broker):
        await asyncio.wait_for(done.wait(), WAIT_S)
        await asyncio.sleep(0.5)

    assert batches >= 1
    assert one_by_one == [f"kr-{n}" for n in range(10)]
    assert await dead_letters(kafka_bootstrap, group, 1) == [values[-1]]
    assert await committed_offset(kafka_bootstrap, group, spec.name) == len(values)


async def test_headers_that_are_not_utf8_or_null_do_not_stop_the_partition(
    kafka_bootstrap: str, unique: str, committed_offset: CommittedOffset
) -> None:
    values = [checkin("a"), checkin("b"), checkin("c")]
    headers: dict[int, list[tuple[str, bytes | None]]] = {
        0: [("x-binary", b"\xff\xfe\x00")],
        1: [("x-null", None), (Headers.EVENT_TYPE, b"CheckInRecorded")],
    }
    spec = await topic_with(kafka_bootstrap, unique, values, headers)
    group = f"batch-headers-{unique}"
    settings = settings_for(kafka_bootstrap)
    broker = create_broker(settings, create_telemetry(settings))
    seen: dict[str, dict[str, str]] = {}
    done = asyncio.Event()

    async def handle(envelope: Envelope[EventPayload], delivery: Delivery) -> None:
        seen[kr_of(envelope)] = delivery.headers
        if len(seen) == len(values):
            done.set()

    subscribe(broker, spec, group_id=group, handler=handle, settings=settings, telemetry=create_telemetry(settings))
    async with running(broker):
        await asyncio.wait_for(done.wait(), WAIT_S)

    assert set(seen) == {"a", "b", "c"}
    assert seen["a"]["x-binary"] == b"\xff\xfe\x00".decode("utf-8", "replace")
    assert seen["b"]["x-null"] == ""
    assert await committed_offset(kafka_bootstrap, group, spec.name) == len(values)


async def test_a_message_waits_out_an_outage_however_many_attempts_it_takes_and_is_never_dead_lettered(
    kafka_bootstrap: str, unique: str, committed_offset: CommittedOffset
) -> None:
    values = [checkin("a"), checkin("b")]
    spec = await topic_with(kafka_bootstrap, unique, values)
    group = f"batch-outage-{unique}"
    settings = settings_for(kafka_bootstrap)
    broker = create_broker(settings, create_telemetry(settings))
    down_for = 4 * settings.dlq_max_attempts  # far beyond the attempts that dead-letter other failures
    handled: list[str] = []
    done = asyncio.Event()

    async def handle(envelope: Envelope[EventPayload], delivery: Delivery) -> None:
        nonlocal down_for
        if down_for > 0:
            down_for -= 1
            try:
                raise OSError("connection refused")
            except OSError as cause:
                raise psycopg.OperationalError("connection to server at 127.0.0.1 failed") from cause
        handled.append(kr_of(envelope))
        if len(handled) == len(values):
            done.set()

    subscribe(broker, spec, group_id=group, handler=handle, settings=settings, telemetry=create_telemetry(settings))
    async with running(broker):
        await asyncio.wait_for(done.wait(), WAIT_S)
        await asyncio.sleep(0.5)

    assert handled == ["a", "b"]
    assert await dead_letters(kafka_bootstrap, group, 0) == []
    assert await committed_offset(kafka_bootstrap, group, spec.name) == len(values)

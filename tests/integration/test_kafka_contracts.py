"""Every contract through a real Kafka broker with FastStream: envelopes, keys, trace context, dead letters."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from okr_contracts import TOPICS, Envelope, Headers, TopicSpec, dead_letter_topic, topic
from okr_contracts.envelope import EventPayload
from okr_contracts.examples import EXAMPLES
from okr_contracts.kr_events import CheckInRecorded
from okr_runtime.consumer import Delivery, Rejected, subscribe
from okr_runtime.kafka import create_broker, ensure_topics, publish_event
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import Telemetry, create_telemetry

pytestmark = pytest.mark.integration
CommittedOffset = Callable[..., Awaitable[int | None]]
WAIT_S = 90


def renamed(spec: TopicSpec, unique: str) -> TopicSpec:
    return dataclasses.replace(spec, name=f"{spec.name}.{unique}")


def telemetry_for(name: str, bootstrap: str) -> tuple[RuntimeSettings, Telemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    settings = RuntimeSettings(service_name=name, kafka_bootstrap=bootstrap, dlq_max_attempts=3, dlq_retry_backoff_s=0.05)
    return settings, create_telemetry(settings, span_processors=(SimpleSpanProcessor(exporter),)), exporter


@asynccontextmanager
async def running(*brokers: KafkaBroker) -> AsyncIterator[None]:
    for broker in brokers:
        await broker.start()
    try:
        yield
    finally:
        for broker in brokers:
            await broker.stop()


async def read_all(bootstrap: str, topic_name: str, count: int) -> list[object]:
    consumer = AIOKafkaConsumer(topic_name, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[object] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=1000)
                for part in batch.values():
                    records.extend(part)
    finally:
        await consumer.stop()
    return records


async def test_every_contract_round_trips_through_kafka_with_its_trace_context(kafka_bootstrap: str, unique: str) -> None:
    specs = {spec.name: renamed(spec, unique) for spec in TOPICS}
    await ensure_topics(kafka_bootstrap, specs.values(), replication_factor=1)
    producer_settings, producer_telemetry, _ = telemetry_for("producer", kafka_bootstrap)
    consumer_settings, consumer_telemetry, consumer_spans = telemetry_for("consumer", kafka_bootstrap)
    producer = create_broker(producer_settings, producer_telemetry)
    consumer = create_broker(consumer_settings, consumer_telemetry)
    received: dict[str, tuple[Envelope[EventPayload], Delivery, int]] = {}
    all_received = asyncio.Event()

    async def handle(envelope: Envelope[EventPayload], delivery: Delivery) -> None:
        received[str(envelope.event_id)] = (envelope, delivery, trace.get_current_span().get_span_context().trace_id)
        if len(received) == len(EXAMPLES):
            all_received.set()

    for spec in specs.values():
        subscribe(consumer, spec, group_id=f"roundtrip-{unique}", handler=handle, settings=consumer_settings, telemetry=consumer_telemetry)

    sent: dict[str, tuple[Envelope[EventPayload], int, TopicSpec]] = {}
    tracer = producer_telemetry.tracer_provider.get_tracer("test")
    async with running(consumer, producer):
        for payload in EXAMPLES:
            spec = next(s for s in specs.values() if type(payload) in s.events)
            envelope = Envelope.wrap(payload, producer="test")
            with tracer.start_as_current_span("command") as span:
                await publish_event(producer, spec, envelope)
            sent[str(envelope.event_id)] = (envelope, span.get_span_context().trace_id, spec)
        await asyncio.wait_for(all_received.wait(), WAIT_S)

    assert set(received) == set(sent)
    for event_id, (envelope, trace_id, spec) in sent.items():
        got, delivery, consumer_trace_id = received[event_id]
        assert got == envelope
        assert delivery.topic == spec.name
        assert delivery.key == spec.key_for(envelope)
        assert delivery.headers[Headers.EVENT_TYPE] == envelope.type
        assert delivery.headers[Headers.EVENT_ID] == event_id
        assert delivery.headers[Headers.TRACEPARENT].split("-")[1] == format(trace_id, "032x")
        assert consumer_trace_id == trace_id, f"{envelope.type}: the consumer's span is not in the producer's trace"
    process_spans = [s for s in consumer_spans.get_finished_spans() if s.kind == trace.SpanKind.CONSUMER]
    assert {s.context.trace_id for s in process_spans} >= {t for _, t, _ in sent.values()}


def checkin_bytes(kr_id: str, confidence: float = 0.5) -> bytes:
    payload = CheckInRecorded(
        portfolio_id="p", aggregate_id=kr_id, aggregate_version=2, actor="ana", kr_id=kr_id, confidence=0.5, what_changed="x"
    )
    raw = Envelope.wrap(payload, producer="test").as_json()
    raw["data"]["confidence"] = confidence
    return json.dumps(raw).encode()


async def test_messages_that_cannot_be_processed_reach_the_dead_letter_topic_with_their_reason(
    kafka_bootstrap: str, unique: str, committed_offset: CommittedOffset
) -> None:
    spec = renamed(topic("okr.kr-events.v1"), unique)
    group = f"dlq-{unique}"
    await ensure_topics(kafka_bootstrap, [dataclasses.replace(spec, partitions=1)], replication_factor=1)
    settings, telemetry, _ = telemetry_for("dlq-consumer", kafka_bootstrap)
    consumer = create_broker(settings, telemetry)
    processed: list[str] = []
    attempts: dict[str, int] = {}
    done = asyncio.Event()

    async def handle(envelope: Envelope[EventPayload], delivery: Delivery) -> None:
        kr_id = str(getattr(envelope.data, "kr_id", ""))
        attempts[kr_id] = attempts.get(kr_id, 0) + 1
        if kr_id == "retired-kr":
            raise Rejected("kr retired-kr is retired; check-ins are refused")
        if kr_id == "flaky" and attempts[kr_id] < 2:
            raise ConnectionError("event store unavailable")
        if kr_id == "broken":
            raise RuntimeError("projection bug")
        processed.append(kr_id)
        if kr_id == "last":
            done.set()

    subscribe(consumer, spec, group_id=group, handler=handle, settings=settings, telemetry=telemetry)
    truncated = b'{"event_id": "e-1", "type": "CheckInRecorded"'  # cut short, yet labelled JSON as every okr producer labels it
    poison = [
        b"\x00\x01 not json",
        truncated,
        b'{"type": "SomethingElse", "data": {}}',
        checkin_bytes("bad-confidence", confidence=1.7),
        checkin_bytes("retired-kr"),
        checkin_bytes("broken"),
    ]
    values = [checkin_bytes("first"), *poison[:4], checkin_bytes("flaky"), *poison[4:], checkin_bytes("last")]
    async with running(consumer):
        for value in values:
            labels = {"content-type": "application/json"} if value is truncated else None
            await consumer.publish(value, topic=spec.name, key=b"p", headers=labels)
        await asyncio.wait_for(done.wait(), WAIT_S)
        dead = await read_all(kafka_bootstrap, dead_letter_topic(group), len(poison))

    assert processed == ["first", "flaky", "last"]
    assert attempts["flaky"] == 2
    assert attempts["broken"] == settings.dlq_max_attempts
    headers = [{k: v.decode() for k, v in r.headers} for r in dead]  # type: ignore[attr-defined]
    assert [r.value for r in dead] == poison  # type: ignore[attr-defined]
    assert [h[Headers.DLQ_ERROR_TYPE] for h in headers] == [
        "MalformedMessage",
        "MalformedMessage",
        "UnknownEventType",
        "MalformedMessage",
        "Rejected",
        "RuntimeError",
    ]
    assert "not JSON" in headers[0][Headers.DLQ_REASON]
    assert "not JSON" in headers[1][Headers.DLQ_REASON]
    assert "confidence" in headers[3][Headers.DLQ_REASON]
    assert "retired" in headers[4][Headers.DLQ_REASON]
    assert headers[5][Headers.DLQ_ATTEMPTS] == str(settings.dlq_max_attempts)
    assert {h[Headers.DLQ_SOURCE_TOPIC] for h in headers} == {spec.name}
    assert {h[Headers.DLQ_CONSUMER_GROUP] for h in headers} == {group}
    assert [int(h[Headers.DLQ_SOURCE_OFFSET]) for h in headers] == [1, 2, 3, 4, 6, 7]
    assert await committed_offset(kafka_bootstrap, group, spec.name) == len(values)

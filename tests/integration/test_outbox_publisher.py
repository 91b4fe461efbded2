"""Outbox batches through the broker's own producer: keys, order, envelope headers, and the caller's trace in every record."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from okr_contracts import Envelope, Headers, topic
from okr_contracts.kr_events import CheckInRecorded
from okr_runtime.kafka import create_broker, ensure_topics, stored_publisher
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import create_telemetry

pytestmark = pytest.mark.integration


def stored(kr_id: str) -> tuple[str, bytes]:
    payload = CheckInRecorded(
        portfolio_id="p", aggregate_id=kr_id, aggregate_version=2, actor="ana", kr_id=kr_id, confidence=0.5, what_changed="x"
    )
    return f"p/{kr_id}", Envelope.wrap(payload, producer="test").to_json_bytes()


async def test_a_stored_batch_is_published_in_order_with_its_keys_headers_and_the_callers_trace(kafka_bootstrap: str, unique: str) -> None:
    spec = dataclasses.replace(topic("okr.kr-events.v1"), name=f"okr.kr-events.v1.{unique}", partitions=3)
    await ensure_topics(kafka_bootstrap, [spec], replication_factor=1)
    spans = InMemorySpanExporter()
    settings = RuntimeSettings(service_name="outbox-test", kafka_bootstrap=kafka_bootstrap)
    telemetry = create_telemetry(settings, span_processors=(SimpleSpanProcessor(spans),))
    broker = create_broker(settings, telemetry)
    records = [stored(f"kr-{n % 4}") for n in range(40)]
    await broker.start()
    try:
        with telemetry.tracer_provider.get_tracer("test").start_as_current_span("a batch of the outbox") as caller:
            await stored_publisher(broker, spec)(records)
        trace_id = caller.get_span_context().trace_id
    finally:
        await broker.stop()
    assert broker.outbox._producer is None  # stopped with the broker

    consumer = AIOKafkaConsumer(spec.name, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    received: list[Any] = []
    try:
        async with asyncio.timeout(60):
            while len(received) < len(records):
                for part in (await consumer.getmany(timeout_ms=1000)).values():
                    received.extend(part)
    finally:
        await consumer.stop()

    by_key: dict[bytes, list[bytes]] = {}
    for record in sorted(received, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key, []).append(record.value)
    assert by_key == {key.encode(): [v for k, v in records if k == key] for key, _ in records}  # per key, in the order stored
    for record in received:
        headers = {name: value.decode() for name, value in record.headers}
        envelope = spec.decode(record.value)
        assert headers[Headers.EVENT_ID] == str(envelope.event_id)
        assert headers[Headers.EVENT_TYPE] == "CheckInRecorded"
        assert headers[Headers.CONTENT_TYPE] == "application/json"
        assert headers[Headers.TRACEPARENT].split("-")[1] == format(trace_id, "032x")
    [batch_span] = [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.PRODUCER]
    assert batch_span.attributes is not None
    assert batch_span.attributes["messaging.batch.message_count"] == len(records)
    assert batch_span.context.trace_id == trace_id

"""The FastStream Kafka broker every service uses, topic creation, and event publishing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry import propagate
from opentelemetry.trace import SpanKind

from okr_contracts.envelope import Envelope, EventPayload, Headers
from okr_contracts.topics import TopicSpec
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import Telemetry

log = logging.getLogger(__name__)


class TopicCreationError(RuntimeError):
    """The cluster refused to create a topic of the registry."""


TOPIC_ALREADY_EXISTS = 36


class OkrBroker(KafkaBroker):
    """FastStream's Kafka broker, plus the producer that publishes outbox batches (see :func:`stored_publisher`)."""

    def __init__(self, settings: RuntimeSettings, telemetry: Telemetry, **kwargs: Any) -> None:
        super().__init__(settings.kafka_bootstrap, **kwargs)
        self.outbox = OutboxProducer(settings, telemetry)

    async def stop(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None:
        await super().stop(exc_type, exc_val, exc_tb)
        await self.outbox.stop()


class OutboxProducer:
    """An idempotent ``acks=all`` producer for stored outbox rows, started on first use, with one span per batch.

    FastStream's publish runs its telemetry middleware for every message (two spans and its
    metrics, about 240 µs a record): for the rollup's score records that was two thirds of a
    batch's time. Here a batch gets one ``<topic> publish`` PRODUCER span, and its W3C trace
    context goes into every record's headers, so consumers still continue the trace.
    """

    def __init__(self, settings: RuntimeSettings, telemetry: Telemetry) -> None:
        self.settings = settings
        self.tracer = telemetry.tracer_provider.get_tracer("okrstream.outbox")
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def producer(self) -> AIOKafkaProducer:
        """The started producer (started now if it is not yet)."""
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    client_id=f"{self.settings.service_name}-outbox",
                    acks="all",
                    enable_idempotence=True,
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def stop(self) -> None:
        """Flush and stop the producer, if it was started."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def publish(self, topic: str, records: Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> None:
        """Send (key, value, headers) records in order, then wait for every ack; a failed ack raises."""
        producer = await self.producer()
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.batch.message_count": len(records),
        }
        with self.tracer.start_as_current_span(f"{topic} publish", kind=SpanKind.PRODUCER, attributes=attributes):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            trace_headers = [(name, value.encode()) for name, value in carrier.items()]
            acks = [await producer.send(topic, value, key=key, headers=headers + trace_headers) for key, value, headers in records]
            await asyncio.gather(*acks)


def create_broker(settings: RuntimeSettings, telemetry: Telemetry) -> OkrBroker:
    """A broker with tracing and metrics, idempotent acks=all producer, nothing connected yet."""
    return OkrBroker(
        settings,
        telemetry,
        client_id=settings.service_name,
        acks="all",
        enable_idempotence=True,
        graceful_timeout=15.0,
        middlewares=[
            KafkaTelemetryMiddleware(
                tracer_provider=telemetry.tracer_provider,
                meter_provider=telemetry.meter_provider,
            )
        ],
        logger=logging.getLogger(f"okrstream.{settings.service_name}.kafka"),
    )


async def publish_event(broker: KafkaBroker, spec: TopicSpec, envelope: Envelope[EventPayload]) -> None:
    """Publish an envelope on its topic with the topic's key, waiting for the broker's ack."""
    await broker.publish(
        envelope.to_json_bytes(),
        topic=spec.name,
        key=spec.key_for(envelope),
        headers=envelope.headers(),
    )


StoredPublish = Callable[[Sequence[tuple[str, bytes]]], Awaitable[None]]
"""Publishes (key, stored envelope value) pairs in order, returning once Kafka acknowledged them."""


def stored_publisher(broker: OkrBroker, spec: TopicSpec) -> StoredPublish:
    """Publish envelope values kept in an outbox on `spec`'s topic: value as stored, headers mirroring its envelope.

    Every record is handed to the producer first, then every ack is awaited: one round trip per batch
    instead of one per record. Order holds, as the producer is idempotent (retries cannot reorder a
    partition), and a failed ack raises, so the caller keeps the batch unpublished and sends it again.
    The batch goes through the broker's :class:`OutboxProducer`: one span for the batch.
    """

    async def publish(records: Sequence[tuple[str, bytes]]) -> None:
        batch = []
        for key, value in records:
            envelope = json.loads(value)
            headers = [
                (Headers.EVENT_ID, str(envelope["event_id"]).encode()),
                (Headers.EVENT_TYPE, str(envelope["type"]).encode()),
                (Headers.SCHEMA_VERSION, str(envelope["schema_version"]).encode()),
                (Headers.CONTENT_TYPE, b"application/json"),
            ]
            batch.append((key.encode(), value, headers))
        await broker.outbox.publish(spec.name, batch)

    return publish


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec], replication_factor: int, *, timeout_s: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet with their registry settings; returns those created.

    Returns only once the brokers serve metadata for every created topic, so nothing
    publishes to a topic that a broker would otherwise auto-create with default settings.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="okrstream-topic-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [_new_topic(s, replication_factor) for s in specs if s.name not in existing]
        if not wanted:
            return []
        response = await admin.create_topics(wanted)
        created = []
        for name, code, message in _topic_errors(response):
            if code == TOPIC_ALREADY_EXISTS:
                log.info("topic %s was created concurrently", name)
            elif code:
                raise TopicCreationError(f"creating {name} failed with error {code}: {message}")
            else:
                created.append(name)
        async with asyncio.timeout(timeout_s):
            while True:
                if set(created) <= set(await admin.list_topics()):
                    return created
                await asyncio.sleep(0.1)  # metadata of new topics reaches the brokers asynchronously
    finally:
        await admin.close()


async def require_topics(bootstrap: str, specs: Iterable[TopicSpec]) -> None:
    """Fail unless every topic exists: where deploy tooling owns the topics, a missing one is a deployment error."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="okrstream-topic-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    missing = sorted(s.name for s in specs if s.name not in existing)
    if missing:
        raise TopicCreationError(
            f"topics missing: {', '.join(missing)}; OKR_KAFKA_CREATE_TOPICS=false expects them to exist"
            " (created by the chart's KafkaTopic resources or its topics job, see docs/deploy.md)"
        )


def _new_topic(spec: TopicSpec, replication_factor: int) -> NewTopic:
    config = spec.config()
    config["min.insync.replicas"] = str(min(spec.min_insync_replicas, replication_factor))
    return NewTopic(spec.name, spec.partitions, replication_factor, topic_configs=config)


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    return [(str(e[0]), int(e[1]), e[2] if len(e) > 2 else None) for e in response.topic_errors]

"""The FastStream Kafka broker every service uses, topic creation, and event publishing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

from okr_contracts.envelope import Envelope, EventPayload, Headers
from okr_contracts.topics import TopicSpec
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import Telemetry

log = logging.getLogger(__name__)


class TopicCreationError(RuntimeError):
    """The cluster refused to create a topic of the registry."""


TOPIC_ALREADY_EXISTS = 36


def create_broker(settings: RuntimeSettings, telemetry: Telemetry) -> KafkaBroker:
    """A broker with tracing and metrics, idempotent acks=all producer, nothing connected yet."""
    return KafkaBroker(
        settings.kafka_bootstrap,
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


def stored_publisher(broker: KafkaBroker, spec: TopicSpec) -> StoredPublish:
    """Publish envelope values kept in an outbox on `spec`'s topic: value as stored, headers mirroring its envelope.

    Every record is handed to the producer first, then every ack is awaited: one round trip per batch
    instead of one per record. Order holds, as the producer is idempotent (retries cannot reorder a
    partition), and a failed ack raises, so the caller keeps the batch unpublished and sends it again.
    """

    async def publish(records: Sequence[tuple[str, bytes]]) -> None:
        acks = []
        for key, value in records:
            envelope = json.loads(value)
            headers = {
                Headers.EVENT_ID: envelope["event_id"],
                Headers.EVENT_TYPE: envelope["type"],
                Headers.SCHEMA_VERSION: str(envelope["schema_version"]),
                Headers.CONTENT_TYPE: "application/json",
            }
            acks.append(await broker.publish(value, topic=spec.name, key=key.encode(), headers=headers, no_confirm=True))
        await asyncio.gather(*acks)

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

"""The FastStream Kafka broker every service uses, topic creation, and event publishing."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

from okr_contracts.envelope import Envelope, EventPayload
from okr_contracts.topics import TopicSpec
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import Telemetry

log = logging.getLogger(__name__)


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


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec], replication_factor: int) -> list[str]:
    """Create the topics that do not exist yet with their registry settings; returns those created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="okrstream-topic-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in specs if s.name not in existing]
        created = []
        for spec in wanted:
            config = spec.config()
            config["min.insync.replicas"] = str(min(spec.min_insync_replicas, replication_factor))
            topic = NewTopic(spec.name, spec.partitions, replication_factor, topic_configs=config)
            try:
                await admin.create_topics([topic])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                log.info("topic %s was created concurrently", spec.name)
        return created
    finally:
        await admin.close()

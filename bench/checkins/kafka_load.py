"""The Kafka side: the outbox relay draining the store, and a bare aiokafka producer sending the same messages."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from okr_checkins.application import CheckinsApplication
from okr_checkins.outbox import HISTORY_TOPICS, KR_EVENTS, TRACKING_NAME, OutboxRelay, SingleProcessLease
from okr_contracts.export import envelope_of
from okr_contracts.topics import TOPICS
from okr_runtime.kafka import create_broker, ensure_topics
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import create_telemetry

Message = tuple[bytes, bytes, list[tuple[str, bytes]]]


@dataclass(frozen=True)
class Drained:
    """What one run of the relay published, and how long it took."""

    events: int
    batches: int
    seconds: float


async def prepare(settings: RuntimeSettings) -> str:
    """Create the registry's topics and a scratch topic shaped like okr.kr-events.v1; returns the scratch topic's name."""
    await ensure_topics(settings.kafka_bootstrap, TOPICS, settings.kafka_replication_factor)
    scratch = f"bench.checkins.raw-{uuid.uuid4().hex[:8]}"
    replicas = settings.kafka_replication_factor
    config = {"min.insync.replicas": str(min(KR_EVENTS.min_insync_replicas, replicas))}
    async with _admin(settings) as admin:
        await admin.create_topics([NewTopic(scratch, KR_EVENTS.partitions, replicas, topic_configs=config)])
        for _ in range(300):
            if await _has_leaders(admin, scratch):
                return scratch
            await asyncio.sleep(0.1)
    raise RuntimeError(f"scratch topic {scratch} did not get leaders for all its partitions")


async def _has_leaders(admin: AIOKafkaAdminClient, name: str) -> bool:
    """Whether every partition of the topic has a leader, so the first sends are not refused."""
    if name not in await admin.list_topics():
        return False
    described = await admin.describe_topics([name])
    partitions = described[0].get("partitions", []) if described else []
    return len(partitions) == KR_EVENTS.partitions and all(p.get("leader", -1) >= 0 for p in partitions)


def warm_up(settings: RuntimeSettings, scratch: str, count: int = 10_000) -> None:
    """Send a few thousand throw-away messages first, so no measurement pays for a cold broker or a new topic's leaders."""
    sender = logging.getLogger("aiokafka.producer.sender")
    level = sender.level
    sender.setLevel(logging.ERROR)  # a brand-new topic's first sends may be retried (NotLeaderForPartition): expected here
    try:
        asyncio.run(produce(settings, scratch, [(b"warm-up", b"x" * 900, [])] * count))
    finally:
        sender.setLevel(level)


async def drop_topic(settings: RuntimeSettings, name: str) -> None:
    """Delete the scratch topic."""
    async with _admin(settings) as admin:
        await admin.delete_topics([name])


async def drain(checkins: CheckinsApplication, env: dict[str, str], settings: RuntimeSettings, batch: int) -> Drained:
    """Run the outbox relay until it finds nothing more to publish, timing only the relaying."""
    broker = create_broker(settings, create_telemetry(settings))
    factory = InfrastructureFactory.construct(Environment(TRACKING_NAME, env))  # what outbox.tracking_recorder builds, kept to close it
    await broker.start()
    try:
        relay = OutboxRelay(checkins, broker, factory.tracking_recorder(), SingleProcessLease(), batch=batch)
        batches, start = 0, time.perf_counter()
        while await relay.relay_once():
            batches += 1
        return Drained(relay.published, batches, time.perf_counter() - start)
    finally:
        await broker.stop()
        factory.close()


def messages(checkins: CheckinsApplication) -> list[Message]:
    """Every message the relay publishes for this store, built the way it builds them (key, value, headers)."""
    found: list[Message] = []
    start = 1
    while notifications := checkins.recorder.select_notifications(start, 1000, topics=HISTORY_TOPICS):
        for notification in notifications:
            record = checkins.mapper.to_domain_event(notification).record  # type: ignore[attr-defined]
            envelope = envelope_of(record)
            headers = {**envelope.headers(), "okr-chain-position": str(record["position"]), "okr-chain-hash": record["hash"]}
            found.append((KR_EVENTS.key_for(envelope), envelope.to_json_bytes(), [(k, v.encode()) for k, v in headers.items()]))
        start = notifications[-1].id + 1
    return found


async def produce(settings: RuntimeSettings, topic: str, batch: list[Message]) -> float:
    """Send every message with a bare idempotent acks=all producer, then await all acks; returns seconds taken."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True, client_id="bench-raw")
    await producer.start()
    try:
        start = time.perf_counter()
        acks = [await producer.send(topic, value, key=key, headers=headers) for key, value, headers in batch]
        await asyncio.gather(*acks)
        return time.perf_counter() - start
    finally:
        await producer.stop()


@asynccontextmanager
async def _admin(settings: RuntimeSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="bench-admin")
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()

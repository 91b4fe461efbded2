"""The baselines: the published messages sent again to a scratch topic by a bare aiokafka producer, and the service's own parts alone.

The scratch topic is shaped like okr.delivery.v1 (same partitions and settings), so every
variant sends the same bytes (keys, values, headers as the relay published them) to an
equivalent topic of the same broker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from load import Message

from okr_connectors.relay import OutboxRelay
from okr_connectors.store import SqliteConnectorStore
from okr_contracts.topics import DELIVERY_TOPIC, TopicSpec
from okr_runtime.kafka import create_broker, ensure_topics, stored_publisher
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import create_telemetry


async def scratch_topic(settings: RuntimeSettings) -> TopicSpec:
    """A fresh topic with okr.delivery.v1's partitions and settings; returned once the broker serves it."""
    spec = dataclasses.replace(DELIVERY_TOPIC, name=f"bench.connectors.raw-{uuid.uuid4().hex[:8]}")
    await ensure_topics(settings.kafka_bootstrap, [spec], settings.kafka_replication_factor)
    return spec


async def drop_topic(settings: RuntimeSettings, spec: TopicSpec) -> None:
    """Delete the scratch topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="bench-connectors-admin")
    await admin.start()
    try:
        await admin.delete_topics([spec.name])
    finally:
        await admin.close()


async def warm_up(settings: RuntimeSettings, spec: TopicSpec, count: int = 20_000) -> None:
    """Throw-away sends first, so no measurement pays for a cold broker or a new topic's partition leaders."""
    sender = logging.getLogger("aiokafka.producer.sender")
    level = sender.level
    sender.setLevel(logging.ERROR)  # a brand-new topic's first sends may be retried (NotLeaderForPartition): expected here
    try:
        batch: list[Message] = [(f"warm-up-{i % 12}".encode(), b"x" * 800, []) for i in range(count)]
        await produce(settings, spec, batch, wait_each=False)
    finally:
        sender.setLevel(level)


async def produce(settings: RuntimeSettings, spec: TopicSpec, messages: list[Message], *, wait_each: bool) -> float:
    """A bare idempotent acks=all producer: each message's ack awaited before the next (as the relay does), or all sent then awaited."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True, client_id="bench-raw")
    await producer.start()
    try:
        start = time.perf_counter()
        if wait_each:
            for key, value, headers in messages:
                await producer.send_and_wait(spec.name, value, key=key, headers=headers)
        else:
            acks = [await producer.send(spec.name, value, key=key, headers=headers) for key, value, headers in messages]
            await asyncio.gather(*acks)
        return time.perf_counter() - start
    finally:
        await producer.stop()


async def service_publisher(settings: RuntimeSettings, spec: TopicSpec, messages: list[Message]) -> float:
    """The service's own publishing alone: its broker (telemetry middleware, acks=all, idempotent) through `stored_publisher`,
    called once per event as the relay calls it; no store."""
    broker = create_broker(settings, create_telemetry(settings))
    await broker.start()
    try:
        publish = stored_publisher(broker, spec)
        start = time.perf_counter()
        for key, value, _ in messages:
            await publish([(key.decode(), value)])
        return time.perf_counter() - start
    finally:
        await broker.stop()


async def relay_drain(settings: RuntimeSettings, spec: TopicSpec, store_path: Path, first_row: int, count: int) -> tuple[float, int]:
    """The service's `OutboxRelay` alone over the service's SQLite file (after the service stopped): the timed run's rows marked
    unpublished again, then `publish_pending` until nothing is left; its publisher points at the scratch topic. Seconds, batches."""
    store = SqliteConnectorStore(store_path)
    try:
        with store.transaction() as cur:
            cur.execute("UPDATE connector_outbox SET published = FALSE WHERE id >= ? AND id < ?", (first_row, first_row + count))
            if cur.rowcount != count:
                raise RuntimeError(f"expected {count} outbox rows from id {first_row}, found {cur.rowcount}")
        broker = create_broker(settings, create_telemetry(settings))
        await broker.start()
        try:
            relay = OutboxRelay(store, broker)
            relay._publishers[DELIVERY_TOPIC.name] = stored_publisher(broker, spec)  # the rows say okr.delivery.v1: send them to scratch
            batches, start = 0, time.perf_counter()
            while await relay.publish_pending():
                batches += 1
            return time.perf_counter() - start, batches
        finally:
            await broker.stop()
    finally:
        store.close()

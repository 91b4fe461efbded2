"""The outbox relay on real Kafka: every stored event published once and in order, and marked only after Kafka acknowledged it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from okr_connectors.relay import OutboxRelay
from okr_connectors.store import Item, Outgoing, SqliteConnectorStore
from okr_contracts.topics import DELIVERY_TOPIC
from okr_runtime.kafka import create_broker, ensure_topics
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import create_telemetry

pytestmark = pytest.mark.integration


class IntakeDuringReads(SqliteConnectorStore):
    """Stores one more event and wakes the relay on each of its first `more` reads, as webhooks arriving meanwhile would."""

    def __init__(self, path: Path, key: str, more: int) -> None:
        super().__init__(path)
        self.key, self.more, self.stored = key, more, 0
        self.marked_with_reads: list[int] = []
        self.wake: Callable[[], None] = lambda: None

    def store_one(self) -> None:
        self.stored += 1
        value = f'{{"event_id": "{self.key}-{self.stored}", "type": "WorkItemChanged", "schema_version": 1}}'.encode()
        self.accept("jira", [Item(f"{self.key}:{self.stored}", Outgoing(DELIVERY_TOPIC.name, self.key, value))])

    def unpublished(self, limit: int = 500, *, after_marking: Sequence[int] = ()) -> list[tuple[int, Outgoing]]:
        self.marked_with_reads.append(len(after_marking))
        if self.more > 0:
            self.more -= 1
            self.store_one()
            self.wake()
        return super().unpublished(limit, after_marking=after_marking)


def test_under_a_steady_intake_each_batch_is_marked_with_the_next_read_and_all_are_published_once_in_order(
    kafka_bootstrap: str, unique: str, tmp_path: Path, consume: Callable[..., list[Any]], wait_for: Callable[..., None]
) -> None:
    store = IntakeDuringReads(tmp_path / "connectors.sqlite", f"relay-{unique}", more=5)

    async def scenario() -> None:
        await ensure_topics(kafka_bootstrap, [DELIVERY_TOPIC], 1)
        settings = RuntimeSettings(kafka_bootstrap=kafka_bootstrap, service_name="connectors-relay-test")
        broker = create_broker(settings, create_telemetry(settings))
        await broker.start()
        try:
            relay = OutboxRelay(store, broker, idle_s=0.05)
            loop = asyncio.get_running_loop()

            def wake() -> None:
                loop.call_soon_threadsafe(relay.notify)

            store.wake = wake
            store.store_one()
            running = asyncio.create_task(relay.run())
            await asyncio.to_thread(wait_for, lambda: not store.more and not store.unpublished_count(), 30)
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        finally:
            await broker.stop()

    asyncio.run(scenario())
    assert store.stored == 6
    assert store.unpublished_count() == 0
    # rows 1-5 were marked by the read that followed their batch (the intake went on); row 6, the last, on its own
    assert store.marked_with_reads[:6] == [0, 2, 1, 1, 1, 1]
    records = consume(kafka_bootstrap, DELIVERY_TOPIC.name, lambda seen: len(seen) >= 6, key=store.key.encode())
    assert [r.value for r in records] == [
        f'{{"event_id": "{store.key}-{n}", "type": "WorkItemChanged", "schema_version": 1}}'.encode() for n in range(1, 7)
    ]

"""The outbox relay: publishes stored normalised events to Kafka in order, then marks them published.

Webhooks and pollers only write to the store; this loop is the one path to
Kafka. Kafka being down stops the relay, never the intake: events wait in the
outbox and go out when Kafka returns. A crash between the ack and the mark
republishes those events once more with the same event ids (consumers
deduplicate on ``event_id``): at least once, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from okr_connectors.store import ConnectorStore
from okr_contracts.topics import topic
from okr_runtime.kafka import OkrBroker, StoredPublish, stored_publisher

log = logging.getLogger(__name__)
MAX_RETRY_S = 30.0


class OutboxRelay:
    """Publishes what the store holds unpublished; `notify()` wakes it when something was stored."""

    def __init__(self, store: ConnectorStore, broker: OkrBroker, *, idle_s: float = 0.5, batch: int = 500) -> None:
        self.store = store
        self.broker = broker
        self.idle_s = idle_s
        self.batch = batch
        self._wake = asyncio.Event()
        self._publishers: dict[str, StoredPublish] = {}
        self._acknowledged: list[int] = []  # rows Kafka acknowledged, marked with the next read
        self._running = False

    def notify(self) -> None:
        """Something was stored: publish it now rather than after the idle wait."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished events, in order; how many.

        The rows are marked once Kafka acknowledged them: at once when nothing new was stored meanwhile, otherwise
        in the transaction that reads the next batch (``unpublished(after_marking=…)``), which follows straight away,
        so that under a steady intake each batch costs one hop to the store's thread, not two.
        """
        acknowledged, self._acknowledged = self._acknowledged, []
        try:
            rows = await asyncio.to_thread(self.store.unpublished, self.batch, after_marking=acknowledged)
        except BaseException:
            self._acknowledged = acknowledged  # not known to be marked: marked with the next read (again, if they were)
            raise
        by_topic: dict[str, list[tuple[str, bytes]]] = {}
        for _, out in rows:
            by_topic.setdefault(out.topic, []).append((out.key, out.value))
        for name, records in by_topic.items():  # topics are independent; within one, the stored order is kept
            publish = self._publishers.get(name) or self._publishers.setdefault(name, stored_publisher(self.broker, topic(name)))
            await publish(records)
        row_ids = [row_id for row_id, _ in rows]
        if self._wake.is_set() and self._running:  # more was stored meanwhile: run() reads it next, marking these first
            self._acknowledged = row_ids
        else:
            await asyncio.to_thread(self.store.mark_published, row_ids)
        return len(rows)

    async def run(self) -> None:
        """Publish until cancelled; on failure wait (doubling, at most 30 s) and try again."""
        delay = self.idle_s
        self._running = True
        try:
            while True:
                self._wake.clear()
                try:
                    published = await self.publish_pending()
                except Exception as exc:  # Kafka or the store is down: the events wait in the outbox
                    log.warning("outbox relay: %r; retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(MAX_RETRY_S, delay * 2)
                    continue
                delay = self.idle_s
                if published < self.batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self.idle_s)
        finally:
            self._running = False
            self._mark_left_over()

    def _mark_left_over(self) -> None:
        """Stopping between a batch's acks and the next read: mark that batch now, so a restart does not publish it again."""
        acknowledged, self._acknowledged = self._acknowledged, []
        try:
            self.store.mark_published(acknowledged)
        except Exception as exc:  # they stay unpublished and go out again after a restart (at least once, same event ids)
            log.warning("outbox relay: marking %d published events at shutdown failed: %r", len(acknowledged), exc)

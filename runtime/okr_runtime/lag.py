"""Consumer-group lag from Kafka's own offsets, for ``okr.consumer.lag``.

Every ``interval_s`` the loop asks Kafka, per watched group, for the group's
committed offsets (an admin client) and each partition's log-start and log-end
offsets (a consumer in no group), and keeps the result; the gauge reports that
snapshot at collection time, so a scrape never waits on Kafka. A partition the
group never committed on lags by everything it holds (our consumers start from
the earliest offset). A group that could not be measured is left out of the
snapshot rather than reported stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry.metrics import Observation

from okr_runtime.instruments import CONSUMER_LAG, GROUP, PARTITION, TOPIC
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import Telemetry

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 15.0
Key = tuple[str, str, int]
"""(group, topic, partition)."""


class ConsumerLag:
    """Measures the watched groups' lag in a loop and feeds the ``okr.consumer.lag`` gauge from the last measurement."""

    def __init__(self, bootstrap: str, groups: Mapping[str, Sequence[str]], *, client_id: str, interval_s: float = LAG_INTERVAL_S) -> None:
        self.bootstrap = bootstrap
        self.groups = {group: tuple(topics) for group, topics in groups.items()}
        self.client_id = client_id
        self.interval_s = interval_s
        self.snapshot: dict[Key, int] = {}
        self._admin: Any = None
        self._consumer: Any = None

    @classmethod
    def watch(
        cls, settings: RuntimeSettings, telemetry: Telemetry, groups: Mapping[str, Sequence[str]], *, interval_s: float = LAG_INTERVAL_S
    ) -> ConsumerLag:
        """A service's lag monitor for its groups (group → topics), registered on its ``okr.consumer.lag`` gauge."""
        lag = cls(settings.kafka_bootstrap, groups, client_id=f"{settings.service_name}-lag", interval_s=interval_s)
        telemetry.observe(CONSUMER_LAG, lag.observations)
        return lag

    def observations(self) -> list[Observation]:
        """The last snapshot as gauge readings."""
        return [
            Observation(lag, {GROUP: group, TOPIC: topic, PARTITION: str(partition)})
            for (group, topic, partition), lag in sorted(self.snapshot.items())
        ]

    async def run(self) -> None:
        """Measure every `interval_s` until cancelled; Kafka unreachable empties the snapshot and the loop tries again."""
        while True:
            try:
                async with self.connected():
                    while True:
                        await self.refresh()
                        await asyncio.sleep(self.interval_s)
            except Exception as exc:
                log.warning("consumer lag unmeasured (%r); trying again in %gs", exc, self.interval_s)
                self.snapshot = {}
                await asyncio.sleep(self.interval_s)

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[None]:
        """The admin client and the consumer the measurements use, closed on leaving."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=self.client_id)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, client_id=self.client_id, group_id=None, enable_auto_commit=False)
        try:
            await admin.start()
            await consumer.start()
            self._admin, self._consumer = admin, consumer
            yield
        finally:
            self._admin = self._consumer = None
            await consumer.stop()
            await admin.close()

    async def refresh(self) -> None:
        """Measure every watched group once (inside :meth:`connected`) and replace the snapshot."""
        snapshot: dict[Key, int] = {}
        for group, topics in self.groups.items():
            try:
                snapshot.update(await self.measure(group, topics))
            except Exception as exc:
                log.warning("consumer lag of group %s unmeasured: %r", group, exc)
        self.snapshot = snapshot

    async def measure(self, group: str, topics: Sequence[str]) -> dict[Key, int]:
        """Log-end offset minus the group's committed offset, per partition of `topics`."""
        if self._admin is None:
            raise RuntimeError("measure inside `async with lag.connected()`")
        partitions = await self._partitions(topics)
        if not partitions:
            return {}
        committed = await self._admin.list_consumer_group_offsets(group, partitions=partitions)
        ends = await self._consumer.end_offsets(partitions)
        starts = await self._consumer.beginning_offsets(partitions)
        lags: dict[Key, int] = {}
        for tp in partitions:
            position = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else starts[tp]
            lags[(group, tp.topic, tp.partition)] = max(0, ends[tp] - position)
        return lags

    async def _partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        described = await self._admin.describe_topics(list(topics))
        return [
            TopicPartition(topic["topic"], part["partition"])
            for topic in described
            if not topic["error_code"]
            for part in sorted(topic["partitions"], key=lambda p: int(p["partition"]))
        ]

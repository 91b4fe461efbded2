"""okr.consumer.lag from a real Kafka broker's offsets: what a group has not committed yet, per partition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from okr_runtime.instruments import CONSUMER_LAG, GROUP, PARTITION, TOPIC
from okr_runtime.lag import ConsumerLag
from okr_runtime.settings import RuntimeSettings
from okr_runtime.testing import MetricsProbe

pytestmark = pytest.mark.integration
WAIT_S = 60


@pytest.fixture
def probe() -> Iterator[MetricsProbe]:
    probe = MetricsProbe("lag-test")
    yield probe
    probe.close()


async def topic_with(bootstrap: str, name: str, counts: list[int]) -> None:
    """A new topic with one partition per count, holding that many records."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, len(counts), 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for partition, count in enumerate(counts):
            for i in range(count):
                await producer.send_and_wait(name, f"record {i}".encode(), partition=partition)
    finally:
        await producer.stop()


async def consume_and_commit(bootstrap: str, group: str, tp: TopicPartition, count: int) -> None:
    """The group reads `count` records of one partition from the start and commits after them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([tp])
        for _ in range(count):
            await consumer.getone()
        await consumer.commit()
    finally:
        await consumer.stop()


def lag_of(probe: MetricsProbe, group: str, name: str, partition: int) -> float | None:
    return probe.value(CONSUMER_LAG, {GROUP: group, TOPIC: name, PARTITION: str(partition)})


async def test_lag_is_what_each_group_has_not_committed_per_partition(kafka_bootstrap: str, unique: str, probe: MetricsProbe) -> None:
    name, reading, idle = f"okr.lag-test.{unique}", f"reading-{unique}", f"idle-{unique}"
    await topic_with(kafka_bootstrap, name, [5, 3])
    await consume_and_commit(kafka_bootstrap, reading, TopicPartition(name, 0), 2)
    settings = RuntimeSettings(service_name="lag-test", kafka_bootstrap=kafka_bootstrap)
    lag = ConsumerLag.watch(settings, probe.telemetry, {reading: [name], idle: [name]})

    async with lag.connected():
        await lag.refresh()

    assert (lag_of(probe, reading, name, 0), lag_of(probe, reading, name, 1)) == (3, 3)
    assert (lag_of(probe, idle, name, 0), lag_of(probe, idle, name, 1)) == (5, 3)


async def test_the_loop_follows_the_group_as_it_commits(kafka_bootstrap: str, unique: str, probe: MetricsProbe) -> None:
    name, group = f"okr.lag-loop.{unique}", f"loop-{unique}"
    await topic_with(kafka_bootstrap, name, [4])
    settings = RuntimeSettings(service_name="lag-test", kafka_bootstrap=kafka_bootstrap)
    lag = ConsumerLag.watch(settings, probe.telemetry, {group: [name]}, interval_s=0.05)
    loop = asyncio.create_task(lag.run())
    try:
        await until(lambda: lag_of(probe, group, name, 0) == 4)
        await consume_and_commit(kafka_bootstrap, group, TopicPartition(name, 0), 4)
        await until(lambda: lag_of(probe, group, name, 0) == 0)
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            if check():
                return
            await asyncio.sleep(0.05)  # the loop measures every 0.05 s

"""Fixtures shared by the integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

ReadTopic = Callable[..., list[Any]]


def read_topic(
    bootstrap: str, topic_name: str, done: Callable[[list[Any]], bool], *, key: bytes | None = None, timeout_s: float = 90
) -> list[Any]:
    """Records of a topic from the beginning (only those with `key`, if given) until `done` says enough."""

    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(topic_name, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        seen: list[Any] = []
        try:
            async with asyncio.timeout(timeout_s):
                while not done(seen):
                    batches = await consumer.getmany(timeout_ms=500)
                    seen += [r for records in batches.values() for r in records if key is None or r.key == key]
        finally:
            await consumer.stop()
        return seen

    return asyncio.run(run())


@pytest.fixture
def consume() -> ReadTopic:
    """`consume(bootstrap, topic, done, key=None, timeout_s=90)`: read a topic from its start until `done(records)`."""
    return read_topic

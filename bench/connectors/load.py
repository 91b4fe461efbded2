"""The live run: concurrent httpx clients posting the deliveries (in a child process), and a consumer watching okr.delivery.v1.

Times are `time.monotonic()`, one clock for every process of the machine (CLOCK_MONOTONIC),
so the client's send times and the consumer's receive times can be compared.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from deliveries import Workload, build

from okr_contracts.topics import DELIVERY_TOPIC

Message = tuple[bytes, bytes, list[tuple[str, bytes]]]
FETCH_WAIT_MS = 20
"""How long the consumer's fetches wait for more messages: events are read up to this much later than they could be."""


@dataclass(frozen=True)
class Sent:
    """What the clients saw: when they started, and per issue when its request was sent and answered."""

    start: float
    sent: dict[str, float]
    answered: dict[str, float]
    client_cpu_s: float
    body_bytes: int


@dataclass(frozen=True)
class Consumed:
    """What reached okr.delivery.v1 for the benchmark's portfolio: per issue when it was read, and the messages as published."""

    at: dict[str, float]
    messages: list[Message]


@contextmanager
def client_process() -> Iterator[ProcessPoolExecutor]:
    """A child process (spawned, not forked from a process with threads and a running loop) that runs `drive`."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(time.sleep, 0).result()  # pay for the start-up here, not inside a measurement
        yield pool


def drive(url: str, workload: Workload, clients: int) -> Sent:
    """Build and sign the deliveries (not timed), then post them through `clients` keep-alive connections; each must be accepted."""
    return asyncio.run(_drive(url, workload, clients))


async def _drive(url: str, workload: Workload, clients: int) -> Sent:
    deliveries = build(workload)
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:
        pending = iter(deliveries)
        start, cpu = time.monotonic(), time.process_time()

        async def worker() -> None:
            """Post deliveries until none is left; anything but 200 "accepted" stops the benchmark."""
            for delivery in pending:
                sent[delivery.issue_id] = time.monotonic()
                response = await client.post("/webhooks/jira", content=delivery.body, headers=delivery.headers)
                answered[delivery.issue_id] = time.monotonic()
                if response.status_code != 200 or response.json() != {"status": "accepted"}:
                    raise RuntimeError(f"delivery of issue {delivery.issue_id} answered {response.status_code}: {response.text[:500]}")

        await asyncio.gather(*(worker() for _ in range(clients)))
        cpu = time.process_time() - cpu
    return Sent(start, sent, answered, cpu, sum(len(d.body) for d in deliveries) // max(1, len(deliveries)))


async def watch(
    bootstrap: str, portfolio: str, expected: set[str], send: Callable[[], Awaitable[Sent]], timeout_s: float
) -> tuple[Sent, Consumed]:
    """Position a consumer at the end of okr.delivery.v1, then `send` and read until every expected issue arrived for `portfolio`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        client_id="bench-connectors-watch",
        fetch_min_bytes=1 << 20,  # a fetch returns after FETCH_WAIT_MS (or 1 MB): a few fetches a second, not one per event
        fetch_max_wait_ms=FETCH_WAIT_MS,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(DELIVERY_TOPIC.name, p) for p in range(DELIVERY_TOPIC.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)  # resolve the end offsets now, before anything is sent
        sending = asyncio.ensure_future(send())
        at: dict[str, float] = {}
        messages: list[Message] = []
        key, deadline = portfolio.encode(), time.monotonic() + timeout_s
        while len(at) < len(expected):
            batches = await consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    if record.key != key:
                        continue
                    issue = json.loads(record.value)["data"]["external_id"]
                    if issue in expected and issue not in at:
                        at[issue] = now
                        messages.append((record.key, record.value, list(record.headers)))
            if sending.done() and sending.exception() is not None:
                raise RuntimeError("the clients failed") from sending.exception()
            if now > deadline:
                sending.cancel()
                raise RuntimeError(f"only {len(at)} of {len(expected)} events reached {DELIVERY_TOPIC.name} within {timeout_s:.0f} s")
        return await sending, Consumed(at, messages)
    finally:
        await consumer.stop()


def quantile_ms(values: list[float], q: float) -> float:
    """A quantile of durations in seconds, in milliseconds."""
    if len(values) < 2:
        return sum(values) * 1000
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1] * 1000

"""The dispatcher over a real (SQLite) send log, with an injected clock and random source: retries, Retry-After, dead letters, restarts."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from okr_notifier.dispatch import Dispatcher
from okr_notifier.metrics import SendCounters
from okr_notifier.senders import SendFailed
from okr_notifier.sendlog import Outcome, Send, SendLog, SqliteSendLog
from okr_runtime.instruments import NOTIFICATIONS_FAILED, NOTIFICATIONS_SENT, OUTBOX_BACKLOG
from okr_runtime.telemetry import observe_backlog
from okr_runtime.testing import MetricsProbe

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class MaxJitter(random.Random):
    """Always the top of the jitter range, so delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Crash(BaseException):
    """The process dying: nothing catches it."""


@dataclass
class Channel:
    """A fake way out: fails each address as scripted (an exception, or a Crash), then delivers."""

    script: dict[str, list[BaseException]] = field(default_factory=dict)
    delivered: list[str] = field(default_factory=list)
    crash_after_delivering: set[str] = field(default_factory=set)

    async def deliver(self, send: Send) -> None:
        failures = self.script.get(send.address, [])
        if failures:
            raise failures.pop(0)
        self.delivered.append(send.address)
        if send.address in self.crash_after_delivering:
            self.crash_after_delivering.discard(send.address)
            raise Crash


@dataclass
class DeadLetters:
    letters: list[tuple[tuple[str, str, str, str], str]] = field(default_factory=list)
    failures: int = 0

    async def publish(self, send: Send, reason: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Kafka unreachable")
        self.letters.append((send.key, reason))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "notifier.sqlite"


@pytest.fixture
def store(path: Path) -> Iterator[SendLog]:
    found = SqliteSendLog(path)
    yield found
    found.close()


def send(address: str, alert: str = "a1") -> Send:
    return Send(alert, "at_risk", f"to-{address}", "slack", address, {"text": "Growth is at risk"})


def dispatcher(store: SendLog, channel: Channel, dead: DeadLetters, clock: Clock, **kwargs: Any) -> Dispatcher:
    options: dict[str, Any] = {"max_attempts": 5, "base_delay_s": 2, "max_delay_s": 600, "rng": MaxJitter(), **kwargs}
    return Dispatcher(store, channel.deliver, dead_letter=dead.publish, clock=clock, **options)


def outcomes(store: SendLog, alert: str = "a1") -> list[tuple[str, int, Outcome, str]]:
    return [(a.recipient, a.attempt, a.outcome, a.detail) for a in store.attempts(alert)]


async def test_a_failed_send_is_retried_after_backoff_then_sent_once(store: SendLog) -> None:
    clock, dead = Clock(), DeadLetters()
    channel = Channel(script={"C1": [SendFailed("HTTP 500: server_error", retryable=True)]})
    store.enqueue([send("C1")], now=T0)
    dispatch = dispatcher(store, channel, dead, clock)

    assert await dispatch.run_once() == 1
    assert await dispatch.run_once() == 0  # held back by the backoff
    clock.advance(1.9)
    assert await dispatch.run_once() == 0
    clock.advance(0.1)
    assert await dispatch.run_once() == 1
    clock.advance(3600)
    assert await dispatch.run_once() == 0

    assert channel.delivered == ["C1"]
    assert outcomes(store) == [("to-C1", 1, "retry", "HTTP 500: server_error"), ("to-C1", 2, "ok", "delivered")]
    assert store.counts() == {"pending": 0, "sent": 1, "dead": 0}
    assert dead.letters == []


async def test_slacks_retry_after_is_honoured_when_longer_than_the_backoff(store: SendLog) -> None:
    clock, dead = Clock(), DeadLetters()
    channel = Channel(
        script={
            "C1": [SendFailed("HTTP 429: ", retryable=True, retry_after_s=30)],
            "C2": [SendFailed("ratelimited", retryable=True, retry_after_s=1)],
        }
    )
    store.enqueue([send("C1"), send("C2")], now=T0)
    await dispatcher(store, channel, dead, clock).run_once()

    c1, c2 = store.get("a1", "at_risk", "to-C1", "slack"), store.get("a1", "at_risk", "to-C2", "slack")
    assert c1 is not None
    assert c2 is not None
    assert c1.next_attempt_at == T0 + timedelta(seconds=30)
    assert c2.next_attempt_at == T0 + timedelta(seconds=2)  # the backoff was longer than Retry-After

    clock.advance(29)
    await dispatcher(store, channel, dead, clock).run_once()
    assert channel.delivered == ["C2"]
    clock.advance(1)
    await dispatcher(store, channel, dead, clock).run_once()
    assert channel.delivered == ["C2", "C1"]


async def test_backoff_doubles_up_to_its_ceiling_then_the_send_is_dead_lettered(store: SendLog) -> None:
    clock, dead = Clock(), DeadLetters()
    channel = Channel(script={"C1": [SendFailed("HTTP 503: unavailable", retryable=True) for _ in range(10)]})
    store.enqueue([send("C1")], now=T0)
    dispatch = dispatcher(store, channel, dead, clock, max_attempts=6, max_delay_s=10)

    delays = []
    for _ in range(5):
        started = clock.now
        assert await dispatch.run_once() == 1
        found = store.get("a1", "at_risk", "to-C1", "slack")
        assert found is not None
        assert found.next_attempt_at is not None
        delays.append((found.next_attempt_at - started).total_seconds())
        clock.now = found.next_attempt_at
    assert delays == [2, 4, 8, 10, 10]
    assert dead.letters == []

    assert await dispatch.run_once() == 1
    reason = "HTTP 503: unavailable (gave up after 6 attempts)"
    assert dead.letters == [(("a1", "at_risk", "to-C1", "slack"), reason)]
    assert outcomes(store)[-1] == ("to-C1", 6, "permanent", reason)
    assert [o for _, _, o, _ in outcomes(store)] == ["retry"] * 5 + ["permanent"]
    assert store.counts() == {"pending": 0, "sent": 0, "dead": 1}
    clock.advance(3600)
    assert await dispatch.run_once() == 0
    assert channel.delivered == []


async def test_jitter_spreads_retries_below_the_exponential_ceiling(store: SendLog) -> None:
    dispatch = Dispatcher(store, Channel().deliver, dead_letter=DeadLetters().publish, rng=random.Random(7))
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (10, 600), (500, 600)]:
        delays = [dispatch.backoff_s(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 2  # spread over the range, not bunched


async def test_a_permanent_failure_is_dead_lettered_at_once_with_its_reason(store: SendLog) -> None:
    clock, dead = Clock(), DeadLetters()
    channel = Channel(script={"C_GONE": [SendFailed("channel_not_found", retryable=False)]})
    store.enqueue([send("C_GONE"), send("C_OK")], now=T0)
    assert await dispatcher(store, channel, dead, clock).run_once() == 2

    assert dead.letters == [(("a1", "at_risk", "to-C_GONE", "slack"), "channel_not_found")]
    assert channel.delivered == ["C_OK"]
    gone = store.get("a1", "at_risk", "to-C_GONE", "slack")
    assert gone is not None
    assert (gone.status, gone.attempts, gone.last_error) == ("dead", 1, "channel_not_found")


async def test_an_unexpected_error_is_retried_like_a_transient_one(store: SendLog) -> None:
    clock, dead = Clock(), DeadLetters()
    channel = Channel(script={"C1": [KeyError("blocks")]})
    store.enqueue([send("C1")], now=T0)
    dispatch = dispatcher(store, channel, dead, clock)
    await dispatch.run_once()
    clock.advance(2)
    await dispatch.run_once()
    assert channel.delivered == ["C1"]
    assert outcomes(store) == [("to-C1", 1, "retry", "KeyError: 'blocks'"), ("to-C1", 2, "ok", "delivered")]


async def test_a_dead_letter_that_cannot_be_published_leaves_the_send_pending(store: SendLog) -> None:
    clock, dead = Clock(), DeadLetters(failures=1)
    channel = Channel(script={"C1": [SendFailed("channel_not_found", retryable=False) for _ in range(2)]})
    store.enqueue([send("C1")], now=T0)
    dispatch = dispatcher(store, channel, dead, clock)
    with pytest.raises(ConnectionError):
        await dispatch.run_once()
    assert store.counts() == {"pending": 1, "sent": 0, "dead": 0}
    await dispatch.run_once()
    assert dead.letters == [(("a1", "at_risk", "to-C1", "slack"), "channel_not_found")]
    assert store.counts() == {"pending": 0, "sent": 0, "dead": 1}


async def test_a_restart_after_a_crash_mid_batch_sends_nothing_twice(store: SendLog, path: Path) -> None:
    clock, dead = Clock(), DeadLetters()
    channel = Channel(script={"C2": [Crash()]})  # the process dies while sending the second of three
    store.enqueue([send("C1", "a1"), send("C2", "a2"), send("C3", "a3")], now=T0)
    with pytest.raises(Crash):
        await dispatcher(store, channel, dead, clock).run_once()
    assert channel.delivered == ["C1"]
    store.close()

    restarted = SqliteSendLog(path)
    try:
        restarted.enqueue([send("C1", "a1"), send("C2", "a2"), send("C3", "a3")], now=T0)  # Kafka redelivers the alerts too
        assert await dispatcher(restarted, channel, dead, clock).run_once() == 2
        assert await dispatcher(restarted, channel, dead, clock).run_once() == 0
        assert channel.delivered == ["C1", "C2", "C3"]
        assert restarted.counts() == {"pending": 0, "sent": 3, "dead": 0}
    finally:
        restarted.close()


class ForgetfulLog(SqliteSendLog):
    """A log whose process dies after the far side accepted a send, before the send was recorded."""

    def record(self, send: Send, outcome: Outcome, *, at: datetime, detail: str, next_attempt_at: datetime | None = None) -> int:
        raise Crash


async def test_a_crash_between_delivery_and_record_repeats_that_send_only(path: Path) -> None:
    """The documented at-least-once window: the one send in flight is sent again; the rest of the batch is not affected."""
    clock, dead, channel = Clock(), DeadLetters(), Channel()
    first = ForgetfulLog(path)
    first.enqueue([send("C1"), send("C2")], now=T0)
    with pytest.raises(Crash):
        await dispatcher(first, channel, dead, clock).run_once()  # C1 reached Slack, then the process died
    first.close()
    assert channel.delivered == ["C1"]

    restarted = SqliteSendLog(path)
    try:
        await dispatcher(restarted, channel, dead, clock).run_once()
        assert [o for _, _, o, _ in outcomes(restarted)] == ["ok", "ok"]
    finally:
        restarted.close()
    assert channel.delivered == ["C1", "C1", "C2"]


async def test_run_delivers_until_stopped(store: SendLog) -> None:
    clock, dead, channel = Clock(), DeadLetters(), Channel()
    store.enqueue([send("C1")], now=T0)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher(store, channel, dead, clock).run(stop, idle_s=0.01))
    for _ in range(200):
        if channel.delivered:
            break
        await asyncio.sleep(0.01)
    store.enqueue([send("C2")], now=T0)
    for _ in range(200):
        if len(channel.delivered) == 2:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert channel.delivered == ["C1", "C2"]


async def test_each_attempt_is_counted_sent_or_failed_by_channel_and_reason_class(store: SendLog) -> None:
    probe = MetricsProbe("notifier")
    clock, dead = Clock(), DeadLetters()
    channel = Channel(
        script={"C1": [SendFailed("HTTP 503", retryable=True), KeyError("blocks")], "C_GONE": [SendFailed("gone", retryable=False)]}
    )
    store.enqueue([send("C1"), send("C_GONE"), send("C_OK")], now=T0)
    dispatch = dispatcher(store, channel, dead, clock, outcomes=SendCounters(probe.telemetry))
    await dispatch.run_once()
    clock.advance(600)
    await dispatch.run_once()
    clock.advance(600)
    await dispatch.run_once()

    assert channel.delivered == ["C_OK", "C1"]
    assert probe.read(NOTIFICATIONS_SENT) == {frozenset({("channel", "slack")}): 2}
    assert probe.read(NOTIFICATIONS_FAILED) == {
        frozenset({("channel", "slack"), ("reason", "transient")}): 1,
        frozenset({("channel", "slack"), ("reason", "permanent")}): 1,
        frozenset({("channel", "slack"), ("reason", "KeyError")}): 1,
    }
    probe.close()


async def test_the_backlog_is_what_is_not_delivered_yet(store: SendLog) -> None:
    probe = MetricsProbe("notifier")
    observe_backlog(probe.telemetry, "notifier_sends", store.pending_count)
    clock, dead = Clock(), DeadLetters()
    channel = Channel(script={"C1": [SendFailed("HTTP 503", retryable=True)]})
    store.enqueue([send("C1"), send("C2")], now=T0)
    assert probe.value(OUTBOX_BACKLOG, {"outbox": "notifier_sends"}) == 2
    dispatch = dispatcher(store, channel, dead, clock)
    await dispatch.run_once()
    assert probe.value(OUTBOX_BACKLOG, {"outbox": "notifier_sends"}) == 1  # C1 waits for its retry
    clock.advance(600)
    await dispatch.run_once()
    assert probe.value(OUTBOX_BACKLOG, {"outbox": "notifier_sends"}) == 0
    probe.close()

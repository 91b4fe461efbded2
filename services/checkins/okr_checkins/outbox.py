"""The outbox relay: publishes every stored history event to ``okr.kr-events.v1``, in order, from the event store's own log.

The relay reads the application's notification log after the position it last
recorded (an eventsourcing tracking record in the same database), publishes
that batch with the idempotent producer (keyed by portfolio id, so a
portfolio's events stay in order on one partition), waits for every ack, and
only then records the new position. Kafka being down stops the relay, never the
writers: when Kafka returns, publishing resumes from the recorded position. A
crash between the acks and recording the position republishes that batch once
more with the same event ids, which consumers deduplicate.

On shutdown the relay first publishes what is already stored (for at most
``drain_s``). Only one relay publishes at a time: on PostgreSQL the replicas compete for an
advisory lock; the SQLite store is single-process by nature.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from eventsourcing.persistence import InfrastructureFactory, Notification, Tracking, TrackingRecorder
from eventsourcing.utils import Environment, get_topic
from faststream.kafka import KafkaBroker
from opentelemetry import context as otel_context
from opentelemetry import propagate

from okr_checkins.application import CheckinsApplication
from okr_checkins.backlog import unpublished_count
from okr_checkins.domain.portfolio import Portfolio
from okr_contracts.export import envelope_of
from okr_contracts.topics import topic

log = logging.getLogger(__name__)

KR_EVENTS = topic("okr.kr-events.v1")
HISTORY_TOPICS = (get_topic(Portfolio.Started), get_topic(Portfolio.Recorded))
TRACKING_NAME = "checkins_outbox"
MAX_RETRY_S = 30.0


class Lease(Protocol):
    """Whether this process is the one relay allowed to publish."""

    async def held(self) -> bool:
        """True while this process holds the lease (acquiring it if free)."""
        ...

    async def release(self) -> None:
        """Give the lease up."""
        ...


class SingleProcessLease:
    """The lease of a store only one process opens (SQLite)."""

    async def held(self) -> bool:
        return True

    async def release(self) -> None:
        return None


def tracking_recorder(env: dict[str, str]) -> TrackingRecorder:
    """The recorder of the relay's position, in the same database as the history."""
    return InfrastructureFactory.construct(Environment(TRACKING_NAME, env)).tracking_recorder()


class OutboxRelay:
    """Publishes the history to Kafka from the last recorded position."""

    def __init__(
        self,
        app: CheckinsApplication,
        broker: KafkaBroker,
        tracking: TrackingRecorder,
        lease: Lease,
        *,
        batch: int = 500,
        idle_s: float = 0.5,
        retry_s: float = 1.0,
        drain_s: float = 10.0,
    ) -> None:
        self.app, self.broker, self.tracking, self.lease = app, broker, tracking, lease
        self.batch, self.idle_s, self.retry_s, self.drain_s = batch, idle_s, retry_s, drain_s
        self.published = 0

    def position(self) -> int:
        """The last notification id whose event Kafka acknowledged."""
        return self.tracking.max_tracking_id(TRACKING_NAME) or 0

    def backlog(self) -> int:
        """How many stored history events Kafka has not acknowledged yet."""
        return unpublished_count(self.app.recorder, self.position(), HISTORY_TOPICS)

    async def run(self) -> None:
        """Relay until cancelled; Kafka errors back off and retry from the recorded position."""
        delay = self.retry_s
        while True:
            self.app.saved.clear()
            try:
                moved = await self._finish_batch() if await self.lease.held() else 0
            except asyncio.CancelledError:
                await self._drain()
                raise
            except Exception as exc:
                log.warning("outbox relay paused %.1fs: %r", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            delay = self.retry_s
            if not moved:
                try:
                    await self._idle()
                except asyncio.CancelledError:
                    await self._drain()
                    raise

    async def relay_once(self) -> int:
        """Publish one batch after the recorded position; returns how many events it published."""
        start = await asyncio.to_thread(self.position)
        notifications = await asyncio.to_thread(self._select, start)
        if not notifications:
            return 0
        pending = [await self._send(n) for n in notifications]
        await asyncio.gather(*pending)
        last = notifications[-1].id
        await asyncio.to_thread(self.tracking.insert_tracking, Tracking(TRACKING_NAME, last))
        self.published += len(notifications)
        return len(notifications)

    def _select(self, start: int) -> Sequence[Notification]:
        return self.app.recorder.select_notifications(start + 1, self.batch, topics=HISTORY_TOPICS)

    async def _send(self, notification: Notification) -> asyncio.Future[Any]:
        event = self.app.mapper.to_domain_event(notification)
        envelope = envelope_of(event.record)  # type: ignore[attr-defined]
        meta = event.meta or {}  # type: ignore[attr-defined]
        token = otel_context.attach(propagate.extract(meta.get("trace") or {}))
        try:
            future: asyncio.Future[Any] = await self.broker.publish(
                envelope.to_json_bytes(),
                topic=KR_EVENTS.name,
                key=KR_EVENTS.key_for(envelope),
                headers={**envelope.headers(), "okr-chain-position": str(event.record["position"]), "okr-chain-hash": event.record["hash"]},  # type: ignore[attr-defined]
                no_confirm=True,
            )
        finally:
            otel_context.detach(token)
        return future

    async def _finish_batch(self) -> int:
        """One batch that a shutdown lets finish, so its acks and its position are recorded together."""
        batch = asyncio.ensure_future(self.relay_once())
        try:
            return await asyncio.shield(batch)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await batch
            raise

    async def _drain(self) -> None:
        """On shutdown, publish what is already stored, for a bounded time (the rest goes after restart)."""
        try:
            async with asyncio.timeout(self.drain_s):
                while await self.lease.held() and await self.relay_once():
                    pass
        except Exception as exc:  # shutting down: whatever is left is published after the restart
            log.warning("outbox relay stopped before draining: %r", exc)

    async def _idle(self) -> None:
        await asyncio.to_thread(self.app.saved.wait, self.idle_s)

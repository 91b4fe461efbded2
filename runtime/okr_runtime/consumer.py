"""Subscribe to a topic so that a message is either processed or dead-lettered, never lost.

The offset is committed only after the handler returned (its effect is stored)
or the message was written to the consumer group's dead-letter topic:

- a message that cannot be parsed, names an unknown event type, or that the
  handler rejects (:class:`Rejected`) can never succeed: it goes to the
  dead-letter topic at once, with the reason in headers;
- any other error is taken as transient: the offset is rewound and the message
  retried with a doubling backoff, up to ``dlq_max_attempts``; then it is
  dead-lettered with the last error as the reason.

Each delivery is counted on ``okr.messages.processed`` with its outcome:
``processed``, ``dead_lettered``, or ``retried`` (it raised, so Kafka delivers it again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.subscriber.usecase import DefaultSubscriber
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy

from okr_contracts.envelope import Envelope, EventPayload, Headers
from okr_contracts.topics import MalformedMessage, TopicSpec, UnknownEventType, dead_letter_topic
from okr_runtime.instruments import GROUP, MESSAGES_PROCESSED, TOPIC
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import Telemetry

log = logging.getLogger(__name__)


class Rejected(Exception):
    """Raised by a handler for a message that can never be processed (it is dead-lettered)."""


@dataclass(frozen=True)
class Delivery:
    """Where a message came from, for handlers that need more than the envelope."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, str]


Handler = Callable[[Envelope[EventPayload], Delivery], Awaitable[None]]
Outcome = Literal["processed", "dead_lettered", "retried"]


class DeadLetterRouter:
    """Decides, per message, between processing, retrying and dead-lettering."""

    def __init__(
        self, broker: KafkaBroker, spec: TopicSpec, group_id: str, handler: Handler, settings: RuntimeSettings, telemetry: Telemetry
    ) -> None:
        self.broker = broker
        self.spec = spec
        self.group_id = group_id
        self.handler = handler
        self.max_attempts = settings.dlq_max_attempts
        self.backoff_s = settings.dlq_retry_backoff_s
        self.dead_letter_topic = dead_letter_topic(group_id)
        self._attempts: dict[tuple[int, int], int] = {}
        self._finished = telemetry.counter(MESSAGES_PROCESSED)

    async def consume(self, message: KafkaMessage) -> None:
        """Process one message; raising asks FastStream to rewind and redeliver it."""
        delivery = _delivery_of(message)
        try:
            outcome = await self._process(message, delivery)
        except Exception:
            self._count(delivery, "retried")
            raise
        self._count(delivery, outcome)

    async def _process(self, message: KafkaMessage, delivery: Delivery) -> Outcome:
        try:
            envelope = self.spec.decode(message.body)
            await self.handler(envelope, delivery)
        except (MalformedMessage, UnknownEventType, Rejected) as exc:
            await self._dead_letter(message, delivery, exc, attempts=1)
            return "dead_lettered"
        except Exception as exc:
            return await self._retry_or_dead_letter(message, delivery, exc)
        self._attempts.pop((delivery.partition, delivery.offset), None)
        return "processed"

    def _count(self, delivery: Delivery, outcome: Outcome) -> None:
        self._finished.add(1, {TOPIC: delivery.topic, GROUP: self.group_id, "outcome": outcome})

    async def _retry_or_dead_letter(self, message: KafkaMessage, delivery: Delivery, exc: Exception) -> Outcome:
        position = (delivery.partition, delivery.offset)
        attempts = self._attempts.get(position, 0) + 1
        if attempts >= self.max_attempts:
            self._attempts.pop(position, None)
            await self._dead_letter(message, delivery, exc, attempts=attempts)
            return "dead_lettered"
        self._attempts[position] = attempts
        delay = self.backoff_s * 2 ** (attempts - 1)
        log.warning(
            "attempt %d at %s[%d]@%d failed (%r); retrying in %.1fs",
            attempts,
            delivery.topic,
            delivery.partition,
            delivery.offset,
            exc,
            delay,
        )
        await asyncio.sleep(delay)
        raise exc

    async def _dead_letter(self, message: KafkaMessage, delivery: Delivery, exc: Exception, *, attempts: int) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        log.error("dead-lettering %s[%d]@%d to %s: %s", delivery.topic, delivery.partition, delivery.offset, self.dead_letter_topic, reason)
        headers = {
            **delivery.headers,
            Headers.DLQ_REASON: reason,
            Headers.DLQ_ERROR_TYPE: type(exc).__name__,
            Headers.DLQ_SOURCE_TOPIC: delivery.topic,
            Headers.DLQ_SOURCE_PARTITION: str(delivery.partition),
            Headers.DLQ_SOURCE_OFFSET: str(delivery.offset),
            Headers.DLQ_CONSUMER_GROUP: self.group_id,
            Headers.DLQ_ATTEMPTS: str(attempts),
            Headers.DLQ_FAILED_AT: datetime.now(UTC).isoformat(),
        }
        await self.broker.publish(message.body, topic=self.dead_letter_topic, key=delivery.key, headers=headers)


def _delivery_of(message: KafkaMessage) -> Delivery:
    record: Any = message.raw_message
    headers = {name: (value or b"").decode("utf-8", "replace") for name, value in (record.headers or ())}
    return Delivery(record.topic, record.partition, record.offset, record.key, headers)


async def _undecoded(message: StreamMessage[Any]) -> Any:
    """The body as it came. FastStream would parse a value labelled ``application/json`` before the router
    sees it, and a malformed one would then fail on every redelivery, stopping its partition for good;
    the router parses it itself (``TopicSpec.decode``) and dead-letters what does not parse."""
    return message.body


def subscribe(
    broker: KafkaBroker,
    spec: TopicSpec,
    *,
    group_id: str,
    handler: Handler,
    settings: RuntimeSettings,
    telemetry: Telemetry,
    auto_offset_reset: Literal["latest", "earliest", "none"] = "earliest",
) -> DefaultSubscriber:
    """Register `handler` for `spec` in consumer group `group_id`, with dead-letter routing, counting each outcome."""
    router = DeadLetterRouter(broker, spec, group_id, handler, settings, telemetry)
    subscriber = broker.subscriber(
        spec.name,
        group_id=group_id,
        decoder=_undecoded,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset=auto_offset_reset,
        title=f"{group_id}:{spec.name}",
        description=f"Consumer group {group_id}; unprocessable messages go to {router.dead_letter_topic}.",
    )
    broker.publisher(
        router.dead_letter_topic,
        title=f"{router.dead_letter_topic}:publish",
        description=f"Messages {group_id} could not process; the original value with reason headers.",
    )

    async def consume(message: KafkaMessage) -> None:
        await router.consume(message)

    subscriber(consume)
    return subscriber

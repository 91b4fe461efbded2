"""Subscribe to a topic so that a message is either processed or dead-lettered, never lost.

Messages are taken from Kafka in batches (up to ``consumer_batch_max_records``, whatever
is there when the consumer polls) and the batch's offsets are committed together, once
every message in it was processed (its effect stored) or written to the consumer
group's dead-letter topic. A crash before that commit redelivers the batch, so
handlers must be idempotent; okrstream's are, by event id.

- a message that cannot be parsed, names an unknown event type, or that the
  handler rejects (:class:`Rejected`) can never succeed: it goes to the
  dead-letter topic, with the reason in headers;
- any other error is taken as transient: what was finished before it is committed,
  the partitions are rewound to the failed message (and to whatever in the batch was not
  reached), and it is retried after a doubling backoff, up to ``dlq_max_attempts``;
  then it is dead-lettered with the last error as the reason;
- except an outage (:func:`is_outage`: the database or Kafka unreachable): the message is
  retried for as long as it lasts, the backoff capped at ``consumer_outage_max_backoff_s``,
  and never dead-lettered for it.

A handler may come with a *batch handler* that applies many messages at once (one
transaction, one publish): it returns, per message, ``None`` or the :class:`Rejected`
that refuses it. When it raises, it must have stored nothing or everything it had
done so far must be safe to do again, and the batch is then processed one message
at a time through the handler, where a transient error is retried as above.

Each delivery is counted on ``okr.messages.processed`` with its outcome:
``processed``, ``dead_lettered``, or ``retried`` (it failed and is taken again).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

import eventsourcing.persistence as eventsourcing_errors
import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind

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


MAX_LINKS = 128
"""Links a batch's span keeps to its messages' producer spans: the OpenTelemetry SDK's default limit per span."""
Handler = Callable[[Envelope[EventPayload], Delivery], Awaitable[None]]
Received = tuple[Envelope[EventPayload], Delivery]
BatchHandler = Callable[[Sequence[Received]], Awaitable[Sequence[Rejected | None]]]
"""Applies messages in order, all at once; returns one verdict per message: None (applied) or why it is refused."""
Outcome = Literal["processed", "dead_lettered", "retried"]
Record: TypeAlias = ConsumerRecord  # aiokafka ships no types: Any to mypy


class _Retry(Exception):
    """A message failed for a transient reason and waited out its backoff: rewind to it and take it again."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


class _Stopped(Exception):
    """A message could be neither processed nor dead-lettered (the cause says why): stop the batch there."""

    def __init__(self, index: int, record: Record) -> None:
        super().__init__(index)
        self.index = index
        self.where = (record.topic, record.partition, record.offset)


class DeadLetterRouter:
    """Decides, per message of a batch, between processing, retrying and dead-lettering, and commits the batch."""

    def __init__(
        self,
        broker: KafkaBroker,
        spec: TopicSpec,
        group_id: str,
        handler: Handler,
        settings: RuntimeSettings,
        telemetry: Telemetry,
        batch_handler: BatchHandler | None = None,
    ) -> None:
        self.broker = broker
        self.spec = spec
        self.group_id = group_id
        self.handler = handler
        self.batch_handler = batch_handler
        self.max_attempts = settings.dlq_max_attempts
        self.backoff_s = settings.dlq_retry_backoff_s
        self.outage_max_backoff_s = settings.consumer_outage_max_backoff_s
        self.dead_letter_topic = dead_letter_topic(group_id)
        self._attempts: dict[tuple[str, int, int], int] = {}
        self._finished = telemetry.counter(MESSAGES_PROCESSED)
        self._tracer = telemetry.tracer_provider.get_tracer("okrstream.consumer")

    async def consume(self, message: KafkaMessage) -> None:
        """Process one batch from Kafka; commit what was finished and rewind to what was not."""
        raw: Any = message.raw_message
        records: tuple[Record, ...] = tuple(raw) if isinstance(raw, (tuple, list)) else (raw,)
        if not records:
            return
        try:
            await self.process(records)
        except _Retry as retry:
            await _commit(message.consumer, records[: retry.index])
            _rewind(message.consumer, records[retry.index :])
            return
        except _Stopped as stopped:
            # Dead-lettering itself failed (Kafka unreachable): nothing from the failed message on is finished.
            log.error("%s[%d]@%d: %r; it is taken again", *stopped.where, stopped.__cause__)
            await _commit(message.consumer, records[: stopped.index])
            _rewind(message.consumer, records[stopped.index :])
            await asyncio.sleep(self.backoff_s)
            return
        await _commit(message.consumer, records)

    async def process(self, records: Sequence[Record]) -> None:
        """Process `records` (one poll's batch, each partition's in order).

        Raises :class:`_Retry` at a transient failure of the handler, :class:`_Stopped` when
        a message could be neither processed nor dead-lettered; both name where it stopped.
        """
        if self.batch_handler is not None and len(records) > 1:
            try:
                if await self._all_at_once(records):
                    return
            except Exception as exc:
                raise _Stopped(0, records[0]) from exc
        for index, record in enumerate(records):
            delivery = _delivery_of(record)
            try:
                outcome = await self._one(record, delivery, index)
            except _Retry:
                raise
            except Exception as exc:
                raise _Stopped(index, record) from exc
            self._count(delivery, outcome)

    async def _all_at_once(self, records: Sequence[Record]) -> bool:
        """The batch handler's way; False (nothing dead-lettered or counted) when it raised, for one at a time to take over."""
        assert self.batch_handler is not None
        deliveries = [_delivery_of(record) for record in records]
        received: list[Received] = []
        unreadable: dict[int, Exception] = {}
        for index, (record, delivery) in enumerate(zip(records, deliveries, strict=True)):
            try:
                received.append((self.spec.decode(record.value), delivery))
            except (MalformedMessage, UnknownEventType) as exc:
                unreadable[index] = exc
        contexts = (_producer_context(delivery) for delivery in deliveries[:MAX_LINKS])
        links = [Link(context) for context in contexts if context.is_valid]
        try:
            with self._tracer.start_as_current_span(
                f"{records[0].topic} process", kind=SpanKind.CONSUMER, links=links, attributes=self._attributes(records[0], len(records))
            ):
                verdicts = list(await self.batch_handler(received)) if received else []
        except Exception as exc:
            log.warning(
                "a batch of %d from %s failed as a whole (%r); taking it one message at a time", len(records), records[0].topic, exc
            )
            return False
        if len(verdicts) != len(received):
            raise RuntimeError(f"the batch handler gave {len(verdicts)} verdicts for {len(received)} messages")
        refused, dead = iter(verdicts), 0
        for index, (record, delivery) in enumerate(zip(records, deliveries, strict=True)):
            reason = unreadable.get(index) or next(refused)
            if reason is not None:
                await self._dead_letter(record, delivery, reason, attempts=1)
                dead += 1
        self._count(deliveries[0], "processed", len(records) - dead)
        self._count(deliveries[0], "dead_lettered", dead)
        return True

    def _attributes(self, record: Record, count: int) -> dict[str, str | int]:
        return {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.consumer.group.name": self.group_id,
            "messaging.batch.message_count": count,
        }

    async def _one(self, record: Record, delivery: Delivery, index: int) -> Outcome:
        try:
            envelope = self.spec.decode(record.value)
            parent = propagate.extract(delivery.headers)
            attributes = {**self._attributes(record, 1), "messaging.kafka.offset": record.offset}
            with self._tracer.start_as_current_span(
                f"{record.topic} process", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
            ):
                await self.handler(envelope, delivery)
        except (MalformedMessage, UnknownEventType, Rejected) as exc:
            await self._dead_letter(record, delivery, exc, attempts=1)
            return "dead_lettered"
        except Exception as exc:
            return await self._retry_or_dead_letter(record, delivery, exc, index)
        self._attempts.pop((delivery.topic, delivery.partition, delivery.offset), None)
        return "processed"

    def _count(self, delivery: Delivery, outcome: Outcome, messages: int = 1) -> None:
        if messages:
            self._finished.add(messages, {TOPIC: delivery.topic, GROUP: self.group_id, "outcome": outcome})

    async def _retry_or_dead_letter(self, record: Record, delivery: Delivery, exc: Exception, index: int) -> Outcome:
        position = (delivery.topic, delivery.partition, delivery.offset)
        attempts = self._attempts.get(position, 0) + 1
        if is_outage(exc):  # the database or Kafka is away: wait for it however long, never dead-letter for that
            self._attempts[position] = attempts
            delay = min(self.backoff_s * 2 ** (attempts - 1), self.outage_max_backoff_s)
            log.warning(
                "%s[%d]@%d waits for a dependency (attempt %d: %r); retrying in %.1fs",
                delivery.topic,
                delivery.partition,
                delivery.offset,
                attempts,
                exc,
                delay,
            )
            self._count(delivery, "retried")
            await asyncio.sleep(delay)
            raise _Retry(index) from exc
        if attempts >= self.max_attempts:
            self._attempts.pop(position, None)
            await self._dead_letter(record, delivery, exc, attempts=attempts)
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
        self._count(delivery, "retried")
        await asyncio.sleep(delay)
        raise _Retry(index) from exc

    async def _dead_letter(self, record: Record, delivery: Delivery, exc: Exception, *, attempts: int) -> None:
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
        await self.broker.publish(record.value or b"", topic=self.dead_letter_topic, key=delivery.key, headers=headers)


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says a dependency is unreachable or busy, not that the message is wrong.

    PostgreSQL connection failures (psycopg's and the event-sourcing library's operational
    errors, pool timeouts), a SQLite database that stays locked, Kafka errors that Kafka
    marks retriable, and refused or timed-out connections.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError | psycopg.OperationalError | eventsourcing_errors.OperationalError):
            return True
        if isinstance(current, eventsourcing_errors.InterfaceError):
            return True
        if isinstance(current, KafkaError) and current.retriable:
            return True
        if isinstance(current, sqlite3.OperationalError) and ("locked" in str(current) or "busy" in str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def _delivery_of(record: Record) -> Delivery:
    headers = {name: (value or b"").decode("utf-8", "replace") for name, value in (record.headers or ())}
    return Delivery(record.topic, record.partition, record.offset, record.key, headers)


def _producer_context(delivery: Delivery) -> trace.SpanContext:
    """The span context the producer sent in the message's headers (invalid when it sent none)."""
    return trace.get_current_span(propagate.extract(delivery.headers)).get_span_context()


def _next_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the last of `records` there: what to commit once they are finished."""
    return {TopicPartition(record.topic, record.partition): record.offset + 1 for record in records}


async def _commit(consumer: Any, finished: Sequence[Record]) -> None:
    """Commit the offsets after `finished`; a failed commit (the group rebalanced) only means they are delivered again."""
    offsets = _next_offsets(finished)
    if not offsets or not isinstance(consumer, AIOKafkaConsumer):
        return  # FastStream's in-memory test broker has no consumer to commit to
    try:
        await consumer.commit(offsets)
    except KafkaError as exc:
        log.warning("committing %d partitions' offsets failed (%r); their messages will be delivered again", len(offsets), exc)


def _rewind(consumer: Any, unfinished: Sequence[Record]) -> None:
    """Seek each partition with unfinished records back to the first of them, so the next poll takes them again."""
    first: dict[TopicPartition, int] = {}
    for record in unfinished:
        first.setdefault(TopicPartition(record.topic, record.partition), record.offset)
    for partition, offset in first.items():
        consumer.seek(partition, offset)


async def _readable(records: Any, original: Callable[[Any], Awaitable[StreamMessage[Any]]]) -> StreamMessage[Any]:
    """FastStream's batch parser, given records whose headers always decode.

    FastStream decodes every header value as strict UTF-8; one header that is not (or
    is null) would fail the parse on every redelivery and stop the partition for good.
    """
    if not isinstance(records, (tuple, list)):
        return await original(_with_readable_headers(records))
    return await original(type(records)(_with_readable_headers(record) for record in records))


def _with_readable_headers(record: Record) -> Record:
    headers = record.headers or ()
    cleaned = tuple((name, (value or b"").decode("utf-8", "replace").encode()) for name, value in headers)
    if cleaned == tuple(headers):
        return record
    return dataclasses.replace(record, headers=cleaned)


async def _undecoded(message: StreamMessage[Any]) -> Any:
    """The bodies as they came. FastStream would parse a value labelled ``application/json`` before the router
    sees it, and a malformed one would then fail on every redelivery, stopping its partition for good;
    the router parses them itself (``TopicSpec.decode``) and dead-letters what does not parse."""
    return message.body


def subscribe(
    broker: KafkaBroker,
    spec: TopicSpec,
    *,
    group_id: str,
    handler: Handler,
    settings: RuntimeSettings,
    telemetry: Telemetry,
    batch_handler: BatchHandler | None = None,
    auto_offset_reset: Literal["latest", "earliest", "none"] = "earliest",
) -> BatchSubscriber:
    """Register `handler` (and `batch_handler`, if given) for `spec` in consumer group `group_id`, with dead-letter routing."""
    router = DeadLetterRouter(broker, spec, group_id, handler, settings, telemetry, batch_handler)
    subscriber = broker.subscriber(
        spec.name,
        group_id=group_id,
        batch=True,
        max_records=settings.consumer_batch_max_records,
        batch_timeout_ms=settings.consumer_batch_wait_ms,
        # aiokafka keeps one fetch in flight per broker: with the default 500 ms long poll, a partition drained
        # while the others are idle waits out that poll before its next records come (gaps of up to 500 ms).
        fetch_max_wait_ms=settings.consumer_batch_wait_ms,
        parser=_readable,
        decoder=_undecoded,
        ack_policy=AckPolicy.MANUAL,
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

"""The envelope every okrstream message travels in, and the Kafka header names.

The message value is the JSON envelope (self-describing, so an export of a topic
is readable on its own). The event id, type and schema version are copied into
Kafka headers so routers can act without parsing the value; the W3C trace
context (``traceparent``, ``tracestate``) travels only in headers.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class EventPayload(BaseModel):
    """Base of every event payload: frozen, and strict about unknown fields when produced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: ClassVar[int] = 1
    """Version of this payload's schema; bumped only with a compatible change or a new topic."""

    @classmethod
    def event_type(cls) -> str:
        """The event's type name on the wire: the class name, past tense by convention."""
        return cls.__name__


PayloadT = TypeVar("PayloadT", bound=EventPayload)


class Envelope(BaseModel, Generic[PayloadT]):
    """What every message on an ``okr.*`` topic carries around its payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(description="Unique id of this event; consumers deduplicate on it.")
    type: str = Field(description="The payload's event type, e.g. `CheckInRecorded`.")
    schema_version: int = Field(ge=1, description="Version of the payload schema for this type.")
    occurred_at: AwareDatetime = Field(description="When it happened in the world (UTC, ISO 8601).")
    recorded_at: AwareDatetime = Field(description="When okrstream recorded it (UTC, ISO 8601).")
    producer: str = Field(min_length=1, description="The service or connector that produced it.")
    data: PayloadT = Field(description="The event payload; its shape is given by `type`.")

    @classmethod
    def wrap(
        cls,
        payload: PayloadT,
        *,
        producer: str,
        occurred_at: datetime | None = None,
        recorded_at: datetime | None = None,
        event_id: uuid.UUID | None = None,
    ) -> Envelope[PayloadT]:
        """Put a payload in a new envelope; times default to now (UTC)."""
        now = datetime.now(UTC)
        model: Any = envelope_class(type(payload))
        envelope: Envelope[PayloadT] = model(
            event_id=event_id or uuid.uuid4(),
            type=payload.event_type(),
            schema_version=payload.schema_version,
            occurred_at=occurred_at or now,
            recorded_at=recorded_at or now,
            producer=producer,
            data=payload,
        )
        return envelope

    def headers(self) -> dict[str, str]:
        """The Kafka headers that mirror this envelope (trace context is added by telemetry)."""
        return {
            Headers.EVENT_ID: str(self.event_id),
            Headers.EVENT_TYPE: self.type,
            Headers.SCHEMA_VERSION: str(self.schema_version),
            Headers.CONTENT_TYPE: "application/json",
        }

    def to_json_bytes(self) -> bytes:
        """The message value: compact JSON of the whole envelope."""
        return self.model_dump_json().encode()

    def as_json(self) -> dict[str, Any]:
        """The envelope as JSON-compatible data."""
        return self.model_dump(mode="json")


class Headers:
    """Kafka header names used by okrstream (lower case, `okr-` prefix)."""

    EVENT_ID: ClassVar[str] = "okr-event-id"
    EVENT_TYPE: ClassVar[str] = "okr-event-type"
    SCHEMA_VERSION: ClassVar[str] = "okr-schema-version"
    CONTENT_TYPE: ClassVar[str] = "content-type"
    TRACEPARENT: ClassVar[str] = "traceparent"
    TRACESTATE: ClassVar[str] = "tracestate"
    DLQ_REASON: ClassVar[str] = "okr-dlq-reason"
    DLQ_ERROR_TYPE: ClassVar[str] = "okr-dlq-error-type"
    DLQ_SOURCE_TOPIC: ClassVar[str] = "okr-dlq-source-topic"
    DLQ_SOURCE_PARTITION: ClassVar[str] = "okr-dlq-source-partition"
    DLQ_SOURCE_OFFSET: ClassVar[str] = "okr-dlq-source-offset"
    DLQ_CONSUMER_GROUP: ClassVar[str] = "okr-dlq-consumer-group"
    DLQ_ATTEMPTS: ClassVar[str] = "okr-dlq-attempts"
    DLQ_FAILED_AT: ClassVar[str] = "okr-dlq-failed-at"


@functools.cache
def envelope_class(payload_type: type[EventPayload]) -> Any:
    """``Envelope[payload_type]``, built once: pydantic caches parametrised classes only weakly, so a garbage
    collection would free one between events and the next event would build it (and its schema) again."""
    return Envelope[payload_type]  # type: ignore[valid-type]

"""The topic registry: every ``okr.*`` topic, its key, its settings and its event types.

Topic names are part of the public contract; the version is in the name. Deploy
tooling (Strimzi ``KafkaTopic`` resources, the admin-client job, the local stack)
is generated from this registry, never written by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from pydantic import ValidationError

from okr_contracts.alerts import ALERT_EVENTS
from okr_contracts.delivery import DELIVERY_EVENTS
from okr_contracts.envelope import Envelope, EventPayload, envelope_class
from okr_contracts.kr_events import KR_EVENTS
from okr_contracts.metrics import METRIC_EVENTS
from okr_contracts.scores import SCORE_EVENTS, score_key

DAY_MS = 24 * 60 * 60 * 1000
FOREVER = -1


class UnknownEventType(ValueError):
    """A message names an event type its topic does not carry."""


class MalformedMessage(ValueError):
    """A message value is not a valid envelope for its topic."""


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the public contract."""

    name: str
    description: str
    key: str
    events: tuple[type[EventPayload], ...]
    key_of: Callable[[Any], str]
    partitions: int
    cleanup_policy: Literal["delete", "compact"] = "delete"
    retention_ms: int = FOREVER
    replication_factor: int = 3
    min_insync_replicas: int = 2
    extra_config: dict[str, str] = field(default_factory=dict)

    def event_class(self, event_type: str) -> type[EventPayload]:
        """The payload class for an event type carried by this topic."""
        found = self._classes.get(event_type)
        if found is None:
            raise UnknownEventType(f"{self.name} carries no event of type {event_type!r}")
        return found

    @cached_property
    def _classes(self) -> dict[str, type[EventPayload]]:
        return {cls.event_type(): cls for cls in self.events}

    def decode(self, value: bytes | str, *, tolerant: bool = True) -> Envelope[EventPayload]:
        """Parse a message value into its envelope; unknown fields are ignored when tolerant."""
        try:
            raw = json.loads(value)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedMessage(f"value is not JSON: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            raise MalformedMessage("value is not an envelope: no string field `type`")
        model: Any = envelope_class(self.event_class(raw["type"]))
        try:
            envelope: Envelope[EventPayload] = model.model_validate(raw, extra="ignore" if tolerant else None)
        except ValidationError as exc:
            raise MalformedMessage(f"invalid {raw['type']}: {_first_errors(exc)}") from exc
        return envelope

    def key_for(self, envelope: Envelope[Any]) -> bytes:
        """The Kafka key of an envelope on this topic."""
        return self.key_of(envelope.data).encode()

    def config(self) -> dict[str, str]:
        """Kafka topic-level configuration."""
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(self.min_insync_replicas),
            **self.extra_config,
        }


def _first_errors(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


KR_EVENTS_TOPIC = TopicSpec(
    name="okr.kr-events.v1",
    description="Every event of the append-only key-result history, in order per portfolio.",
    key="portfolio_id",
    events=KR_EVENTS,
    key_of=lambda e: e.portfolio_id,
    partitions=12,
)
DELIVERY_TOPIC = TopicSpec(
    name="okr.delivery.v1",
    description="Normalised work-item changes from Jira and Linear, blockers and decisions from Slack.",
    key="portfolio_id (else <source>:<external_id>)",
    events=DELIVERY_EVENTS,
    key_of=lambda e: e.portfolio_id or f"{e.source}:{e.external_id}",
    partitions=6,
    retention_ms=90 * DAY_MS,
)
METRICS_TOPIC = TopicSpec(
    name="okr.metrics.v1",
    description="KPI samples for auto-tracked key results.",
    key="portfolio_id (else metric)",
    events=METRIC_EVENTS,
    key_of=lambda e: e.portfolio_id or e.metric,
    partitions=6,
    retention_ms=400 * DAY_MS,
)
SCORES_TOPIC = TopicSpec(
    name="okr.scores.v1",
    description="Latest score per node with its derivation (compacted).",
    key="portfolio_id/node_id",
    events=SCORE_EVENTS,
    key_of=lambda e: score_key(e.portfolio_id, e.node_id),
    partitions=12,
    cleanup_policy="compact",
    extra_config={"min.compaction.lag.ms": str(DAY_MS)},
)
ALERTS_TOPIC = TopicSpec(
    name="okr.alerts.v1",
    description="Drift alerts and their lifecycle: raised, acknowledged, resolved.",
    key="portfolio_id",
    events=ALERT_EVENTS,
    key_of=lambda e: e.portfolio_id,
    partitions=6,
)

TOPICS: tuple[TopicSpec, ...] = (KR_EVENTS_TOPIC, DELIVERY_TOPIC, METRICS_TOPIC, SCORES_TOPIC, ALERTS_TOPIC)


def topic(name: str) -> TopicSpec:
    """The registered topic of that name."""
    for spec in TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(f"no topic {name!r} in the registry")


def dead_letter_topic(group_id: str) -> str:
    """The dead-letter topic of a consumer group: ``okr.dead-letter.<group>.v1``."""
    return f"okr.dead-letter.{group_id}.v1"


def dead_letter_spec(group_id: str) -> TopicSpec:
    """Settings of a consumer group's dead-letter topic (kept 30 days for inspection and replay)."""
    return TopicSpec(
        name=dead_letter_topic(group_id),
        description=f"Messages consumer group {group_id} could not process, with the reason in headers.",
        key="the original key",
        events=(),
        key_of=lambda e: "",
        partitions=1,
        retention_ms=30 * DAY_MS,
    )


def topic_table() -> list[dict[str, Any]]:
    """The registry as rows, for docs and deploy generators."""
    return [
        {
            "name": t.name,
            "key": t.key,
            "partitions": t.partitions,
            "cleanup.policy": t.cleanup_policy,
            "retention.ms": t.retention_ms,
            "events": [e.event_type() for e in t.events],
        }
        for t in TOPICS
    ]

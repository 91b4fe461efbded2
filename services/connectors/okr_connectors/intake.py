"""From a parsed vendor event to what the store keeps: a mapped event to publish, or an unmapped record.

Webhooks and pollers share it, so the same change arriving both ways has the
same dedup key (``<source>:<external id>:<change time>``) and the same envelope
(event id derived from that key): the inbox stores it once, and if both ever
reach Kafka, consumers deduplicate on the event id.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from okr_connectors.store import Item, Outgoing, Unmapped
from okr_contracts.delivery import DeliveryEvent, ProjectHealthReported, SignalRaised, WorkItemChanged
from okr_contracts.envelope import Envelope
from okr_contracts.metrics import KpiSampled
from okr_contracts.topics import DELIVERY_TOPIC, METRICS_TOPIC

EVENT_NAMESPACE = uuid.UUID("9b7f3e1c-52a4-4d0b-8f67-3c1d2a9e4b10")


def changed_at(event: DeliveryEvent) -> datetime:
    """When the change happened at the vendor."""
    if isinstance(event, WorkItemChanged):
        return event.changed_at
    if isinstance(event, ProjectHealthReported):
        return event.reported_at
    if isinstance(event, SignalRaised):
        return event.posted_at
    raise TypeError(f"not a delivery event: {type(event).__name__}")


def content_key(event: DeliveryEvent) -> str:
    """The change's identity however it arrived: source, vendor id and change time."""
    return f"{event.source}:{event.external_id}:{changed_at(event).isoformat()}"


def envelope_of(event: DeliveryEvent) -> Envelope[DeliveryEvent]:
    """The event's envelope; its id is derived from the content key, so a re-ingested change is byte-identical."""
    at = changed_at(event)
    event_id = uuid.uuid5(EVENT_NAMESPACE, content_key(event))
    return Envelope.wrap(event, producer="connectors", occurred_at=at, recorded_at=at, event_id=event_id)


def item_for(mapped: DeliveryEvent | None, parsed: DeliveryEvent, dedup_key: str | None = None) -> Item:
    """The store item of a parsed event: published when the mapping claimed it (`mapped`), else counted as unmapped."""
    if mapped is None:  # not remembered in the inbox: once a rule claims it, a re-poll or backfill publishes it
        return Item(None, unmapped=Unmapped(str(parsed.source), parsed.external_id, _summary(parsed)))
    key = dedup_key or content_key(parsed)
    envelope = envelope_of(mapped)
    return Item(key, outgoing=Outgoing(DELIVERY_TOPIC.name, DELIVERY_TOPIC.key_of(mapped), envelope.to_json_bytes()))


def sample_item(sample: KpiSampled) -> Item:
    """The store item of a KPI sample: deduplicated on source, metric and observation time (a repeated pull adds nothing)."""
    key = f"{sample.source}:{sample.metric}:{sample.observed_at.isoformat()}"
    event_id = uuid.uuid5(EVENT_NAMESPACE, f"kpi:{key}")
    at = sample.observed_at
    envelope = Envelope.wrap(sample, producer="connectors", occurred_at=at, recorded_at=at, event_id=event_id)
    return Item(key, outgoing=Outgoing(METRICS_TOPIC.name, METRICS_TOPIC.key_of(sample), envelope.to_json_bytes()))


def _summary(event: DeliveryEvent) -> dict[str, str | list[str] | None]:
    """What an operator needs to write a mapping rule for it."""
    if isinstance(event, WorkItemChanged):
        return {
            "key": event.key,
            "title": event.title[:200],
            "project": event.project,
            "parent_key": event.parent_key,
            "team": event.team,
            "labels": list(event.labels),
        }
    if isinstance(event, ProjectHealthReported):
        return {"project": event.project, "health": event.health.value}
    if isinstance(event, SignalRaised):
        return {"channel": event.channel, "kind": event.kind.value}
    return {}

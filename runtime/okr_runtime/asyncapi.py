"""Generate the AsyncAPI document of okrstream from the FastStream apps.

The contract broker declares one publisher per registered topic with the union of
its event envelopes, so the document describes every topic even before a
service subscribes to it; each service adds its own broker to ``BROKERS`` (its
subscribers and dead-letter publishers) as it is built.

Usage: ``python -m okr_runtime.asyncapi write|check``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Union

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import Field

from okr_contracts.envelope import Envelope
from okr_contracts.topics import TOPICS, TopicSpec
from okr_runtime.docgen import write_or_check

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
VERSION = "1.0.0"


def topic_message_type(spec: TopicSpec) -> Any:
    """The union of a topic's envelopes, discriminated by `type`, as a type FastStream can describe."""
    envelopes = tuple(Envelope[event] for event in spec.events)  # type: ignore[valid-type]
    if len(envelopes) == 1:
        return envelopes[0]
    return Annotated[Union[envelopes], Field(description=spec.description)]  # noqa: UP007


def contract_broker() -> KafkaBroker:
    """A broker that only declares the contract: one publisher per topic, nothing connected."""
    broker = KafkaBroker("kafka:9092")
    for spec in TOPICS:
        broker.publisher(
            spec.name,
            title=spec.name,
            description=f"{spec.description} Key: {spec.key}. Partitions: {spec.partitions}; "
            f"cleanup.policy={spec.cleanup_policy}; retention.ms={spec.retention_ms}.",
            schema=topic_message_type(spec),
        )
    return broker


def brokers() -> list[KafkaBroker]:
    """Every FastStream app's broker that the document covers."""
    return [contract_broker()]


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document as JSON data."""
    spec = AsyncAPI(
        *brokers(),
        title="okrstream",
        version=VERSION,
        description="Topics, keys and message schemas of okrstream. Envelope: see docs/topics.md.",
        schema_version="3.0.0",
    ).to_specification()
    data: dict[str, Any] = json.loads(spec.to_json())
    return data


def render() -> str:
    """Canonical text of the committed document."""
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Command line: write or check the committed document."""
    return write_or_check(DOC_PATH, render, argv, label=f"docs/{DOC_PATH.name}", program="okr_runtime.asyncapi")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Generate the JSON Schemas of the wire from the models, and keep the published ones.

``contracts/schemas/<topic>.json`` is the schema of a topic's message value: one
envelope per event type, discriminated by ``type``. It is generated, committed,
and a test fails when it drifts from the models.

``contracts/schemas/published/<topic>/<Type>.v<N>.json`` is the baseline a
downstream consumer relies on. ``publish`` adds new event types and accepts only
backward-compatible changes to published ones; the compatibility test checks the
models against this baseline.

Usage: ``python -m okr_contracts.schemas write|check|publish``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, create_model

from okr_contracts.compat import incompatibilities
from okr_contracts.envelope import Envelope, EventPayload
from okr_contracts.topics import TOPICS, TopicSpec

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
PUBLISHED_DIR = SCHEMA_DIR / "published"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def envelope_schema(event: type[EventPayload]) -> dict[str, Any]:
    """JSON Schema of one event type in its envelope, with `type` and `schema_version` fixed."""
    name = event.event_type()
    model: type[BaseModel] = create_model(
        f"{name}Envelope",
        __base__=Envelope[event],  # type: ignore[valid-type]
        type=(str, Field(json_schema_extra={"const": name}, description="The event type.")),
        schema_version=(int, Field(json_schema_extra={"const": event.schema_version}, description="Payload schema version.")),
    )
    schema = model.model_json_schema(mode="validation")
    schema["title"] = name
    schema["description"] = (event.__doc__ or name).strip().splitlines()[0]
    return schema


def topic_schema(spec: TopicSpec) -> dict[str, Any]:
    """JSON Schema of a topic's message value: one of its event envelopes, by `type`."""
    defs: dict[str, Any] = {}
    one_of = []
    for event in spec.events:
        schema = envelope_schema(event)
        defs.update(schema.pop("$defs", {}))
        defs[f"{event.event_type()}Envelope"] = schema
        one_of.append({"$ref": f"#/$defs/{event.event_type()}Envelope"})
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"https://okrstream.dev/schemas/{spec.name}.json",
        "title": spec.name,
        "description": spec.description,
        "x-kafka-key": spec.key,
        "oneOf": one_of,
        "discriminator": {"propertyName": "type"},
        "$defs": dict(sorted(defs.items())),
    }


def render(schema: dict[str, Any]) -> str:
    """Canonical text of a schema file (sorted keys, two-space indent, newline at the end)."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generated_files() -> dict[Path, str]:
    """Every generated topic schema file with its expected content."""
    return {SCHEMA_DIR / f"{spec.name}.json": render(topic_schema(spec)) for spec in TOPICS}


def published_path(spec: TopicSpec, event: type[EventPayload]) -> Path:
    """Where the published baseline of an event type lives."""
    return PUBLISHED_DIR / spec.name / f"{event.event_type()}.v{event.schema_version}.json"


def compatibility_report() -> list[str]:
    """Every backward-incompatible difference between the models and the published baseline."""
    problems: list[str] = []
    for spec in TOPICS:
        current = {e.event_type(): e for e in spec.events}
        for path in sorted((PUBLISHED_DIR / spec.name).glob("*.json")):
            event_type, version = path.stem.rsplit(".v", 1)
            event = current.get(event_type)
            if event is None:
                problems.append(f"{spec.name}: published event type {event_type} was removed")
                continue
            if event.schema_version != int(version):
                continue  # a newer version stands beside it; its own baseline is checked
            old = json.loads(path.read_text())
            for issue in incompatibilities(old, envelope_schema(event)):
                problems.append(f"{spec.name} {event_type} v{version}: {issue}")
    return problems


def write() -> list[Path]:
    """Regenerate the topic schemas; returns the files that changed."""
    changed = []
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in generated_files().items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed


def drifted() -> list[Path]:
    """Generated files whose committed content differs from the models."""
    return [p for p, text in generated_files().items() if not p.exists() or p.read_text() != text]


def publish() -> list[Path]:
    """Record the current schemas as published, refusing any incompatible change."""
    problems = compatibility_report()
    if problems:
        raise SystemExit("refusing to publish incompatible schemas:\n  " + "\n  ".join(problems))
    written = []
    for spec in TOPICS:
        for event in spec.events:
            path = published_path(spec, event)
            text = render(envelope_schema(event))
            if not path.exists() or path.read_text() != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                written.append(path)
    return written


def main(argv: list[str]) -> int:
    """Command line: write, check or publish."""
    command = argv[0] if argv else "check"
    if command == "write":
        for path in write():
            print(f"wrote {path.relative_to(SCHEMA_DIR.parent)}")
        return 0
    if command == "publish":
        for path in publish():
            print(f"published {path.relative_to(SCHEMA_DIR.parent)}")
        return 0
    if command == "check":
        stale = drifted()
        problems = compatibility_report()
        for path in stale:
            print(f"out of date: {path.relative_to(SCHEMA_DIR.parent)} (run `make schemas`)")
        for problem in problems:
            print(f"incompatible: {problem}")
        return 1 if stale or problems else 0
    print("usage: python -m okr_contracts.schemas write|check|publish", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

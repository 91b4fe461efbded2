"""The Helm chart's topic file, generated from the topic registry, never written by hand.

``deploy/helm/okrstream/files/topics.json`` holds every registered topic with its
partitions and topic-level configuration, and the settings of a dead-letter topic
(whose names depend on the consumer groups the chart runs). The chart's
``KafkaTopic`` resources, its topics job and its autoscaler bounds read it.

Usage: ``python -m okr_contracts.deploy write|check`` (``make schemas`` writes it,
``make test`` checks it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from okr_contracts.topics import TOPICS, TopicSpec, dead_letter_spec

CHART_TOPICS = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "okrstream" / "files" / "topics.json"


def _entry(spec: TopicSpec) -> dict[str, Any]:
    return {"name": spec.name, "partitions": spec.partitions, "config": spec.config()}


def chart_topics() -> dict[str, Any]:
    """The content of the chart's topic file."""
    dead_letter = dead_letter_spec("<group>")
    return {
        "comment": "Generated from okr_contracts.topics by `make schemas`; do not edit.",
        "topics": [_entry(spec) for spec in TOPICS],
        "deadLetter": {"namePattern": dead_letter.name, "partitions": dead_letter.partitions, "config": dead_letter.config()},
    }


def render() -> str:
    """The file's text: stable key order, two-space indent, final newline."""
    return json.dumps(chart_topics(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    """Command line: write or check the chart's topic file."""
    command = argv[0] if argv else "check"
    if command == "write":
        if not CHART_TOPICS.exists() or CHART_TOPICS.read_text() != render():
            CHART_TOPICS.write_text(render())
            print(f"wrote {CHART_TOPICS}")
        return 0
    if command == "check":
        if not CHART_TOPICS.exists() or CHART_TOPICS.read_text() != render():
            print(f"out of date: {CHART_TOPICS} (run `make schemas`)")
            return 1
        return 0
    print("usage: python -m okr_contracts.deploy write|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

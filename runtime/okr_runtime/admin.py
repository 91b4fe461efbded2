"""Operator commands for a Kafka cluster: create the registry's topics.

Usage: ``python -m okr_runtime.admin create-topics [--replication-factor N]``
(bootstrap from ``OKR_KAFKA_BOOTSTRAP``).
"""

from __future__ import annotations

import argparse
import asyncio

from okr_contracts.topics import TOPICS
from okr_runtime.kafka import ensure_topics
from okr_runtime.settings import RuntimeSettings


def main(argv: list[str] | None = None) -> int:
    """Create every registered topic that does not exist yet."""
    parser = argparse.ArgumentParser(prog="python -m okr_runtime.admin")
    parser.add_argument("command", choices=["create-topics"])
    parser.add_argument("--replication-factor", type=int, default=None)
    args = parser.parse_args(argv)
    settings = RuntimeSettings()
    factor = args.replication_factor or settings.kafka_replication_factor
    created = asyncio.run(ensure_topics(settings.kafka_bootstrap, TOPICS, factor))
    for spec in TOPICS:
        state = "created" if spec.name in created else "exists"
        print(f"{spec.name:<24} {state:<8} partitions={spec.partitions} cleanup.policy={spec.cleanup_policy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

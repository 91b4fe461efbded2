"""Operator commands for a Kafka cluster: create the registry's topics and the consumer groups' dead-letter topics.

Usage: ``python -m okr_runtime.admin create-topics [--replication-factor N] [--dead-letter-group GROUP]…``
(bootstrap from ``OKR_KAFKA_BOOTSTRAP``). The Helm chart runs it as its topics job
on clusters without Strimzi; it is idempotent (existing topics are left as they are).
"""

from __future__ import annotations

import argparse
import asyncio

from okr_contracts.topics import TOPICS, dead_letter_spec
from okr_runtime.kafka import ensure_topics
from okr_runtime.settings import RuntimeSettings


def main(argv: list[str] | None = None) -> int:
    """Create every registered topic, and the named groups' dead-letter topics, that does not exist yet."""
    parser = argparse.ArgumentParser(prog="python -m okr_runtime.admin")
    parser.add_argument("command", choices=["create-topics"])
    parser.add_argument("--replication-factor", type=int, default=None)
    parser.add_argument(
        "--dead-letter-group",
        action="append",
        default=[],
        metavar="GROUP",
        help="a consumer group whose dead-letter topic okr.dead-letter.<group>.v1 is created too (repeatable)",
    )
    args = parser.parse_args(argv)
    settings = RuntimeSettings()
    factor = args.replication_factor or settings.kafka_replication_factor
    specs = [*TOPICS, *(dead_letter_spec(group) for group in args.dead_letter_group)]
    created = asyncio.run(ensure_topics(settings.kafka_bootstrap, specs, factor))
    for spec in specs:
        state = "created" if spec.name in created else "exists"
        print(f"{spec.name:<40} {state:<8} partitions={spec.partitions} cleanup.policy={spec.cleanup_policy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

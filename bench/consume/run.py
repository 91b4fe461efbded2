"""Consume rates: each consuming service, as a process on a real Kafka, draining a topic filled beforehand, beside a bare aiokafka consumer.

Run from the repository root: ``.venv/bin/python bench/consume/run.py`` (``make bench`` runs it with the others).
Kafka comes from ``OKR_KAFKA_BOOTSTRAP``, or this run starts one with ``deploy/local/kafka.sh``
(29192/29193, state in .local/bench). One service runs at a time, alone on the machine's
cores with the broker. Its rate is measured from its consumer group's committed offsets (polled
every 0.1 s from before the service starts), from the first commit to the last, so start-up is not counted.

- rollup and drift: ``okr.kr-events.v1`` holding a 1,000-KR portfolio's history from bench/rollup's
  generator (definitions, first values, then single-KR updates). drift runs first, so
  ``okr.scores.v1`` (which it reads too, and which rollup fills) is empty while it is measured.
- notifier: ``okr.alerts.v1`` holding bench/notifier's ``AlertRaised`` events (no routing file,
  so nothing is sent: the figure is the intake).
- checkins' KPI consumer: ``okr.metrics.v1`` holding ``KpiSampled`` events of a metric one key
  result is bound to (the portfolio set up through the API first); each sample appends a value.

Raw baselines on the same messages in the same run: a bare ``AIOKafkaConsumer`` in a fresh group
from the earliest offset polling up to 500 records at a time (auto-commit), and the same committing
after every poll, as the services' consumers do (``okr_runtime.consumer``: one commit per batch).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "load"))
from local_kafka import kafka
from notifier.workload import alerts
from rollup.portfolio import History, Portfolio, definitions, first_values, updates
from system import fresh_topics, rss_mb, services
from traffic import metric_of, scenario, set_up

from okr_contracts.envelope import Envelope, EventPayload
from okr_contracts.metrics import KpiSampled
from okr_contracts.topics import ALERTS_TOPIC, KR_EVENTS_TOPIC, METRICS_TOPIC, TopicSpec
from okr_runtime.lag import ConsumerLag

Message = tuple[bytes, bytes]
SERVICES = ("drift", "rollup", "notifier", "checkins")


def main() -> None:
    """Fill the topics, measure each service and the raw consumers, print the rows (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--updates", type=int, default=20000, help="single-KR updates after the 1,000-KR portfolio's definitions (default 20000)"
    )
    parser.add_argument("--alerts", type=int, default=20000, help="AlertRaised events for the notifier (default 20000)")
    parser.add_argument("--samples", type=int, default=10000, help="KPI samples for checkins (default 10000)")
    parser.add_argument(
        "--services", nargs="+", choices=SERVICES, default=list(SERVICES), help="which services to measure (default: all four)"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a service may take to drain its topic")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    began = time.monotonic()
    with kafka() as (bootstrap, origin), tempfile.TemporaryDirectory(prefix="okr-consume-") as tmp:
        print(f"== consume rates: each service a process on Kafka at {bootstrap} ({origin}), alone; beside bare aiokafka consumers ==")
        say("deleting and creating the topics again, so that they hold only this run's messages")
        asyncio.run(fresh_topics(bootstrap))
        rows = asyncio.run(measure_all(Path(tmp), bootstrap, args))
    for row in rows:
        print_row(row)
    print(f"finished in {time.monotonic() - began:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1))


async def measure_all(home: Path, bootstrap: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """drift and rollup on the KR history, the notifier on alerts, checkins on KPI samples (those of them asked for)."""
    rows = []
    if {"drift", "rollup"} & set(args.services):
        history = _kr_history(args.updates)
        say(f"filling {KR_EVENTS_TOPIC.name} with a 1,000-KR portfolio's history: {len(history):,} events")
        await produce(bootstrap, KR_EVENTS_TOPIC.name, history)
        raw = await raw_rates(bootstrap, KR_EVENTS_TOPIC.name, len(history))
        for name in ("drift", "rollup"):
            if name in args.services:
                rows.append(await service_rate(name, home / name, bootstrap, KR_EVENTS_TOPIC, len(history), raw, args.timeout))
    if "notifier" in args.services:
        raised = [(ALERTS_TOPIC.key_of(e.data).encode(), e.to_json_bytes()) for e in alerts(args.alerts, uuid.uuid4().hex[:6])]
        await produce(bootstrap, ALERTS_TOPIC.name, raised)
        raw = await raw_rates(bootstrap, ALERTS_TOPIC.name, len(raised))
        rows.append(await service_rate("notifier", home / "notifier", bootstrap, ALERTS_TOPIC, len(raised), raw, args.timeout))
    if "checkins" in args.services:
        rows.append(await checkins_rate(home / "checkins", bootstrap, args))
    return rows


def _kr_history(updates_n: int) -> list[Message]:
    """A 1,000-KR portfolio's definitions and first values, then `updates_n` single-KR updates, as message (key, value) pairs."""
    history = History(Portfolio(f"bench-consume-{uuid.uuid4().hex[:6]}", 1000), seed=2026)
    events: list[Envelope[EventPayload]] = [*definitions(history), *first_values(history), *updates(history, updates_n)]
    return [(KR_EVENTS_TOPIC.key_of(e.data).encode(), e.to_json_bytes()) for e in events]


async def produce(bootstrap: str, topic: str, messages: list[Message]) -> None:
    """Send every message (batched, acks=all) and wait for all of them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def raw_rates(bootstrap: str, topic: str, count: int) -> dict[str, float]:
    """Messages per second of a bare consumer reading `count` messages of `topic` from the start: auto-commit, and a commit per poll."""
    say(f"bare consumers reading the {count:,} messages of {topic}")
    return {
        "raw": await _raw(bootstrap, topic, count, commit_per_poll=False),
        "raw_commit": await _raw(bootstrap, topic, count, commit_per_poll=True),
    }


async def _raw(bootstrap: str, topic: str, count: int, *, commit_per_poll: bool) -> float:
    """A bare consumer polling up to 500 records at a time (the services' batch size), committing after each poll or automatically."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=not commit_per_poll,
    )
    await consumer.start()
    try:
        seen, first = 0, 0.0
        async with asyncio.timeout(300):
            while seen < count:
                polled = await consumer.getmany(timeout_ms=1000, max_records=500)
                got = sum(len(records) for records in polled.values())
                if got and seen == 0:
                    first = time.perf_counter()
                    got -= 1  # the first poll starts the clock: count what arrives after it, as the service's rate does
                    seen += 1
                seen += got
                if got and commit_per_poll:
                    await consumer.commit()
        return (count - 1) / (time.perf_counter() - first)
    finally:
        await consumer.stop()


def say(text: str) -> None:
    """Progress, as it happens."""
    print(f"   … {text}", flush=True)


async def service_rate(
    name: str, home: Path, bootstrap: str, spec: TopicSpec, count: int, raw: dict[str, float], limit_s: float, group: str | None = None
) -> dict[str, Any]:
    """Start the service, follow its group's committed offsets on `spec` until it has all `count` messages; then stop it."""
    group = group or f"bench-{name}-{uuid.uuid4().hex[:8]}"
    extra = {name: {_GROUP_VAR[name]: group}}
    say(f"{name}: following its group on {spec.name} from before python -m okr_{name} starts, until it has {count:,} messages")
    # Followed from before the process starts: a fast service drains much of the topic while it is still
    # becoming ready, and a follower started after readiness would miss that part of the run.
    follow = asyncio.create_task(_follow(bootstrap, group, spec.name, count, limit_s))
    with contextlib.ExitStack() as stack:
        try:
            running = await asyncio.to_thread(stack.enter_context, services([name], home, bootstrap, tokens=_tokens(), extra=extra))
            rate, drain_s = await follow
        finally:
            follow.cancel()
        peak = rss_mb(running.pid(name))[1]
    return {"service": name, "topic": spec.name, "messages": count, "rate": rate, "drain_s": drain_s, "peak_rss_mb": peak, **raw}


_GROUP_VAR = {
    "checkins": "OKR_CHECKINS_KPI_GROUP",
    "rollup": "OKR_ROLLUP_GROUP",
    "drift": "OKR_DRIFT_GROUP",
    "notifier": "OKR_NOTIFIER_GROUP",
}


def _tokens() -> list[Any]:
    return list(scenario(1, 5, 0, 2026).tokens)


async def _follow(bootstrap: str, group: str, topic: str, count: int, limit_s: float) -> tuple[float, float]:
    """(messages per second from the first commit seen to the last, seconds from the first commit to all committed).

    The messages of the first commit are not counted: the clock starts when it is seen (polled every 0.1 s).
    """
    lag = ConsumerLag(bootstrap, {group: [topic]}, client_id="bench-consume-lag")
    started, first_at, first_done = time.monotonic(), 0.0, 0
    async with lag.connected():
        while time.monotonic() - started < limit_s:
            await lag.refresh()
            behind = sum(lag.snapshot.values()) if lag.snapshot else count
            done, now = count - behind, time.monotonic()
            if done > 0 and not first_at:
                first_at, first_done = now, done
            if behind == 0 and first_at:
                elapsed = max(now - first_at, 0.1)
                return (count - first_done) / elapsed if count > first_done else count / elapsed, elapsed
            await asyncio.sleep(0.1)
    raise RuntimeError(f"group {group} did not consume {count} messages of {topic} within {limit_s:.0f} s")


async def checkins_rate(home: Path, bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    """Set a portfolio up (a key result bound to a KPI), stop the service, fill okr.metrics.v1, start it again in a fresh group."""
    found = scenario(1, 5, 0, 2026)
    pid = found.setup[0][0].body["portfolio_id"]
    with services(["checkins"], home, bootstrap, tokens=found.tokens) as running:
        set_up(found, running.urls["checkins"])
    start = datetime.now(UTC) - timedelta(hours=1)
    samples = [
        KpiSampled(
            metric=metric_of(pid), portfolio_id=pid, value=1000.0 + n, observed_at=start + timedelta(milliseconds=n), source="http:bench"
        )
        for n in range(args.samples)
    ]
    messages = [(METRICS_TOPIC.key_of(s).encode(), Envelope.wrap(s, producer="connectors").to_json_bytes()) for s in samples]
    await produce(bootstrap, METRICS_TOPIC.name, messages)
    raw = await raw_rates(bootstrap, METRICS_TOPIC.name, len(messages))
    group = f"bench-kpi-{uuid.uuid4().hex[:8]}"
    return await service_rate("checkins", home, bootstrap, METRICS_TOPIC, len(messages), raw, args.timeout, group=group)


def print_row(row: dict[str, Any]) -> None:
    """One service's rate beside both raw rates, and the target."""
    label = f"{row['service']} ({row['topic']}):"
    met = "met" if row["rate"] >= 10_000 else "not met"
    print(f"   {label:<32} {row['rate']:9,.0f} events/s | raw consume:     {row['raw']:9,.0f} msg/s | ratio {row['rate'] / row['raw']:.4f}")
    per_poll = row["raw_commit"]
    print(f"   {'':<32} {'':>9}          | raw, commit per poll: {per_poll:9,.0f} msg/s | ratio {row['rate'] / per_poll:.3f}")
    drained = f"{row['messages']:,} messages drained in {row['drain_s']:.1f} s"
    print(f"      {drained}; peak RSS {row['peak_rss_mb']:.0f} MB; target ≥ 10,000 events/s: {met}")


if __name__ == "__main__":
    main()

"""Connectors throughput: signed Jira webhooks accepted and published to Kafka end to end, beside the raw rate of publishing them.

Run from the repository root: ``.venv/bin/python bench/connectors/run.py [N]`` (or ``make bench-connectors``).
The real service runs as a subprocess (``python -m okr_connectors``: uvicorn, the webhook
receivers, a SQLite store and the outbox relay, as deployed); the clients run in a child
process and a consumer of ``okr.delivery.v1`` in this one. Kafka comes from
``OKR_KAFKA_BOOTSTRAP``, or this run starts one with ``deploy/local/kafka.sh``. The raw
baselines send the very messages the service published, again, to a scratch topic shaped
like ``okr.delivery.v1``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import infra
import load
import raw
from deliveries import Workload

from okr_contracts.topics import DELIVERY_TOPIC, TopicSpec
from okr_runtime.settings import RuntimeSettings

PROJECT = "OKRB"


@dataclass(frozen=True)
class Round:
    """One timed round of webhooks: what the clients saw, what the consumer read, and the CPU each process used meanwhile."""

    sent: load.Sent
    consumed: load.Consumed
    first_row: int
    service_cpu_s: float
    consumer_cpu_s: float
    machine_busy_s: float
    machine_total_s: float

    @property
    def requests_s(self) -> float:
        """From the first request sent to the last answer."""
        return max(self.sent.answered.values()) - self.sent.start

    @property
    def end_to_end_s(self) -> float:
        """From the first request sent to the last event read from Kafka."""
        return max(self.consumed.at.values()) - self.sent.start


@dataclass(frozen=True)
class Store:
    """The service's SQLite file and log after the run."""

    file_bytes: int
    wal_bytes: int
    inbox_rows: int
    outbox_rows: int
    outbox_value_bytes: int
    log_lines: int


@dataclass(frozen=True)
class Baselines:
    """Seconds for the same messages, each the median of the rounds; the relay's batches."""

    raw_each: float
    raw_batched: float
    publisher: float
    relay: float
    relay_batches: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The workload's size; the defaults finish in about a minute and a half on two cores."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("deliveries", nargs="?", type=int, default=3000, help="webhook deliveries per timed round (default 3000)")
    add("--rounds", type=int, default=3, help="timed rounds of webhooks, and of each baseline; medians are reported (default 3)")
    add("--clients", type=int, default=8, help="concurrent HTTP clients, one keep-alive connection each (default 8)")
    add("--warm-up", type=int, default=300, help="untimed deliveries first, through the same path (default 300)")
    add("--timeout", type=float, default=600, help="seconds a round may take before the benchmark gives up (default 600)")
    add("--profile", action="store_true", help="run the service under cProfile and print where its time went (slows it down)")
    args = parser.parse_args(argv)
    if min(args.deliveries, args.clients, args.rounds) < 1 or args.warm_up < 0:
        parser.error("sizes must be positive")
    return args


def live_rounds(
    args: argparse.Namespace, service: infra.Service, pool: ProcessPoolExecutor, bootstrap: str, portfolio: str, secret: str
) -> list[Round]:
    """The untimed warm-up deliveries, then the timed rounds; each ends when its last event was read from Kafka."""
    base = datetime.now(UTC).replace(microsecond=0)  # the change times, so no two runs publish the same event ids
    tag = portfolio.rsplit("-", 1)[1]
    if args.warm_up:
        _phase(args, service, pool, bootstrap, portfolio, Workload(tag, PROJECT, secret, base, 0, args.warm_up))
    rounds = []
    for n in range(args.rounds):
        first = args.warm_up + n * args.deliveries
        workload = Workload(tag, PROJECT, secret, base, first, args.deliveries)
        cpu, mine, (busy, total) = service.cpu_seconds(), time.process_time(), infra.machine_busy_seconds()
        sent, consumed = _phase(args, service, pool, bootstrap, portfolio, workload)
        busy_after, total_after = infra.machine_busy_seconds()
        service_cpu, consumer_cpu = service.cpu_seconds() - cpu, time.process_time() - mine
        rounds.append(Round(sent, consumed, first + 1, service_cpu, consumer_cpu, busy_after - busy, total_after - total))
    return rounds


def _phase(
    args: argparse.Namespace, service: infra.Service, pool: ProcessPoolExecutor, bootstrap: str, portfolio: str, workload: Workload
) -> tuple[load.Sent, load.Consumed]:
    """Send one workload from the client process while this one reads okr.delivery.v1."""

    async def run() -> tuple[load.Sent, load.Consumed]:
        loop = asyncio.get_running_loop()
        send = lambda: loop.run_in_executor(pool, load.drive, service.url, workload, args.clients)  # noqa: E731
        return await load.watch(bootstrap, portfolio, set(workload.issue_ids()), send, args.timeout)

    return asyncio.run(run())


def store_figures(service: infra.Service) -> Store:
    """Sizes and row counts of the service's SQLite file, and its log's length (the service has stopped)."""
    path = service.store_path
    wal = path.with_name(path.name + "-wal")
    conn = sqlite3.connect(path)
    try:
        (inbox,) = conn.execute("SELECT COUNT(*) FROM connector_inbox").fetchone()
        outbox, values = conn.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM connector_outbox").fetchone()
    finally:
        conn.close()
    with service.log_path.open("rb") as log:
        lines = sum(1 for _ in log)
    return Store(path.stat().st_size, wal.stat().st_size if wal.exists() else 0, inbox, outbox, values, lines)


def baselines(args: argparse.Namespace, settings: RuntimeSettings, spec: TopicSpec, timed: Round, store_path: Path) -> Baselines:
    """Each baseline `rounds` times, interleaved, over the messages of one timed round, to the scratch topic."""
    messages = timed.consumed.messages

    async def run() -> Baselines:
        each, batched, publisher, relay, batches = [], [], [], [], 0
        for _ in range(args.rounds):
            each.append(await raw.produce(settings, spec, messages, wait_each=True))
            batched.append(await raw.produce(settings, spec, messages, wait_each=False))
            publisher.append(await raw.service_publisher(settings, spec, messages))
            seconds, batches = await raw.relay_drain(settings, spec, store_path, timed.first_row, len(messages))
            relay.append(seconds)
        median = statistics.median
        return Baselines(median(each), median(batched), median(publisher), median(relay), batches)

    return asyncio.run(run())


def report(args: argparse.Namespace, portfolio: str, rounds: list[Round], timed: Round, store: Store, base: Baselines) -> Iterator[str]:
    """The table: each okrstream figure beside its raw baseline, and their ratio; then the details of the median round."""
    n, sent, consumed = args.deliveries, timed.sent, timed.consumed
    accepted, published = n / timed.requests_s, n / timed.end_to_end_s
    each, batched = n / base.raw_each, n / base.raw_batched
    latencies = [sent.answered[i] - sent.sent[i] for i in sent.sent]
    end_to_end = [consumed.at[i] - sent.sent[i] for i in sent.sent]
    last_answer = max(sent.answered.values())
    early = sum(1 for at in consumed.at.values() if at <= last_answer)
    yield (
        f"== python -m okr_connectors in a subprocess (SQLite store, logs at INFO to a file), {args.clients} clients in a child"
        f" process, a consumer of {DELIVERY_TOPIC.name} in this one =="
    )
    yield (
        f"   {args.rounds} round{'s' if args.rounds != 1 else ''} of {n} signed jira:issue_updated deliveries"
        f" (~{sent.body_bytes:,} B each, every one a different issue) after {args.warm_up} untimed; portfolio {portfolio}"
    )
    yield _row("webhooks accepted:", f"{accepted:,.0f} req/s", "raw send_and_wait:", f"{each:,.0f} msg/s", accepted / each)
    yield _row("published end to end:", f"{published:,.0f} events/s", "raw send_and_wait:", f"{each:,.0f} msg/s", published / each)
    yield _row("", "", "raw batched:", f"{batched:,.0f} msg/s", published / batched)
    accepted_all = sorted(n / r.requests_s for r in rounds)
    published_all = sorted(n / r.end_to_end_s for r in rounds)
    yield (
        f"      rounds: accepted {_span(accepted_all, 'req/s')}, published {_span(published_all, 'events/s')};"
        f" above and below, the round of median published rate"
    )
    yield (
        f"      webhook latency p50 {load.quantile_ms(latencies, 0.5):.1f} ms, p99 {load.quantile_ms(latencies, 0.99):.1f} ms;"
        f" sent to read from Kafka p50 {load.quantile_ms(end_to_end, 0.5):.1f} ms, p99 {load.quantile_ms(end_to_end, 0.99):.1f} ms"
    )
    yield (
        f"      {early / n:.0%} of the events were on Kafka by the last answer, the last one"
        f" {1000 * (timed.end_to_end_s - timed.requests_s):,.0f} ms after it"
        f" ({timed.requests_s:.1f} s of requests, {timed.end_to_end_s:.1f} s end to end)"
    )
    seconds, cores = timed.end_to_end_s, timed.machine_total_s / timed.end_to_end_s
    service, client, consumer = timed.service_cpu_s / seconds, sent.client_cpu_s / timed.requests_s, timed.consumer_cpu_s / seconds
    busy = timed.machine_busy_s / seconds
    yield (
        f"      CPU while timing, in cores: service {service:.2f}, clients {client:.2f}, consumer {consumer:.2f}, the rest (Kafka, anything"
        f" else running) {max(0.0, busy - service - client - consumer):.2f}; the machine {busy:.2f} of {cores:.0f}"
    )
    per_webhook = sorted(1e6 * r.service_cpu_s / n for r in rounds)
    yield (
        f"      service CPU per webhook (intake and relay): {1e6 * timed.service_cpu_s / n:,.0f} µs, rounds {_span(per_webhook, 'µs')};"
        f" the figure that least depends on what else the machine runs"
    )
    yield (
        f"== the same {n} messages (as published: keys, values, headers) to a scratch topic like {DELIVERY_TOPIC.name};"
        f" median of {args.rounds} =="
    )
    yield _row(
        "service publisher:", f"{n / base.publisher:,.0f} msg/s", "raw send_and_wait:", f"{each:,.0f} msg/s", base.raw_each / base.publisher
    )
    yield _row(
        "outbox relay alone:", f"{n / base.relay:,.0f} events/s", "raw send_and_wait:", f"{each:,.0f} msg/s", base.raw_each / base.relay
    )
    yield f"      relay: {base.relay_batches} batches of up to 500 from the service's SQLite file (that round's rows unpublished again)"
    total, deliveries = store.file_bytes + store.wal_bytes, max(1, store.inbox_rows // 2)  # two inbox rows per delivery
    envelope = store.outbox_value_bytes / max(1, store.outbox_rows)
    yield (
        f"== store: {total / 1e6:.1f} MB ({store.wal_bytes / 1e6:.1f} MB of it WAL) after {deliveries:,} deliveries,"
        f" {total / deliveries:,.0f} B each ({store.inbox_rows:,} inbox rows, {store.outbox_rows:,} outbox rows"
        f" with {envelope:,.0f} B of envelope each);"
        f" service log {store.log_lines:,} lines =="
    )


def _row(label: str, rate: str, raw_label: str, raw_rate: str, ratio: float) -> str:
    """One line of the table: a figure, its baseline, their ratio."""
    return f"   {label:<22} {rate:>15} | {raw_label:<18} {raw_rate:>13} | ratio {ratio:.2f}"


def _span(values: list[float], unit: str) -> str:
    """Lowest to highest, e.g. `217–410 req/s`."""
    return f"{values[0]:,.0f}–{values[-1]:,.0f} {unit}" if len(values) > 1 else f"{values[0]:,.0f} {unit}"


def profile_lines(path: Path, top: int = 25) -> Iterator[str]:
    """The service's profile (start-up, warm-up and every round; main thread only): top functions by own time, then a few by cumulative."""
    stream = io.StringIO()
    stats = pstats.Stats(str(path), stream=stream)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(
        r"webhooks.py:\d+\(jira\)|relay.py:\d+\(publish_pending\)|kafka.py:\d+\(publish\)|jira.py:\d+\(parse_webhook\)"
        r"|intake.py:\d+\(item_for\)|mapping.py:\d+\(apply\)|_logging.py:\d+\(_trace_and_metrics\)|__init__.py:\d+\(emit\)"
    )
    yield "== profile of the service (cProfile; its figures above are slowed by it) =="
    yield from (line for line in stream.getvalue().splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Start what is needed, time the webhook rounds, then the baselines, and print the table."""
    started, args = time.monotonic(), parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    portfolio, secret = f"bench-connectors-{uuid.uuid4().hex[:8]}", os.urandom(16).hex()
    with ExitStack() as stack:
        bootstrap, origin = stack.enter_context(infra.kafka())
        print(f"Kafka {bootstrap} ({origin})", flush=True)
        settings = RuntimeSettings(kafka_bootstrap=bootstrap, service_name="connectors")
        scratch = asyncio.run(raw.scratch_topic(settings))
        stack.callback(lambda: asyncio.run(raw.drop_topic(settings, scratch)))
        asyncio.run(raw.warm_up(settings, scratch))  # a broker just started is slow until its JIT has warmed up
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="okr-bench-connectors-")))
        pool = stack.enter_context(load.client_process())
        profile = workdir / "service.prof" if args.profile else None
        print("timing the webhooks …", file=sys.stderr, flush=True)
        with infra.connectors_service(
            bootstrap, workdir, project=PROJECT, portfolio=portfolio, secret=secret, profile_to=profile
        ) as service:
            rounds = live_rounds(args, service, pool, bootstrap, portfolio, secret)
        store = store_figures(service)
        timed = sorted(rounds, key=lambda r: r.end_to_end_s)[len(rounds) // 2]
        print("timing the baselines …", file=sys.stderr, flush=True)
        base = baselines(args, settings, scratch, timed, service.store_path)
        print("\n".join(report(args, portfolio, rounds, timed, store, base)), flush=True)
        if profile is not None:
            print("\n".join(profile_lines(profile)), flush=True)
    print(f"finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

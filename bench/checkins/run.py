"""Check-in throughput: the HTTP API and the outbox relay, each beside the raw rate of the same store measured in the same run.

Run from the repository root: ``.venv/bin/python bench/checkins/run.py`` (or ``make bench-checkins``).
SQLite always; PostgreSQL too when ``OKR_POSTGRES_DSN`` is set. Kafka comes from
``OKR_KAFKA_BOOTSTRAP``, or this run starts one with ``deploy/local/kafka.sh``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass

import http_load
import infra
import kafka_load
import store_raw
from scenario import Scenario, build_scenario

from okr_checkins.application import CheckinsApplication
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import create_telemetry


@dataclass(frozen=True)
class Figures:
    """One store's measurements, in seconds (raw baselines: the median of their rounds)."""

    api: http_load.LoadResult
    service_cpu_s: float
    raw_store_s: float
    payload_bytes: float
    drained: kafka_load.Drained
    raw_producer_s: float


@dataclass(frozen=True)
class Bench:
    """Everything a store's measurement needs besides the store."""

    args: argparse.Namespace
    scenario: Scenario
    kafka: RuntimeSettings
    scratch_topic: str
    clients: ProcessPoolExecutor


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The workload's sizes; the defaults finish in about a minute on two cores."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--portfolios", type=int, default=8, help="portfolios, each with 3 products, a cycle and objectives (default 8)")
    add("--krs", type=int, default=25, help="key results per portfolio, owned by 5 product managers (default 25)")
    add("--checkins", type=int, default=2000, help="check-ins to time through the API (default 2000: 10 weekly rounds of 200 KRs)")
    add("--clients", type=int, default=8, help="concurrent HTTP clients, and raw store writer threads (default 8)")
    add("--value-share", type=float, default=0.5, help="share of check-ins that report a value, which makes 2 events (default 0.5)")
    add("--relay-batch", type=int, default=500, help="outbox relay batch size (default 500, the service's default)")
    add("--idempotency-keys", action="store_true", help="send every check-in with an Idempotency-Key header (see bench/README.md)")
    add("--rounds", type=int, default=3, help="runs of each raw baseline; their median is reported (default 3)")
    add("--seed", type=int, default=2026, help="seed of the generated workload (default 2026)")
    args = parser.parse_args(argv)
    if min(args.portfolios, args.krs, args.checkins, args.clients, args.relay_batch, args.rounds) < 1 or not 0 <= args.value_share <= 1:
        parser.error("sizes must be positive and --value-share within 0..1")
    return args


def measure(store: infra.Store, bench: Bench) -> Figures:
    """Set the portfolios up, then time the API, the raw store, the relay and the raw producer, in that order."""
    args, scenario = bench.args, bench.scenario
    checkins = CheckinsApplication(store.env)
    try:
        app = http_load.api_app(checkins, scenario.tokens, create_telemetry(bench.kafka))
        with http_load.serving(app) as url:
            bench.clients.submit(http_load.setup, url, scenario.setup, args.clients).result()
            before = checkins.recorder.max_notification_id() or 0
            keys, cpu = args.idempotency_keys, time.process_time()
            api = bench.clients.submit(http_load.drive, url, scenario.checkins, args.clients, idempotency_keys=keys).result()
            service_cpu_s = time.process_time() - cpu
        payloads = store_raw.sample_payloads(checkins, before)
        shape = [call.events for call in scenario.checkins]
        raw_store_s = _median(args.rounds, lambda: store_raw.raw_appends(store.raw_env, store.raw_name, shape, payloads, args.clients))
        drained = asyncio.run(kafka_load.drain(checkins, store.env, bench.kafka, args.relay_batch))
        batch = kafka_load.messages(checkins)
        if len(batch) != drained.events:
            raise RuntimeError(f"the relay published {drained.events} events but the store holds {len(batch)}")
        raw_producer_s = _median(args.rounds, lambda: asyncio.run(kafka_load.produce(bench.kafka, bench.scratch_topic, batch)))
        return Figures(api, service_cpu_s, raw_store_s, payloads.mean_bytes, drained, raw_producer_s)
    finally:
        checkins.close()


def _median(rounds: int, run: Callable[[], float]) -> float:
    """The median of `rounds` calls of `run`, each returning seconds."""
    return statistics.median(run() for _ in range(rounds))


def report(store: infra.Store, bench: Bench, f: Figures) -> Iterator[str]:
    """The store's table: each okrstream figure beside its raw baseline, and their ratio."""
    args, n = bench.args, len(bench.scenario.checkins)
    api, raw = n / f.api.seconds, n / f.raw_store_s
    relay, producer = f.drained.events / f.drained.seconds, f.drained.events / f.raw_producer_s
    yield f"== {store.label} ({store.where}) =="
    yield (
        f"   {args.portfolios} portfolios, {bench.scenario.key_results} key results; {n} check-ins = {bench.scenario.checkin_events} events"
        f" (~{f.payload_bytes:.0f} B stored each) from {args.clients} clients" + (", with Idempotency-Key" if args.idempotency_keys else "")
    )
    yield _row("checkins via API:", f"{api:.0f}/s", "raw store appends:", f"{raw:.0f}/s", api / raw)
    yield (
        f"      API first quarter {f.api.rate(0, 0.25):.0f}/s, last quarter {f.api.rate(0.75, 1):.0f}/s;"
        f" latency p50 {f.api.latency_ms(0.5):.1f} ms, p99 {f.api.latency_ms(0.99):.1f} ms"
    )
    service_busy = f.service_cpu_s / f.api.seconds
    yield f"      CPU while timing the API: service process {service_busy:.0%}, client process {f.api.client_busy:.0%} of a core"
    yield _row("outbox to Kafka:", f"{relay:.0f} events/s", "raw producer:", f"{producer:.0f} msg/s", relay / producer)
    yield f"      {f.drained.events} events (setup included) in {f.drained.batches} relay batches of up to {args.relay_batch}"


def _row(label: str, rate: str, raw_label: str, raw_rate: str, ratio: float) -> str:
    """One line of the table: a figure, its baseline, their ratio."""
    return f"   {label:<18} {rate:>14} | {raw_label:<18} {raw_rate:>11} | ratio {ratio:.2f}"


def main(argv: list[str] | None = None) -> int:
    """Measure every available store and print the tables."""
    started, args = time.monotonic(), parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    scenario = build_scenario(
        portfolios=args.portfolios, krs_per_portfolio=args.krs, checkins=args.checkins, value_share=args.value_share, seed=args.seed
    )
    dsn = os.environ.get("OKR_POSTGRES_DSN")
    with ExitStack() as stack:
        bootstrap, origin = stack.enter_context(infra.kafka())
        print(f"Kafka {bootstrap} ({origin})", flush=True)
        kafka = RuntimeSettings(kafka_bootstrap=bootstrap, service_name="checkins-bench")
        scratch = asyncio.run(kafka_load.prepare(kafka))
        stack.callback(lambda: asyncio.run(kafka_load.drop_topic(kafka, scratch)))
        kafka_load.warm_up(kafka, scratch)
        bench = Bench(args, scenario, kafka, scratch, stack.enter_context(http_load.client_process()))
        stores: list[AbstractContextManager[infra.Store]] = [infra.sqlite_store()]
        if dsn:
            stores.append(infra.postgres_store(dsn))
        for candidate in stores:
            with candidate as store:
                print(f"measuring {store.label} …", file=sys.stderr, flush=True)
                print("\n".join(report(store, bench, measure(store, bench))), flush=True)
        if not dsn:
            print("== PostgreSQL: skipped, no DSN given (set OKR_POSTGRES_DSN=postgresql://user@host:port/dbname) ==")
    print(f"peak RSS of this process (server, stores, relay; not the client process): {_peak_rss_mb():.0f} MB")
    print(f"finished in {time.monotonic() - started:.0f} s")
    return 0


def _peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())

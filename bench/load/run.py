"""Soak: the five services as processes on real Kafka at a stated rate; memory, lag and check-in → scorecard latency sampled.

Run from the repository root: ``.venv/bin/python bench/load/run.py`` (or ``make soak``; ``--minutes 1`` for a short run).
Kafka comes from ``OKR_KAFKA_BOOTSTRAP``, or this run starts one with ``deploy/local/kafka.sh`` on
59092/59093 (state in /tmp/bench-state) and stops it at the end. Every request goes to 127.0.0.1.
The run stops by itself: the load for ``--minutes``, then at most ``--drain`` seconds for the lag to return to zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_kafka import kafka
from system import INPUTS, Running, cpu_seconds, fresh_topics, rss_mb, services
from traffic import JIRA_SECRET, PROBE_KR, Rates, generate, probe_portfolio, probe_token, project_of, scenario, set_up

from okr_runtime.lag import ConsumerLag

SOAK_KAFKA = {
    "OKR_KAFKA_PORT": "59092",
    "OKR_KAFKA_CONTROLLER_PORT": "59093",
    "OKR_STATE_DIR": str(Path(tempfile.gettempdir()) / "bench-state"),
}
ORDER = ("checkins", "rollup", "drift", "connectors", "notifier")


@dataclass
class Samples:
    """Every sample of the run: (seconds since the load began, value) per service or group."""

    rss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    lag: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    probe_ms: list[float] = field(default_factory=list)
    probe_missed: int = 0
    probe_last: str = ""


def main() -> None:
    """Parse the options, run the soak, print the report (and write it as JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load is held (default 10)")
    parser.add_argument("--checkins", type=float, default=5.0, help="check-ins per second through the API (default 5)")
    parser.add_argument("--webhooks", type=float, default=20.0, help="signed Jira webhooks per second (default 20)")
    parser.add_argument("--kpi", type=float, default=1.0, help="KPI samples per second on okr.metrics.v1 (default 1)")
    parser.add_argument("--portfolios", type=int, default=20, help="portfolios, each 3 products and 27 key results (default 20)")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between memory and lag samples (default 10)")
    parser.add_argument(
        "--drain", type=float, default=300.0, help="seconds the lag may take to return to zero after the load (default 300)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rates = Rates(args.checkins, args.webhooks, args.kpi, args.minutes * 60)
    began = time.monotonic()
    with kafka(SOAK_KAFKA) as (bootstrap, origin), tempfile.TemporaryDirectory(prefix="okr-soak-") as tmp:
        print(f"Kafka at {bootstrap} ({origin}); services' files in {tmp}", flush=True)
        figures = soak(Path(tmp), bootstrap, rates, args)
    figures["total_s"] = time.monotonic() - began
    report(figures, rates)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))


def soak(home: Path, bootstrap: str, rates: Rates, args: argparse.Namespace) -> dict[str, Any]:
    """Start the services, set the portfolios up, hold the load while sampling, then wait for the lag to drain."""
    found = scenario(args.portfolios, 25, int(rates.checkins * rates.seconds) + 1, args.seed)
    portfolios = [calls[0].body["portfolio_id"] for calls in found.setup]
    rules = [(project_of(i), pid, ["kr1"]) for i, pid in enumerate(portfolios)]
    mapping = home / "mapping.json"
    mapping.write_text(json.dumps({"rules": [{"source": "jira", "project": p, "portfolio_id": pid, "kr_ids": k} for p, pid, k in rules]}))
    extra = {"connectors": {"OKR_CONNECTORS_MAPPING_FILE": str(mapping), "OKR_CONNECTORS_JIRA_WEBHOOK_SECRET": JIRA_SECRET}}
    asyncio.run(fresh_topics(bootstrap))
    with services(ORDER, home, bootstrap, tokens=found.tokens, extra=extra) as running:
        print(f"started {', '.join(f'{n} (pid {running.pid(n)})' for n in ORDER)}", flush=True)
        calls = set_up(found, running.urls["checkins"])
        print(f"set up {len(portfolios)} portfolios through the API ({calls} requests, {found.key_results + 2 * len(portfolios)} KRs)")
        print(
            f"load: {rates.checkins:g} check-ins/s + {rates.webhooks:g} webhooks/s + {rates.kpi:g} KPI samples/s"
            f" for {rates.seconds / 60:g} min",
            flush=True,
        )
        return asyncio.run(_measure(running, found, rates, bootstrap, portfolios, args))


async def _measure(
    running: Running, found: Any, rates: Rates, bootstrap: str, portfolios: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    samples = Samples()
    lag = ConsumerLag(bootstrap, running.watched_groups(), client_id="soak-lag")
    names = {running.groups[n]: n for n in running.groups if n in INPUTS}
    settled = await _settle(bootstrap, running, names, args.drain)
    print(f"the setup's backlog drained in {settled:.0f} s; load starts", flush=True)
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        pending = pool.apply_async(generate, (found, rates, running.urls, bootstrap, portfolios))
        t0 = time.monotonic()
        async with lag.connected():
            stop = asyncio.Event()
            sampler = asyncio.create_task(_sample_loop(running, lag, names, samples, t0, args.sample_s, stop))
            prober = asyncio.create_task(_probe_loop(running, found, samples, stop))
            while not pending.ready():  # noqa: ASYNC110 (a pool's result: polled, so that Ctrl-C stops the run)
                await asyncio.sleep(0.5)
            load_s = time.monotonic() - t0
            stop.set()
            await prober
            await sampler
            drained_s = await _drain(running, lag, names, samples, t0, args.drain)
        traffic = pending.get()
    return {
        "rates": vars(rates),
        "load_s": load_s,
        "traffic": {k: _stream_summary(v) for k, v in traffic.items()},
        "probe": _probe_summary(samples),
        "memory": {name: _memory_summary(points, load_s) for name, points in samples.rss.items()},
        "cpu_cores": {name: _cores(points, load_s) for name, points in samples.cpu.items()},
        "lag": {name: {"max": max((v for _, v in points), default=0)} for name, points in samples.lag.items()},
        "drained_s": drained_s,
        "samples": {"rss": samples.rss, "lag": samples.lag},
    }


async def _settle(bootstrap: str, running: Running, names: dict[str, str], limit_s: float) -> float:
    """Wait until every group has consumed what the setup produced (so the load starts from zero lag); seconds waited."""
    lag = ConsumerLag(bootstrap, running.watched_groups(), client_id="soak-settle")
    began = time.monotonic()
    async with lag.connected():
        while time.monotonic() - began < limit_s:
            await lag.refresh()
            if lag.snapshot and not any(lag.snapshot.values()):
                break
            await asyncio.sleep(2)
    return time.monotonic() - began


async def _sample_loop(
    running: Running, lag: ConsumerLag, names: dict[str, str], samples: Samples, t0: float, every: float, stop: asyncio.Event
) -> None:
    while True:
        await _sample(running, lag, names, samples, t0)
        try:
            await asyncio.wait_for(stop.wait(), every)
            await _sample(running, lag, names, samples, t0)
            return
        except TimeoutError:
            continue


async def _sample(running: Running, lag: ConsumerLag, names: dict[str, str], samples: Samples, t0: float) -> dict[str, int]:
    """One sample of every service's RSS and CPU time and every group's lag (summed over its partitions)."""
    at = time.monotonic() - t0
    for name in running.processes:
        samples.rss.setdefault(name, []).append((at, rss_mb(running.pid(name))[0]))
        samples.cpu.setdefault(name, []).append((at, cpu_seconds(running.pid(name))))
    await lag.refresh()
    totals: dict[str, int] = {names[group]: 0 for group in lag.groups}
    for (group, _topic, _partition), behind in lag.snapshot.items():
        totals[names[group]] += behind
    for name, behind in totals.items():
        samples.lag.setdefault(name, []).append((at, behind))
    return totals


async def _probe_loop(running: Running, found: Any, samples: Samples, stop: asyncio.Event, every_s: float = 1.0) -> None:
    """Once a second: a check-in on the probe KR with a new confidence, then poll rollup's node until it shows it."""
    pid, headers = probe_portfolio(found), {"Authorization": f"Bearer {probe_token(found)}"}
    checkin = f"{running.urls['checkins']}/v1/portfolios/{pid}/key-results/{PROBE_KR}/check-ins"
    node = f"{running.urls['rollup']}/v1/portfolios/{pid}/nodes/{PROBE_KR}"
    n = 0
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            n += 1
            confidence = round(0.40 + (n % 50) / 100, 2)
            began = time.perf_counter()
            body = {"confidence": confidence, "value": 1000.0 + n % 7, "what_changed": f"Probe {n}: the soak's latency probe."}
            answer = await client.post(checkin, json=body, headers=headers)
            if answer.status_code != 201:
                samples.probe_missed += 1
                samples.probe_last = f"check-in answered {answer.status_code}: {answer.text[:300]}"
            elif await _seen(client, node, headers, confidence, began, samples):
                samples.probe_ms.append((time.perf_counter() - began) * 1000)
            else:
                samples.probe_missed += 1
            await asyncio.sleep(max(0.0, every_s - (time.perf_counter() - began)))


async def _seen(
    client: httpx.AsyncClient, node: str, headers: dict[str, str], confidence: float, began: float, samples: Samples, poll_s: float = 0.01
) -> bool:
    """Poll the node until its confidence is the one just checked in (False after 30 s)."""
    while time.perf_counter() - began < 30:
        answer = await client.get(node, headers=headers)
        if answer.status_code == 200 and answer.json().get("confidence") == confidence:
            return True
        samples.probe_last = f"expected confidence {confidence}, the node answered {answer.status_code}: {answer.text[:300]}"
        await asyncio.sleep(poll_s)
    return False


async def _drain(running: Running, lag: ConsumerLag, names: dict[str, str], samples: Samples, t0: float, limit_s: float) -> float | None:
    """Seconds from the end of the load until every group's lag is zero (sampled every second); None if not within `limit_s`."""
    stopped = time.monotonic()
    while time.monotonic() - stopped < limit_s:
        totals = await _sample(running, lag, names, samples, t0)
        if not any(totals.values()):
            return time.monotonic() - stopped
        await asyncio.sleep(1.0)
    return None


def _stream_summary(stream: dict[str, Any]) -> dict[str, Any]:
    latencies = sorted(stream.pop("latencies_ms"))
    return stream | {
        "rate": stream["ok"] / stream["elapsed_s"],
        "p50_ms": _quantile(latencies, 0.5),
        "p99_ms": _quantile(latencies, 0.99),
    }


def _probe_summary(samples: Samples) -> dict[str, Any]:
    ordered = sorted(samples.probe_ms)
    return {
        "count": len(ordered),
        "missed": samples.probe_missed,
        "last_miss": samples.probe_last,
        "p50_ms": _quantile(ordered, 0.5),
        "p99_ms": _quantile(ordered, 0.99),
        "max_ms": ordered[-1] if ordered else None,
    }


def _memory_summary(points: list[tuple[float, float]], load_s: float) -> dict[str, float]:
    """Start, peak and end RSS during the load, and the slope (MB per minute, least squares) over its second half."""
    during = [(t, mb) for t, mb in points if t <= load_s + 1]
    half = [(t, mb) for t, mb in during if t >= load_s / 2]
    slope = statistics.linear_regression([t for t, _ in half], [mb for _, mb in half]).slope * 60 if len(half) >= 2 else 0.0
    return {"start": during[0][1], "peak": max(mb for _, mb in during), "end": during[-1][1], "slope_mb_per_min": slope}


def _cores(points: list[tuple[float, float]], load_s: float) -> float:
    during = [(t, s) for t, s in points if t <= load_s + 1]
    return (during[-1][1] - during[0][1]) / (during[-1][0] - during[0][0]) if len(during) >= 2 else 0.0


def _quantile(ordered: list[float], q: float) -> float | None:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def report(figures: dict[str, Any], rates: Rates) -> None:
    """The soak's figures as text."""
    print(f"== soak: {figures['load_s'] / 60:.1f} min of load, {figures['total_s']:.0f} s in all ==")
    asked = {"checkins": rates.checkins, "webhooks": rates.webhooks, "kpi": rates.kpi}
    for name, s in figures["traffic"].items():
        lat = f"latency p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms" if s["p50_ms"] is not None else "no answers"
        print(
            f"   {name:<9} asked {asked[name]:6.1f}/s  achieved {s['rate']:6.1f}/s  ({s['ok']} ok, {s['failed']} failed,"
            f" {s['late']} started >100 ms late); {lat}"
        )
        if s["errors"]:
            print(f"      failures: {s['errors']}")
    p = figures["probe"]
    if p["missed"]:
        print(f"   check-in → scorecard: {p['missed']} probes not seen within 30 s; the last answer: {p['last_miss']}")
    if p["count"]:
        met = "met" if p["p99_ms"] <= 200 else "NOT met"
        print(
            f"   check-in → scorecard: {p['count']} probes, p50 {p['p50_ms']:.0f} ms, p99 {p['p99_ms']:.0f} ms, max {p['max_ms']:.0f} ms,"
            f" {p['missed']} not seen within 30 s (target p99 ≤ 200 ms: {met})"
        )
    print("== memory (RSS, MB) during the load; slope over its second half ==")
    for name, m in figures["memory"].items():
        print(
            f"   {name:<11} start {m['start']:6.0f}  peak {m['peak']:6.0f}  end {m['end']:6.0f}  slope {m['slope_mb_per_min']:+6.2f} MB/min"
            f"   CPU {figures['cpu_cores'][name]:.2f} cores"
        )
    print("== consumer lag (messages behind, all partitions of the group's topics) ==")
    for name, lag in figures["lag"].items():
        print(f"   {name:<11} max {lag['max']}")
    drained = figures["drained_s"]
    print(f"   every group back to zero {drained:.0f} s after the load stopped" if drained is not None else "   lag did NOT return to zero")


if __name__ == "__main__":
    main()

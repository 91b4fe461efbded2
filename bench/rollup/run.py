"""Rollup projection: the cost of one key-result update as a portfolio grows, replay and audit rates, and memory per key result.

Run from the repository root: ``.venv/bin/python bench/rollup/run.py`` (or ``make bench-rollup``).
No infrastructure: every portfolio is built in memory through ``PortfolioProjection.apply``.
Each size runs in a fresh process; the raw baselines (decoding and validating the
same events with ``KR_EVENTS_TOPIC.decode``; for the audit, parsing the export's
lines with ``json.loads``) are measured in that same process.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import portfolio
import updates
from audit_rate import Audited
from replay_rate import Replayed

TARGET_RATIO = 1.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Sizes and counts; the defaults finish in about two and a half minutes on two cores."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000], help="key results per portfolio (default 1000 10000 100000)")
    add("--updates", type=int, default=3000, help="timed single-KR updates per size (default 3000)")
    add("--warm-up", type=int, default=300, help="untimed updates before them (default 300)")
    add("--replay-size", type=int, default=10_000, help="the size whose history is replayed; 0 skips the replay (default 10000)")
    add(
        "--rounds",
        type=int,
        default=3,
        help="runs of each raw baseline of the replays (decode only, parse only); their median is reported (default 3)",
    )
    add("--seed", type=int, default=2026, help="seed of the generated portfolios and updates (default 2026)")
    args = parser.parse_args(argv)
    if min(*args.sizes, args.updates, args.rounds) < 1 or args.warm_up < 0:
        parser.error("sizes, --updates and --rounds must be positive, --warm-up not negative")
    if args.replay_size and args.replay_size not in args.sizes:
        parser.error("--replay-size must be one of --sizes (or 0)")
    return args


def measure(size: int, args: argparse.Namespace) -> updates.SizeFigures:
    """One size in a fresh process (spawned: no heap, caches or peak RSS carried over from another size)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        replay = size == args.replay_size
        return pool.submit(updates.measure, size, args.updates, args.warm_up, args.seed, replay=replay, rounds=args.rounds).result()


def report_updates(args: argparse.Namespace, figures: list[updates.SizeFigures]) -> Iterator[str]:
    """Each size's update cost beside the bare decode of the same events, then the largest size against the smallest."""
    yield f"== one key-result update: {args.updates} timed after {args.warm_up} untimed, each a CheckInRecorded (new confidence)"
    yield "   or a ValueObserved (new value) on a random tier-3 KR, timed around PortfolioProjection.apply =="
    for f in figures:
        p, u, d = f.shape, f.update, f.decode
        for name, cost, raw in _statistics(u, d):
            label = f"{p.key_results:,} KRs:" if name == "p50" else ""
            yield _row(label, f"{name} {cost:,.0f} µs", "decode:", f"{name} {raw:.1f} µs", cost / raw, "update/decode")
        yield (
            f"      {p.objectives:,} objectives, {_plural(p.cycles, 'cycle')}, {p.products} products; built from {f.build_events:,} events"
            f" in {f.build_s:.1f} s ({f.build_s / f.build_events * 1e6:.0f} µs each in apply)"
        )
        young, middle, full = u.collections
        yield (
            f"      update p99 {u.quantile_us(0.99) / 1000:.1f} ms, slowest {u.max_us / 1000:.1f} ms; garbage collection"
            f" {u.gc_ns / len(u.ns) / 1000:.0f} µs per update ({young}/{middle}/{full} collections of generation 0/1/2)"
        )
    small, large = min(figures, key=lambda f: f.shape.key_results), max(figures, key=lambda f: f.shape.key_results)
    if small is not large:
        ratios = [(name, a / b) for (name, a, _), (_, b, _) in zip(_statistics(large.update), _statistics(small.update), strict=True)]
        verdict = "flat" if ratios[0][1] < TARGET_RATIO else "NOT flat"
        yield (
            f"   {large.shape.key_results:,} KRs against {small.shape.key_results:,}: update "
            + ", ".join(f"{name} ratio {ratio:.2f}" for name, ratio in ratios)
            + f" (target: p50 ratio under {TARGET_RATIO}: {verdict})"
        )


def _statistics(update: updates.Timings, decode: updates.Timings | None = None) -> list[tuple[str, float, float]]:
    """p50, p95 and mean of the updates (µs), each with the same statistic of the decodes."""
    raw = decode or update
    return [
        ("p50", update.quantile_us(0.5), raw.quantile_us(0.5)),
        ("p95", update.quantile_us(0.95), raw.quantile_us(0.95)),
        ("mean", update.mean_us, raw.mean_us),
    ]


def report_replay(size: int, r: Replayed, rounds: int) -> Iterator[str]:
    """Replay rates beside decode-only rates of the same history."""
    yield f"== replay: the {size:,}-KR portfolio's history, {r.events:,} events (definitions, first values, the updates above) =="
    yield _row(
        "replay (decode+apply):",
        f"{r.events / r.replay_s:,.0f} events/s",
        "decode only:",
        f"{r.events / r.decode_s:,.0f}/s",
        r.decode_s / r.replay_s,
    )
    yield _row(
        "SQLite load+replay:",
        f"{r.events / r.sqlite_replay_s:,.0f} events/s",
        "load+decode:",
        f"{r.events / r.sqlite_decode_s:,.0f}/s",
        r.sqlite_decode_s / r.sqlite_replay_s,
    )
    yield (
        f"      replay {r.replay_s:.1f} s, from SQLite {r.sqlite_replay_s:.1f} s (database and WAL holding the history, no score rows:"
        f" {r.stored_bytes / 2**20:.0f} MB); decode-only figures: median of {rounds} rounds"
    )


def report_audit(size: int, a: Audited, r: Replayed | None, rounds: int) -> Iterator[str]:
    """Audit rates (each stage and the whole) beside parsing the export's lines alone, then against the service's replay."""
    yield (
        f"== audit: the same history as a hash-chained export ({a.events:,} lines, {a.file_bytes / 2**20:.1f} MB),"
        " verified, replayed and checked as `okr audit check` does =="
    )
    parse_only = f"{a.events / a.raw_s:,.0f}/s"
    for label, seconds in (
        ("parse+verify:", a.parse_verify_s),
        ("audit replay:", a.replay_s),
        ("check:", a.check_s),
        ("whole audit:", a.audit_s),
    ):
        yield _row(label, f"{a.events / seconds:,.0f} events/s", "parse only:", parse_only, a.raw_s / seconds)
    yield (
        f"   audit of {size:,}-KR history: {a.events:,} events verified + replayed + checked at {a.events / a.audit_s:,.0f} events/s;"
        f" {a.audit_s / a.raw_s:,.0f}× the time of just parsing the lines"
    )
    yield (
        f"      audit {a.audit_s:.1f} s: parse {a.parse_s:.2f} s + verify {a.verify_s:.2f} s, replay {a.replay_s:.1f} s,"
        f" check {a.check_s:.2f} s ({a.score_records:,} score records); parse-only figure: median of {rounds} rounds"
    )
    if r is not None:
        yield (
            f"      against the service's replay of the same events (decode+apply, {r.replay_s:.1f} s): audit replay"
            f" {a.replay_s / r.replay_s:.2f}× its time ({a.replay_s - r.replay_s:+.1f} s), whole audit {a.audit_s / r.replay_s:.2f}×"
            f" ({a.audit_s - r.replay_s:+.1f} s)"
        )


def report_memory(figures: list[updates.SizeFigures]) -> Iterator[str]:
    """Peak RSS growth while building each projection, per key result."""
    yield "== memory: peak RSS growth while building the projection (each size in its own process) =="
    for f in figures:
        grown = (f.rss_built_kb - f.rss_before_kb) / 1024
        peak = f.rss_built_kb / 1024
        yield f"   {f.shape.key_results:>9,} KRs: {grown:>7,.0f} MB, {f.bytes_per_kr:>7,.0f} B per KR (process peak RSS {peak:,.0f} MB)"


def _row(label: str, figure: str, raw_label: str, raw_figure: str, ratio: float, ratio_label: str = "ratio") -> str:
    """One line of a table: a figure, its baseline, their ratio."""
    return f"   {label:<22} {figure:>18} | {raw_label:<13} {raw_figure:>13} | {ratio_label} {ratio:,.{_digits(ratio)}f}"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _digits(ratio: float) -> int:
    return 0 if ratio >= 100 else 1 if ratio >= 10 else 2 if ratio >= 0.1 else 3


def main(argv: list[str] | None = None) -> int:
    """Measure every size, then print the tables."""
    started, args = time.monotonic(), parse_args(argv)
    print(f"shape: {portfolio.SHAPE}", flush=True)
    figures = []
    for size in sorted(args.sizes):
        print(f"measuring {size:,} key results …", file=sys.stderr, flush=True)
        figures.append(measure(size, args))
    print("\n".join(report_updates(args, figures)))
    for f in figures:
        if f.replayed is not None:
            print("\n".join(report_replay(f.shape.key_results, f.replayed, args.rounds)))
        if f.audited is not None:
            print("\n".join(report_audit(f.shape.key_results, f.audited, f.replayed, args.rounds)))
    print("\n".join(report_memory(figures)))
    print(f"finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

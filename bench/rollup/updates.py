"""One portfolio size, measured in a process of its own: build the projection, then time single key-result updates.

Each size runs in a fresh process, so no size inherits another's heap (whose size
sets how long the garbage collector's pauses are) and the peak RSS is this size's.
"""

from __future__ import annotations

import gc
import resource
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain

import audit_rate
import portfolio
import replay_rate

from okr_contracts.envelope import Envelope, EventPayload
from okr_contracts.topics import KR_EVENTS_TOPIC
from okr_rollup.domain.projection import PortfolioProjection


@dataclass(frozen=True)
class Timings:
    """Per-event times in nanoseconds, and the garbage collector's pauses among them (collections per generation)."""

    ns: list[int]
    gc_ns: int = 0
    collections: tuple[int, int, int] = (0, 0, 0)

    def quantile_us(self, q: float) -> float:
        """A quantile in microseconds (nearest rank)."""
        ordered = sorted(self.ns)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] / 1000

    @property
    def mean_us(self) -> float:
        """The mean in microseconds: what a long run of events costs each, pauses of the garbage collector included."""
        return sum(self.ns) / len(self.ns) / 1000

    @property
    def max_us(self) -> float:
        """The slowest, in microseconds."""
        return max(self.ns) / 1000


@dataclass(frozen=True)
class SizeFigures:
    """What one size measured: its shape, the build, the updates beside the bare decode, memory, and the replays of its history."""

    shape: portfolio.Portfolio
    build_events: int
    build_s: float
    rss_before_kb: int
    rss_built_kb: int
    update: Timings
    decode: Timings
    replayed: replay_rate.Replayed | None = field(default=None)
    audited: audit_rate.Audited | None = field(default=None)

    @property
    def bytes_per_kr(self) -> float:
        """Peak RSS growth from before the build to after it, per key result."""
        return (self.rss_built_kb - self.rss_before_kb) * 1024 / self.shape.key_results


def measure(size: int, updates: int, warm_up: int, seed: int, *, replay: bool = False, rounds: int = 3) -> SizeFigures:
    """Build a portfolio of `size` key results, time `updates` single-KR updates after `warm_up` untimed ones, decode the same.

    With `replay`, the projection is then dropped and the history it applied
    (definitions, first values, every update), generated again from the seed and
    serialized, is replayed (see :mod:`replay_rate`), then exported as a hash-chained
    history and audited: verified, replayed and checked (see :mod:`audit_rate`).
    """
    shape = portfolio.Portfolio(f"bench-{size}", size)
    history = portfolio.History(shape, seed)
    gc.collect()
    rss_before = _max_rss_kb()
    projection = PortfolioProjection(shape.portfolio_id)
    build_s = _apply_all(projection, chain(portfolio.definitions(history), portfolio.first_values(history)))
    rss_built, build_events = _max_rss_kb(), shape.events
    planned = portfolio.updates(history, warm_up + updates)
    _apply_all(projection, planned[:warm_up])
    timed = planned[warm_up:]
    update = _time_updates(projection, timed)
    decode = _time_decodes([envelope.to_json_bytes() for envelope in timed])
    replayed: replay_rate.Replayed | None = None
    audited: audit_rate.Audited | None = None
    if replay:
        del projection, planned, timed
        gc.collect()
        values = _serialized_history(size, seed, warm_up + updates)
        replayed = replay_rate.measure(shape.portfolio_id, values, rounds)
        gc.collect()
        audited = audit_rate.measure(shape.portfolio_id, values, rounds)
    return SizeFigures(shape, build_events, build_s, rss_before, rss_built, update, decode, replayed, audited)


def _serialized_history(size: int, seed: int, updates: int) -> list[bytes]:
    """The message values of everything :func:`measure` applied, generated again from the same seed (same ids, times, values)."""
    history = portfolio.History(portfolio.Portfolio(f"bench-{size}", size), seed)
    values = [envelope.to_json_bytes() for envelope in chain(portfolio.definitions(history), portfolio.first_values(history))]
    return values + [envelope.to_json_bytes() for envelope in portfolio.updates(history, updates)]


def _apply_all(projection: PortfolioProjection, envelopes: Iterable[Envelope[EventPayload]]) -> float:
    """Apply events one by one (generated lazily, so they do not count in memory); returns seconds spent in `apply`."""
    spent = 0
    for envelope in envelopes:
        start = time.perf_counter_ns()
        records = projection.apply(envelope)
        spent += time.perf_counter_ns() - start
        if records is None:
            raise RuntimeError(f"{envelope.type} {envelope.event_id} was taken for a duplicate")
    return spent / 1e9


def _time_updates(projection: PortfolioProjection, envelopes: list[Envelope[EventPayload]]) -> Timings:
    """Time `apply` of each update on its own; every one must produce score records (none is a duplicate)."""
    times, pauses = [], _Pauses()
    gc.callbacks.append(pauses)
    try:
        for envelope in envelopes:
            start = time.perf_counter_ns()
            records = projection.apply(envelope)
            times.append(time.perf_counter_ns() - start)
            if not records:
                raise RuntimeError(f"{envelope.type} {envelope.event_id} changed no score")
    finally:
        gc.callbacks.remove(pauses)
    return Timings(times, pauses.ns, (pauses.counts[0], pauses.counts[1], pauses.counts[2]))


class _Pauses:
    """A `gc.callbacks` entry adding up how long the collector ran, and how often per generation."""

    def __init__(self) -> None:
        self.ns, self.counts, self._start = 0, [0, 0, 0], 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
        else:
            self.ns += time.perf_counter_ns() - self._start
            self.counts[info["generation"]] += 1


def _time_decodes(values: list[bytes]) -> Timings:
    """Time the raw baseline: decoding and validating each update's message value, as the consumer does before `apply`."""
    times = []
    for value in values:
        start = time.perf_counter_ns()
        KR_EVENTS_TOPIC.decode(value)
        times.append(time.perf_counter_ns() - start)
    return Timings(times)


def _max_rss_kb() -> int:
    """Peak resident set size of this process so far (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

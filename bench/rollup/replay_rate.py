"""Replay rate: rebuilding a projection from serialized history (decode + apply) beside decoding the same events alone.

Measured twice: from the message values in memory (what ``replay`` costs on its
own), and as the service restarts, reading them back from a ``SqliteScoreStore``
in a temporary file (``load``, then ``replay``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from okr_contracts.topics import KR_EVENTS_TOPIC
from okr_rollup.domain.projection import canonical, replay
from okr_rollup.store import SqliteScoreStore


@dataclass(frozen=True)
class Replayed:
    """Seconds taken by each way of reading the same history (decode-only figures: the median of their rounds)."""

    events: int
    replay_s: float
    decode_s: float
    stored_bytes: int
    sqlite_replay_s: float
    sqlite_decode_s: float


def measure(portfolio_id: str, values: list[bytes], rounds: int) -> Replayed:
    """Replay `values` once and decode them `rounds` times, from memory and then from a SQLite store holding them."""
    replay_s = _seconds(lambda: _replay(portfolio_id, values))
    decode_s = statistics.median(_seconds(lambda: _decode(values)) for _ in range(rounds))
    with tempfile.TemporaryDirectory(prefix="okr-bench-rollup-") as tmp:
        path = Path(tmp) / "rollup.sqlite"
        store = SqliteScoreStore(path)
        try:
            _fill(store, portfolio_id, values)
            stored = sum(f.stat().st_size for f in Path(tmp).iterdir())
            sqlite_replay_s = _seconds(lambda: _replay(portfolio_id, store.load(portfolio_id).envelopes))
            sqlite_decode_s = statistics.median(_seconds(lambda: _decode(store.load(portfolio_id).envelopes)) for _ in range(rounds))
        finally:
            store.close()
    return Replayed(len(values), replay_s, decode_s, stored, sqlite_replay_s, sqlite_decode_s)


def _replay(portfolio_id: str, values: list[bytes]) -> None:
    """What a restart does with a portfolio's stored history (``RollupService._load`` after the read)."""
    projection = replay(portfolio_id, (KR_EVENTS_TOPIC.decode(value) for value in values))
    if projection.events != len(values):
        raise RuntimeError(f"replay applied {projection.events} of {len(values)} events")


def _decode(values: list[bytes]) -> None:
    """The raw baseline: read and validate every event, score nothing."""
    for value in values:
        KR_EVENTS_TOPIC.decode(value)


def _fill(store: SqliteScoreStore, portfolio_id: str, values: list[bytes]) -> None:
    """Store the history as the service stores applied events (canonical JSON, one transaction each), without score rows.

    ``load`` reads only ``rollup_inputs`` (and looks for one unpublished score row by
    index), so the score rows the service would also write are left out to keep the
    run short.
    """
    for seq, value in enumerate(values, start=1):
        envelope = KR_EVENTS_TOPIC.decode(value)
        store.append(portfolio_id, seq, str(envelope.event_id), canonical(envelope.as_json()), [])


def _seconds(run: Callable[[], None]) -> float:
    start = time.perf_counter_ns()
    run()
    return (time.perf_counter_ns() - start) / 1e9

"""Replaying a history through the rollup's own pure scoring code, as of any moment.

Each record becomes the okr.kr-events.v1 envelope the checkins outbox published for it
(same event id, times and producer) and goes through a fresh
:class:`~okr_rollup.domain.projection.PortfolioProjection`, under the scoring rules in
force when it was recorded (:mod:`okr_rollup.domain.rules`). An event the rollup would
refuse (and dead-letter) is refused here too, and the replay goes on, as the service does.
The records produced are the bytes the rollup publishes: same history, same bytes.
The same projection folds each cycle's capacity view; the replay keeps each cycle's
latest one, the bytes the rollup stores in ``rollup_capacity``.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from okr_contracts.export import envelope_of
from okr_rollup.domain.capacity import CapacityView
from okr_rollup.domain.errors import ScoringRefused
from okr_rollup.domain.projection import PortfolioProjection, ScoreRecord
from okr_rollup.domain.rules import SCHEDULE, Schedule


@dataclass(frozen=True)
class Refusal:
    """A history event the rollup cannot score (it goes to the dead-letter topic), with the reason it gives."""

    position: int
    event_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Produced:
    """One score record the replay produced: its node, its event id, its bytes and its as-of time (the envelope object is not kept)."""

    node_id: str
    event_id: str
    value: bytes
    as_of: datetime


@dataclass
class Replayed:
    """What a replay produced: every score record in order, each node's latest one (the scorecard then), each cycle's capacity view."""

    portfolio_id: str
    as_of: datetime | None
    events: int = 0
    last_position: int = 0
    last_recorded_at: datetime | None = None
    records: list[Produced] = field(default_factory=list)
    latest: dict[str, ScoreRecord] = field(default_factory=dict)
    refused: list[Refusal] = field(default_factory=list)
    capacity: dict[str, CapacityView] = field(default_factory=dict)
    """Each cycle's latest capacity view, with the moment the event that last changed it was recorded."""


def replay_history(
    portfolio_id: str, history: Iterable[dict[str, Any]], *, as_of: datetime | None = None, schedule: Schedule = SCHEDULE
) -> Replayed:
    """Replay a verified history (records in position order) up to and including the events recorded at `as_of`."""
    projection = PortfolioProjection(portfolio_id, schedule)
    replayed = Replayed(portfolio_id, as_of)
    with _no_cycle_collection():
        for record in history:
            envelope = envelope_of(record)
            if as_of is not None and envelope.recorded_at > as_of:
                break  # the chain's recorded_at never runs back, so nothing after this is earlier
            replayed.events += 1
            replayed.last_position, replayed.last_recorded_at = int(record["position"]), envelope.recorded_at
            try:
                produced = projection.apply(envelope)  # type: ignore[arg-type]  # a KrEvent envelope is what apply takes
            except ScoringRefused as exc:
                replayed.refused.append(Refusal(int(record["position"]), str(envelope.event_id), f"{exc.code}: {exc}"))
                continue
            replayed.capacity.update((view.cycle_id, view) for view in projection.capacity_changed)
            for score in produced or ():
                # Only bytes are kept of every record: a long history produces many, and their pydantic
                # envelopes (parsed when asked for) would grow the heap and the garbage collector's work.
                replayed.records.append(Produced(score.node_id, score.event_id, score.value, score.as_of))
                replayed.latest[score.node_id] = score
    return replayed


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cycle collector paused (as ``timeit`` does), then restored as it was.

    A replay allocates hundreds of thousands of objects that live until it ends and
    makes no reference cycles, so every collection would walk a growing heap and free
    nothing: a third of a 10,000-key-result replay's time went to it. Memory is freed by
    reference counting as before.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def scorecard_rows(replayed: Replayed) -> list[dict[str, Any]]:
    """Each node's latest score as plain data, portfolio objectives first, then by tier and id."""
    rows = []
    for score in replayed.latest.values():
        data = json.loads(score.value)["data"]
        rows.append(
            {
                "node_id": data["node_id"],
                "tier": data["tier"],
                "kind": data["node_kind"],
                "title": data["title"],
                "status": data["status"],
                "progress": data["progress"],
                "raw_progress": data["raw_progress"],
                "confidence": data["confidence"],
                "formula": data["derivation"]["formula"],
                "scoring_rules_version": data["scoring_rules_version"],
                "as_of": data["as_of"],
            }
        )
    return sorted(rows, key=lambda r: (r["tier"], r["kind"] != "objective", r["node_id"]))


def capacity_cycles(replayed: Replayed) -> list[dict[str, Any]]:
    """Each cycle's latest capacity view as plain data, as the rollup answers it: cycles with squads, in id order, each with its `as_of`."""
    cycles = []
    for cycle_id in sorted(replayed.capacity):
        view = replayed.capacity[cycle_id]
        shown: dict[str, Any] = json.loads(view.view)
        if shown["squads"]:  # a cycle whose squads are all gone keeps its view, but the read API leaves it out
            cycles.append({**shown, "as_of": view.as_of.isoformat()})
    return cycles

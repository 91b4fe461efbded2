"""Replaying an export gives exactly the records the rollup service produced, and the scorecard as of any past moment."""

from __future__ import annotations

import gc
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from okr_audit.history import read_lines, records
from okr_audit.replay import Replayed, replay_history, scorecard_rows
from okr_contracts.envelope import Envelope
from okr_contracts.export import GENESIS, envelope_of, record_hash
from okr_contracts.history import HistoryWriter
from okr_contracts.kr_events import KeyResultDefined, Link, ObjectiveDefined, PortfolioDefined, RollupMethod
from okr_contracts.topics import KR_EVENTS_TOPIC
from okr_rollup.application import RollupService
from okr_rollup.store import SqliteScoreStore


class Sent:
    """The rollup's publisher, keeping what it would have sent to okr.scores.v1."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    async def __call__(self, records: Sequence[tuple[str, bytes]]) -> None:
        self.values += [value for _, value in records]


async def served(history: Path, store_path: Path) -> tuple[Sent, SqliteScoreStore]:
    """The rollup service fed the history as Kafka delivers it: each record's envelope, as bytes, decoded by the consumer."""
    sent, store = Sent(), SqliteScoreStore(store_path)
    service = RollupService(store, sent)
    for record in records(read_lines(history)):
        await service.handle(KR_EVENTS_TOPIC.decode(envelope_of(record).to_json_bytes()))
    return sent, store


def replay(history: Path, as_of: datetime | None = None) -> Replayed:
    return replay_history("acme", records(read_lines(history)), as_of=as_of)


def progress(replayed: Replayed) -> dict[str, float]:
    return {row["node_id"]: row["progress"] for row in scorecard_rows(replayed)}


async def test_a_replay_produces_the_published_records_byte_for_byte_and_in_order(exported: Path, tmp_path: Path) -> None:
    sent, store = await served(exported, tmp_path / "rollup.sqlite")
    store.close()
    replayed = replay(exported)
    assert [r.value for r in replayed.records] == sent.values
    assert replayed.events == len(read_lines(exported))
    assert not replayed.refused


async def test_a_replay_as_of_each_week_shows_what_the_scorecard_showed_then(exported: Path, story: Any, tmp_path: Path) -> None:
    _, store = await served(exported, tmp_path / "rollup.sqlite")
    try:
        for moment in [*story.week_ends, story.week_ends[0] - timedelta(days=3)]:
            replayed = replay(exported, as_of=moment)
            assert {node: r.value for node, r in replayed.latest.items()} == store.latest("acme", moment)
    finally:
        store.close()


def test_the_replayed_scores_follow_the_rules_by_hand(exported: Path, story: Any) -> None:
    week_2, week_3 = (replay(exported, as_of=moment) for moment in story.week_ends[1:3])
    users, churn = 45 / 120, (4 - 5) / (2 - 5)  # target raised to 120; churn is a decreasing metric
    assert progress(week_2) == pytest.approx(
        {"users": users, "churn": churn, "uptime": 1.0, "o-alpha": users, "o-beta": (churn + 1) / 2}
        | {"reach": (2 * users + (churn + 1) / 2) / 3, "grow": (2 * users + (churn + 1) / 2) / 3}
    )
    row = next(r for r in scorecard_rows(week_3) if r["node_id"] == "churn")
    assert (row["raw_progress"], row["progress"], row["confidence"]) == (pytest.approx(-1 / 3), 0.0, 0.3)  # 6%: the wrong way
    assert progress(week_3)["reach"] == pytest.approx((users + 0.5) / 2)  # weights now equal


def test_a_replay_before_the_first_event_is_empty(exported: Path) -> None:
    replayed = replay(exported, as_of=datetime(2026, 1, 1, tzinfo=UTC))
    assert (replayed.events, replayed.records, replayed.latest) == (0, [], {})


def chained(envelopes: list[Envelope[Any]]) -> list[dict[str, Any]]:
    """History records with their chain, as checkins would store these events."""
    out: list[dict[str, Any]] = []
    previous = GENESIS
    for position, envelope in enumerate(envelopes, start=1):
        record = json.loads(envelope.to_json_bytes()) | {"position": position, "prev_hash": previous}
        record["hash"] = previous = record_hash(record)
        out.append(record)
    return out


def test_an_event_the_rollup_refuses_is_refused_in_the_replay_too_and_the_rest_is_scored() -> None:
    writer, at = HistoryWriter("kpi-co"), datetime(2026, 7, 1, tzinfo=UTC)
    events = [
        writer.event(PortfolioDefined, "kpi-co", at=at, name="K", owner="cpo", rollup_method=RollupMethod.KPI),
        writer.event(ObjectiveDefined, "P", at=at, objective_id="P", cycle_id="q3", tier=1, title="P", owner="cpo"),
        writer.event(
            KeyResultDefined, "p1", at=at, kr_id="p1", objective_id="P", cycle_id="q3", tier=1, title="Users", owner="cpo",
            kind="derived", unit="users", baseline=0.0, target=100.0,
        ),
        writer.event(
            ObjectiveDefined, "A", at=at, objective_id="A", cycle_id="q3", tier=2, title="A", owner="cpo",
            contributes_to=Link(parent_id="p1", weight=1.0),
        ),
    ]  # fmt: skip
    replayed = replay_history("kpi-co", chained(events))
    assert [(r.position, r.reason.split(":")[0]) for r in replayed.refused] == [(4, "unit-mismatch")]
    assert set(replayed.latest) == {"P", "p1"}


@pytest.mark.parametrize("enabled", [True, False], ids=["collector-on", "collector-off"])
def test_a_replay_leaves_the_cycle_collector_as_it_found_it_even_when_it_fails(exported: Path, enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        replay(exported)
        assert gc.isenabled() is enabled
        with pytest.raises(KeyError):
            replay_history("acme", [{"type": "NotAnEvent", "data": {}}])
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()

"""Versions of the scoring rules: each history event is scored by the rules in force when it was recorded."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from okr_rollup.domain import scoring
from okr_rollup.domain.projection import PortfolioProjection, ScoreRecord, replay
from okr_rollup.domain.rules import EPOCH, SCHEDULE, V1, InForce, RuleSet, Schedule, UnknownRules, rules_version
from okr_rollup.domain.scoring import Contribution, Score


def harsher_weighted(children: Iterable[Contribution], *, own_confidence: float | None = None, note: str = "") -> Score:
    """A stand-in for a future rules change: a weighted rollup that counts pending children as missing, not as zero."""
    return scoring.score_weighted([c for c in children if not c.pending], own_confidence=own_confidence, note=note)


def harsher_objective(method: Any, children: Iterable[Contribution], *, hit_threshold: float) -> Score:
    return harsher_weighted(children)


V2 = RuleSet("2-test", weighted=harsher_weighted, objective=harsher_objective)


def records(projection: PortfolioProjection, events: list[Any]) -> list[ScoreRecord]:
    out: list[ScoreRecord] = []
    for envelope in events:
        out += projection.apply(envelope) or []
    return out


def data(record: ScoreRecord) -> dict[str, Any]:
    return dict(json.loads(record.value)["data"])


def test_the_production_schedule_starts_with_version_one_and_every_version_is_known() -> None:
    assert SCHEDULE.entries[0].rules is V1
    assert V1.version == scoring.RULES_VERSION
    assert rules_version(V1.version) is V1
    with pytest.raises(UnknownRules, match="is not known to this code"):
        rules_version("0.9")


def test_a_schedule_must_start_at_the_epoch_and_never_switch_twice_at_once() -> None:
    with pytest.raises(ValueError, match="starts with the rules in force since the epoch"):
        Schedule([InForce(EPOCH + timedelta(days=1), V1)])
    with pytest.raises(ValueError, match="same moment"):
        Schedule([InForce(EPOCH, V1), InForce(EPOCH, V2)])


def test_events_recorded_before_a_new_version_takes_effect_keep_the_old_rules(history: Any) -> None:
    before = history.standard()
    switch = history.now + timedelta(seconds=30)
    after = [history.value("a1", 50.0)]
    schedule = Schedule([InForce(EPOCH, V1), InForce(switch, V2)])
    projection = PortfolioProjection(history.pid, schedule)
    old = records(projection, before)
    assert {data(r)["scoring_rules_version"] for r in old} == {V1.version}
    new = records(projection, after)
    # the first event under the new rules rescores every node, so each one's latest record names the new version
    assert {r.node_id for r in new} == {"P", "p1", "A", "a1", "a2", "B", "b1"}
    assert {data(r)["scoring_rules_version"] for r in new} == {"2-test"}
    objective_a = next(data(r) for r in new if r.node_id == "A")
    assert objective_a["progress"] == 0.5  # a2 is pending: left out under 2-test, where version 1 would count it as 0 (0.25)


def test_a_replay_with_the_same_schedule_gives_the_same_bytes(history: Any) -> None:
    events = [*history.standard(), history.value("a1", 50.0)]
    schedule = Schedule([InForce(EPOCH, V1), InForce(events[-1].recorded_at, V2)])
    live = records(PortfolioProjection(history.pid, schedule), events)
    again = records(PortfolioProjection(history.pid, schedule), events)
    assert [r.value for r in live] == [r.value for r in again]
    assert replay(history.pid, events, schedule).published == replay(history.pid, events, schedule).published


def test_one_version_for_every_event_scores_the_whole_history_by_it(history: Any) -> None:
    events = [*history.standard(), history.value("a1", 50.0)]
    found = records(PortfolioProjection(history.pid, Schedule.only(V2)), events)
    assert {data(r)["scoring_rules_version"] for r in found} == {"2-test"}


def test_every_version_in_the_schedule_has_a_row_in_the_scoring_document() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "scoring.md").read_text(encoding="utf-8")
    for entry in SCHEDULE.entries:
        assert f"| {entry.rules.version} |" in doc

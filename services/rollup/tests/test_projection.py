"""The projection: incremental, idempotent, order-tolerant, rebuildable to identical bytes, and refusing unscorable events."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from okr_contracts.kr_events import KeyResultEscalated, KeyResultRetired, Link, LinkChanged, WeightChanged
from okr_contracts.topics import KR_EVENTS_TOPIC
from okr_rollup.domain.errors import MixedMethodsRefused, UnitMismatch
from okr_rollup.domain.projection import PortfolioProjection, ScoreRecord, canonical, replay


def run(projection: PortfolioProjection, events: list[Any]) -> list[ScoreRecord]:
    out: list[ScoreRecord] = []
    for envelope in events:
        out += projection.apply(envelope) or []
    return out


def scores(records: list[ScoreRecord]) -> dict[str, Any]:
    """The latest payload per node."""
    return {r.node_id: r.envelope.data for r in records}


def test_one_value_recomputes_only_the_key_result_and_its_ancestors(history: Any) -> None:
    projection = PortfolioProjection(history.pid)
    run(projection, history.standard())
    changed = projection.apply(history.value("a1", 50.0)) or []
    assert [r.node_id for r in changed] == ["a1", "A", "p1", "P"]
    assert "B" not in {r.node_id for r in changed}
    assert "b1" not in {r.node_id for r in changed}


def test_scores_roll_up_through_every_tier_by_weight(history: Any) -> None:
    projection = PortfolioProjection(history.pid)
    latest = scores(run(projection, [*history.standard(), history.value("a1", 50.0), history.value("a2", 5.0), history.value("b1", 20.0)]))
    assert latest["a2"].progress == pytest.approx(0.5)  # decreasing metric 10 -> 0 at 5; inexact float division
    assert latest["A"].progress == pytest.approx(0.5)
    assert latest["p1"].progress == pytest.approx((2 * 0.5 + 1 * 0.2) / 3)  # A weighs 2 in p1, B 1
    assert latest["P"].progress == latest["p1"].progress
    assert latest["P"].derivation.inputs[0].node_id == "p1"


def test_a_redelivered_event_changes_nothing(history: Any) -> None:
    projection = PortfolioProjection(history.pid)
    run(projection, history.standard())
    value = history.value("a1", 40.0)
    assert projection.apply(value)
    before = dict(projection.published)
    assert projection.apply(value) is None
    assert projection.published == before
    assert projection.events == 9  # the eight of the standard portfolio and the value, once


def test_an_event_that_changes_no_score_publishes_nothing(history: Any) -> None:
    projection = PortfolioProjection(history.pid)
    run(projection, [*history.standard(), history.check_in("a1", 0.6)])
    escalated = history.event(KeyResultEscalated, "a1", kr_id="a1", escalated_to="cpo", reason="stuck")
    assert projection.apply(escalated) == []
    assert projection.apply(history.check_in("a1", 0.6)) == []  # the same confidence again


def test_a_child_arriving_before_its_parent_counts_once_the_parent_arrives(history: Any) -> None:
    early = [history.portfolio(), history.objective("A", 2, parent="p1", product="alpha"), history.kr("a1", "A", 2)]
    early.append(history.value("a1", 30.0))
    late = [history.objective("P", 1), history.kr("p1", "P", 1, kind="derived")]
    projection = PortfolioProjection(history.pid)
    latest = scores(run(projection, early + late))
    assert latest["p1"].progress == pytest.approx(0.3)
    assert latest["P"].progress == pytest.approx(0.3)
    in_order = scores(run(PortfolioProjection(history.pid), [early[0], *late, *early[1:]]))
    assert {k: v.progress for k, v in in_order.items()} == {k: v.progress for k, v in latest.items()}


def test_a_check_in_before_its_key_result_is_kept_until_the_definition_arrives(history: Any) -> None:
    projection = PortfolioProjection(history.pid)
    first = [history.portfolio(), history.objective("A", 2)]
    check_in, value = history.check_in("a1", 0.7), history.value("a1", 25.0)
    assert [r.node_id for r in run(projection, [*first, check_in, value])] == ["A"]  # nothing for a1 before its definition
    latest = scores(run(projection, [history.kr("a1", "A", 2)]))
    assert latest["a1"].progress == pytest.approx(0.25)
    assert latest["a1"].confidence == 0.7


def test_rebuilding_from_the_first_event_gives_byte_identical_records(history: Any) -> None:
    events = [*history.standard(), history.value("a1", 50.0), history.check_in("a1", 0.4), history.value("b1", 120.0)]
    events.append(history.event(WeightChanged, "A", node_id="A", parent_id="p1", old_weight=2.0, new_weight=1.0, reason="rebalanced"))
    first = run(PortfolioProjection(history.pid), events)
    through_kafka = [KR_EVENTS_TOPIC.decode(e.to_json_bytes()) for e in events]
    rebuilt = run(PortfolioProjection(history.pid), through_kafka)
    assert [r.value for r in rebuilt] == [r.value for r in first]
    assert replay(history.pid, through_kafka).published == replay(history.pid, events).published


def test_a_score_record_is_canonical_json_with_sorted_keys(history: Any) -> None:
    record = run(PortfolioProjection(history.pid), [*history.standard(), history.value("a1", 12.5)])[-1]
    assert record.value == canonical(json.loads(record.value))
    assert list(json.loads(record.value)) == sorted(json.loads(record.value))
    assert record.envelope.occurred_at == record.envelope.recorded_at == record.envelope.data.as_of


def test_every_derivation_recomputes_to_its_published_score(history: Any) -> None:
    events = [*history.standard(), history.value("a1", 50.0), history.value("a2", 7.5), history.check_in("b1", 0.3)]
    for record in run(PortfolioProjection(history.pid), events):
        data = record.envelope.data
        inputs = data.derivation.inputs
        if data.derivation.method == "weighted" and inputs:
            total = math.fsum(i.weight or 0 for i in inputs)
            assert data.progress == math.fsum((i.weight or 0) * i.progress for i in inputs) / total
        elif data.derivation.method == "metric" and data.status == "scored":
            base, target, value = data.derivation.baseline, data.derivation.target, inputs[0].value
            assert base is not None
            assert target is not None
            assert value is not None
            assert data.raw_progress == (value - base) / (target - base)


def test_moving_a_link_rescores_the_old_parent_and_the_new(history: Any) -> None:
    projection = PortfolioProjection(history.pid)
    run(projection, [*history.standard(), history.value("b1", 100.0)])
    moved = history.event(LinkChanged, "B", node_id="B", old_link=Link(parent_id="p1"), new_link=None, reason="dropped")
    latest = scores(projection.apply(moved) or [])
    assert latest["B"].contributes_to is None
    assert [i.node_id for i in latest["p1"].derivation.inputs] == ["A"]


def test_a_retired_key_result_leaves_its_objective(history: Any) -> None:
    projection = PortfolioProjection(history.pid)
    run(projection, [*history.standard(), history.value("a1", 100.0)])
    latest = scores(projection.apply(history.event(KeyResultRetired, "a2", kr_id="a2", reason="wrong metric")) or [])
    assert latest["a2"].status == "retired"
    assert latest["A"].progress == 1.0
    assert [i.node_id for i in latest["A"].derivation.inputs] == ["a1"]


def test_a_unit_mismatch_under_kpi_is_refused_and_changes_nothing(history: Any) -> None:
    projection = PortfolioProjection(history.pid)
    run(projection, [history.portfolio("kpi"), history.objective("P", 1), history.kr("p1", "P", 1, unit="users", kind="derived")])
    run(projection, [history.objective("A", 2, parent="P"), history.kr("a1", "A", 2, unit="users", parent="p1")])
    before = (dict(projection.published), projection.events, dict(projection.tree.children), dict(projection.tree.versions))
    with pytest.raises(UnitMismatch, match="a2 is in '%'"):
        projection.apply(history.kr("a2", "A", 2, unit="%", parent="p1"))
    assert (dict(projection.published), projection.events, dict(projection.tree.children), dict(projection.tree.versions)) == before
    assert "a2" not in projection.tree.nodes


def test_an_objective_cannot_feed_a_kpi_key_result(history: Any) -> None:
    projection = PortfolioProjection(history.pid)
    run(projection, [history.portfolio("kpi"), history.objective("P", 1), history.kr("p1", "P", 1, unit="users", kind="derived")])
    with pytest.raises(UnitMismatch, match="A is without a value"):
        projection.apply(history.objective("A", 2, parent="p1"))


def test_mixed_methods_are_refused_unless_the_portfolio_allows_them(history: Any) -> None:
    projection = PortfolioProjection(history.pid)
    run(projection, [history.portfolio("weighted"), history.objective("P", 1)])
    with pytest.raises(MixedMethodsRefused):
        projection.apply(history.objective("A", 2, parent="P", rollup_method="say_do"))
    assert projection.tree.node("A") is None
    allowed = PortfolioProjection(history.pid)
    latest = scores(run(allowed, [history.portfolio(allow_mixed=True), history.objective("P", 1)]))
    latest.update(scores(run(allowed, [history.objective("A", 2, parent="P", rollup_method="say_do")])))
    assert latest["A"].mixed_methods
    assert latest["P"].mixed_methods
    assert latest["A"].derivation.method == "say_do"

"""The capacity projection: squads' loads per cycle and the splits of their sprints, folded from the history next to the scores."""

from __future__ import annotations

import json
from typing import Any

import pytest

from okr_contracts.envelope import Envelope
from okr_rollup.domain.capacity import CapacityProjection
from okr_rollup.domain.projection import PortfolioProjection, replay

pytestmark = pytest.mark.unit


def fold(history: Any, events: list[Envelope[Any]]) -> PortfolioProjection:
    projection = PortfolioProjection(history.pid)
    for envelope in events:
        projection.apply(envelope)
    return projection


def views(projection: PortfolioProjection) -> dict[str, dict[str, Any]]:
    """Each cycle's latest view as written."""
    return {cycle: json.loads(raw) for cycle, raw in projection.capacity.written.items()}


def squads(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["team_id"]: s for s in view["squads"]}


def two_objectives(history: Any) -> list[Envelope[Any]]:
    """Squad `core` can give 6 sprints per cycle; objectives A and B take 3 each of cycle q3."""
    return [
        history.portfolio(),
        history.team("core", "Core"),
        history.capacity("core", 6.0),
        history.objective("A", 1),
        history.objective("B", 1),
        history.allocate("A", "core", 3.0),
        history.allocate("B", "core", 3.0),
    ]


def test_a_squad_with_capacity_for_two_objectives_that_gets_a_third_is_over_by_its_sprints(history: Any) -> None:
    projection = fold(history, two_objectives(history))
    full = squads(views(projection)["q3"])["core"]
    assert (full["allocated"], full["capacity"], full["free"], full["over"], full["utilisation"]) == (6.0, 6.0, 0.0, False, 1.0)
    projection.apply(history.objective("C", 1))
    projection.apply(history.allocate("C", "core", 3.0))
    over = squads(views(projection)["q3"])["core"]
    assert (over["name"], over["allocated"], over["free"], over["over_by"], over["over"], over["utilisation"]) == (
        "Core",
        9.0,
        -3.0,
        3.0,
        True,
        1.5,
    )
    assert over["allocations"] == [
        {"objective_id": "A", "title": "Objective A", "sprints": 3.0},
        {"objective_id": "B", "title": "Objective B", "sprints": 3.0},
        {"objective_id": "C", "title": "Objective C", "sprints": 3.0},
    ]


def test_an_allocation_changed_replaces_the_old_one_and_a_removed_one_frees_its_sprints(history: Any) -> None:
    projection = fold(history, [*two_objectives(history), history.allocate("A", "core", 5.0)])
    assert squads(views(projection)["q3"])["core"]["over_by"] == 2.0
    projection.apply(history.unallocate("A", "core", 5.0))
    core = squads(views(projection)["q3"])["core"]
    assert (core["allocated"], core["free"], core["over"]) == (3.0, 3.0, False)
    assert [a["objective_id"] for a in core["allocations"]] == ["B"]


def test_a_squad_without_a_declared_capacity_is_listed_with_its_allocations_and_never_over(history: Any) -> None:
    projection = fold(history, [history.objective("A", 1), history.allocate("A", "guests", 40.0)])
    guests = squads(views(projection)["q3"])["guests"]
    assert (guests["name"], guests["capacity"], guests["allocated"], guests["free"], guests["over"], guests["utilisation"]) == (
        None,
        None,
        40.0,
        None,
        False,
        None,
    )
    projection.apply(history.unallocate("A", "guests", 40.0))
    assert views(projection)["q3"]["squads"] == []  # no capacity and nothing allocated: no longer a squad of the cycle


def test_a_capacity_set_for_one_cycle_overrides_the_default_there_only(history: Any) -> None:
    events = [
        history.cycle("q3"),
        history.cycle("q4"),
        history.capacity("core", 6.0),
        history.capacity("core", 2.0, cycle="q4"),
        history.objective("A", 1, cycle="q3"),
        history.objective("B", 1, cycle="q4"),
        history.allocate("A", "core", 3.0),
        history.allocate("B", "core", 3.0),
    ]
    found = views(fold(history, events))
    q3, q4 = squads(found["q3"])["core"], squads(found["q4"])["core"]
    assert (q3["capacity"], q3["allocated"], q3["over"]) == (6.0, 3.0, False)
    assert (q4["capacity"], q4["allocated"], q4["over_by"]) == (2.0, 3.0, 1.0)
    assert (found["q3"]["name"], found["q4"]["name"]) == ("Q3", "Q4")


def test_a_default_capacity_makes_the_squad_part_of_every_cycle_even_one_started_later(history: Any) -> None:
    projection = fold(history, [history.capacity("core", 6.0), history.cycle("q3")])
    assert squads(views(projection)["q3"])["core"]["free"] == 6.0
    projection.apply(history.cycle("q4"))
    assert squads(views(projection)["q4"])["core"]["allocated"] == 0.0


def test_allocations_count_in_the_cycle_of_their_objective_and_move_with_it(history: Any) -> None:
    projection = fold(history, [history.capacity("core", 6.0), history.objective("A", 1, cycle="q3"), history.allocate("A", "core", 4.0)])
    projection.apply(history.objective("A", 1, cycle="q4"))  # redefined in the next cycle
    found = views(projection)
    assert squads(found["q3"])["core"]["allocated"] == 0.0
    assert squads(found["q4"])["core"]["allocated"] == 4.0


def test_a_team_and_a_cycle_may_be_defined_after_the_capacities_and_allocations_that_name_them(history: Any) -> None:
    in_order = [
        history.portfolio(),
        history.cycle("q3"),
        history.cycle("q4"),
        history.team("core", "Core"),
        history.capacity("core", 4.0),
        history.capacity("core", 1.0, cycle="q4"),
        history.objective("A", 1),
        history.allocate("A", "core", 3.0),
        history.objective("B", 1, cycle="q4"),
        history.allocate("B", "core", 2.0),
    ]
    late = [in_order[i] for i in (0, 6, 7, 8, 9, 3, 4, 5, 2, 1)]  # the team, its capacities and the cycles after the allocations
    assert views(fold(history, late)) == views(fold(history, in_order))
    found = views(fold(history, late))
    assert [(s["team_id"], s["name"], s["over_by"]) for v in found.values() for s in v["squads"]] == [
        ("core", "Core", 0.0),
        ("core", "Core", 1.0),
    ]
    assert (found["q3"]["name"], found["q4"]["name"]) == ("Q3", "Q4")


def test_an_allocation_and_tags_folded_before_their_objective_count_once_it_is_defined(history: Any) -> None:
    """Within one aggregate the history is ordered; the fold itself does not depend on it."""
    capacity = CapacityProjection()
    for envelope in [history.allocate("A", "core", 3.0), history.classify("A", "primary"), history.capacity("core", 2.0)]:
        assert capacity.apply(envelope.data, envelope.recorded_at) == []  # no cycle to count them in yet
    [changed] = capacity.apply(history.objective("A", 1).data, history.now)
    view = json.loads(changed.view)
    assert (view["cycle_id"], squads(view)["core"]["over_by"], view["balance"]["priorities"][0]["actual"]) == ("q3", 1.0, 1.0)


def test_the_split_by_priority_is_judged_against_the_intended_balance_and_its_margin(history: Any) -> None:
    events = [
        history.capacity("core", 20.0),
        *(history.objective(o, 1) for o in "ABCD"),
        history.allocate("A", "core", 5.0),
        history.allocate("B", "core", 4.0),
        history.allocate("C", "core", 1.0),
        history.allocate("D", "core", 2.0),
        history.classify("A", "primary"),
        history.classify("B", "secondary"),
        history.classify("C", "exploration"),
    ]
    projection = fold(history, events)
    balance = views(projection)["q3"]["balance"]
    assert balance["priorities"] == [
        {"priority": "primary", "intended": 0.7, "sprints": 5.0, "actual": 0.5, "deviation": -0.2},
        {"priority": "secondary", "intended": 0.2, "sprints": 4.0, "actual": 0.4, "deviation": 0.2},
        {"priority": "exploration", "intended": 0.1, "sprints": 1.0, "actual": 0.1, "deviation": 0.0},
    ]
    assert (balance["margin"], balance["unclassified"], balance["worst"], balance["off"]) == (0.1, 2.0, "primary", True)
    projection.apply(history.balance(0.5, 0.4, 0.1, margin=0.05))  # the portfolio now intends what it does
    rebalanced = views(projection)["q3"]["balance"]
    assert ([p["deviation"] for p in rebalanced["priorities"]], rebalanced["margin"], rebalanced["off"]) == ([0.0, 0.0, 0.0], 0.05, False)


def test_nothing_classified_is_not_judged(history: Any) -> None:
    projection = fold(history, [history.objective("A", 1), history.allocate("A", "core", 2.0)])
    balance = views(projection)["q3"]["balance"]
    assert (balance["off"], balance["worst"], balance["unclassified"]) == (None, None, 2.0)
    assert [(p["sprints"], p["actual"], p["deviation"]) for p in balance["priorities"]] == [(0.0, None, None)] * 3


def test_the_splits_by_aarrr_stage_and_horizon_show_acquisition_eating_what_retention_needs(history: Any) -> None:
    events = [
        *(history.objective(o, 1) for o in "ABC"),
        history.allocate("A", "core", 6.0),
        history.allocate("A", "web", 2.0),  # one objective, two squads: 8 sprints
        history.allocate("B", "core", 1.0),
        history.allocate("C", "web", 1.0),
        history.classify("A", "primary", "acquisition", "grow"),
        history.classify("B", "primary", "retention", "run"),
        history.classify("C", None, None, "transform"),
    ]
    view = views(fold(history, events))["q3"]
    aarrr = {row["value"]: (row["sprints"], row["share"]) for row in view["aarrr"]["values"]}
    assert aarrr == {
        "acquisition": (8.0, pytest.approx(8 / 9)),
        "activation": (0.0, 0.0),
        "retention": (1.0, pytest.approx(1 / 9)),
        "referral": (0.0, 0.0),
        "revenue": (0.0, 0.0),
    }
    assert [row["value"] for row in view["aarrr"]["values"]] == ["acquisition", "activation", "retention", "referral", "revenue"]
    assert view["aarrr"]["unclassified"] == 1.0
    horizon = [(row["value"], row["sprints"], row["share"]) for row in view["horizon"]["values"]]
    assert horizon == [("run", 1.0, 0.1), ("grow", 8.0, 0.8), ("transform", 1.0, 0.1)]
    assert view["horizon"]["unclassified"] == 0.0


def test_a_view_is_written_only_when_what_it_says_changes(history: Any) -> None:
    projection = fold(history, two_objectives(history))
    assert [v.cycle_id for v in projection.capacity_changed] == ["q3"]
    for unchanged in (history.capacity("core", 6.0), history.objective("Z", 1), history.check_in("k", 0.5)):
        projection.apply(unchanged)
        assert projection.capacity_changed == []
    projection.apply(history.objective("A", 1, title="Renamed"))  # an allocated objective's title shows
    assert [v.cycle_id for v in projection.capacity_changed] == ["q3"]


def test_a_cycle_without_squads_gets_no_view(history: Any) -> None:
    projection = fold(
        history, [history.cycle("q3"), history.objective("A", 1), history.classify("A", "primary"), history.balance(0.6, 0.3, 0.1)]
    )
    assert projection.capacity.written == {}


def test_a_redelivered_capacity_event_changes_nothing(history: Any) -> None:
    events = two_objectives(history)
    projection = fold(history, events)
    before = dict(projection.capacity.written)
    assert projection.apply(events[-1]) is None
    assert (projection.capacity_changed, projection.capacity.written) == ([], before)


def test_capacity_events_produce_no_score_records_and_leave_the_scores_as_they_were(history: Any) -> None:
    scores = history.standard()
    capacity = [history.team("core"), history.capacity("core", 4.0), history.allocate("A", "core", 2.0), history.classify("P", "primary")]
    later = [history.value("a1", 40.0), history.check_in("b1", 0.7)]
    plain, mixed = PortfolioProjection(history.pid), PortfolioProjection(history.pid)
    plain_records = [r.value for e in [*scores, *later] for r in plain.apply(e) or []]
    mixed_records = []
    for envelope in [*scores[:4], *capacity, *scores[4:], *later]:
        found = mixed.apply(envelope)
        assert found is not None
        if envelope in capacity:
            assert found == []
        mixed_records += [r.value for r in found]
    assert mixed_records == plain_records
    assert squads(views(mixed)["q3"])["core"]["allocated"] == 2.0


def test_a_replay_gives_the_same_views_byte_for_byte_at_the_same_positions(history: Any) -> None:
    events = [*two_objectives(history), history.classify("A", "primary", "revenue", "run"), history.unallocate("B", "core", 3.0)]
    live = PortfolioProjection(history.pid)
    seen = []
    for envelope in events:
        live.apply(envelope)
        seen += [(live.events, v) for v in live.capacity_changed]
    replayed: list[Any] = []
    rebuilt = replay(history.pid, events, views=replayed)
    assert replayed == seen
    assert rebuilt.capacity.written == live.capacity.written
    assert [seq for seq, _ in seen] == [4, 6, 7, 8, 9]  # q3 is known once A is defined; B's definition changes nothing

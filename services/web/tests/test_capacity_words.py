"""The capacity section's words: a squad's load and the balance's verdict read without colour, and only the cycles shown appear."""

from __future__ import annotations

from typing import Any

import pytest

from okr_web.capacity import free, load, points, sections, sprints, verdict


def squad(capacity: float | None, allocated: float) -> dict[str, Any]:
    """A squad as the rollup's capacity view has it (the numbers as okr_contracts.capacity computes them)."""
    free = None if capacity is None else capacity - allocated
    over_by = max(0.0, -free) if free is not None else 0.0
    return {
        "team_id": "core",
        "name": None,
        "capacity": capacity,
        "allocated": allocated,
        "free": free,
        "over_by": over_by,
        "over": over_by > 0,
    }


@pytest.mark.parametrize(
    ("capacity", "allocated", "state", "words"),
    [
        (6.0, 9.0, "over", "Over-allocated by 3 sprints"),
        (2.0, 3.0, "over", "Over-allocated by 1 sprint"),
        (6.0, 6.0, "full", "full"),
        (6.0, 3.5, "free", "2.5 sprints free"),
        (None, 4.0, "undeclared", "capacity not declared"),
    ],
)
def test_a_squads_load_is_said_in_words(capacity: float | None, allocated: float, state: str, words: str) -> None:
    assert load(squad(capacity, allocated)) == {"state": state, "words": words}


def test_sprints_and_points_read_as_people_say_them() -> None:
    assert [sprints(v) for v in (0.0, 1.0, 2.0, 0.5)] == ["0 sprints", "1 sprint", "2 sprints", "0.5 sprints"]
    assert [points(v) for v in (0.05, -0.2, 0.0, 0.001, None)] == ["+5 pts", "−20 pts", "0 pts", "0 pts", "—"]
    assert [free(v) for v in (-2.0, 0.0, 1.5, None)] == ["−2", "0", "1.5", "—"]


def balance(off: bool | None, worst: str | None = None, *deviations: float) -> dict[str, Any]:
    intended = {"primary": 0.7, "secondary": 0.2, "exploration": 0.1}
    rows = [{"priority": p, "intended": s, "deviation": d} for (p, s), d in zip(intended.items(), deviations or (0.0,) * 3, strict=True)]
    return {"margin": 0.1, "priorities": rows, "worst": worst, "off": off}


def test_the_verdict_names_the_priority_furthest_off_and_which_way() -> None:
    off = verdict(balance(True, "primary", -0.27, 0.09, 0.19))
    assert off == {"state": "off", "words": "Off balance: Primary is 27 points under its intended 70% (margin 10 points)."}
    over = verdict(balance(True, "exploration", -0.1, -0.05, 0.15))
    assert over["words"] == "Off balance: Exploration is 15 points over its intended 10% (margin 10 points)."
    assert verdict(balance(False, "primary", 0.05, -0.05, 0.0)) == {
        "state": "in",
        "words": "In balance: every priority's share is within 10 points of its intended share.",
    }
    assert verdict(balance(None))["state"] == "unjudged"


def cycle(cycle_id: str, *teams: dict[str, Any]) -> dict[str, Any]:
    split = {"values": [{"value": "run", "sprints": 1.0, "share": 1.0}], "unclassified": 0.0}
    return {
        "cycle_id": cycle_id,
        "name": None,
        "as_of": "2026-10-05T09:00:00+00:00",
        "squads": list(teams),
        "balance": {**balance(None), "unclassified": 1.0},
        "aarrr": split,
        "horizon": split,
    }


def test_only_the_cycles_shown_appear_in_the_order_shown_with_the_over_allocated_squads_named() -> None:
    found = {"cycles": [cycle("q3", squad(1.0, 1.0)), cycle("q4", squad(2.0, 3.0), {**squad(None, 1.0), "team_id": "web", "name": "Web"})]}
    shown = sections(found, ["q4", "q1", "q3"])
    assert [s["cycle_id"] for s in shown] == ["q4", "q3"]
    assert (shown[0]["title"], shown[0]["over"], [s["shown_name"] for s in shown[0]["squads"]]) == ("q4", ["core"], ["core", "Web"])
    assert shown[0]["horizons"] == [{"value": "run", "sprints": 1.0, "share": 1.0, "label": "Run"}]
    assert sections(found, []) == []

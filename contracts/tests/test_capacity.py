"""The capacity arithmetic: squads' load against capacity, splits by tag, and the balance margins."""

import pytest
from pydantic import ValidationError

from okr_contracts.capacity import capacity_for, check_balance, split, squad_load
from okr_contracts.kr_events import Balance, BalanceIntended, ObjectiveAllocated, SquadCapacitySet


def test_a_cycle_override_wins_over_the_default_and_neither_is_undeclared() -> None:
    assert capacity_for("q3", 6.0, {"q3": 4.0}) == 4.0
    assert capacity_for("q4", 6.0, {"q3": 4.0}) == 6.0
    assert capacity_for("q4", None, {"q3": 4.0}) is None
    assert capacity_for("q3", None, {"q3": 0.0}) == 0.0


def test_a_third_objective_in_a_squad_with_capacity_for_two_is_over_by_its_sprints() -> None:
    two = squad_load("squad", "q3", 6.0, {"a": 3.0, "b": 3.0})
    assert (two.allocated, two.free, two.over_by, two.over, two.utilisation) == (6.0, 0.0, 0.0, False, 1.0)
    three = squad_load("squad", "q3", 6.0, {"a": 3.0, "b": 3.0, "c": 3.0})
    assert (three.allocated, three.free, three.over_by, three.over, three.utilisation) == (9.0, -3.0, 3.0, True, 1.5)


def test_nothing_allocated_is_zero_sprints_as_a_float_like_every_other_amount() -> None:
    empty = squad_load("squad", "q3", 6.0, {})
    assert (empty.allocated, empty.free, empty.over) == (0.0, 6.0, False)
    assert isinstance(empty.allocated, float)
    assert isinstance(split([]).classified, float)


def test_fractions_add_up_exactly_at_the_boundary() -> None:
    load = squad_load("squad", "q3", 0.3, {"a": 0.1, "b": 0.2})  # 0.1 + 0.2 is 0.30000000000000004 in floats
    assert load.allocated == 0.3
    assert not load.over


def test_an_undeclared_capacity_is_never_over_and_zero_capacity_is_over_with_any_allocation() -> None:
    undeclared = squad_load("squad", "q3", None, {"a": 5.0})
    assert (undeclared.free, undeclared.over, undeclared.utilisation) == (None, False, None)
    zero = squad_load("squad", "q3", 0.0, {"a": 0.5})
    assert (zero.over, zero.over_by, zero.utilisation) == (True, 0.5, None)


def test_a_split_counts_sprints_by_tag_and_leaves_untagged_sprints_out_of_the_shares() -> None:
    found = split([("primary", 6.0), ("secondary", 2.0), (None, 4.0), ("primary", 1.0), ("exploration", 1.0)])
    assert found.sprints == {"exploration": 1.0, "primary": 7.0, "secondary": 2.0}
    assert (found.classified, found.unclassified) == (10.0, 4.0)
    shares = found.shares(["primary", "secondary", "exploration", "run"])
    assert shares == {"primary": 0.7, "secondary": 0.2, "exploration": 0.1, "run": 0.0}


def test_nothing_classified_is_not_judged() -> None:
    assert check_balance(split([(None, 3.0)]), Balance(), 0.1) is None
    assert check_balance(split([]), Balance(), 0.1) is None


@pytest.mark.parametrize(
    ("primary", "secondary", "exploration", "off", "worst"),
    [
        (7, 2, 1, False, "primary"),  # exactly 70/20/10 (the first priority on a tie)
        (6, 3, 1, False, "primary"),  # 10 points off on two shares: the margin itself is still in
        (5, 4, 1, True, "primary"),  # 20 points under on primary
        (8, 0, 2, True, "secondary"),  # secondary 20 points under is the worst
        (7.5, 2.5, 0, False, "exploration"),  # 10 points under on exploration: in
        (0, 0, 1, True, "exploration"),  # only exploration: 90 points over
    ],
)
def test_the_balance_is_off_only_beyond_the_margin(primary: float, secondary: float, exploration: float, off: bool, worst: str) -> None:
    check = check_balance(split([("primary", primary), ("secondary", secondary), ("exploration", exploration)]), Balance(), 0.1)
    assert check is not None
    assert (check.off, check.worst) == (off, worst)


def test_the_deviations_are_signed_and_the_margin_and_intended_shares_are_the_portfolios() -> None:
    check = check_balance(split([("primary", 5.0), ("secondary", 5.0)]), Balance(primary=0.5, secondary=0.3, exploration=0.2), 0.25)
    assert check is not None
    assert check.actual == {"primary": 0.5, "secondary": 0.5, "exploration": 0.0}
    assert check.deviations == {"primary": 0.0, "secondary": 0.2, "exploration": -0.2}
    assert not check.off
    assert check_balance(split([("primary", 5.0), ("secondary", 5.0)]), Balance(primary=0.5, secondary=0.3, exploration=0.2), 0.15)


def test_the_events_refuse_impossible_amounts() -> None:
    base = {"portfolio_id": "p", "aggregate_id": "x", "aggregate_version": 2, "actor": "cpo"}
    with pytest.raises(ValidationError, match=r"sum to 0\.9"):
        Balance(primary=0.6, secondary=0.2, exploration=0.1)
    with pytest.raises(ValidationError):
        BalanceIntended(**base, margin=1.5)
    with pytest.raises(ValidationError):
        ObjectiveAllocated(**base, objective_id="o", team_id="t", sprints=0)
    with pytest.raises(ValidationError):
        SquadCapacitySet(**base, team_id="t", sprints=-1)
    with pytest.raises(ValidationError):
        SquadCapacitySet(**base, team_id="t", sprints=float("inf"))
    assert BalanceIntended(**base).intended == Balance(primary=0.7, secondary=0.2, exploration=0.1)

"""Capacity arithmetic: a squad's allocated sprints against its capacity, and a cycle's split against the intended balance.

Every reader of the key-result history that shows or judges capacity (the rollup's
views, drift's rules) computes it here, so the number on the scorecard and the
number in the alert are the same number. Pure functions over plain values; the
rules are written down with examples in docs/capacity.md.

- A squad's capacity for a cycle is its capacity set for that cycle, else its
  default per cycle, else undeclared (nothing to compare with: never over).
- A squad is over-allocated when the sprints allocated to it by the cycle's
  objectives exceed its capacity (equal is full, not over).
- A cycle's split counts the allocated sprints of its objectives by tag; objectives
  without the tag are reported as unclassified and left out of the shares.
- The split is off balance when any priority's actual share differs from its
  intended share by more than the margin (a difference equal to the margin is in).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from okr_contracts.kr_events import Balance, InvestmentPriority

DIGITS = 9
"""Sums and shares are rounded to this many digits before comparing: 0.7 + 0.2 is 0.9, not 0.8999…"""


def _round(value: float) -> float:
    return round(value, DIGITS)


def capacity_for(cycle_id: str, default: float | None, by_cycle: Mapping[str, float]) -> float | None:
    """A squad's capacity in one cycle: set for that cycle, else its default, else none (undeclared)."""
    return by_cycle.get(cycle_id, default)


@dataclass(frozen=True)
class SquadLoad:
    """A squad in one cycle: its capacity, the objectives allocated to it, and what follows."""

    team_id: str
    cycle_id: str
    capacity: float | None
    allocations: Mapping[str, float] = field(default_factory=dict)
    """Sprints per objective."""

    @property
    def allocated(self) -> float:
        """Sprints allocated, in total."""
        return _round(sum(self.allocations.values(), 0.0))

    @property
    def free(self) -> float | None:
        """Sprints not allocated (negative when over); none when the capacity is undeclared."""
        return None if self.capacity is None else _round(self.capacity - self.allocated)

    @property
    def over_by(self) -> float:
        """Sprints allocated beyond the capacity (0 when within it or undeclared)."""
        free = self.free
        return 0.0 if free is None or free >= 0 else -free

    @property
    def over(self) -> bool:
        """Allocated beyond the declared capacity."""
        return self.over_by > 0

    @property
    def utilisation(self) -> float | None:
        """Allocated over capacity (1.5 is 150 %); none when undeclared or zero."""
        return None if not self.capacity else _round(self.allocated / self.capacity)


def squad_load(team_id: str, cycle_id: str, capacity: float | None, allocations: Mapping[str, float]) -> SquadLoad:
    """The load of one squad in one cycle."""
    return SquadLoad(team_id, cycle_id, capacity, dict(sorted(allocations.items())))


@dataclass(frozen=True)
class Split:
    """Allocated sprints by tag value, and the sprints of objectives without the tag."""

    sprints: Mapping[str, float]
    unclassified: float = 0.0

    @property
    def classified(self) -> float:
        """Sprints of tagged objectives (the base of the shares)."""
        return _round(sum(self.sprints.values(), 0.0))

    def share(self, value: str) -> float:
        """A tag value's share of the tagged sprints (0 when nothing is tagged)."""
        base = self.classified
        return _round(self.sprints.get(value, 0.0) / base) if base else 0.0

    def shares(self, values: Iterable[str]) -> dict[str, float]:
        """Each given tag value's share, in the given order."""
        return {value: self.share(value) for value in values}


def split(items: Iterable[tuple[str | None, float]]) -> Split:
    """Sum (tag value or none, sprints) pairs: one per allocated objective."""
    sprints: dict[str, float] = {}
    unclassified = 0.0
    for value, amount in items:
        if value is None:
            unclassified += amount
        else:
            sprints[value] = sprints.get(value, 0.0) + amount
    return Split({k: _round(v) for k, v in sorted(sprints.items())}, _round(unclassified))


@dataclass(frozen=True)
class BalanceCheck:
    """A cycle's split over primary, secondary and exploration against the intended balance."""

    actual: Mapping[str, float]
    intended: Mapping[str, float]
    margin: float

    @property
    def deviations(self) -> dict[str, float]:
        """Actual minus intended share, per priority (positive: over-invested)."""
        return {p: _round(self.actual[p] - self.intended[p]) for p in self.intended}

    @property
    def worst(self) -> str:
        """The priority furthest from its intended share (the first in priority order on a tie)."""
        deviations = self.deviations
        return max(deviations, key=lambda p: abs(deviations[p]))

    @property
    def off(self) -> bool:
        """Some share differs from its intended one by more than the margin."""
        return abs(self.deviations[self.worst]) > _round(self.margin)


def check_balance(priorities: Split, intended: Balance, margin: float) -> BalanceCheck | None:
    """The balance of a split by priority; none when no allocated objective has a priority (nothing to judge)."""
    if not priorities.classified:
        return None
    order = [p.value for p in InvestmentPriority]
    return BalanceCheck(priorities.shares(order), {p.value: intended.share(p) for p in InvestmentPriority}, margin)

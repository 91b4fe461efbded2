"""One portfolio's capacity per cycle, folded event by event from the key-result history next to its scores.

A cycle's view lists its squads (those with a capacity for the cycle, by default or
override, or an allocation in it) with their allocated sprints against capacity, and
splits the cycle's allocated sprints by priority (against the intended balance), by
AARRR stage and by run/grow/transform. Every number comes from
:mod:`okr_contracts.capacity`, the arithmetic drift's alerts use too, so the scorecard
and the alert say the same. Allocations count in the cycle of their objective; an
allocation, a classification or a capacity that arrives before what it refers to is
kept and counts once the definition arrives. A view is emitted only when what it says
changes, as canonical JSON, so replaying a history gives the same views byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from okr_contracts.capacity import BalanceCheck, Split, SquadLoad, capacity_for, check_balance, split, squad_load
from okr_contracts.kr_events import (
    AarrrStage,
    AllocationRemoved,
    Balance,
    BalanceIntended,
    CycleStarted,
    InvestmentHorizon,
    InvestmentPriority,
    KrEvent,
    ObjectiveAllocated,
    ObjectiveClassified,
    ObjectiveDefined,
    SquadCapacitySet,
    TeamDefined,
)
from okr_rollup.domain.records import canonical

DEFAULT_MARGIN = 0.1
"""The margin before any BalanceIntended (the contract's default)."""


@dataclass(frozen=True)
class CapacityView:
    """A cycle's capacity view as stored: its canonical JSON, true from `as_of` (when the event that changed it was recorded)."""

    cycle_id: str
    as_of: datetime
    view: bytes


@dataclass
class Squad:
    """A team as capacity sees it: its name, its default capacity per cycle and its per-cycle overrides."""

    name: str | None = None
    default: float | None = None
    by_cycle: dict[str, float] = field(default_factory=dict)


@dataclass
class Objective:
    """An objective's cycle and title (none until defined), its sprints per squad, and its three investment tags."""

    cycle_id: str | None = None
    title: str | None = None
    allocations: dict[str, float] = field(default_factory=dict)
    priority: InvestmentPriority | None = None
    aarrr_stage: AarrrStage | None = None
    horizon: InvestmentHorizon | None = None

    def sprints(self) -> float:
        """Sprints allocated to it, over every squad."""
        return sum(self.allocations[team] for team in sorted(self.allocations))


class CapacityProjection:
    """Squads, allocations, tags and the intended balance of one portfolio, and the last view written per cycle."""

    def __init__(self) -> None:
        self.squads: dict[str, Squad] = {}
        self.objectives: dict[str, Objective] = {}
        self.cycles: dict[str, str | None] = {}
        """Known cycles (started, or named by an objective or a capacity), with their names once started."""
        self.allocated: dict[str, set[str]] = {}
        """Per cycle, its defined objectives that have at least one allocation."""
        self.balance = Balance()
        self.margin = DEFAULT_MARGIN
        self.written: dict[str, bytes] = {}
        """Each cycle's latest view, as emitted."""

    def apply(self, event: KrEvent, at: datetime) -> list[CapacityView]:
        """Fold one history event (seen for the first time); the views of the cycles whose view it changed."""
        affected = self._evolve(event)
        return self._changed(affected, at) if affected else []

    def view(self, cycle_id: str) -> dict[str, Any]:
        """A cycle's view: its squads' loads, and its allocated sprints split by priority, AARRR stage and horizon."""
        members = sorted(self.allocated.get(cycle_id, ()))
        by_squad: dict[str, dict[str, float]] = {}
        for objective_id in members:
            for team_id, sprints in self.objectives[objective_id].allocations.items():
                by_squad.setdefault(team_id, {})[objective_id] = sprints
        declared = {t for t, s in self.squads.items() if capacity_for(cycle_id, s.default, s.by_cycle) is not None}
        loads = [squad_load(t, cycle_id, self._capacity(t, cycle_id), by_squad.get(t, {})) for t in sorted(declared | by_squad.keys())]
        totals = [(self.objectives[o], self.objectives[o].sprints()) for o in members]
        return {
            "cycle_id": cycle_id,
            "name": self.cycles.get(cycle_id),
            "squads": [self._squad_view(load) for load in loads],
            "balance": balance_view(split((_value(o.priority), s) for o, s in totals), self.balance, self.margin),
            "aarrr": split_view(split((_value(o.aarrr_stage), s) for o, s in totals), AarrrStage),
            "horizon": split_view(split((_value(o.horizon), s) for o, s in totals), InvestmentHorizon),
        }

    def _evolve(self, event: KrEvent) -> set[str]:
        """Apply an event to the state; the cycles whose view may have changed."""
        match event:
            case SquadCapacitySet():
                return self._set_capacity(event)
            case TeamDefined():
                self._squad(event.team_id).name = event.name
                return self._cycles_of(event.team_id)
            case CycleStarted():
                self.cycles[event.cycle_id] = event.name
                return {event.cycle_id}
            case ObjectiveDefined():
                return self._define(event)
            case ObjectiveAllocated():
                return self._allocate(event.objective_id, event.team_id, event.sprints)
            case AllocationRemoved():
                return self._allocate(event.objective_id, event.team_id, None)
            case ObjectiveClassified():
                objective = self._objective(event.objective_id)
                objective.priority, objective.aarrr_stage, objective.horizon = event.priority, event.aarrr_stage, event.horizon
                return _cycle_of(objective) if objective.allocations else set()
            case BalanceIntended():
                self.balance, self.margin = event.intended, event.margin
                return set(self.cycles)
            case _:
                return set()

    def _set_capacity(self, event: SquadCapacitySet) -> set[str]:
        squad = self._squad(event.team_id)
        if event.cycle_id is None:
            squad.default = event.sprints
            return set(self.cycles)
        squad.by_cycle[event.cycle_id] = event.sprints
        self.cycles.setdefault(event.cycle_id, None)
        return {event.cycle_id}

    def _define(self, event: ObjectiveDefined) -> set[str]:
        objective = self._objective(event.objective_id)
        before = objective.cycle_id
        self._index(event.objective_id, objective, False)
        objective.cycle_id, objective.title = event.cycle_id, event.title
        self._index(event.objective_id, objective, True)
        affected = {event.cycle_id} if event.cycle_id not in self.cycles else set()
        self.cycles.setdefault(event.cycle_id, None)
        if objective.allocations:  # its title, or its cycle, shows in views
            affected |= {event.cycle_id} | ({before} if before else set())
        return affected

    def _allocate(self, objective_id: str, team_id: str, sprints: float | None) -> set[str]:
        objective = self._objective(objective_id)
        self._index(objective_id, objective, False)
        if sprints is None:
            objective.allocations.pop(team_id, None)
        else:
            objective.allocations[team_id] = sprints
        self._index(objective_id, objective, True)
        return _cycle_of(objective)

    def _index(self, objective_id: str, objective: Objective, present: bool) -> None:
        """Keep `allocated` in step: out before a change, back in after it if the objective is defined and allocated."""
        if objective.cycle_id is None:
            return
        members = self.allocated.setdefault(objective.cycle_id, set())
        if present and objective.allocations:
            members.add(objective_id)
        else:
            members.discard(objective_id)

    def _cycles_of(self, team_id: str) -> set[str]:
        """The cycles a team is a squad of: every cycle with a default capacity, else its overrides' and allocations' cycles."""
        squad = self._squad(team_id)
        if squad.default is not None:
            return set(self.cycles)
        found = set(squad.by_cycle)
        for cycle_id, members in self.allocated.items():
            if any(team_id in self.objectives[o].allocations for o in members):
                found.add(cycle_id)
        return found

    def _changed(self, affected: set[str], at: datetime) -> list[CapacityView]:
        changed = []
        for cycle_id in sorted(affected):
            view = self.view(cycle_id)
            if not view["squads"] and cycle_id not in self.written:
                continue  # a cycle without squads has no view until it gets one
            raw = canonical(view)
            if self.written.get(cycle_id) != raw:
                self.written[cycle_id] = raw
                changed.append(CapacityView(cycle_id, at, raw))
        return changed

    def _capacity(self, team_id: str, cycle_id: str) -> float | None:
        squad = self.squads.get(team_id)
        return None if squad is None else capacity_for(cycle_id, squad.default, squad.by_cycle)

    def _squad_view(self, load: SquadLoad) -> dict[str, Any]:
        squad = self.squads.get(load.team_id)
        allocations = [
            {"objective_id": o, "title": self.objectives[o].title, "sprints": sprints} for o, sprints in load.allocations.items()
        ]
        return {
            "team_id": load.team_id,
            "name": squad.name if squad else None,
            "capacity": load.capacity,
            "allocated": load.allocated,
            "free": load.free,
            "over_by": load.over_by,
            "over": load.over,
            "utilisation": load.utilisation,
            "allocations": allocations,
        }

    def _squad(self, team_id: str) -> Squad:
        return self.squads.setdefault(team_id, Squad())

    def _objective(self, objective_id: str) -> Objective:
        return self.objectives.setdefault(objective_id, Objective())


def balance_view(priorities: Split, intended: Balance, margin: float) -> dict[str, Any]:
    """The split by priority against the intended balance; actual shares, deviations, `worst` and `off` none when nothing is classified."""
    check: BalanceCheck | None = check_balance(priorities, intended, margin)
    rows = [
        {
            "priority": p.value,
            "intended": intended.share(p),
            "sprints": priorities.sprints.get(p.value, 0.0),
            "actual": check.actual[p.value] if check else None,
            "deviation": check.deviations[p.value] if check else None,
        }
        for p in InvestmentPriority
    ]
    worst, off = (check.worst, check.off) if check else (None, None)
    return {"margin": margin, "priorities": rows, "unclassified": priorities.unclassified, "worst": worst, "off": off}


def split_view(found: Split, values: type[StrEnum]) -> dict[str, Any]:
    """Sprints and share of every tag value, in the enumeration's order, and the sprints of objectives without the tag."""
    rows = [{"value": v.value, "sprints": found.sprints.get(v.value, 0.0), "share": found.share(v.value)} for v in values]
    return {"values": rows, "unclassified": found.unclassified}


def _cycle_of(objective: Objective) -> set[str]:
    return {objective.cycle_id} if objective.cycle_id else set()


def _value(tag: StrEnum | None) -> str | None:
    return None if tag is None else tag.value

"""One portfolio's facts and how each input changes them.

``apply_history``, ``apply_score`` and ``apply_delivery`` fold one input into the
facts and return what it touched (the entities to store, the nodes to
evaluate), or ``None`` when the input was seen before or changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from okr_contracts.kr_events import (
    AllocationRemoved,
    BalanceIntended,
    CheckInRecorded,
    CycleScored,
    CycleStarted,
    KeyResultDefined,
    KeyResultEscalated,
    KeyResultRetired,
    KrEvent,
    ObjectiveAllocated,
    ObjectiveClassified,
    ObjectiveDefined,
    PortfolioDefined,
    ProductDefined,
    RecoveryPlanFiled,
    SquadCapacitySet,
    TargetChanged,
    TeamDefined,
    ValueObserved,
)
from okr_contracts.scores import NodeKind, NodeScored
from okr_drift.domain.delivery import LinkedChange, fold_item
from okr_drift.domain.facts import (
    CheckIn,
    CycleFacts,
    DeliveryLog,
    Entity,
    KeyResultFacts,
    ObjectiveFacts,
    PortfolioFacts,
    ProductFacts,
    ProgressLog,
    ProgressPoint,
    RecoveryPlan,
    TeamFacts,
)

ObjectiveChange = ObjectiveAllocated | AllocationRemoved | ObjectiveClassified
"""History events that change an objective's allocations or tags."""

RECENT_CHECKINS = 3
"""Check-ins kept per key result: "confidence falling" reads the last three."""

ENTITY_KINDS: dict[str, type[Entity]] = {
    "portfolio": PortfolioFacts,
    "product": ProductFacts,
    "team": TeamFacts,
    "cycle": CycleFacts,
    "objective": ObjectiveFacts,
    "key_result": KeyResultFacts,
    "progress": ProgressLog,
    "delivery": DeliveryLog,
}


@dataclass
class Touched:
    """What an input changed: entities to store, and the nodes whose rules to evaluate."""

    entities: set[tuple[str, str]] = field(default_factory=set)
    krs: set[str] = field(default_factory=set)
    objectives: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    squads: set[str] = field(default_factory=set)
    """Teams whose load against capacity to evaluate."""
    balances: set[str] = field(default_factory=set)
    """Cycles whose split against the intended balance to evaluate."""

    def entity(self, kind: str, entity_id: str) -> None:
        """Note a changed entity."""
        self.entities.add((kind, entity_id))


class PortfolioState:
    """Every fact drift holds about one portfolio."""

    def __init__(self, portfolio_id: str) -> None:
        self.portfolio_id = portfolio_id
        self.facts = PortfolioFacts(portfolio_id=portfolio_id)
        self.products: dict[str, ProductFacts] = {}
        self.teams: dict[str, TeamFacts] = {}
        self.cycles: dict[str, CycleFacts] = {}
        self.objectives: dict[str, ObjectiveFacts] = {}
        self.krs: dict[str, KeyResultFacts] = {}
        self.progress: dict[str, ProgressLog] = {}
        self.delivery: dict[str, DeliveryLog] = {}
        self.members: dict[str, set[str]] = {}
        """Key results by objective id."""
        self.focus: dict[str, set[str]] = {}
        """Objectives by focus group (team, else product)."""
        self.allocated: dict[str, set[str]] = {}
        """Objectives by squad they are allocated to."""
        self.allocated_by_cycle: dict[str, set[str]] = {}
        """Objectives with allocations, by cycle."""

    # --- persistence -----------------------------------------------------------------------------------------

    def _table(self, kind: str) -> dict[str, Any]:
        tables: dict[str, dict[str, Any]] = {
            "product": self.products,
            "team": self.teams,
            "cycle": self.cycles,
            "objective": self.objectives,
            "key_result": self.krs,
            "progress": self.progress,
            "delivery": self.delivery,
        }
        return tables[kind]

    def get(self, kind: str, entity_id: str) -> Entity | None:
        """An entity by kind and id."""
        if kind == "portfolio":
            return self.facts
        found: Entity | None = self._table(kind).get(entity_id)
        return found

    def put(self, kind: str, entity_id: str, entity: Entity) -> None:
        """Set an entity (used when loading from the store)."""
        if kind == "portfolio":
            assert isinstance(entity, PortfolioFacts)
            self.facts = entity
        else:
            self._table(kind)[entity_id] = entity
        self._index(entity)

    def _index(self, entity: Entity, before: Entity | None = None) -> None:
        """Keep the member and focus indexes in step with a (re)defined key result or objective."""
        if isinstance(before, KeyResultFacts):
            self.members.get(before.objective_id, set()).discard(before.kr_id)
        if isinstance(before, ObjectiveFacts):
            if before.focus_group:
                self.focus.get(before.focus_group, set()).discard(before.objective_id)
            for team_id in before.allocations:
                self.allocated.get(team_id, set()).discard(before.objective_id)
            self.allocated_by_cycle.get(before.cycle_id, set()).discard(before.objective_id)
        if isinstance(entity, KeyResultFacts):
            self.members.setdefault(entity.objective_id, set()).add(entity.kr_id)
        if isinstance(entity, ObjectiveFacts):
            if entity.focus_group:
                self.focus.setdefault(entity.focus_group, set()).add(entity.objective_id)
            for team_id in entity.allocations:
                self.allocated.setdefault(team_id, set()).add(entity.objective_id)
            if entity.allocations:
                self.allocated_by_cycle.setdefault(entity.cycle_id, set()).add(entity.objective_id)

    def entities(self) -> Iterator[tuple[str, str, Entity]]:
        """Every entity as (kind, id, entity)."""
        yield "portfolio", self.portfolio_id, self.facts
        for kind in ENTITY_KINDS:
            if kind != "portfolio":
                for entity_id, entity in self._table(kind).items():
                    yield kind, entity_id, entity

    # --- okr.kr-events.v1 ------------------------------------------------------------------------------------

    def apply_history(self, event: KrEvent, occurred_at: datetime) -> Touched | None:
        """Fold a history event; ``None`` if its aggregate version was applied before."""
        handler = _HISTORY.get(type(event))
        touched = Touched()
        if handler is None:  # weight and link changes: nothing drift reads, but the version moves on
            node = self.krs.get(event.aggregate_id) or self.objectives.get(event.aggregate_id)
            if node is None or event.aggregate_version <= node.version:
                return None
            node.version = event.aggregate_version
            touched.entity("key_result" if event.aggregate_id in self.krs else "objective", event.aggregate_id)
            return touched
        result: Touched | None = handler(self, event, occurred_at, touched)
        return result

    def _fresh(self, entity: Entity | None, event: KrEvent) -> bool:
        return entity is None or event.aggregate_version > entity.version

    def _portfolio(self, event: PortfolioDefined, _: datetime, touched: Touched) -> Touched | None:
        if not self._fresh(self.facts, event):
            return None
        self.facts = self.facts.model_copy(update={"lead": event.owner, "thresholds": event.drift, "version": event.aggregate_version})
        touched.entity("portfolio", self.portfolio_id)
        touched.krs.update(self.krs)
        touched.objectives.update(self.objectives)
        touched.groups.update(g for o in self.objectives.values() if (g := o.focus_group))
        return touched

    def _product(self, event: ProductDefined, _: datetime, touched: Touched) -> Touched | None:
        if not self._fresh(self.products.get(event.product_id), event):
            return None
        self.products[event.product_id] = ProductFacts(product_id=event.product_id, lead=event.lead, version=event.aggregate_version)
        touched.entity("product", event.product_id)
        return touched

    def _team(self, event: TeamDefined, _: datetime, touched: Touched) -> Touched | None:
        if not self._fresh(self.teams.get(event.team_id), event):
            return None
        before = self.teams.get(event.team_id)
        kept = {"capacity": before.capacity, "capacity_by_cycle": before.capacity_by_cycle} if before else {}
        self.teams[event.team_id] = TeamFacts(
            team_id=event.team_id, lead=event.lead, product_id=event.product_id, name=event.name, version=event.aggregate_version, **kept
        )
        touched.entity("team", event.team_id)
        touched.groups.add(event.team_id)
        touched.squads.add(event.team_id)
        return touched

    def _capacity_changed(self, occurred_at: datetime) -> None:
        """Note a change of the capacity plan (the latest one counts: capacity alerts wait for the plan to settle)."""
        last = self.facts.capacity_changed_at
        self.facts.capacity_changed_at = occurred_at if last is None else max(last, occurred_at)

    def _capacity(self, event: SquadCapacitySet, occurred_at: datetime, touched: Touched) -> Touched | None:
        team = self.teams.get(event.team_id)
        if team is None or not self._fresh(team, event):
            return None
        if event.cycle_id is None:
            team.capacity = event.sprints
        else:
            team.capacity_by_cycle[event.cycle_id] = event.sprints
        team.version = event.aggregate_version
        self._capacity_changed(occurred_at)
        touched.entity("portfolio", self.portfolio_id)
        touched.entity("team", event.team_id)
        touched.squads.add(event.team_id)
        return touched

    def _balance(self, event: BalanceIntended, occurred_at: datetime, touched: Touched) -> Touched | None:
        if not self._fresh(self.facts, event):
            return None
        self.facts.balance, self.facts.balance_margin, self.facts.version = event.intended, event.margin, event.aggregate_version
        self._capacity_changed(occurred_at)
        touched.entity("portfolio", self.portfolio_id)
        touched.balances.update(self.allocated_by_cycle)
        return touched

    def _objective_change(self, event: ObjectiveChange, occurred_at: datetime, touched: Touched) -> Touched | None:
        """An allocation made, changed or removed, or the objective's tags set."""
        before = self.objectives.get(event.objective_id)
        if before is None or not self._fresh(before, event):
            return None
        after = before.model_copy(deep=True)
        match event:
            case ObjectiveAllocated():
                after.allocations[event.team_id] = event.sprints
            case AllocationRemoved():
                after.allocations.pop(event.team_id, None)
            case ObjectiveClassified():
                after.priority, after.aarrr_stage, after.horizon = event.priority, event.aarrr_stage, event.horizon
        after.version = event.aggregate_version
        self.objectives[event.objective_id] = after
        self._index(after, before)
        self._capacity_changed(occurred_at)
        touched.entity("portfolio", self.portfolio_id)
        touched.entity("objective", event.objective_id)
        if not isinstance(event, ObjectiveClassified):
            touched.squads.add(event.team_id)
        touched.balances.add(after.cycle_id)
        return touched

    def _cycle(self, event: CycleStarted, _: datetime, touched: Touched) -> Touched | None:
        if not self._fresh(self.cycles.get(event.cycle_id), event):
            return None
        self.cycles[event.cycle_id] = CycleFacts(
            cycle_id=event.cycle_id, starts_on=event.starts_on, ends_on=event.ends_on, version=event.aggregate_version
        )
        touched.entity("cycle", event.cycle_id)
        return self._cycle_members(event.cycle_id, touched)

    def _cycle_scored(self, event: CycleScored, _: datetime, touched: Touched) -> Touched | None:
        cycle = self.cycles.get(event.cycle_id)
        if cycle is None or not self._fresh(cycle, event):
            return None
        cycle.scored = True
        cycle.version = event.aggregate_version
        touched.entity("cycle", event.cycle_id)
        self._cycle_members(event.cycle_id, touched)
        for kr_id in event.carried_over:  # their history continues in the next cycle (as in checkins and rollup)
            kr = self.krs.get(kr_id)
            if kr is not None and event.next_cycle_id:
                kr.cycle_id = event.next_cycle_id
                touched.entity("key_result", kr_id)
        return touched

    def _cycle_members(self, cycle_id: str, touched: Touched) -> Touched:
        touched.krs.update(k for k, kr in self.krs.items() if kr.cycle_id == cycle_id)
        members = [o for o in self.objectives.values() if o.cycle_id == cycle_id]
        touched.objectives.update(o.objective_id for o in members)
        touched.groups.update(g for o in members if (g := o.focus_group))
        touched.squads.update(t for o in members for t in o.allocations)
        touched.squads.update(t for t, team in self.teams.items() if cycle_id in team.capacity_by_cycle)
        touched.balances.add(cycle_id)
        return touched

    def _objective(self, event: ObjectiveDefined, _: datetime, touched: Touched) -> Touched | None:
        before = self.objectives.get(event.objective_id)
        if not self._fresh(before, event):
            return None
        kept = {name: getattr(before, name) for name in ("allocations", "priority", "aarrr_stage", "horizon")} if before else {}
        after = ObjectiveFacts(
            objective_id=event.objective_id,
            cycle_id=event.cycle_id,
            tier=event.tier,
            title=event.title,
            owner=event.owner,
            product_id=event.product_id,
            team_id=event.team_id,
            version=event.aggregate_version,
            **kept,
        )
        self.objectives[event.objective_id] = after
        self._index(after, before)
        touched.entity("objective", event.objective_id)
        touched.objectives.add(event.objective_id)
        touched.groups.update(g for g in (before.focus_group if before else None, after.focus_group) if g)
        touched.krs.update(self.members.get(event.objective_id, ()))
        if after.allocations:
            touched.squads.update(after.allocations)
            touched.balances.update(c for c in (before.cycle_id if before else None, after.cycle_id) if c)
        return touched

    def _key_result(self, event: KeyResultDefined, occurred_at: datetime, touched: Touched) -> Touched | None:
        before = self.krs.get(event.kr_id)
        if not self._fresh(before, event):
            return None
        kept = {"retired", "recent_checkins", "low_since", "last_value_at", "last_escalated_at", "plan"}
        history = {name: getattr(before, name) for name in kept} if before else {}
        self.krs[event.kr_id] = KeyResultFacts(
            kr_id=event.kr_id,
            objective_id=event.objective_id,
            cycle_id=event.cycle_id,
            title=event.title,
            kind=event.kind,
            baseline=event.baseline,
            target=event.target,
            has_direction=event.direction is not None,
            owner=event.owner,
            defined_at=before.defined_at if before else occurred_at,
            version=event.aggregate_version,
            **history,
        )
        self._index(self.krs[event.kr_id], before)
        touched.entity("key_result", event.kr_id)
        touched.krs.add(event.kr_id)
        touched.objectives.update(o for o in (before.objective_id if before else None, event.objective_id) if o)
        return touched

    def _kr_change(self, event: Any, occurred_at: datetime, touched: Touched) -> Touched | None:
        kr = self.krs.get(event.kr_id)
        if kr is None or not self._fresh(kr, event):
            return None
        _KR_CHANGES[type(event)](kr, event, occurred_at)
        if isinstance(event, CheckInRecorded) and kr.recent_checkins[-1].version == event.aggregate_version:  # the latest one
            low = event.confidence < self.facts.thresholds.off_track_confidence
            kr.low_since = (kr.low_since or occurred_at) if low else None
        kr.version = event.aggregate_version
        touched.entity("key_result", kr.kr_id)
        touched.krs.add(kr.kr_id)
        if isinstance(event, KeyResultRetired):
            touched.objectives.add(kr.objective_id)
        return touched

    # --- okr.scores.v1 ---------------------------------------------------------------------------------------

    def apply_score(self, score: NodeScored, window: timedelta) -> Touched | None:
        """Fold a key result's score record: a new point when its progress changed; ``None`` if not newer."""
        if score.node_kind != NodeKind.KEY_RESULT:
            return None
        log = self.progress.setdefault(score.node_id, ProgressLog(kr_id=score.node_id))
        same_moment = score.as_of == log.last_as_of
        if log.last_as_of is not None and (score.as_of < log.last_as_of or (same_moment and score.source_event_id in log.last_sources)):
            return None
        log.last_sources = [*log.last_sources, score.source_event_id] if same_moment else [score.source_event_id]
        log.last_as_of = score.as_of
        if log.current is None or log.current.progress != score.progress:
            log.points.append(ProgressPoint(at=score.as_of, progress=score.progress))
            _prune_points(log, score.as_of - window)
        touched = Touched(krs={score.node_id})
        touched.entity("progress", score.node_id)
        return touched

    # --- okr.delivery.v1 -------------------------------------------------------------------------------------

    def apply_delivery(self, kr_id: str, item: str, change: LinkedChange, window: timedelta) -> Touched | None:
        """Fold a linked item's change (work item or chat signal); ``None`` if older than the item's last change, or the same."""
        log = self.delivery.setdefault(kr_id, DeliveryLog(kr_id=kr_id))
        if not fold_item(log, item, change, window):
            return None
        touched = Touched(krs={kr_id})
        touched.entity("delivery", kr_id)
        return touched


def _checkin(kr: KeyResultFacts, event: CheckInRecorded, occurred_at: datetime) -> None:
    """Keep the latest check-ins by when they happened: one imported with a past `occurred_at` takes its place in time."""
    checkins = [*kr.recent_checkins, CheckIn(at=occurred_at, confidence=event.confidence, version=event.aggregate_version)]
    kr.recent_checkins = sorted(checkins, key=lambda checkin: checkin.at)[-RECENT_CHECKINS:]


def _value(kr: KeyResultFacts, event: ValueObserved, _: datetime) -> None:
    kr.last_value_at = max(filter(None, (kr.last_value_at, event.observed_at)))


def _target(kr: KeyResultFacts, event: TargetChanged, _: datetime) -> None:
    kr.target = event.new_target


def _retired(kr: KeyResultFacts, _: KeyResultRetired, __: datetime) -> None:
    kr.retired = True


def _escalated(kr: KeyResultFacts, _: KeyResultEscalated, occurred_at: datetime) -> None:
    kr.last_escalated_at = occurred_at


def _plan(kr: KeyResultFacts, event: RecoveryPlanFiled, occurred_at: datetime) -> None:
    kr.plan = RecoveryPlan(at=occurred_at, option=event.option, owner=event.owner, decision_needed=event.decision_needed)


_KR_CHANGES: dict[type[KrEvent], Any] = {
    CheckInRecorded: _checkin,
    ValueObserved: _value,
    TargetChanged: _target,
    KeyResultRetired: _retired,
    KeyResultEscalated: _escalated,
    RecoveryPlanFiled: _plan,
}
_HISTORY: dict[type[KrEvent], Any] = {
    PortfolioDefined: PortfolioState._portfolio,
    ProductDefined: PortfolioState._product,
    TeamDefined: PortfolioState._team,
    CycleStarted: PortfolioState._cycle,
    CycleScored: PortfolioState._cycle_scored,
    ObjectiveDefined: PortfolioState._objective,
    KeyResultDefined: PortfolioState._key_result,
    SquadCapacitySet: PortfolioState._capacity,
    BalanceIntended: PortfolioState._balance,
    ObjectiveAllocated: PortfolioState._objective_change,
    AllocationRemoved: PortfolioState._objective_change,
    ObjectiveClassified: PortfolioState._objective_change,
    **dict.fromkeys(_KR_CHANGES, PortfolioState._kr_change),
}


def _prune_points(log: ProgressLog, horizon: datetime) -> None:
    """Drop points older than the horizon, keeping the last one before it (the progress at the horizon)."""
    keep_from = 0
    for index, point in enumerate(log.points):
        if point.at <= horizon:
            keep_from = index
    if keep_from:
        del log.points[:keep_from]

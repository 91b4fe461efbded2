"""The state of one portfolio, folded from its history; every change goes through `evolve`.

The portfolio is the consistency boundary: the hierarchy's invariants (tiers,
no cycles) span its nodes, its history is one totally ordered, hash-chained
stream, and it is the Kafka key. Every entity counts its own version (the
``aggregate_version`` of the events naming it) and remembers the positions of
the events that touched it, which is the index behind a key result's history.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from okr_contracts.kr_events import (
    AarrrStage,
    AllocationRemoved,
    Balance,
    BalanceIntended,
    CheckInRecorded,
    CycleScored,
    CycleStarted,
    InvestmentHorizon,
    InvestmentPriority,
    KeyResultDefined,
    KeyResultEscalated,
    KeyResultRetired,
    KrEvent,
    Link,
    LinkChanged,
    ObjectiveAllocated,
    ObjectiveClassified,
    ObjectiveDefined,
    PortfolioDefined,
    ProductDefined,
    RecoveryPlanFiled,
    RollupMethod,
    SquadCapacitySet,
    TargetChanged,
    TeamDefined,
    ValueObserved,
    WeightChanged,
)

IDEMPOTENCY_WINDOW = timedelta(hours=24)


@dataclass
class Entity:
    """What every entity of a portfolio has: its id, its version, and the positions that touched it."""

    id: str
    version: int = 0
    positions: list[int] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)

    def touch(self, position: int, recorded_at: str, *, own: bool = True) -> None:
        """Note an event at `position`; `own` when the event names this entity (bumps its version)."""
        if own:
            self.version += 1
        self.positions.append(position)
        self.recorded.append(recorded_at)


@dataclass
class Product(Entity):
    name: str = ""
    lead: str = ""


@dataclass
class Team(Entity):
    name: str = ""
    product_id: str | None = None
    lead: str = ""
    capacity: float | None = None
    """Sprints per cycle by default; none until set (undeclared)."""
    capacities: dict[str, float] = field(default_factory=dict)
    """Sprints in one cycle, overriding the default, by cycle."""


@dataclass
class Cycle(Entity):
    name: str = ""
    starts_on: date = date.min
    ends_on: date = date.min
    scored_at: datetime | None = None
    next_cycle_id: str | None = None

    @property
    def closed(self) -> bool:
        """Whether the cycle was scored."""
        return self.scored_at is not None


@dataclass
class Objective(Entity):
    cycle_id: str = ""
    tier: int = 1
    title: str = ""
    owner: str = ""
    product_id: str | None = None
    team_id: str | None = None
    tags: tuple[str, ...] = ()
    link: Link | None = None
    rollup_method: RollupMethod | None = None
    allocations: dict[str, float] = field(default_factory=dict)
    """Sprints of each squad this objective takes in its cycle, by team."""
    priority: InvestmentPriority | None = None
    aarrr_stage: AarrrStage | None = None
    horizon: InvestmentHorizon | None = None

    @property
    def classification(self) -> tuple[InvestmentPriority | None, AarrrStage | None, InvestmentHorizon | None]:
        """Its three investment tags (none: not classified on that axis)."""
        return self.priority, self.aarrr_stage, self.horizon


@dataclass
class KeyResult(Entity):
    definition: KeyResultDefined | None = None
    cycle_id: str = ""
    target: float | None = None
    weight: float = 1.0
    link: Link | None = None
    retired: KeyResultRetired | None = None
    retired_by_cycle: str | None = None
    last_check_in: CheckInRecorded | None = None
    last_check_in_at: str | None = None
    value: float | None = None
    value_observed_at: datetime | None = None
    escalation: KeyResultEscalated | None = None
    recovery_plan: RecoveryPlanFiled | None = None
    target_changes: int = 0
    sample_ids: set[str] = field(default_factory=set)

    @property
    def spec(self) -> KeyResultDefined:
        """The definition (every key result in a state has one)."""
        assert self.definition is not None
        return self.definition

    @property
    def tier(self) -> int:
        return self.spec.tier

    @property
    def rollup_method(self) -> RollupMethod | None:
        """The method overriding the portfolio's for rolling up its contributors, if any."""
        return self.spec.rollup_method

    @property
    def is_retired(self) -> bool:
        return self.retired is not None or self.retired_by_cycle is not None


@dataclass(frozen=True)
class RecordedEvent:
    """One event a request appended: enough to answer a retry of that request."""

    position: int
    event_id: str
    type: str
    aggregate_id: str
    aggregate_version: int

    @classmethod
    def of(cls, record: dict[str, Any]) -> RecordedEvent:
        """The summary of a stored record."""
        data = record["data"]
        return cls(record["position"], record["event_id"], record["type"], data["aggregate_id"], data["aggregate_version"])


@dataclass
class RequestMemo:
    """What an idempotent request appended, so a retry returns the first result."""

    fingerprint: str
    recorded_at: datetime
    events: list[RecordedEvent] = field(default_factory=list)


@dataclass
class PortfolioState:
    """Everything the portfolio's rules need, folded from its history."""

    portfolio: Entity
    settings: PortfolioDefined
    products: dict[str, Product] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    cycles: dict[str, Cycle] = field(default_factory=dict)
    objectives: dict[str, Objective] = field(default_factory=dict)
    key_results: dict[str, KeyResult] = field(default_factory=dict)
    balance: Balance = field(default_factory=Balance)
    """The intended split of allocated capacity over primary, secondary and exploration."""
    margin: float = 0.1
    """How far an actual share may stray from its intended one and still be in balance."""
    requests: OrderedDict[str, RequestMemo] = field(default_factory=OrderedDict)

    @property
    def portfolio_id(self) -> str:
        return self.portfolio.id

    def entity(self, entity_id: str) -> Entity | None:
        """Any entity by id (ids are unique across a portfolio)."""
        if entity_id == self.portfolio.id:
            return self.portfolio
        for table in (self.products, self.teams, self.cycles, self.objectives, self.key_results):
            if entity_id in table:
                found: Entity = table[entity_id]
                return found
        return None

    def node(self, node_id: str) -> Objective | KeyResult | None:
        """An objective or key result: the nodes of the hierarchy."""
        return self.objectives.get(node_id) or self.key_results.get(node_id)

    def parents(self, node_id: str) -> list[str]:
        """Nodes whose score `node_id` feeds: its link target, and a key result's objective."""
        node = self.node(node_id)
        if node is None:
            return []
        found = [node.link.parent_id] if node.link else []
        if isinstance(node, KeyResult):
            found.append(node.spec.objective_id)
        return found

    def bound_key_results(self, metric: str) -> list[KeyResult]:
        """Active key results whose values come from samples of `metric`."""
        return [kr for kr in self.key_results.values() if kr.spec.kpi_binding == metric and not kr.is_retired]


def new_state(first: PortfolioDefined) -> PortfolioState:
    """The state right after a portfolio's first event."""
    return PortfolioState(portfolio=Entity(first.portfolio_id), settings=first)


def evolve(state: PortfolioState, event: KrEvent, position: int, recorded_at: str) -> None:
    """Apply one recorded event to the state."""
    match event:
        case PortfolioDefined():
            state.settings = event
        case ProductDefined():
            state.products[event.product_id] = Product(event.product_id, name=event.name, lead=event.lead)
        case TeamDefined():
            state.teams[event.team_id] = Team(event.team_id, name=event.name, product_id=event.product_id, lead=event.lead)
        case CycleStarted():
            state.cycles[event.cycle_id] = Cycle(event.cycle_id, name=event.name, starts_on=event.starts_on, ends_on=event.ends_on)
        case ObjectiveDefined():
            state.objectives[event.objective_id] = _objective(event)
        case KeyResultDefined():
            state.key_results[event.kr_id] = KeyResult(
                event.kr_id, definition=event, cycle_id=event.cycle_id, target=event.target, weight=event.weight, link=event.contributes_to
            )
        case CycleScored():
            _close_cycle(state, event, position, recorded_at)
        case SquadCapacitySet() | ObjectiveAllocated() | AllocationRemoved() | ObjectiveClassified() | BalanceIntended():
            _evolve_capacity(state, event)
        case _:
            _evolve_node(state, event)
    entity = state.entity(event.aggregate_id)
    if entity is not None:
        entity.touch(position, recorded_at)


def _objective(event: ObjectiveDefined) -> Objective:
    return Objective(
        event.objective_id,
        cycle_id=event.cycle_id,
        tier=event.tier,
        title=event.title,
        owner=event.owner,
        product_id=event.product_id,
        team_id=event.team_id,
        tags=event.tags,
        link=event.contributes_to,
        rollup_method=event.rollup_method,
    )


def _evolve_node(state: PortfolioState, event: KrEvent) -> None:
    match event:
        case CheckInRecorded():
            kr = state.key_results[event.kr_id]
            kr.last_check_in = event
        case ValueObserved():
            kr = state.key_results[event.kr_id]
            if kr.value_observed_at is None or event.observed_at >= kr.value_observed_at:
                kr.value, kr.value_observed_at = event.value, event.observed_at
        case TargetChanged():
            kr = state.key_results[event.kr_id]
            kr.target, kr.target_changes = event.new_target, kr.target_changes + 1
        case WeightChanged():
            _change_weight(state, event)
        case LinkChanged():
            node = state.node(event.node_id)
            assert node is not None
            node.link = event.new_link
        case KeyResultRetired():
            state.key_results[event.kr_id].retired = event
        case KeyResultEscalated():
            state.key_results[event.kr_id].escalation = event
        case RecoveryPlanFiled():
            state.key_results[event.kr_id].recovery_plan = event


def _evolve_capacity(state: PortfolioState, event: KrEvent) -> None:
    match event:
        case SquadCapacitySet(cycle_id=None):
            state.teams[event.team_id].capacity = event.sprints
        case SquadCapacitySet(cycle_id=str(cycle_id)):
            state.teams[event.team_id].capacities[cycle_id] = event.sprints
        case ObjectiveAllocated():
            state.objectives[event.objective_id].allocations[event.team_id] = event.sprints
        case AllocationRemoved():
            del state.objectives[event.objective_id].allocations[event.team_id]
        case ObjectiveClassified():
            objective = state.objectives[event.objective_id]
            objective.priority, objective.aarrr_stage, objective.horizon = event.priority, event.aarrr_stage, event.horizon
        case BalanceIntended():
            state.balance, state.margin = event.intended, event.margin


def _change_weight(state: PortfolioState, event: WeightChanged) -> None:
    node = state.node(event.node_id)
    assert node is not None
    if node.link is not None and node.link.parent_id == event.parent_id:
        node.link = Link(parent_id=event.parent_id, weight=event.new_weight)
    elif isinstance(node, KeyResult):
        node.weight = event.new_weight


def _close_cycle(state: PortfolioState, event: CycleScored, position: int, recorded_at: str) -> None:
    cycle = state.cycles[event.cycle_id]
    cycle.scored_at, cycle.next_cycle_id = event.scored_at, event.next_cycle_id
    for kr_id in event.retired:
        kr = state.key_results[kr_id]
        kr.retired_by_cycle = event.cycle_id
        kr.touch(position, recorded_at, own=False)
    for kr_id in event.carried_over:
        kr = state.key_results[kr_id]
        kr.cycle_id = event.next_cycle_id or kr.cycle_id
        kr.touch(position, recorded_at, own=False)


def remember_request(state: PortfolioState, key: str, fingerprint: str, recorded_at: datetime, event: RecordedEvent) -> None:
    """Note that an idempotent request appended `event`; forget requests older than the window."""
    memo = state.requests.get(key)
    if memo is None:
        memo = state.requests[key] = RequestMemo(fingerprint, recorded_at)
    memo.events.append(event)
    while state.requests:
        oldest_key, oldest = next(iter(state.requests.items()))
        if recorded_at - oldest.recorded_at <= IDEMPOTENCY_WINDOW:
            break
        del state.requests[oldest_key]

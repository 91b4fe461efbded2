"""Commands on squads' capacity, objectives' allocations and tags, and the portfolio's intended balance.

An allocation is recorded even when it takes a squad beyond its capacity: the
over-commitment is a fact to show (the rollup) and to alert on (drift), not a
request to refuse. Each command refuses a change that changes nothing, so the
history holds only what moved.
"""

from __future__ import annotations

from okr_checkins.domain.access import Action, authorise
from okr_checkins.domain.commands import known
from okr_checkins.domain.errors import CycleClosed, InvalidCommand, UnknownId
from okr_checkins.domain.portfolio import Context, Portfolio
from okr_checkins.domain.state import Objective, PortfolioState, Team
from okr_contracts.kr_events import (
    AarrrStage,
    AllocationRemoved,
    Balance,
    BalanceIntended,
    InvestmentHorizon,
    InvestmentPriority,
    ObjectiveAllocated,
    ObjectiveClassified,
    SquadCapacitySet,
)


def set_capacity(portfolio: Portfolio, ctx: Context, team_id: str, *, sprints: float, cycle_id: str | None, reason: str = "") -> None:
    """A squad's capacity in sprints: its default per cycle, or (with `cycle_id`) for one open cycle."""
    state = portfolio.state
    team = known(state.teams, team_id, "team")
    if cycle_id is not None:
        _open_cycle(state, cycle_id, f"{team_id}'s capacity in it can no longer change")
    authorise(state, ctx.actor, Action.SET_CAPACITY, product_id=team.product_id)
    portfolio.expect(ctx, team)
    if _capacity(team, cycle_id) == sprints:
        scope = f"in cycle {cycle_id}" if cycle_id is not None else "per cycle by default"
        raise InvalidCommand(f"the capacity of {team_id} {scope} is already {sprints:g} sprints")
    fields = {"team_id": team_id, "cycle_id": cycle_id, "sprints": sprints, "reason": reason}
    portfolio.emit(ctx, SquadCapacitySet, team, aggregate_id=team_id, **fields)


def allocate(portfolio: Portfolio, ctx: Context, objective_id: str, team_id: str, *, sprints: float, reason: str = "") -> None:
    """Allocate an objective to a squad for `sprints` of its cycle, or change that allocation (never refused for exceeding capacity)."""
    objective = _objective_for_change(portfolio, ctx, objective_id, team_id, Action.ALLOCATE)
    if sprints <= 0:
        raise InvalidCommand(f"an allocation takes more than 0 sprints; to take {objective_id}'s allocation to {team_id} back, remove it")
    old = objective.allocations.get(team_id)
    if old == sprints:
        raise InvalidCommand(f"{objective_id} already takes {sprints:g} sprints of {team_id}")
    fields = {"objective_id": objective_id, "team_id": team_id, "sprints": sprints, "old_sprints": old, "reason": reason}
    portfolio.emit(ctx, ObjectiveAllocated, objective, aggregate_id=objective_id, **fields)


def remove_allocation(portfolio: Portfolio, ctx: Context, objective_id: str, team_id: str, *, reason: str) -> None:
    """Take an objective's allocation to a squad back; its sprints are free again."""
    objective = _objective_for_change(portfolio, ctx, objective_id, team_id, Action.REMOVE_ALLOCATION)
    old = objective.allocations.get(team_id)
    if old is None:
        raise UnknownId(f"{objective_id} has no allocation to {team_id} to remove", id=team_id, kind="allocation")
    fields = {"objective_id": objective_id, "team_id": team_id, "old_sprints": old, "reason": reason}
    portfolio.emit(ctx, AllocationRemoved, objective, aggregate_id=objective_id, **fields)


def classify_objective(
    portfolio: Portfolio,
    ctx: Context,
    objective_id: str,
    *,
    priority: InvestmentPriority | None,
    aarrr_stage: AarrrStage | None,
    horizon: InvestmentHorizon | None,
) -> None:
    """State all three investment tags of an objective (none: not classified on that axis)."""
    objective = _objective_for_change(portfolio, ctx, objective_id, None, Action.CLASSIFY_OBJECTIVE)
    if objective.classification == (priority, aarrr_stage, horizon):
        raise InvalidCommand(f"{objective_id} is already classified so: {_tags(priority, aarrr_stage, horizon)}")
    fields = {"objective_id": objective_id, "priority": priority, "aarrr_stage": aarrr_stage, "horizon": horizon}
    portfolio.emit(ctx, ObjectiveClassified, objective, aggregate_id=objective_id, **fields)


def intend_balance(portfolio: Portfolio, ctx: Context, *, intended: Balance, margin: float, reason: str = "") -> None:
    """Set the portfolio's intended split of allocated capacity and the margin drift allows around it."""
    state = portfolio.state
    authorise(state, ctx.actor, Action.INTEND_BALANCE)
    portfolio.expect(ctx, state.portfolio)
    if (intended, margin) == (state.balance, state.margin):
        raise InvalidCommand(f"the intended balance is already {_split(intended)} with a margin of {margin:g}")
    fields = {"intended": intended, "margin": margin, "reason": reason}
    portfolio.emit(ctx, BalanceIntended, state.portfolio, aggregate_id=state.portfolio_id, **fields)


def _objective_for_change(portfolio: Portfolio, ctx: Context, objective_id: str, team_id: str | None, action: Action) -> Objective:
    """An objective of an open cycle (and, when named, a known squad), that the actor may change at the version it expects."""
    state = portfolio.state
    objective = known(state.objectives, objective_id, "objective")
    if team_id is not None:
        known(state.teams, team_id, "team")
    _open_cycle(state, objective.cycle_id, f"the allocations and tags of its objective {objective_id} can no longer change")
    authorise(state, ctx.actor, action, node_id=objective_id)
    portfolio.expect(ctx, objective)
    return objective


def _open_cycle(state: PortfolioState, cycle_id: str, consequence: str) -> None:
    cycle = known(state.cycles, cycle_id, "cycle")
    if cycle.closed:
        raise CycleClosed(f"cycle {cycle_id} was scored at {cycle.scored_at}; {consequence}")


def _capacity(team: Team, cycle_id: str | None) -> float | None:
    return team.capacity if cycle_id is None else team.capacities.get(cycle_id)


def _tags(priority: InvestmentPriority | None, aarrr_stage: AarrrStage | None, horizon: InvestmentHorizon | None) -> str:
    named = {"priority": priority, "aarrr_stage": aarrr_stage, "horizon": horizon}
    return ", ".join(f"{axis} {value or 'none'}" for axis, value in named.items())


def _split(balance: Balance) -> str:
    return f"{balance.primary:g}/{balance.secondary:g}/{balance.exploration:g} (primary/secondary/exploration)"

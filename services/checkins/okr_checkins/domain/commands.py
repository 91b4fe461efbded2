"""Every command on a portfolio: authorise, check the rules against the state, then record.

Commands take the aggregate, a `Context` and plain values, and raise a
`DomainError` before recording anything when a rule is broken.
"""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar

from okr_checkins.domain.access import Action, authorise
from okr_checkins.domain.errors import AlreadyDefined, BaselineEqualsTarget, CycleClosed, InvalidCommand, RetiredKeyResult, UnknownId
from okr_checkins.domain.hierarchy import check_link
from okr_checkins.domain.methods import check_contribution, check_override, check_settings
from okr_checkins.domain.portfolio import Context, Portfolio
from okr_checkins.domain.state import Cycle, KeyResult, PortfolioState
from okr_contracts.kr_events import (
    CycleStarted,
    KeyResultDefined,
    KeyResultKind,
    Link,
    ObjectiveDefined,
    PortfolioDefined,
    ProductDefined,
    RollupMethod,
    TeamDefined,
)


def redefine_portfolio(portfolio: Portfolio, ctx: Context, settings: dict[str, Any]) -> None:
    """Change the portfolio's name, lead, rollup method or drift thresholds."""
    state = portfolio.state
    authorise(state, ctx.actor, Action.REDEFINE_PORTFOLIO)
    portfolio.expect(ctx, state.portfolio)
    check_settings(state, RollupMethod(settings["rollup_method"]), bool(settings.get("allow_mixed_methods", False)))
    portfolio.emit(ctx, PortfolioDefined, state.portfolio, aggregate_id=state.portfolio_id, **settings)


def define_product(portfolio: Portfolio, ctx: Context, *, product_id: str, name: str, lead: str) -> None:
    """Add a product line."""
    state = portfolio.state
    authorise(state, ctx.actor, Action.DEFINE_PRODUCT)
    _new_id(state, product_id)
    portfolio.emit(ctx, ProductDefined, None, aggregate_id=product_id, product_id=product_id, name=name, lead=lead)


def define_team(portfolio: Portfolio, ctx: Context, *, team_id: str, name: str, lead: str, product_id: str | None) -> None:
    """Add a team or squad, optionally working on one product."""
    state = portfolio.state
    if product_id is not None:
        known(state.products, product_id, "product")
    authorise(state, ctx.actor, Action.DEFINE_TEAM, product_id=product_id)
    _new_id(state, team_id)
    portfolio.emit(ctx, TeamDefined, None, aggregate_id=team_id, team_id=team_id, name=name, lead=lead, product_id=product_id)


def start_cycle(portfolio: Portfolio, ctx: Context, *, cycle_id: str, name: str, cadence: str, starts_on: date, ends_on: date) -> None:
    """Open a scoring cycle."""
    state = portfolio.state
    authorise(state, ctx.actor, Action.START_CYCLE)
    _new_id(state, cycle_id)
    if ends_on < starts_on:
        raise InvalidCommand(f"cycle {cycle_id} ends on {ends_on}, before it starts on {starts_on}")
    fields = {"cycle_id": cycle_id, "name": name, "cadence": cadence, "starts_on": starts_on, "ends_on": ends_on}
    portfolio.emit(ctx, CycleStarted, None, aggregate_id=cycle_id, **fields)


def define_objective(portfolio: Portfolio, ctx: Context, fields: dict[str, Any]) -> None:
    """Add an objective at tier 1 (portfolio), 2 (product) or 3 (initiative or team)."""
    state = portfolio.state
    objective_id, tier, product_id = fields["objective_id"], fields["tier"], fields.get("product_id")
    _open_cycle(state, fields["cycle_id"])
    if tier == 1 and product_id is not None:
        raise InvalidCommand("a tier-1 objective belongs to the portfolio, not to a product; leave product_id out")
    if tier > 1 and product_id is None:
        raise InvalidCommand(f"a tier-{tier} objective needs the product_id of its product line")
    if product_id is not None:
        known(state.products, product_id, "product")
    if fields.get("team_id") is not None:
        known(state.teams, fields["team_id"], "team")
    authorise(state, ctx.actor, Action.DEFINE_OBJECTIVE, product_id=product_id)
    _new_id(state, objective_id)
    link: Link | None = fields.get("contributes_to")
    if link is not None:
        check_link(state, objective_id, tier, link)
        check_contribution(state, objective_id, None, link)
    check_override(state, objective_id, fields.get("rollup_method"))
    portfolio.emit(ctx, ObjectiveDefined, None, aggregate_id=objective_id, **fields)


def define_key_result(portfolio: Portfolio, ctx: Context, fields: dict[str, Any]) -> None:
    """Add a key result under an objective; its tier and cycle are its objective's."""
    state = portfolio.state
    kr_id = fields["kr_id"]
    objective = known(state.objectives, fields["objective_id"], "objective")
    _open_cycle(state, objective.cycle_id)
    authorise(state, ctx.actor, Action.DEFINE_KEY_RESULT, node_id=objective.id)
    _new_id(state, kr_id)
    _check_measure(fields)
    link: Link | None = fields.get("contributes_to")
    if link is not None:
        check_link(state, kr_id, objective.tier, link)
        check_contribution(state, kr_id, fields.get("unit", ""), link)
    check_override(state, kr_id, fields.get("rollup_method"))
    fields = {**fields, "tier": objective.tier, "cycle_id": objective.cycle_id}
    portfolio.emit(ctx, KeyResultDefined, None, aggregate_id=kr_id, **fields)


def _check_measure(fields: dict[str, Any]) -> None:
    kind, baseline, target = KeyResultKind(fields["kind"]), fields.get("baseline"), fields.get("target")
    if kind is KeyResultKind.METRIC and baseline is not None and target is not None and baseline == target:
        raise BaselineEqualsTarget(f"baseline and target are both {target}: a metric key result must move from one to the other")
    if kind is KeyResultKind.THRESHOLD and (target is None or fields.get("direction") is None):
        raise InvalidCommand("a threshold key result needs a target and a direction (at_least or at_most)")
    if kind is not KeyResultKind.THRESHOLD and fields.get("direction") is not None:
        raise InvalidCommand("only threshold key results have a direction")
    if kind is KeyResultKind.DERIVED and (baseline is not None or target is not None or fields.get("kpi_binding")):
        raise InvalidCommand("a derived key result takes its progress from its contributors: no baseline, target or KPI binding")


def active_key_result(state: PortfolioState, kr_id: str) -> KeyResult:
    """A key result that exists and is not retired."""
    kr = known(state.key_results, kr_id, "key result")
    if kr.retired is not None:
        raise RetiredKeyResult(f"key result {kr_id} was retired ({kr.retired.reason}); it takes no more changes", kr_id=kr_id)
    if kr.retired_by_cycle is not None:
        raise RetiredKeyResult(f"key result {kr_id} was retired when cycle {kr.retired_by_cycle} closed", kr_id=kr_id)
    return kr


def _open_cycle(state: PortfolioState, cycle_id: str) -> Cycle:
    cycle = known(state.cycles, cycle_id, "cycle")
    if cycle.closed:
        raise CycleClosed(f"cycle {cycle_id} was scored at {cycle.scored_at}; it takes no new objectives or key results")
    return cycle


T = TypeVar("T")


def known(table: dict[str, T], entity_id: str, kind: str) -> T:
    if entity_id not in table:
        raise UnknownId(f"no {kind} {entity_id!r} in this portfolio", id=entity_id, kind=kind)
    return table[entity_id]


def _new_id(state: PortfolioState, entity_id: str) -> None:
    if state.entity(entity_id) is not None:
        raise AlreadyDefined(f"{entity_id!r} is already used in this portfolio; ids are unique across a portfolio", id=entity_id)

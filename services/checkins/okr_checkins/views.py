"""Read models of a portfolio's state, as the HTTP API shows them."""

from __future__ import annotations

from typing import Any

from okr_checkins.domain.state import Cycle, KeyResult, Objective, PortfolioState, Team


def portfolio_view(state: PortfolioState) -> dict[str, Any]:
    """The portfolio's settings and its whole current hierarchy."""
    return {
        "portfolio_id": state.portfolio_id,
        "version": state.portfolio.version,
        "settings": state.settings.model_dump(mode="json", exclude={"portfolio_id", "aggregate_id", "aggregate_version", "actor"}),
        "products": [{"product_id": p.id, "name": p.name, "lead": p.lead, "version": p.version} for p in state.products.values()],
        "teams": [team_view(t) for t in state.teams.values()],
        "balance": {**state.balance.model_dump(mode="json"), "margin": state.margin},
        "cycles": [cycle_view(c) for c in state.cycles.values()],
        "objectives": [objective_view(o) for o in state.objectives.values()],
        "key_results": [key_result_view(kr) for kr in state.key_results.values()],
    }


def team_view(team: Team) -> dict[str, Any]:
    """A team or squad with its capacity: the default per cycle (null: undeclared) and the cycles that override it."""
    return {
        "team_id": team.id,
        "name": team.name,
        "lead": team.lead,
        "product_id": team.product_id,
        "capacity": {"sprints": team.capacity, "cycles": dict(sorted(team.capacities.items()))},
        "version": team.version,
    }


def cycle_view(cycle: Cycle) -> dict[str, Any]:
    """A cycle and whether it was scored."""
    return {
        "cycle_id": cycle.id,
        "name": cycle.name,
        "starts_on": cycle.starts_on.isoformat(),
        "ends_on": cycle.ends_on.isoformat(),
        "scored_at": cycle.scored_at.isoformat() if cycle.scored_at else None,
        "next_cycle_id": cycle.next_cycle_id,
        "version": cycle.version,
    }


def objective_view(objective: Objective) -> dict[str, Any]:
    """An objective with its link, its investment tags and its allocations (sprints per squad)."""
    return {
        "objective_id": objective.id,
        "cycle_id": objective.cycle_id,
        "tier": objective.tier,
        "title": objective.title,
        "owner": objective.owner,
        "product_id": objective.product_id,
        "team_id": objective.team_id,
        "tags": list(objective.tags),
        "contributes_to": objective.link.model_dump() if objective.link else None,
        "rollup_method": objective.rollup_method.value if objective.rollup_method else None,
        "priority": objective.priority.value if objective.priority else None,
        "aarrr_stage": objective.aarrr_stage.value if objective.aarrr_stage else None,
        "horizon": objective.horizon.value if objective.horizon else None,
        "allocations": dict(sorted(objective.allocations.items())),
        "version": objective.version,
    }


def key_result_view(kr: KeyResult) -> dict[str, Any]:
    """A key result's definition and its latest check-in, value, target, plan and status."""
    spec = kr.spec
    check_in = kr.last_check_in
    return {
        "kr_id": kr.id,
        "objective_id": spec.objective_id,
        "cycle_id": kr.cycle_id,
        "tier": spec.tier,
        "title": spec.title,
        "kind": spec.kind.value,
        "baseline": spec.baseline,
        "target": kr.target,
        "unit": spec.unit,
        "direction": spec.direction.value if spec.direction else None,
        "owner": spec.owner,
        "scorekeeper": spec.scorekeeper,
        "kpi_binding": spec.kpi_binding,
        "weight": kr.weight,
        "contributes_to": kr.link.model_dump() if kr.link else None,
        "rollup_method": spec.rollup_method.value if spec.rollup_method else None,
        "status": "retired" if kr.is_retired else "active",
        "retired_reason": kr.retired.reason if kr.retired else (f"cycle {kr.retired_by_cycle} closed" if kr.retired_by_cycle else None),
        "confidence": check_in.confidence if check_in else None,
        "last_check_in": _payload(check_in),
        "value": kr.value,
        "value_observed_at": kr.value_observed_at.isoformat() if kr.value_observed_at else None,
        "target_changes": kr.target_changes,
        "escalation": _payload(kr.escalation),
        "recovery_plan": _payload(kr.recovery_plan),
        "version": kr.version,
        "events": len(kr.positions),
    }


def _payload(event: Any) -> dict[str, Any] | None:
    if event is None:
        return None
    return {k: v for k, v in event.model_dump(mode="json").items() if k not in {"portfolio_id", "aggregate_id", "kr_id"}}

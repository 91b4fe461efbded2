"""The rollup-method rules: a node overrides the portfolio's method only where mixing is allowed, and a KPI rollup adds like units."""

from __future__ import annotations

from okr_checkins.domain.errors import MixedMethodsRefused, UnitMismatch
from okr_checkins.domain.state import KeyResult, Objective, PortfolioState
from okr_contracts.kr_events import Link, RollupMethod

NAMED = 3
"""How many overriding nodes a refused redefinition names in its message."""


def check_override(state: PortfolioState, node_id: str, method: RollupMethod | None) -> None:
    """Refuse a node's own rollup method when it differs from the portfolio's and the portfolio does not allow mixing."""
    settings = state.settings
    if method is None or method == settings.rollup_method or settings.allow_mixed_methods:
        return
    raise MixedMethodsRefused(
        f"{node_id} cannot roll up by {method}: the portfolio rolls up by {settings.rollup_method} and does not allow mixed methods;"
        " leave rollup_method out, or ask the portfolio lead to allow mixed methods",
        node_id=node_id,
        rollup_method=str(method),
        portfolio_method=str(settings.rollup_method),
    )


def check_settings(state: PortfolioState, method: RollupMethod, allow_mixed: bool) -> None:
    """Refuse portfolio settings under which nodes already defined would mix methods the portfolio does not allow."""
    if allow_mixed:
        return
    nodes: list[Objective | KeyResult] = [*state.objectives.values(), *state.key_results.values()]
    overriding = [node for node in nodes if node.rollup_method is not None and node.rollup_method != method]
    if not overriding:
        return
    named = ", ".join(f"{node.id} ({node.rollup_method})" for node in overriding[:NAMED])
    more = f" and {len(overriding) - NAMED} more" if len(overriding) > NAMED else ""
    raise MixedMethodsRefused(
        f"the portfolio cannot roll up by {method} without allowing mixed methods: {named}{more} roll up by another method",
        nodes=[node.id for node in overriding],
        portfolio_method=str(method),
    )


def check_contribution(state: PortfolioState, node_id: str, unit: str | None, link: Link) -> None:
    """Refuse a link to a key result rolled up by KPI unless it comes from a key result in that unit (`unit` None: an objective)."""
    parent = state.key_results.get(link.parent_id)
    if parent is None or method_of(state, parent) != RollupMethod.KPI:
        return
    facts = {"node_id": node_id, "parent_id": parent.id, "unit": unit, "parent_unit": parent.spec.unit}
    if unit is None:
        raise UnitMismatch(
            f"objective {node_id} has no value or unit, so it cannot contribute to {parent.id}, which rolls up by kpi;"
            " link it to an objective, or contribute through a key result",
            **facts,
        )
    if unit != parent.spec.unit:
        raise UnitMismatch(
            f"{node_id} is measured in {unit!r} but {parent.id}, which rolls up by kpi, in {parent.spec.unit!r};"
            " a kpi rollup adds its contributors' values, so they need its unit",
            **facts,
        )


def method_of(state: PortfolioState, node: Objective | KeyResult) -> RollupMethod:
    """The rollup method that applies to a node: its own, else the portfolio's."""
    return node.rollup_method or state.settings.rollup_method


def unit_of(node: Objective | KeyResult) -> str | None:
    """A key result's unit; None for an objective, which has no value."""
    return node.spec.unit if isinstance(node, KeyResult) else None

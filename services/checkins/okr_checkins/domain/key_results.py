"""Commands on key results during a cycle, and closing the cycle."""

from __future__ import annotations

from datetime import datetime

from okr_checkins.domain.access import Action, authorise
from okr_checkins.domain.commands import active_key_result, known
from okr_checkins.domain.errors import CycleClosed, InvalidCommand, UnknownId
from okr_checkins.domain.hierarchy import check_link
from okr_checkins.domain.methods import check_contribution, unit_of
from okr_checkins.domain.portfolio import Context, Portfolio
from okr_checkins.domain.state import KeyResult, Objective, PortfolioState
from okr_contracts.kr_events import (
    CheckInRecorded,
    CycleScored,
    KeyResultEscalated,
    KeyResultKind,
    KeyResultRetired,
    Link,
    LinkChanged,
    RecoveryPlanFiled,
    TargetChanged,
    ValueObserved,
    WeightChanged,
)


def record_check_in(
    portfolio: Portfolio,
    ctx: Context,
    kr_id: str,
    *,
    confidence: float,
    what_changed: str,
    why: str = "",
    value: float | None = None,
    blocker: str | None = None,
    decision_needed: str | None = None,
) -> None:
    """The owner's weekly check-in; a value reported with it is also recorded as observed."""
    kr = _for_change(portfolio, ctx, kr_id, Action.CHECK_IN)
    if value is not None:
        _check_value_allowed(portfolio.state, ctx, kr)
    fields = {"confidence": confidence, "value": value, "what_changed": what_changed, "why": why}
    portfolio.emit(ctx, CheckInRecorded, kr, aggregate_id=kr_id, kr_id=kr_id, blocker=blocker, decision_needed=decision_needed, **fields)
    if value is not None:
        observed_at = ctx.occurred_at or ctx.now
        portfolio.emit(ctx, ValueObserved, kr, aggregate_id=kr_id, kr_id=kr_id, value=value, observed_at=observed_at, source="check-in")


def record_value(portfolio: Portfolio, ctx: Context, kr_id: str, *, value: float, observed_at: datetime, source: str) -> None:
    """A new current value; only the scorekeeper (or a bound connector) when the key result names one."""
    kr = _for_change(portfolio, ctx, kr_id, None)
    _check_value_allowed(portfolio.state, ctx, kr)
    portfolio.emit(ctx, ValueObserved, kr, aggregate_id=kr_id, kr_id=kr_id, value=value, observed_at=observed_at, source=source)


def _check_value_allowed(state: PortfolioState, ctx: Context, kr: KeyResult) -> None:
    authorise(state, ctx.actor, Action.RECORD_VALUE, node_id=kr.id)
    if kr.spec.kind is KeyResultKind.DERIVED:
        raise InvalidCommand(f"{kr.id} is derived: its progress comes from its contributors, it takes no values")


def change_target(portfolio: Portfolio, ctx: Context, kr_id: str, *, new_target: float, reason: str) -> None:
    """Move a key result's target, with the reason the readout shows."""
    kr = _for_change(portfolio, ctx, kr_id, Action.CHANGE_TARGET)
    if kr.spec.kind is KeyResultKind.DERIVED:
        raise InvalidCommand(f"{kr_id} is derived and has no target of its own")
    if new_target == kr.target:
        raise InvalidCommand(f"the target of {kr_id} is already {new_target}")
    if kr.spec.kind is KeyResultKind.METRIC and new_target == kr.spec.baseline:
        raise InvalidCommand(f"the new target equals the baseline {kr.spec.baseline}: progress could never be measured")
    fields = {"old_target": kr.target, "new_target": new_target, "reason": reason}
    portfolio.emit(ctx, TargetChanged, kr, aggregate_id=kr_id, kr_id=kr_id, **fields)


def change_weight(portfolio: Portfolio, ctx: Context, node_id: str, *, parent_id: str, new_weight: float, reason: str) -> None:
    """Change a node's weight in one parent's rollup: its link target, or a key result's objective."""
    node = _node_for_change(portfolio, ctx, node_id, Action.CHANGE_WEIGHT)
    if node.link is not None and node.link.parent_id == parent_id:
        old = node.link.weight
    elif isinstance(node, KeyResult) and node.spec.objective_id == parent_id:
        old = node.weight
    else:
        raise InvalidCommand(f"{node_id} does not contribute to {parent_id}", parent_id=parent_id)
    fields = {"node_id": node_id, "parent_id": parent_id, "old_weight": old, "new_weight": new_weight, "reason": reason}
    portfolio.emit(ctx, WeightChanged, node, aggregate_id=node_id, **fields)


def change_link(portfolio: Portfolio, ctx: Context, node_id: str, *, new_link: Link | None, reason: str) -> None:
    """Add, move or remove a node's contributes-to link."""
    state = portfolio.state
    node = _node_for_change(portfolio, ctx, node_id, Action.CHANGE_LINK)
    if isinstance(node, KeyResult) and node.is_retired:
        active_key_result(state, node_id)
    if new_link is not None:
        check_link(state, node_id, node.tier, new_link)
    if new_link == node.link:
        raise InvalidCommand(f"{node_id} already has that link")
    if new_link is not None:
        check_contribution(state, node_id, unit_of(node), new_link)
    portfolio.emit(ctx, LinkChanged, node, aggregate_id=node_id, node_id=node_id, old_link=node.link, new_link=new_link, reason=reason)


def retire(portfolio: Portfolio, ctx: Context, kr_id: str, *, reason: str, replaced_by: str | None = None) -> None:
    """Retire a key result: it stays in the history and stops counting."""
    kr = _for_change(portfolio, ctx, kr_id, Action.RETIRE)
    if replaced_by is not None:
        if replaced_by == kr_id:
            raise InvalidCommand("a key result cannot replace itself")
        known(portfolio.state.key_results, replaced_by, "key result")
    portfolio.emit(ctx, KeyResultRetired, kr, aggregate_id=kr_id, kr_id=kr_id, reason=reason, replaced_by=replaced_by)


def escalate(portfolio: Portfolio, ctx: Context, kr_id: str, *, escalated_to: str, reason: str) -> None:
    """Ask a lead to decide."""
    kr = _for_change(portfolio, ctx, kr_id, Action.ESCALATE)
    portfolio.emit(ctx, KeyResultEscalated, kr, aggregate_id=kr_id, kr_id=kr_id, escalated_to=escalated_to, reason=reason)


def file_recovery_plan(
    portfolio: Portfolio, ctx: Context, kr_id: str, *, option: str, description: str, owner: str, decision_needed: str
) -> None:
    """A recovery plan: exactly one option (tactic, target or resources), an owner and the decision needed."""
    kr = _for_change(portfolio, ctx, kr_id, Action.FILE_RECOVERY_PLAN)
    fields = {"option": option, "description": description, "owner": owner, "decision_needed": decision_needed}
    portfolio.emit(ctx, RecoveryPlanFiled, kr, aggregate_id=kr_id, kr_id=kr_id, **fields)


def close_cycle(
    portfolio: Portfolio,
    ctx: Context,
    cycle_id: str,
    *,
    carry: list[str],
    retire: list[str],
    default: str | None,
    next_cycle_id: str | None,
) -> None:
    """Score a cycle: its final scores are the scores as of this event; each open key result is carried or retired."""
    state = portfolio.state
    authorise(state, ctx.actor, Action.CLOSE_CYCLE)
    cycle = known(state.cycles, cycle_id, "cycle")
    portfolio.expect(ctx, cycle)
    if cycle.closed:
        raise CycleClosed(f"cycle {cycle_id} was already scored at {cycle.scored_at}")
    open_krs = [kr.id for kr in state.key_results.values() if kr.cycle_id == cycle_id and not kr.is_retired]
    carried, retired = _partition(open_krs, carry, retire, default)
    if carried:
        if next_cycle_id is None:
            raise InvalidCommand("carrying key results needs next_cycle_id, the cycle they move to")
        nxt = known(state.cycles, next_cycle_id, "cycle")
        if nxt.closed or next_cycle_id == cycle_id:
            raise InvalidCommand(f"key results can only be carried into another open cycle, not {next_cycle_id}")
    fields = {"carried_over": carried, "retired": retired, "next_cycle_id": next_cycle_id if carried else None}
    portfolio.emit(ctx, CycleScored, cycle, aggregate_id=cycle_id, cycle_id=cycle_id, scored_at=ctx.now, **fields)


def _partition(open_krs: list[str], carry: list[str], retire: list[str], default: str | None) -> tuple[list[str], list[str]]:
    both = set(carry) & set(retire)
    if both:
        raise InvalidCommand(f"key results cannot be both carried and retired: {', '.join(sorted(both))}")
    foreign = (set(carry) | set(retire)) - set(open_krs)
    if foreign:
        raise InvalidCommand(f"not open key results of this cycle: {', '.join(sorted(foreign))}")
    undecided = [kr for kr in open_krs if kr not in carry and kr not in retire]
    if undecided and default is None:
        raise InvalidCommand(
            f"say for each open key result whether it is carried or retired (or set default): {', '.join(undecided)}", undecided=undecided
        )
    carried = [kr for kr in open_krs if kr in carry or (kr in undecided and default == "carry")]
    return carried, [kr for kr in open_krs if kr not in carried]


def _node_for_change(portfolio: Portfolio, ctx: Context, node_id: str, action: Action) -> Objective | KeyResult:
    node = portfolio.state.node(node_id)
    if node is None:
        raise UnknownId(f"no objective or key result {node_id!r} in this portfolio", id=node_id)
    authorise(portfolio.state, ctx.actor, action, node_id=node_id)
    portfolio.expect(ctx, node)
    return node


def _for_change(portfolio: Portfolio, ctx: Context, kr_id: str, action: Action | None) -> KeyResult:
    kr = active_key_result(portfolio.state, kr_id)
    if portfolio.state.cycles[kr.cycle_id].closed:
        raise CycleClosed(f"the cycle of {kr_id} was scored; it takes no more changes")
    if action is not None:
        authorise(portfolio.state, ctx.actor, action, node_id=kr_id)
    portfolio.expect(ctx, kr)
    return kr

"""A portfolio's drift: its facts, its open alerts, and the evaluation that keeps them in step.

``evaluate(at, touched)`` runs the rules for the nodes an input touched (or, on a
clock tick, for every node), raises an alert for each finding whose rule has no
open alert on the node, and resolves each open alert whose rule no longer finds.
Pure: the moment is passed in, nothing is read from a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import NamedTuple

from okr_contracts.alerts import Audience, DriftRule
from okr_contracts.capacity import capacity_for, check_balance, split, squad_load
from okr_drift.domain.alerts import AlertBook, Change, Subject
from okr_drift.domain.facts import CycleFacts, KeyResultFacts, ObjectiveFacts
from okr_drift.domain.portfolio import PortfolioState, Touched
from okr_drift.domain.rules import (
    KR_RULES,
    Finding,
    KrContext,
    off_balance,
    over_allocated,
    too_many_key_results,
    too_many_objectives,
    why_cleared,
)

OBJECTIVE_RULES = (DriftRule.TOO_MANY_KEY_RESULTS,)
GROUP_RULES = (DriftRule.TOO_MANY_OBJECTIVES,)
SQUAD_RULES = (DriftRule.OVER_ALLOCATED,)
CYCLE_RULES = (DriftRule.OFF_BALANCE,)


class Scope(NamedTuple):
    """The nodes an evaluation looks at, by kind of rule."""

    krs: Iterable[str]
    objectives: Iterable[str]
    groups: Iterable[str]
    squads: Iterable[str]
    balances: Iterable[str]


class PortfolioDrift:
    """One portfolio's facts and alert book."""

    def __init__(self, portfolio_id: str) -> None:
        self.portfolio_id = portfolio_id
        self.state = PortfolioState(portfolio_id)
        self.book = AlertBook(portfolio_id)

    def evaluate(self, at: datetime, touched: Touched | None = None) -> list[Change]:
        """Raise and resolve alerts for the touched nodes (every node when `touched` is none) as of `at`."""
        changes: list[Change] = []
        scope = self._scope(touched)
        live = _LiveCycles(self, at)
        for kr_id in scope.krs:
            self.evaluate_kr(kr_id, at, changes, live)
        for objective_id in scope.objectives:
            self._evaluate_objective(objective_id, at, changes, live)
        for group in scope.groups:
            self._evaluate_group(group, at, changes, live)
        for team_id in scope.squads:
            self._evaluate_squad(team_id, at, changes, live)
        for cycle_id in scope.balances:
            self._evaluate_balance(cycle_id, at, changes, live)
        return changes

    def _scope(self, touched: Touched | None) -> Scope:
        """What to evaluate: what an input touched, or (on a clock tick) every node and every node with an open alert."""
        if touched is not None:
            return Scope(touched.krs, touched.objectives, touched.groups, touched.squads, touched.balances)
        state, orphans = self.state, self.book.by_node.keys() - self.state.krs.keys()
        rules = (*OBJECTIVE_RULES, *GROUP_RULES, *SQUAD_RULES, *CYCLE_RULES)
        alerted = {rule: {n for n in orphans if rule in self.book.by_node[n]} for rule in rules}
        objectives = state.objectives.keys() | alerted[DriftRule.TOO_MANY_KEY_RESULTS]
        groups = state.focus.keys() | alerted[DriftRule.TOO_MANY_OBJECTIVES]
        squads = state.teams.keys() | alerted[DriftRule.OVER_ALLOCATED]
        balances = state.allocated_by_cycle.keys() | alerted[DriftRule.OFF_BALANCE]
        others = objectives | groups | squads | balances
        krs = [*state.krs, *(n for n in orphans if n not in others)]
        return Scope(krs, objectives, groups, squads, balances)

    def live_cycle(self, cycle_id: str, at: datetime) -> CycleFacts | None:
        """The cycle if it is running or still to come at `at` (not scored, not over)."""
        cycle = self.state.cycles.get(cycle_id)
        return cycle if cycle is not None and not cycle.scored and at < cycle.end else None

    def kr_context(self, kr_id: str, at: datetime, live: Mapping[str, CycleFacts | None] | None = None) -> KrContext | None:
        """What the key-result rules read, or none when the key result is not live (unknown, retired, cycle closed).

        `live` is the cycles' liveness at `at` when the caller already has it (an evaluation works it out once per cycle).
        """
        kr = self.state.krs.get(kr_id)
        if kr is None or kr.retired:
            return None
        cycle = self.live_cycle(kr.cycle_id, at) if live is None else live[kr.cycle_id]
        if cycle is None:
            return None
        state = self.state
        return KrContext(at, state.facts.thresholds, kr, cycle, state.progress.get(kr_id), state.delivery.get(kr_id))

    def evaluate_kr(self, kr_id: str, at: datetime, changes: list[Change], live: Mapping[str, CycleFacts | None] | None = None) -> None:
        """Run every key-result rule for one key result."""
        ctx = self.kr_context(kr_id, at, live)
        open_alerts = self.book.open_for(kr_id)
        if ctx is None and not open_alerts:
            return
        found = {} if ctx is None else {rule: f for rule, check in KR_RULES.items() if (f := check(ctx)) is not None}
        if not found and not open_alerts:
            return
        for rule, finding in found.items():
            if rule not in open_alerts:
                assert ctx is not None
                changes.append(self.book.raise_alert(finding, self._kr_subject(ctx.kr), at))
        for rule, alert in list(open_alerts.items()):
            if rule in KR_RULES and rule not in found:
                changes.append(self.book.resolve(alert, why_cleared(rule, ctx), at))

    def _evaluate_objective(self, objective_id: str, at: datetime, changes: list[Change], live: Mapping[str, CycleFacts | None]) -> None:
        objective = self.state.objectives.get(objective_id)
        finding = None
        if objective is not None and live[objective.cycle_id] is not None:
            krs = self.state.krs
            members = sum(1 for k in self.state.members.get(objective_id, ()) if not krs[k].retired)
            finding = too_many_key_results(objective, members, self.state.facts.thresholds)
        subject = None if objective is None else lambda: self._objective_subject(objective)
        self._settle(objective_id, DriftRule.TOO_MANY_KEY_RESULTS, finding, subject, at, changes)

    def _evaluate_group(self, group: str, at: datetime, changes: list[Change], live: Mapping[str, CycleFacts | None]) -> None:
        counts: dict[str, int] = {}
        objectives = self.state.objectives
        for objective_id in self.state.focus.get(group, ()):
            objective = objectives[objective_id]
            if objective.tier > 1 and live[objective.cycle_id] is not None:
                counts[objective.cycle_id] = counts.get(objective.cycle_id, 0) + 1
        finding = too_many_objectives(group, counts, self.state.facts.thresholds)
        self._settle(group, DriftRule.TOO_MANY_OBJECTIVES, finding, lambda: self._group_subject(group), at, changes)

    def _evaluate_squad(self, team_id: str, at: datetime, changes: list[Change], live: Mapping[str, CycleFacts | None]) -> None:
        team = self.state.teams.get(team_id)
        loads = []
        if team is not None:
            by_cycle: dict[str, dict[str, float]] = {}
            for objective_id in self.state.allocated.get(team_id, ()):
                objective = self.state.objectives[objective_id]
                if team_id in objective.allocations and live[objective.cycle_id] is not None:
                    by_cycle.setdefault(objective.cycle_id, {})[objective_id] = objective.allocations[team_id]
            for cycle_id, allocations in sorted(by_cycle.items()):
                loads.append(squad_load(team_id, cycle_id, capacity_for(cycle_id, team.capacity, team.capacity_by_cycle), allocations))
        finding = over_allocated(team_id, loads)
        subject = None if team is None else lambda: self._group_subject(team_id)
        self._settle(team_id, DriftRule.OVER_ALLOCATED, finding, subject, at, changes, hold=not self.capacity_settled(at))

    def _evaluate_balance(self, cycle_id: str, at: datetime, changes: list[Change], live: Mapping[str, CycleFacts | None]) -> None:
        finding = None
        if live[cycle_id] is not None:
            objectives = [self.state.objectives[o] for o in sorted(self.state.allocated_by_cycle.get(cycle_id, ()))]
            priorities = split((o.priority.value if o.priority else None, sum(o.allocations.values())) for o in objectives if o.allocations)
            facts = self.state.facts
            finding = off_balance(cycle_id, check_balance(priorities, facts.balance, facts.balance_margin), priorities.unclassified)
        subject = None if cycle_id not in self.state.cycles else lambda: self._cycle_subject(cycle_id)
        self._settle(cycle_id, DriftRule.OFF_BALANCE, finding, subject, at, changes, hold=not self.capacity_settled(at))

    def capacity_settled(self, at: datetime) -> bool:
        """Whether the capacity plan has been left alone for `capacity_settle_minutes`: a plan edited in one sitting
        (an `okr apply`, a lead moving allocations around) raises its capacity alerts once it is done, not at every step."""
        facts = self.state.facts
        settle = timedelta(minutes=facts.thresholds.capacity_settle_minutes)
        return facts.capacity_changed_at is None or at - facts.capacity_changed_at >= settle

    def _settle(
        self,
        node: str,
        rule: DriftRule,
        finding: Finding | None,
        subject: Callable[[], Subject] | None,
        at: datetime,
        changes: list[Change],
        *,
        hold: bool = False,
    ) -> None:
        """Raise or resolve the node's alert of `rule`; `subject` (none when the node is gone) is built only to raise one.

        `hold` keeps a new finding from being raised yet (an open alert stays open, and a cleared one is resolved).
        """
        alert = self.book.open_for(node).get(rule)
        if finding is not None and alert is None and subject is not None and not hold:
            changes.append(self.book.raise_alert(finding, subject(), at))
        elif finding is None and alert is not None:
            changes.append(self.book.resolve(alert, why_cleared(rule, None) if subject is None else _SCOPE_CLEARED[rule], at))

    def _lead_of(self, objective: ObjectiveFacts | None) -> str | None:
        if objective is None:
            return None
        team = self.state.teams.get(objective.team_id or "")
        product = self.state.products.get(objective.product_id or "")
        return product.lead if product else team.lead if team else None

    def _recipients(self, owner: str | None, lead: str | None) -> dict[Audience, str]:
        found = {Audience.OWNER: owner, Audience.PRODUCT_LEAD: lead, Audience.PORTFOLIO_LEAD: self.state.facts.lead or None}
        return {audience: who for audience, who in found.items() if who}

    def _kr_subject(self, kr: KeyResultFacts) -> Subject:
        objective = self.state.objectives.get(kr.objective_id)
        return Subject(
            node_kind="key_result",
            title=kr.title,
            product_id=objective.product_id if objective else None,
            owner=kr.owner,
            cycle_id=kr.cycle_id,
            recipients=self._recipients(kr.owner, self._lead_of(objective)),
        )

    def _objective_subject(self, objective: ObjectiveFacts) -> Subject:
        return Subject(
            node_kind="objective",
            title=objective.title,
            product_id=objective.product_id,
            owner=objective.owner,
            cycle_id=objective.cycle_id,
            recipients=self._recipients(objective.owner, self._lead_of(objective)),
        )

    def _group_subject(self, group: str) -> Subject:
        team = self.state.teams.get(group)
        product = self.state.products.get(group)
        lead = team.lead if team else product.lead if product else None
        product_id = team.product_id if team else group
        return Subject(node_kind="team", title=group, product_id=product_id, recipients=self._recipients(None, lead))

    def _cycle_subject(self, cycle_id: str) -> Subject:
        return Subject(node_kind="cycle", title=cycle_id, cycle_id=cycle_id, recipients=self._recipients(None, None))


class _LiveCycles(dict[str, CycleFacts | None]):
    """Each cycle's liveness at one moment, worked out on first use and then looked up: an evaluation asks once per node."""

    def __init__(self, drift: PortfolioDrift, at: datetime) -> None:
        super().__init__()
        self.drift, self.at = drift, at

    def __missing__(self, cycle_id: str) -> CycleFacts | None:
        found = self[cycle_id] = self.drift.live_cycle(cycle_id, self.at)
        return found


_SCOPE_CLEARED = {
    DriftRule.TOO_MANY_KEY_RESULTS: "key results within the limit (or its cycle closed)",
    DriftRule.TOO_MANY_OBJECTIVES: "objectives within the limit (or their cycles closed)",
    DriftRule.OVER_ALLOCATED: "allocations within the capacity (or their cycles closed)",
    DriftRule.OFF_BALANCE: "split within the margin of the intended balance (or the cycle closed)",
}

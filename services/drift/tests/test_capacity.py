"""Capacity drift: a squad allocated beyond its capacity, and a cycle whose split strays from the intended balance.

The fixture ``portfolio`` is seeded the day before the 100-day cycle 2026-Q3 starts:
team payments (lead.sam) of product billing (lead.bo), objective obj-billing, in the
portfolio led by cpo. Each input is applied and evaluated as the service does.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from okr_contracts.alerts import AlertRaised, Audience, DriftRule, Severity
from okr_contracts.kr_events import (
    AllocationRemoved,
    Balance,
    BalanceIntended,
    DriftThresholds,
    InvestmentPriority,
    ObjectiveAllocated,
    ObjectiveClassified,
    ObjectiveDefined,
    PortfolioDefined,
    RollupMethod,
    SquadCapacitySet,
    TeamDefined,
)
from okr_drift.domain.alerts import Change
from okr_drift.domain.evaluation import PortfolioDrift
from okr_drift.domain.facts import ObjectiveFacts, PortfolioFacts, TeamFacts
from okr_drift.domain.portfolio import ENTITY_KINDS

TEAM = "payments"
CYCLE = "2026-Q3"


def define(portfolio: Any, at: Any, *, settle_minutes: int) -> None:
    drift = DriftThresholds(capacity_settle_minutes=settle_minutes)
    portfolio.record(PortfolioDefined, "acme", at, name="Acme", owner="cpo", rollup_method=RollupMethod.WEIGHTED, drift=drift)


@pytest.fixture(autouse=True)
def immediate(portfolio: Any, at_day: Any) -> None:
    """Capacity alerts without the settling time, so each test sees the alert at the step that causes it (but the last test)."""
    define(portfolio, at_day(-1), settle_minutes=0)


def outline(changes: list[Change]) -> list[tuple[str, DriftRule, str]]:
    return sorted((change.event.event_type(), change.alert.rule, change.alert.node_id) for change in changes)


def capacity(portfolio: Any, at: Any, sprints: float, *, team: str = TEAM, cycle: str | None = None) -> list[Change]:
    changes: list[Change] = portfolio.record(SquadCapacitySet, team, at, team_id=team, cycle_id=cycle, sprints=sprints)
    return changes


def allocate(portfolio: Any, at: Any, objective: str, sprints: float, *, team: str = TEAM) -> list[Change]:
    changes: list[Change] = portfolio.record(ObjectiveAllocated, objective, at, objective_id=objective, team_id=team, sprints=sprints)
    return changes


def unallocate(portfolio: Any, at: Any, objective: str, *, team: str = TEAM, old: float = 3.0) -> list[Change]:
    fields = {"objective_id": objective, "team_id": team, "old_sprints": old, "reason": "moved to the backlog"}
    changes: list[Change] = portfolio.record(AllocationRemoved, objective, at, **fields)
    return changes


def classify(portfolio: Any, at: Any, objective: str, priority: InvestmentPriority | None) -> list[Change]:
    changes: list[Change] = portfolio.record(ObjectiveClassified, objective, at, objective_id=objective, priority=priority)
    return changes


def test_a_third_objective_in_a_squad_with_capacity_for_two_raises_over_allocated_and_removing_it_resolves(
    portfolio: Any, at_day: Any
) -> None:
    assert capacity(portfolio, at_day(1), 6) == []
    for objective in ("obj-billing", "obj-2"):
        if objective != "obj-billing":
            assert portfolio.objective(objective, at_day(1)) == []
        assert allocate(portfolio, at_day(1), objective, 3) == []  # 6 of 6: full, not over
    assert portfolio.objective("obj-3", at_day(2)) == []
    changes = allocate(portfolio, at_day(2), "obj-3", 3)
    assert outline(changes) == [("AlertRaised", DriftRule.OVER_ALLOCATED, TEAM)]
    event = changes[0].event
    assert isinstance(event, AlertRaised)
    assert event.summary == "payments is allocated 9 sprints in cycle 2026-Q3 against a capacity of 6 (3 objectives, 3 over)"
    assert (event.severity, event.audience) == (Severity.WARNING, (Audience.PRODUCT_LEAD, Audience.PORTFOLIO_LEAD))
    assert event.recipients == ("lead.sam", "cpo")
    assert event.facts == {
        "cycle_id": CYCLE,
        "capacity": 6.0,
        "allocated": 9.0,
        "over_by": 3.0,
        "objectives": 3,
        "allocations": "obj-2 3, obj-3 3, obj-billing 3",
    }
    assert changes[0].alert.subject.node_kind == "team"
    assert allocate(portfolio, at_day(3), "obj-3", 4) == []  # still over: the open alert stands
    changes = unallocate(portfolio, at_day(4), "obj-3", old=4)
    assert outline(changes) == [("AlertResolved", DriftRule.OVER_ALLOCATED, TEAM)]
    assert changes[0].alert.resolved_reason == "allocations within the capacity (or their cycles closed)"


def test_raising_the_capacity_or_shrinking_an_allocation_resolves_and_a_new_over_commitment_raises_a_new_alert(
    portfolio: Any, at_day: Any
) -> None:
    assert capacity(portfolio, at_day(1), 2) == []
    first = allocate(portfolio, at_day(1), "obj-billing", 3)
    assert outline(first) == [("AlertRaised", DriftRule.OVER_ALLOCATED, TEAM)]
    assert outline(capacity(portfolio, at_day(2), 4, cycle=CYCLE)) == [("AlertResolved", DriftRule.OVER_ALLOCATED, TEAM)]
    again = allocate(portfolio, at_day(3), "obj-billing", 5)
    assert outline(again) == [("AlertRaised", DriftRule.OVER_ALLOCATED, TEAM)]
    assert again[0].alert.alert_id != first[0].alert.alert_id
    assert again[0].alert.facts["capacity"] == 4.0  # the cycle's capacity overrides the default of 2


def test_an_undeclared_capacity_never_raises_and_declaring_it_does(portfolio: Any, at_day: Any) -> None:
    assert allocate(portfolio, at_day(1), "obj-billing", 30) == []
    assert portfolio.tick(at_day(2)) == []
    assert outline(capacity(portfolio, at_day(3), 0)) == [("AlertRaised", DriftRule.OVER_ALLOCATED, TEAM)]


def test_allocations_count_only_in_live_cycles_and_closing_the_cycle_resolves(portfolio: Any, at_day: Any) -> None:
    assert portfolio.start_cycle("2026-Q4", at_day(0), date(2026, 10, 9), date(2026, 12, 31)) == []
    assert capacity(portfolio, at_day(1), 3) == []
    assert allocate(portfolio, at_day(1), "obj-billing", 3) == []
    assert (
        portfolio.record(
            ObjectiveDefined,
            "obj-next",
            at_day(1),
            objective_id="obj-next",
            cycle_id="2026-Q4",
            tier=2,
            title="Next quarter",
            owner="lead.bo",
            product_id="billing",
            team_id=TEAM,
        )
        == []
    )
    assert allocate(portfolio, at_day(1), "obj-next", 3) == []  # 3 in each cycle: each is full, neither is over
    assert outline(allocate(portfolio, at_day(2), "obj-next", 4)) == [("AlertRaised", DriftRule.OVER_ALLOCATED, TEAM)]
    assert outline(portfolio.tick(at_day(101))) == []  # Q3 is over; Q4 (running now) stays over
    changes = portfolio.tick(at_day(185))  # Q4 is over too
    assert outline(changes) == [("AlertResolved", DriftRule.OVER_ALLOCATED, TEAM)]


def test_a_split_off_the_intended_balance_raises_off_balance_on_the_cycle(portfolio: Any, at_day: Any) -> None:
    for objective in ("obj-2", "obj-3"):
        assert portfolio.objective(objective, at_day(1)) == []
    assert allocate(portfolio, at_day(1), "obj-billing", 7) == []  # nothing classified: nothing to judge
    raised = classify(portfolio, at_day(1), "obj-billing", InvestmentPriority.PRIMARY)  # all primary: 100/0/0
    assert outline(raised) == [("AlertRaised", DriftRule.OFF_BALANCE, CYCLE)]
    assert allocate(portfolio, at_day(1), "obj-2", 2) == []  # unclassified: out of the shares, still 100/0/0
    assert raised[0].alert.facts["unclassified_sprints"] == 0.0
    resolved = classify(portfolio, at_day(1), "obj-2", InvestmentPriority.SECONDARY)  # 78/22/0: exploration 10 under is in
    assert outline(resolved) == [("AlertResolved", DriftRule.OFF_BALANCE, CYCLE)]
    assert allocate(portfolio, at_day(1), "obj-3", 1) == []
    assert classify(portfolio, at_day(1), "obj-3", InvestmentPriority.EXPLORATION) == []  # 70/20/10


def test_off_balance_is_raised_and_resolved_with_the_facts_that_show_the_split(portfolio: Any, at_day: Any) -> None:
    assert allocate(portfolio, at_day(1), "obj-billing", 5) == []
    changes = classify(portfolio, at_day(1), "obj-billing", InvestmentPriority.EXPLORATION)
    assert outline(changes) == [("AlertRaised", DriftRule.OFF_BALANCE, CYCLE)]
    alert = changes[0].alert
    assert alert.summary == (
        "Cycle 2026-Q3 splits its allocated sprints 0% / 0% / 100% (primary / secondary / exploration) against 70% / 20% / 10% "
        "intended: exploration is 90% over (margin 10%)"
    )
    assert (alert.subject.node_kind, alert.recipients, alert.audience) == ("cycle", ("cpo",), (Audience.PORTFOLIO_LEAD,))
    assert alert.facts["actual_exploration"] == 1.0
    assert alert.facts["intended_primary"] == 0.7
    assert alert.facts["worst"] == "exploration"
    assert alert.facts["deviation"] == 0.9
    changes = portfolio.record(BalanceIntended, "acme", at_day(2), intended=Balance(primary=0, secondary=0, exploration=1.0), margin=0.05)
    assert outline(changes) == [("AlertResolved", DriftRule.OFF_BALANCE, CYCLE)]
    assert changes[0].alert.resolved_reason == "split within the margin of the intended balance (or the cycle closed)"


def test_a_wider_margin_keeps_a_split_in_balance(portfolio: Any, at_day: Any) -> None:
    assert portfolio.record(BalanceIntended, "acme", at_day(0), margin=0.35) == []
    assert allocate(portfolio, at_day(1), "obj-billing", 1) == []
    assert portfolio.objective("obj-2", at_day(1)) == []
    assert allocate(portfolio, at_day(1), "obj-2", 1) == []
    assert classify(portfolio, at_day(1), "obj-billing", InvestmentPriority.PRIMARY) == []
    assert classify(portfolio, at_day(1), "obj-2", InvestmentPriority.SECONDARY) == []  # 50/50/0: 30 points off at most
    changes = classify(portfolio, at_day(2), "obj-2", InvestmentPriority.EXPLORATION)  # 50/0/50: exploration 40 over
    assert outline(changes) == [("AlertRaised", DriftRule.OFF_BALANCE, CYCLE)]


def test_redefining_the_portfolio_or_the_team_keeps_the_balance_and_the_capacity(portfolio: Any, at_day: Any) -> None:
    assert portfolio.record(BalanceIntended, "acme", at_day(0), intended=Balance(primary=0.5, secondary=0.3, exploration=0.2)) == []
    assert capacity(portfolio, at_day(0), 4) == []
    portfolio.record(PortfolioDefined, "acme", at_day(1), name="Acme 2", owner="cpo", rollup_method=RollupMethod.WEIGHTED)
    portfolio.record(TeamDefined, TEAM, at_day(1), team_id=TEAM, name="Payments 2", product_id="billing", lead="lead.sam")
    state = portfolio.drift.state
    assert state.facts.balance == Balance(primary=0.5, secondary=0.3, exploration=0.2)
    assert (state.teams[TEAM].capacity, state.teams[TEAM].name) == (4.0, "Payments 2")


def test_the_facts_survive_the_store_and_a_redelivery_changes_nothing(portfolio: Any, at_day: Any) -> None:
    assert capacity(portfolio, at_day(1), 2, cycle=CYCLE) == []
    assert classify(portfolio, at_day(1), "obj-billing", None) == []
    envelope = portfolio.event(ObjectiveAllocated, "obj-billing", at_day(2), objective_id="obj-billing", team_id=TEAM, sprints=3)
    assert outline(portfolio.deliver(envelope)) == [("AlertRaised", DriftRule.OVER_ALLOCATED, TEAM)]
    assert portfolio.deliver(envelope) is None
    stored = PortfolioDrift("acme")
    for kind, entity_id, entity in portfolio.drift.state.entities():
        stored.state.put(kind, entity_id, ENTITY_KINDS[kind].model_validate_json(entity.model_dump_json()))
    for alert in portfolio.drift.book.by_id.values():
        stored.book.load(alert)
    assert isinstance(stored.state.facts, PortfolioFacts)
    assert isinstance(stored.state.teams[TEAM], TeamFacts)
    assert stored.state.teams[TEAM].capacity_by_cycle == {CYCLE: 2.0}
    objective = stored.state.objectives["obj-billing"]
    assert isinstance(objective, ObjectiveFacts)
    assert objective.allocations == {TEAM: 3.0}
    assert stored.state.allocated == {TEAM: {"obj-billing"}}
    assert stored.evaluate(at_day(3)) == []  # the same facts: the open alert stands, nothing new
    removal = AllocationRemoved(
        portfolio_id="acme",
        aggregate_id="obj-billing",
        aggregate_version=objective.version + 1,
        actor="cpo",
        objective_id="obj-billing",
        team_id=TEAM,
        old_sprints=3,
        reason="moved",
    )
    touched = stored.state.apply_history(removal, at_day(4))
    assert touched is not None
    assert outline(stored.evaluate(at_day(4), touched)) == [("AlertResolved", DriftRule.OVER_ALLOCATED, TEAM)]


def test_capacity_alerts_wait_until_the_plan_has_been_left_alone_for_the_settling_time(portfolio: Any, at_day: Any) -> None:
    define(portfolio, at_day(0), settle_minutes=10)  # the default
    start = at_day(1)
    assert capacity(portfolio, start, 3) == []
    assert allocate(portfolio, start, "obj-billing", 5) == []  # over, and 100 % unclassified: nothing judged on the balance
    assert classify(portfolio, start + timedelta(minutes=1), "obj-billing", InvestmentPriority.EXPLORATION) == []  # off balance too
    assert allocate(portfolio, start + timedelta(minutes=2), "obj-billing", 2) == []  # fixed within the sitting: never raised
    assert portfolio.tick(start + timedelta(minutes=11, seconds=59)) == []  # off balance, but changed 9 min 59 s ago
    changes = portfolio.tick(start + timedelta(minutes=12))
    assert outline(changes) == [("AlertRaised", DriftRule.OFF_BALANCE, CYCLE)]
    assert outline(allocate(portfolio, start + timedelta(minutes=20), "obj-billing", 4)) == []  # over now, still off: held
    assert portfolio.drift.book.open_for(CYCLE) != {}  # an open alert is not resolved while the plan is edited
    assert outline(portfolio.tick(start + timedelta(minutes=30))) == [("AlertRaised", DriftRule.OVER_ALLOCATED, TEAM)]
    fixed = classify(portfolio, start + timedelta(minutes=31), "obj-billing", InvestmentPriority.PRIMARY)  # 100 % primary: 30 over
    assert outline(fixed) == []
    resolved = allocate(portfolio, start + timedelta(minutes=32), "obj-billing", 3)  # within capacity again: resolved at once
    assert outline(resolved) == [("AlertResolved", DriftRule.OVER_ALLOCATED, TEAM)]

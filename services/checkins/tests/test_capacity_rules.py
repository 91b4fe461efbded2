"""Capacity, allocations, tags and the intended balance as domain rules: the aggregate in memory, no store, no HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from okr_checkins.domain import capacity as cap
from okr_checkins.domain import commands as c
from okr_checkins.domain import key_results as k
from okr_checkins.domain.access import Actor, TokenRole
from okr_checkins.domain.errors import CycleClosed, DomainError, InvalidCommand, NotPermitted, UnknownId, VersionConflict
from okr_checkins.domain.portfolio import Context, Portfolio
from okr_checkins.views import portfolio_view
from okr_contracts.kr_events import AarrrStage, Balance, InvestmentHorizon, InvestmentPriority

NOW = datetime(2026, 8, 12, 9, 0, tzinfo=UTC)
PRIMARY, SECONDARY = InvestmentPriority.PRIMARY, InvestmentPriority.SECONDARY
RETENTION, GROW = AarrrStage.RETENTION, InvestmentHorizon.GROW


def as_(principal: str, *, expected: int | None = None) -> Context:
    """The context of a command sent by `principal` (the portfolio's lead holds the portfolio_lead token role)."""
    roles = {"cpo": frozenset({TokenRole.PORTFOLIO_LEAD}), "auditor": frozenset({TokenRole.AUDITOR})}.get(principal, frozenset())
    return Context(Actor(principal, roles), expected_version=expected, now=NOW)


def objective(objective_id: str, tier: int, cycle_id: str = "q3", **fields: Any) -> dict[str, Any]:
    return {"objective_id": objective_id, "cycle_id": cycle_id, "tier": tier, "title": objective_id, "owner": "pm.ana", **fields}


@pytest.fixture
def portfolio() -> Portfolio:
    """Two products with their leads, a squad on each, cycles q3 and q4, and objectives at tiers 1 and 2."""
    p = Portfolio.define(as_("cpo"), {"portfolio_id": "acme", "name": "Acme", "owner": "cpo", "rollup_method": "weighted"})
    lead = as_("cpo")
    c.define_product(p, lead, product_id="billing", name="Billing", lead="lead.bo")
    c.define_product(p, lead, product_id="search", name="Search", lead="lead.sam")
    c.define_team(p, lead, team_id="squad-1", name="Squad 1", lead="lead.bo", product_id="billing")
    c.define_team(p, lead, team_id="squad-2", name="Squad 2", lead="lead.sam", product_id="search")
    c.start_cycle(p, lead, cycle_id="q3", name="Q3", cadence="quarterly", starts_on=NOW.date(), ends_on=NOW.date())
    c.start_cycle(p, lead, cycle_id="q4", name="Q4", cadence="quarterly", starts_on=NOW.date(), ends_on=NOW.date())
    c.define_objective(p, lead, objective("grow", 1))
    c.define_objective(p, lead, objective("billing-grows", 2, product_id="billing"))
    c.define_objective(p, lead, objective("search-finds", 2, product_id="search"))
    c.define_objective(p, lead, objective("next-quarter", 2, "q4", product_id="billing"))
    return p


def refused(portfolio: Portfolio, error: type[DomainError], command: Callable[[], None], says: str) -> DomainError:
    """Run a command that must be refused with `error`, saying `says`, and prove nothing was recorded."""
    before = len(portfolio.pending_events)
    with pytest.raises(error) as raised:
        command()
    assert says in raised.value.detail, raised.value.detail
    assert len(portfolio.pending_events) == before
    return raised.value


def last(portfolio: Portfolio) -> dict[str, Any]:
    """The data of the last recorded event, with its type."""
    record = portfolio.pending_events[-1].record  # type: ignore[attr-defined]
    return {"type": record["type"], **record["data"]}


def close_q3(portfolio: Portfolio) -> None:
    k.close_cycle(portfolio, as_("cpo"), "q3", carry=[], retire=[], default="retire", next_cycle_id=None)


# --- a squad's capacity ---------------------------------------------------------------------------------------------


def test_a_squads_default_capacity_and_a_cycles_override_are_recorded_on_the_team(portfolio: Portfolio) -> None:
    cap.set_capacity(portfolio, as_("lead.bo"), "squad-1", sprints=6, cycle_id=None)
    cap.set_capacity(portfolio, as_("cpo"), "squad-1", sprints=4.5, cycle_id="q3", reason="two engineers on leave")
    team = portfolio.state.teams["squad-1"]
    assert (team.capacity, team.capacities, team.version) == (6, {"q3": 4.5}, 3)
    assert (
        last(portfolio).items()
        >= {
            "type": "SquadCapacitySet",
            "aggregate_id": "squad-1",
            "aggregate_version": 3,
            "team_id": "squad-1",
            "cycle_id": "q3",
            "sprints": 4.5,
            "reason": "two engineers on leave",
        }.items()
    )


def test_a_capacity_is_set_again_only_when_it_changes(portfolio: Portfolio) -> None:
    cap.set_capacity(portfolio, as_("cpo"), "squad-1", sprints=6, cycle_id=None)
    refused(portfolio, InvalidCommand, lambda: cap.set_capacity(portfolio, as_("cpo"), "squad-1", sprints=6, cycle_id=None), "already 6")
    cap.set_capacity(portfolio, as_("cpo"), "squad-1", sprints=6, cycle_id="q3")  # the same number for one cycle is an override
    cap.set_capacity(portfolio, as_("cpo"), "squad-1", sprints=0, cycle_id=None)
    assert (portfolio.state.teams["squad-1"].capacity, portfolio.state.teams["squad-1"].capacities) == (0, {"q3": 6})


@pytest.mark.parametrize(
    ("team_id", "cycle_id", "error", "says"),
    [
        ("squad-9", None, UnknownId, "no team 'squad-9'"),
        ("grow", None, UnknownId, "no team 'grow'"),
        ("squad-1", "q9", UnknownId, "no cycle 'q9'"),
    ],
)
def test_a_capacity_needs_a_known_squad_and_cycle(
    portfolio: Portfolio, team_id: str, cycle_id: str | None, error: type[DomainError], says: str
) -> None:
    refused(portfolio, error, lambda: cap.set_capacity(portfolio, as_("cpo"), team_id, sprints=5, cycle_id=cycle_id), says)


def test_a_closed_cycle_takes_no_capacity_but_the_default_still_changes(portfolio: Portfolio) -> None:
    close_q3(portfolio)
    refused(
        portfolio,
        CycleClosed,
        lambda: cap.set_capacity(portfolio, as_("cpo"), "squad-1", sprints=5, cycle_id="q3"),
        "squad-1's capacity in it can no longer change",
    )
    cap.set_capacity(portfolio, as_("cpo"), "squad-1", sprints=5, cycle_id=None)


@pytest.mark.parametrize("principal", ["lead.sam", "pm.ana", "stranger", "auditor"])
def test_only_the_portfolio_lead_and_the_squads_product_lead_set_its_capacity(portfolio: Portfolio, principal: str) -> None:
    refused(
        portfolio,
        NotPermitted,
        lambda: cap.set_capacity(portfolio, as_(principal), "squad-1", sprints=5, cycle_id=None),
        "set a squad's capacity",
    )


def test_a_capacity_change_honours_the_teams_expected_version(portfolio: Portfolio) -> None:
    stale = refused(
        portfolio,
        VersionConflict,
        lambda: cap.set_capacity(portfolio, as_("cpo", expected=2), "squad-1", sprints=5, cycle_id=None),
        "squad-1 is at version 1, not 2",
    )
    assert stale.facts == {"current_version": 1}
    cap.set_capacity(portfolio, as_("cpo", expected=1), "squad-1", sprints=5, cycle_id=None)


# --- allocations ----------------------------------------------------------------------------------------------------


def test_an_allocation_is_recorded_new_then_changed_with_what_it_was(portfolio: Portfolio) -> None:
    cap.allocate(portfolio, as_("lead.bo"), "billing-grows", "squad-1", sprints=3)
    assert last(portfolio).items() >= {"type": "ObjectiveAllocated", "sprints": 3, "old_sprints": None, "aggregate_version": 2}.items()
    cap.allocate(portfolio, as_("lead.bo"), "billing-grows", "squad-1", sprints=2.5, reason="scope cut")
    assert last(portfolio).items() >= {"sprints": 2.5, "old_sprints": 3, "reason": "scope cut", "aggregate_version": 3}.items()
    cap.allocate(portfolio, as_("lead.bo"), "billing-grows", "squad-2", sprints=1)
    assert portfolio.state.objectives["billing-grows"].allocations == {"squad-1": 2.5, "squad-2": 1}


def test_an_allocation_beyond_the_squads_capacity_is_recorded_not_refused(portfolio: Portfolio) -> None:
    cap.set_capacity(portfolio, as_("cpo"), "squad-1", sprints=6, cycle_id=None)
    for objective_id in ("grow", "billing-grows", "search-finds"):
        cap.allocate(portfolio, as_("cpo"), objective_id, "squad-1", sprints=3)
    taken = sum(o.allocations.get("squad-1", 0) for o in portfolio.state.objectives.values())
    assert (taken, portfolio.state.teams["squad-1"].capacity) == (9, 6)


def test_an_unchanged_or_empty_allocation_is_refused(portfolio: Portfolio) -> None:
    cap.allocate(portfolio, as_("cpo"), "billing-grows", "squad-1", sprints=3)
    refused(
        portfolio,
        InvalidCommand,
        lambda: cap.allocate(portfolio, as_("cpo"), "billing-grows", "squad-1", sprints=3.0),
        "billing-grows already takes 3 sprints of squad-1",
    )
    refused(portfolio, InvalidCommand, lambda: cap.allocate(portfolio, as_("cpo"), "billing-grows", "squad-1", sprints=0), "remove it")


@pytest.mark.parametrize(
    ("objective_id", "team_id", "error", "says"),
    [
        ("nope", "squad-1", UnknownId, "no objective 'nope'"),
        ("billing-grows", "squad-9", UnknownId, "no team 'squad-9'"),
        ("billing-grows", "billing", UnknownId, "no team 'billing'"),
    ],
)
def test_an_allocation_needs_a_known_objective_and_squad(
    portfolio: Portfolio, objective_id: str, team_id: str, error: type[DomainError], says: str
) -> None:
    refused(portfolio, error, lambda: cap.allocate(portfolio, as_("cpo"), objective_id, team_id, sprints=2), says)


def test_an_objective_of_a_closed_cycle_takes_no_allocation(portfolio: Portfolio) -> None:
    close_q3(portfolio)
    refused(
        portfolio,
        CycleClosed,
        lambda: cap.allocate(portfolio, as_("cpo"), "billing-grows", "squad-1", sprints=2),
        "cycle q3 was scored at 2026-08-12 09:00:00+00:00; the allocations and tags of its objective billing-grows can no longer change",
    )
    cap.allocate(portfolio, as_("cpo"), "next-quarter", "squad-1", sprints=2)


@pytest.mark.parametrize(
    ("principal", "objective_id"),
    [("lead.sam", "billing-grows"), ("pm.ana", "billing-grows"), ("lead.bo", "grow"), ("auditor", "billing-grows")],
)
def test_only_the_portfolio_lead_and_the_objectives_product_lead_allocate(portfolio: Portfolio, principal: str, objective_id: str) -> None:
    refused(
        portfolio,
        NotPermitted,
        lambda: cap.allocate(portfolio, as_(principal), objective_id, "squad-1", sprints=2),
        "allocate an objective to a squad",
    )


def test_an_allocation_honours_the_objectives_expected_version(portfolio: Portfolio) -> None:
    cap.allocate(portfolio, as_("cpo", expected=1), "billing-grows", "squad-1", sprints=2)
    refused(
        portfolio,
        VersionConflict,
        lambda: cap.allocate(portfolio, as_("cpo", expected=1), "billing-grows", "squad-1", sprints=3),
        "billing-grows is at version 2, not 1",
    )


def test_a_removed_allocation_frees_its_sprints_with_the_reason(portfolio: Portfolio) -> None:
    cap.allocate(portfolio, as_("cpo"), "billing-grows", "squad-1", sprints=3)
    cap.allocate(portfolio, as_("cpo"), "billing-grows", "squad-2", sprints=1)
    cap.remove_allocation(portfolio, as_("lead.bo"), "billing-grows", "squad-1", reason="moved to squad 2")
    assert last(portfolio).items() >= {"type": "AllocationRemoved", "old_sprints": 3, "reason": "moved to squad 2"}.items()
    assert portfolio.state.objectives["billing-grows"].allocations == {"squad-2": 1}


def test_only_an_allocation_that_exists_is_removed(portfolio: Portfolio) -> None:
    missing = refused(
        portfolio,
        UnknownId,
        lambda: cap.remove_allocation(portfolio, as_("cpo"), "billing-grows", "squad-1", reason="x"),
        "billing-grows has no allocation to squad-1 to remove",
    )
    assert missing.facts == {"id": "squad-1", "kind": "allocation"}
    refused(portfolio, UnknownId, lambda: cap.remove_allocation(portfolio, as_("cpo"), "billing-grows", "squad-9", reason="x"), "no team")


def test_an_allocation_is_removed_only_by_those_who_allocate_and_not_in_a_closed_cycle(portfolio: Portfolio) -> None:
    cap.allocate(portfolio, as_("cpo"), "billing-grows", "squad-1", sprints=3)

    def remove(who: str) -> Callable[[], None]:
        return lambda: cap.remove_allocation(portfolio, as_(who), "billing-grows", "squad-1", reason="x")

    refused(portfolio, NotPermitted, remove("lead.sam"), "may remove an objective's allocation")
    close_q3(portfolio)
    refused(portfolio, CycleClosed, remove("cpo"), "can no longer change")


# --- classification -------------------------------------------------------------------------------------------------


def test_a_classification_states_all_three_tags(portfolio: Portfolio) -> None:
    cap.classify_objective(portfolio, as_("lead.bo"), "billing-grows", priority=PRIMARY, aarrr_stage=RETENTION, horizon=GROW)
    assert last(portfolio).items() >= {"priority": "primary", "aarrr_stage": "retention", "horizon": "grow"}.items()
    cap.classify_objective(portfolio, as_("lead.bo"), "billing-grows", priority=SECONDARY, aarrr_stage=None, horizon=GROW)
    billing = portfolio.state.objectives["billing-grows"]
    assert (billing.classification, billing.version) == ((SECONDARY, None, GROW), 3)


def test_a_classification_that_changes_nothing_is_refused(portfolio: Portfolio) -> None:
    unclassified: dict[str, Any] = {"priority": None, "aarrr_stage": None, "horizon": None}
    refused(
        portfolio,
        InvalidCommand,
        lambda: cap.classify_objective(portfolio, as_("cpo"), "grow", **unclassified),
        "grow is already classified so: priority none, aarrr_stage none, horizon none",
    )
    cap.classify_objective(portfolio, as_("cpo"), "grow", **{**unclassified, "horizon": GROW})
    refused(
        portfolio,
        InvalidCommand,
        lambda: cap.classify_objective(portfolio, as_("cpo"), "grow", **{**unclassified, "horizon": GROW}),
        "horizon grow",
    )


def test_a_classification_needs_a_known_objective_of_an_open_cycle_and_the_right_lead(portfolio: Portfolio) -> None:
    tags: dict[str, Any] = {"priority": PRIMARY, "aarrr_stage": None, "horizon": None}
    refused(portfolio, UnknownId, lambda: cap.classify_objective(portfolio, as_("cpo"), "nope", **tags), "no objective 'nope'")
    refused(portfolio, NotPermitted, lambda: cap.classify_objective(portfolio, as_("lead.bo"), "grow", **tags), "only the portfolio lead")
    refused(
        portfolio,
        NotPermitted,
        lambda: cap.classify_objective(portfolio, as_("pm.ana"), "billing-grows", **tags),
        "may classify an objective",
    )
    refused(
        portfolio,
        VersionConflict,
        lambda: cap.classify_objective(portfolio, as_("cpo", expected=4), "billing-grows", **tags),
        "is at version 1",
    )
    close_q3(portfolio)
    refused(portfolio, CycleClosed, lambda: cap.classify_objective(portfolio, as_("cpo"), "billing-grows", **tags), "no longer change")


# --- the intended balance -------------------------------------------------------------------------------------------


def test_the_intended_balance_starts_at_70_20_10_and_changes_on_the_portfolio(portfolio: Portfolio) -> None:
    state = portfolio.state
    assert (state.balance, state.margin) == (Balance(), 0.1)
    version = state.portfolio.version
    cap.intend_balance(portfolio, as_("cpo"), intended=Balance(primary=0.6, secondary=0.3, exploration=0.1), margin=0.05, reason="x")
    assert (state.balance.primary, state.margin, state.portfolio.version) == (0.6, 0.05, version + 1)
    assert last(portfolio).items() >= {"type": "BalanceIntended", "aggregate_id": "acme", "aggregate_version": version + 1}.items()


def test_a_balance_is_set_only_by_the_portfolio_lead_when_it_changes(portfolio: Portfolio) -> None:

    def intend(who: str, margin: float, expected: int | None = None) -> Callable[[], None]:
        return lambda: cap.intend_balance(portfolio, as_(who, expected=expected), intended=Balance(), margin=margin)

    refused(portfolio, NotPermitted, intend("lead.bo", 0.2), "only the portfolio lead may set the intended balance")
    refused(portfolio, InvalidCommand, intend("cpo", 0.1), "already 0.7/0.2/0.1 (primary/secondary/exploration) with a margin of 0.1")
    refused(portfolio, VersionConflict, intend("cpo", 0.2, expected=2), "acme is at version 1, not 2")
    refused(portfolio, InvalidCommand, intend("cpo", 1.5), "margin: Input should be less than or equal to 1")


# --- replay ---------------------------------------------------------------------------------------------------------


def test_folding_the_recorded_events_again_gives_the_same_state(portfolio: Portfolio) -> None:
    cap.set_capacity(portfolio, as_("cpo"), "squad-1", sprints=6, cycle_id=None)
    cap.set_capacity(portfolio, as_("cpo"), "squad-1", sprints=4, cycle_id="q3")
    cap.allocate(portfolio, as_("cpo"), "billing-grows", "squad-1", sprints=3)
    cap.allocate(portfolio, as_("cpo"), "search-finds", "squad-1", sprints=2)
    cap.allocate(portfolio, as_("cpo"), "search-finds", "squad-2", sprints=2)
    cap.remove_allocation(portfolio, as_("cpo"), "search-finds", "squad-1", reason="squad 2 does it")
    cap.classify_objective(portfolio, as_("cpo"), "grow", priority=PRIMARY, aarrr_stage=RETENTION, horizon=None)
    cap.intend_balance(portfolio, as_("cpo"), intended=Balance(primary=0.5, secondary=0.3, exploration=0.2), margin=0.15)
    events = list(portfolio.pending_events)
    replayed = Portfolio(events[0].record, events[0].meta)  # type: ignore[attr-defined]
    for event in events[1:]:
        replayed.fold(event.record, event.meta)  # type: ignore[attr-defined]
    assert portfolio_view(replayed.state) == portfolio_view(portfolio.state)
    assert replayed.state.objectives["search-finds"].allocations == {"squad-2": 2}

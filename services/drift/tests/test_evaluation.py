"""A portfolio's drift driven through contract envelopes: alerts raised, kept, acknowledged and resolved.

Each input is applied the way the service applies it and evaluated at the moment it
happened; a tick evaluates every node. The fixture ``portfolio`` is seeded the day
before the 100-day cycle starts: product billing (lead.bo), team payments
(lead.sam), objective obj-billing and the key result kr-activation owned by pm.ana,
in the portfolio led by cpo.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from okr_contracts.alerts import AlertAcknowledged, AlertRaised, AlertResolved, DriftRule
from okr_contracts.kr_events import CheckInRecorded, DriftThresholds, KeyResultKind, PortfolioDefined, RollupMethod
from okr_drift.domain.alerts import AlertClosed, AlertState, Change

KR = "kr-activation"
OBJECTIVE = "obj-billing"
LEFT_THE_LIVE_SET = "no longer in a live cycle (retired, removed, or the cycle closed)"


def outline(changes: list[Change]) -> list[tuple[str, DriftRule, str]]:
    """What changed, in a stable order: (event type, rule, node)."""
    return sorted((change.event.event_type(), change.alert.rule, change.alert.node_id) for change in changes)


def raised(rule: DriftRule, node: str = KR) -> tuple[str, DriftRule, str]:
    return ("AlertRaised", rule, node)


def resolved(rule: DriftRule, node: str = KR) -> tuple[str, DriftRule, str]:
    return ("AlertResolved", rule, node)


def steady(portfolio: Any, at_day: Callable[..., datetime], until: int, step: float = 0.02) -> None:
    """Weekly check-ins at confidence 0.7 up to day `until`, progress moving by `step` an hour before each: nothing to say."""
    for week, n in enumerate(range(7, until + 1, 7), start=1):
        assert portfolio.score(at_day(n) - timedelta(hours=1), round(step * week, 4)) == []
        assert portfolio.check_in(at_day(n), 0.7) == []


# --- stale: raised once, resolved by an update -------------------------------------------------------------------


def test_stale_is_raised_once_by_the_tick_at_day_14_and_not_again_on_later_ticks(portfolio: Any, at_day: Any) -> None:
    assert portfolio.tick(at_day(13, hours=23, minutes=59)) == []
    changes = portfolio.tick(at_day(14))
    assert outline(changes) == [raised(DriftRule.STALE)]
    event = changes[0].event
    assert isinstance(event, AlertRaised)
    assert (event.portfolio_id, event.raised_at, event.recipients) == ("acme", at_day(14), ("pm.ana",))
    assert event.asked == "Update it, retire it or escalate it within 7 days"
    assert changes[0].alert.state == AlertState.OPEN
    assert portfolio.tick(at_day(14, minutes=1)) == []
    assert portfolio.tick(at_day(20)) == []
    assert outline(portfolio.tick(at_day(21))) == [raised(DriftRule.RETIRE_RECOMMENDED)]
    assert portfolio.tick(at_day(22)) == []


def test_the_next_check_in_resolves_a_stale_alert_and_says_so(portfolio: Any, at_day: Any) -> None:
    assert portfolio.score(at_day(5), 0.1) == []
    (stale,) = portfolio.tick(at_day(14))
    changes = portfolio.check_in(at_day(15), 0.8)
    assert outline(changes) == [resolved(DriftRule.STALE)]
    event = changes[0].event
    assert isinstance(event, AlertResolved)
    assert (event.alert_id, event.reason, event.resolved_at) == (stale.alert.alert_id, "check-in recorded", at_day(15))
    assert (changes[0].alert.state, changes[0].alert.resolved_reason) == (AlertState.RESOLVED, "check-in recorded")
    assert portfolio.drift.book.open_for(KR) == {}


def test_a_value_resolves_a_stale_alert(portfolio: Any, at_day: Any) -> None:
    portfolio.tick(at_day(14))
    changes = portfolio.value(at_day(15), 27.0)
    assert outline(changes) == [resolved(DriftRule.STALE)]
    assert changes[0].alert.resolved_reason == "value recorded"


def test_an_escalation_resolves_a_stale_alert(portfolio: Any, at_day: Any) -> None:
    portfolio.tick(at_day(14))
    changes = portfolio.escalate(at_day(16))
    assert outline(changes) == [resolved(DriftRule.STALE)]
    assert changes[0].alert.resolved_reason == "escalated"


def test_a_key_result_stale_again_after_an_update_gets_a_new_alert(portfolio: Any, at_day: Any) -> None:
    assert portfolio.score(at_day(5), 0.1) == []
    (first,) = portfolio.tick(at_day(14))
    portfolio.check_in(at_day(15), 0.8)
    (second,) = portfolio.tick(at_day(29))
    assert outline([second]) == [raised(DriftRule.STALE)]
    assert second.alert.alert_id != first.alert.alert_id
    assert second.alert.facts["last_update"] == at_day(15).isoformat()


def test_a_check_in_imported_from_the_past_does_not_make_the_key_result_look_idle(portfolio: Any, at_day: Any) -> None:
    assert portfolio.check_in(at_day(10), 0.7) == []
    assert portfolio.score(at_day(10, hours=1), 0.1) == []
    imported = portfolio.event(CheckInRecorded, KR, at_day(3), kr_id=KR, confidence=0.2, what_changed="imported from the old tool")
    assert portfolio.deliver(imported, at_day(21)) == []
    assert (portfolio.drift.state.krs[KR].confidence, portfolio.drift.state.krs[KR].low_since) == (0.7, None)
    assert portfolio.tick(at_day(23, hours=23, minutes=59)) == []
    changes = portfolio.tick(at_day(24))
    assert outline(changes) == [raised(DriftRule.STALE)]
    assert changes[0].alert.facts["last_update"] == at_day(10).isoformat()


# --- redelivery ---------------------------------------------------------------------------------------------------


def test_a_redelivered_history_event_returns_none_and_raises_nothing_twice(portfolio: Any, at_day: Any) -> None:
    assert portfolio.score(at_day(5), 0.1) == []
    assert portfolio.check_in(at_day(10), 0.8) == []
    check_in = portfolio.envelopes[-1]
    assert isinstance(check_in.data, CheckInRecorded)
    assert outline(portfolio.tick(at_day(24))) == [raised(DriftRule.STALE)]

    for envelope in portfolio.envelopes:
        assert portfolio.deliver(envelope, at_day(25)) is None
    assert portfolio.drift.state.apply_history(check_in.data, at_day(25)) is None
    assert len(portfolio.drift.state.krs[KR].recent_checkins) == 1
    assert portfolio.tick(at_day(25)) == []
    assert list(portfolio.drift.book.open_for(KR)) == [DriftRule.STALE]


def test_a_redelivered_score_or_work_item_change_returns_none(portfolio: Any, at_day: Any) -> None:
    assert portfolio.score(at_day(5), 0.1) == []
    assert portfolio.score(at_day(5), 0.1) is None
    assert portfolio.score(at_day(4), 0.3) is None  # older than the last record
    assert portfolio.work_item(at_day(6), "ENG-1") == []
    assert portfolio.work_item(at_day(6), "ENG-1") is None
    assert portfolio.work_item(at_day(5), "ENG-1", done=False) is None


# --- off-track and recovery plans ---------------------------------------------------------------------------------


def test_a_low_check_in_past_mid_cycle_raises_off_track_and_a_recovery_plan_resolves_it(portfolio: Any, at_day: Any) -> None:
    steady(portfolio, at_day, 49)
    assert portfolio.score(at_day(54), 0.16) == []
    changes = portfolio.check_in(at_day(55), 0.3)
    assert outline(changes) == [raised(DriftRule.OFF_TRACK)]
    event = changes[0].event
    assert isinstance(event, AlertRaised)
    assert event.recipients == ("pm.ana", "lead.bo")
    assert event.facts["low_since"] == at_day(55).isoformat()

    changes = portfolio.plan(at_day(57))
    assert outline(changes) == [resolved(DriftRule.OFF_TRACK)]
    assert changes[0].alert.resolved_reason == "recovery plan filed (change_tactic, owner pm.ana)"

    assert portfolio.score(at_day(61), 0.18) == []
    assert portfolio.check_in(at_day(62), 0.3) == []  # still low, but the plan covers this run
    assert portfolio.tick(at_day(70)) == []


def test_a_low_check_in_before_mid_cycle_is_raised_off_track_by_the_tick_at_the_mark(portfolio: Any, at_day: Any) -> None:
    steady(portfolio, at_day, 42)
    assert portfolio.score(at_day(44), 0.15) == []
    assert portfolio.check_in(at_day(45), 0.3) == []
    assert portfolio.tick(at_day(49, hours=23, minutes=59)) == []
    changes = portfolio.tick(at_day(50))
    assert outline(changes) == [raised(DriftRule.OFF_TRACK)]
    assert changes[0].alert.facts["low_since"] == at_day(45).isoformat()


def test_without_a_plan_off_track_is_escalated_to_everyone_14_days_after_the_mark(portfolio: Any, at_day: Any) -> None:
    steady(portfolio, at_day, 42)
    assert portfolio.score(at_day(44), 0.15) == []
    assert portfolio.check_in(at_day(45), 0.3) == []
    assert outline(portfolio.tick(at_day(50))) == [raised(DriftRule.OFF_TRACK)]
    assert portfolio.score(at_day(57), 0.16) == []
    assert portfolio.check_in(at_day(57), 0.35) == []
    assert portfolio.tick(at_day(63, hours=23, minutes=59)) == []
    changes = portfolio.tick(at_day(64))
    assert outline(changes) == [raised(DriftRule.PLAN_OVERDUE)]
    event = changes[0].event
    assert isinstance(event, AlertRaised)
    assert event.recipients == ("pm.ana", "lead.bo", "cpo")
    assert event.facts["off_track_since"] == at_day(50).isoformat()

    changes = portfolio.plan(at_day(65))
    assert outline(changes) == [resolved(DriftRule.OFF_TRACK), resolved(DriftRule.PLAN_OVERDUE)]


# --- acknowledging ------------------------------------------------------------------------------------------------


def test_an_acknowledged_alert_stays_open_and_is_not_raised_again(portfolio: Any, at_day: Any) -> None:
    book = portfolio.drift.book
    assert portfolio.score(at_day(5), 0.1) == []
    (stale,) = portfolio.tick(at_day(14))
    ack = book.acknowledge(stale.alert, "pm.ana", "back on Monday", at_day(14, hours=3))
    assert ack is not None
    assert isinstance(ack.event, AlertAcknowledged)
    assert (ack.event.alert_id, ack.event.by, ack.event.note) == (stale.alert.alert_id, "pm.ana", "back on Monday")
    assert ack.event_id != stale.event_id
    assert book.by_id[stale.alert.alert_id].state == AlertState.ACKNOWLEDGED
    assert book.by_id[stale.alert.alert_id].is_open

    assert portfolio.tick(at_day(16)) == []
    assert book.acknowledge(book.by_id[stale.alert.alert_id], "lead.bo", "", at_day(16)) is None  # the first acknowledgement stands

    changes = portfolio.check_in(at_day(17), 0.7)
    assert outline(changes) == [resolved(DriftRule.STALE)]
    assert (changes[0].alert.acknowledged_by, changes[0].alert.state) == ("pm.ana", AlertState.RESOLVED)


def test_acknowledging_a_resolved_alert_is_refused(portfolio: Any, at_day: Any) -> None:
    assert portfolio.score(at_day(5), 0.1) == []
    portfolio.tick(at_day(14))
    (done,) = portfolio.check_in(at_day(15), 0.7)
    with pytest.raises(AlertClosed):
        portfolio.drift.book.acknowledge(done.alert, "pm.ana", "", at_day(16))


# --- leaving the live set -----------------------------------------------------------------------------------------


def test_retiring_a_key_result_resolves_its_open_alerts(portfolio: Any, at_day: Any) -> None:
    assert outline(portfolio.tick(at_day(21))) == [raised(DriftRule.RETIRE_RECOMMENDED), raised(DriftRule.STALE)]
    changes = portfolio.retire(at_day(22))
    assert outline(changes) == [resolved(DriftRule.RETIRE_RECOMMENDED), resolved(DriftRule.STALE)]
    assert {change.alert.resolved_reason for change in changes} == {LEFT_THE_LIVE_SET}
    assert portfolio.drift.book.open_for(KR) == {}
    assert portfolio.tick(at_day(40)) == []


def test_scoring_the_cycle_resolves_its_alerts_and_nothing_is_raised_after(portfolio: Any, at_day: Any) -> None:
    assert portfolio.objective("obj-2", at_day(1)) == []
    assert portfolio.objective("obj-3", at_day(1)) == []
    assert outline(portfolio.objective("obj-4", at_day(1))) == [raised(DriftRule.TOO_MANY_OBJECTIVES, "payments")]
    assert outline(portfolio.tick(at_day(14))) == [raised(DriftRule.STALE)]
    changes = portfolio.close_cycle(at_day(15))
    assert outline(changes) == [resolved(DriftRule.STALE), resolved(DriftRule.TOO_MANY_OBJECTIVES, "payments")]
    assert portfolio.tick(at_day(30)) == []


def test_the_end_of_the_cycle_resolves_its_alerts_on_the_next_tick(portfolio: Any, at_day: Any) -> None:
    assert outline(portfolio.tick(at_day(99))) == [raised(DriftRule.RETIRE_RECOMMENDED), raised(DriftRule.STALE)]
    assert portfolio.tick(at_day(99, hours=23, minutes=59)) == []
    changes = portfolio.tick(at_day(100))
    assert outline(changes) == [resolved(DriftRule.RETIRE_RECOMMENDED), resolved(DriftRule.STALE)]
    assert {change.alert.resolved_reason for change in changes} == {LEFT_THE_LIVE_SET}


# --- identity -----------------------------------------------------------------------------------------------------


def test_the_same_facts_name_the_same_alert_in_a_fresh_drift(portfolio: Any, at_day: Any) -> None:
    assert portfolio.score(at_day(5), 0.1) == []
    (first,) = portfolio.tick(at_day(14))
    assert first.alert.alert_id.startswith("stale:kr-activation:")

    rebuilt = portfolio.rebuilt()
    (again,) = rebuilt.evaluate(at_day(14))
    assert (again.alert.alert_id, again.event_id) == (first.alert.alert_id, first.event_id)
    (later,) = portfolio.rebuilt().evaluate(at_day(16))  # evaluated later: the same occurrence, the same alert
    assert (later.alert.alert_id, later.event_id) == (first.alert.alert_id, first.event_id)


def test_alert_ids_differ_between_portfolios(seeded_portfolio: Any, at_day: Any) -> None:
    ids = {pid: [c.alert.alert_id for c in seeded_portfolio(pid).tick(at_day(14))] for pid in ("acme", "globex")}
    assert len(ids["acme"]) == len(ids["globex"]) == 1
    assert ids["acme"] != ids["globex"]


# --- recipients ---------------------------------------------------------------------------------------------------


def test_recipients_are_the_key_result_owner_the_product_lead_and_the_portfolio_lead_as_the_rule_asks(portfolio: Any, at_day: Any) -> None:
    changes = [change for n in (2, 3, 4, 5, 6) for change in portfolio.key_result(f"kr-{n}", at_day(1))]
    changes += [change for n in (2, 3, 4) for change in portfolio.objective(f"obj-{n}", at_day(1))]
    changes += portfolio.tick(at_day(21))
    recipients = {(c.alert.rule, c.alert.node_id): c.alert.recipients for c in changes}
    assert recipients[(DriftRule.STALE, KR)] == ("pm.ana",)
    assert recipients[(DriftRule.RETIRE_RECOMMENDED, KR)] == ("pm.ana", "lead.bo")
    assert recipients[(DriftRule.TOO_MANY_KEY_RESULTS, OBJECTIVE)] == ("lead.bo",)  # owner and product lead are one person
    assert recipients[(DriftRule.TOO_MANY_OBJECTIVES, "payments")] == ("lead.sam",)


def test_an_alert_carries_its_subject_for_the_read_api(portfolio: Any, at_day: Any) -> None:
    (stale,) = portfolio.tick(at_day(14))
    subject = stale.alert.subject
    assert (subject.node_kind, subject.title, subject.product_id, subject.owner, subject.cycle_id) == (
        "key_result",
        "Raise activation from 20% to 40%",
        "billing",
        "pm.ana",
        "2026-Q3",
    )


# --- the other rules through their inputs -------------------------------------------------------------------------


def test_a_key_result_defined_as_an_output_without_baseline_is_raised_at_once_and_resolved_when_redefined(
    portfolio: Any, at_day: Any
) -> None:
    changes = portfolio.key_result("kr-onboarding", at_day(2), title="Ship the new onboarding", baseline=None)
    assert outline(changes) == [raised(DriftRule.NOT_MEASURABLE, "kr-onboarding"), raised(DriftRule.OUTPUT_PHRASED, "kr-onboarding")]
    changes = portfolio.key_result("kr-onboarding", at_day(3), title="Increase activation from 20% to 40%")
    assert outline(changes) == [resolved(DriftRule.NOT_MEASURABLE, "kr-onboarding"), resolved(DriftRule.OUTPUT_PHRASED, "kr-onboarding")]
    assert {c.alert.resolved_reason for c in changes} == {"baseline and target set", "rephrased as an outcome"}
    assert portfolio.key_result("kr-derived", at_day(3), kind=KeyResultKind.DERIVED, baseline=None, target=None) == []


def test_confidence_falling_at_three_check_ins_is_raised_and_resolved_when_it_holds(portfolio: Any, at_day: Any) -> None:
    steady(portfolio, at_day, 14)
    assert portfolio.score(at_day(20), 0.06) == []
    assert portfolio.check_in(at_day(21), 0.6) == []  # 0.7 → 0.7 → 0.6
    assert portfolio.score(at_day(27), 0.08) == []
    changes = portfolio.check_in(at_day(28), 0.5)  # 0.7 → 0.6 → 0.5
    assert outline(changes) == [raised(DriftRule.CONFIDENCE_FALLING)]
    assert portfolio.score(at_day(34), 0.1) == []
    changes = portfolio.check_in(at_day(35), 0.5)  # 0.6 → 0.5 → 0.5
    assert outline(changes) == [resolved(DriftRule.CONFIDENCE_FALLING)]


def test_progress_flat_for_14_days_while_check_ins_continue_is_raised_not_moving(portfolio: Any, at_day: Any) -> None:
    steady(portfolio, at_day, 14)  # progress 0.04 since day 13, 23:00
    assert portfolio.check_in(at_day(21), 0.7) == []
    changes = portfolio.check_in(at_day(28), 0.7)  # 14 days and an hour unchanged
    assert outline(changes) == [raised(DriftRule.NOT_MOVING)]
    assert outline(portfolio.score(at_day(29), 0.1)) == [resolved(DriftRule.NOT_MOVING)]


def test_linked_work_done_while_progress_stays_flat_is_raised_busy_but_flat(portfolio: Any, at_day: Any) -> None:
    steady(portfolio, at_day, 35, step=0.01)  # progress 0.01 at day 9, 0.05 since day 34, 23:00
    for n, key in enumerate(("ENG-1", "ENG-2", "ENG-3")):
        assert portfolio.work_item(at_day(36 + n), key) == []
    changes = portfolio.work_item(at_day(39), "ENG-4")
    assert outline(changes) == [raised(DriftRule.BUSY_BUT_FLAT)]
    assert changes[0].alert.facts["items_done"] == 4
    assert changes[0].alert.facts["progress_gained"] == 0.04

    changes = portfolio.score(at_day(40), 0.06)  # gained 0.05 since day 10: no longer flat
    assert outline(changes) == [resolved(DriftRule.BUSY_BUT_FLAT)]


def test_a_value_reported_with_a_check_in_moves_progress_although_both_are_scored_as_of_the_same_moment(
    portfolio: Any, at_day: Any
) -> None:
    steady(portfolio, at_day, 7)  # progress 0.02 since day 6, 23:00
    assert portfolio.check_in(at_day(14), 0.7) == []
    assert portfolio.score(at_day(14), 0.02, source="event-of-the-check-in") == []  # its confidence changed the record
    assert portfolio.score(at_day(14), 0.3, source="event-of-its-value") == []
    assert portfolio.score(at_day(14), 0.3, source="event-of-its-value") is None  # redelivered
    assert portfolio.score(at_day(14), 0.02, source="event-of-the-check-in") is None
    assert portfolio.check_in(at_day(21), 0.7) == []  # progress moved on day 14: not 14 days flat


def test_a_key_result_carried_into_the_next_cycle_is_watched_there(portfolio: Any, at_day: Any) -> None:
    q4_starts = portfolio.drift.state.cycles["2026-Q3"].ends_on + timedelta(days=1)
    assert portfolio.start_cycle("2026-Q4", at_day(90), q4_starts, q4_starts + timedelta(days=91)) == []
    assert outline(portfolio.tick(at_day(99))) == [raised(DriftRule.RETIRE_RECOMMENDED), raised(DriftRule.STALE)]
    changes = portfolio.close_cycle(at_day(100), carried=(KR,), next_cycle="2026-Q4")
    assert outline(changes) == [resolved(DriftRule.RETIRE_RECOMMENDED), resolved(DriftRule.STALE)]
    assert {change.alert.resolved_reason for change in changes} == {"cycle started"}  # its stale clock restarts with Q4
    assert portfolio.tick(at_day(113, hours=23, minutes=59)) == []
    changes = portfolio.tick(at_day(114))
    assert outline(changes) == [raised(DriftRule.STALE)]
    assert changes[0].alert.subject.cycle_id == "2026-Q4"


def test_a_condition_that_returns_after_it_cleared_gets_a_new_alert_id(portfolio: Any, at_day: Any) -> None:
    for n in (2, 3, 4, 5):
        assert portfolio.key_result(f"kr-{n}", at_day(1)) == []
    (first,) = portfolio.key_result("kr-6", at_day(1))
    (cleared,) = portfolio.retire(at_day(2), "kr-6")
    (second,) = portfolio.key_result("kr-7", at_day(3))
    assert (first.alert.rule, second.alert.rule) == (DriftRule.TOO_MANY_KEY_RESULTS, DriftRule.TOO_MANY_KEY_RESULTS)
    assert cleared.alert.alert_id == first.alert.alert_id
    assert second.alert.alert_id == f"{first.alert.alert_id}.2"
    assert len({first.event_id, cleared.event_id, second.event_id}) == 3


def test_too_many_key_results_counts_only_live_ones(portfolio: Any, at_day: Any) -> None:
    for n in (2, 3, 4, 5):
        assert portfolio.key_result(f"kr-{n}", at_day(1)) == []
    assert portfolio.retire(at_day(2), "kr-5") == []
    assert portfolio.key_result("kr-6", at_day(2)) == []  # five live, one retired
    changes = portfolio.key_result("kr-7", at_day(3))
    assert outline(changes) == [raised(DriftRule.TOO_MANY_KEY_RESULTS, OBJECTIVE)]
    assert changes[0].alert.summary == "6 key results on one objective (at most 5)"
    changes = portfolio.retire(at_day(4), "kr-7")
    assert outline(changes) == [resolved(DriftRule.TOO_MANY_KEY_RESULTS, OBJECTIVE)]


def test_too_many_objectives_counts_tier_2_and_3_objectives_of_one_team_in_a_live_cycle(portfolio: Any, at_day: Any) -> None:
    assert portfolio.objective("obj-portfolio", at_day(1), tier=1) == []  # tier 1 never counts
    assert portfolio.objective("obj-other-team", at_day(1), team="risk") == []
    assert portfolio.objective("obj-2", at_day(1)) == []
    assert portfolio.objective("obj-3", at_day(1)) == []  # three for payments
    changes = portfolio.objective("obj-4", at_day(1))
    assert outline(changes) == [raised(DriftRule.TOO_MANY_OBJECTIVES, "payments")]
    assert changes[0].alert.summary == "4 objectives for payments in cycle 2026-Q3 (at most 3)"
    changes = portfolio.objective("obj-4", at_day(2), team="risk")  # moved to another team
    assert outline(changes) == [resolved(DriftRule.TOO_MANY_OBJECTIVES, "payments")]


def test_new_thresholds_from_the_portfolio_apply_to_every_key_result_at_once(portfolio: Any, at_day: Any) -> None:
    assert portfolio.tick(at_day(8)) == []
    changes = portfolio.record(
        PortfolioDefined,
        "acme",
        at_day(8),
        name="Acme",
        owner="cpo",
        rollup_method=RollupMethod.WEIGHTED,
        drift=DriftThresholds(stale_days=7, retire_after_stale_days=10),
    )
    assert outline(changes) == [raised(DriftRule.STALE)]
    assert changes[0].alert.summary == "No check-in or value for 8 days (limit 7)"

"""Each drift rule at its boundary, as a pure function of a key result's facts, the thresholds and an explicit moment.

The cycle runs 100 days (fixture ``cycle``), so a share of it is a number of days:
day 50 is the mid-cycle mark. ``at_day(n)`` is midnight n days after it started.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from okr_contracts.alerts import Audience, DriftRule, Severity
from okr_contracts.kr_events import DriftThresholds, KeyResultKind
from okr_drift.domain.facts import (
    CheckIn,
    CycleFacts,
    DeliveryLog,
    KeyResultFacts,
    ObjectiveFacts,
    ProgressLog,
    ProgressPoint,
    RecoveryPlan,
)
from okr_drift.domain.rules import (
    KrContext,
    busy_but_flat,
    confidence_falling,
    not_measurable,
    not_moving,
    off_track,
    output_phrased,
    plan_overdue,
    retire_recommended,
    stale,
    too_many_key_results,
    too_many_objectives,
    why_cleared,
)

DEFAULTS = DriftThresholds()
OWNER_AND_LEAD = (Audience.OWNER, Audience.PRODUCT_LEAD)


def key_result(defined_at: datetime, **fields: Any) -> KeyResultFacts:
    """A metric key result with baseline and target, phrased as an outcome: no rule finds anything in its definition."""
    definition: dict[str, Any] = {
        "title": "Raise activation from 20% to 40%",
        "kind": KeyResultKind.METRIC,
        "baseline": 20.0,
        "target": 40.0,
        **fields,
    }
    return KeyResultFacts(
        kr_id="kr-activation", objective_id="obj-billing", cycle_id="2026-Q3", owner="pm.ana", defined_at=defined_at, **definition
    )


def checked_in(*checkins: tuple[datetime, float], threshold: float = DEFAULTS.off_track_confidence) -> dict[str, Any]:
    """The check-in facts after these check-ins, oldest first: the recent ones and the start of the current low run."""
    recent = [CheckIn(at=at, confidence=confidence, version=index) for index, (at, confidence) in enumerate(checkins, start=2)]
    low_since = None
    for checkin in recent:
        low_since = (low_since or checkin.at) if checkin.confidence < threshold else None
    return {"recent_checkins": recent[-3:], "low_since": low_since}


def progress(*points: tuple[datetime, float]) -> ProgressLog:
    return ProgressLog(kr_id="kr-activation", points=[ProgressPoint(at=at, progress=p) for at, p in points])


def delivered(*done: datetime | None) -> DeliveryLog:
    """Linked work items: each done at its moment, or not done (none)."""
    return DeliveryLog(
        kr_id="kr-activation",
        done_at={f"jira:ENG-{n}": at for n, at in enumerate(done)},
        changed_at={f"jira:ENG-{n}": at for n, at in enumerate(done) if at is not None},
    )


def context(
    at: datetime,
    kr: KeyResultFacts,
    cycle: CycleFacts,
    thresholds: DriftThresholds = DEFAULTS,
    progress: ProgressLog | None = None,
    delivery: DeliveryLog | None = None,
) -> KrContext:
    return KrContext(at, thresholds, kr, cycle, progress, delivery)


# --- stale and retire recommended --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("idle", "is_stale"),
    [
        (timedelta(days=13), False),
        (timedelta(days=13, hours=23, minutes=59), False),
        (timedelta(days=14), True),
        (timedelta(days=20), True),
    ],
)
def test_a_key_result_is_stale_from_14_days_without_check_in_or_value(
    at_day: Any, cycle: CycleFacts, idle: timedelta, is_stale: bool
) -> None:
    kr = key_result(at_day(-1), **checked_in((at_day(10), 0.7)))
    finding = stale(context(at_day(10) + idle, kr, cycle))
    assert (finding is not None) is is_stale


def test_a_stale_finding_names_the_last_update_and_gives_the_owner_a_week_to_act(at_day: Any, cycle: CycleFacts) -> None:
    kr = key_result(at_day(-1), **checked_in((at_day(10), 0.7)))
    finding = stale(context(at_day(24), kr, cycle))
    assert finding is not None
    assert (finding.rule, finding.node_id, finding.severity, finding.audience) == (
        DriftRule.STALE,
        "kr-activation",
        Severity.WARNING,
        (Audience.OWNER,),
    )
    assert finding.summary == "No check-in or value for 14 days (limit 14)"
    assert finding.asked == "Update it, retire it or escalate it within 7 days"
    assert finding.anchor == at_day(10).isoformat()
    assert finding.facts == {"idle_days": 14, "last_update": at_day(10).isoformat(), "stale_days": 14}


def test_a_value_resets_the_stale_clock(at_day: Any, cycle: CycleFacts) -> None:
    kr = key_result(at_day(-1), last_value_at=at_day(17), **checked_in((at_day(10), 0.7)))
    assert stale(context(at_day(24), kr, cycle)) is None
    assert stale(context(at_day(30, hours=23, minutes=59), kr, cycle)) is None
    finding = stale(context(at_day(31), kr, cycle))
    assert finding is not None
    assert finding.anchor == at_day(17).isoformat()
    assert why_cleared(DriftRule.STALE, context(at_day(24), kr, cycle)) == "value recorded"


def test_an_escalation_resets_the_stale_clock(at_day: Any, cycle: CycleFacts) -> None:
    kr = key_result(at_day(-1), last_escalated_at=at_day(20), **checked_in((at_day(10), 0.7)))
    assert stale(context(at_day(33, hours=23, minutes=59), kr, cycle)) is None
    assert stale(context(at_day(34), kr, cycle)) is not None
    assert why_cleared(DriftRule.STALE, context(at_day(24), kr, cycle)) == "escalated"


def test_a_key_result_never_updated_is_stale_14_days_after_the_later_of_its_definition_and_its_cycle_start(
    at_day: Any, cycle: CycleFacts
) -> None:
    defined_before = key_result(at_day(-10))
    assert stale(context(at_day(13, hours=23, minutes=59), defined_before, cycle)) is None
    assert stale(context(at_day(14), defined_before, cycle)) is not None
    defined_later = key_result(at_day(5))
    assert stale(context(at_day(18, hours=23, minutes=59), defined_later, cycle)) is None
    assert stale(context(at_day(19), defined_later, cycle)) is not None


@pytest.mark.parametrize(("idle_days", "recommended"), [(20, False), (21, True)])
def test_retiring_is_recommended_after_21_days_without_update(at_day: Any, cycle: CycleFacts, idle_days: int, recommended: bool) -> None:
    kr = key_result(at_day(-1), **checked_in((at_day(3), 0.7)))
    finding = retire_recommended(context(at_day(3 + idle_days), kr, cycle))
    assert (finding is not None) is recommended
    if finding is not None:
        assert (finding.severity, finding.audience) == (Severity.WARNING, OWNER_AND_LEAD)
        assert finding.facts == {"idle_days": 21, "last_update": at_day(3).isoformat(), "retire_after_stale_days": 21}


def test_retiring_is_not_recommended_just_before_21_days(at_day: Any, cycle: CycleFacts) -> None:
    kr = key_result(at_day(-1), **checked_in((at_day(3), 0.7)))
    assert retire_recommended(context(at_day(23, hours=23, minutes=59), kr, cycle)) is None


def test_the_stale_and_retire_thresholds_are_the_portfolios(at_day: Any, cycle: CycleFacts) -> None:
    thresholds = DriftThresholds(stale_days=7, retire_after_stale_days=10)
    kr = key_result(at_day(-1), **checked_in((at_day(10), 0.7)))
    assert stale(context(at_day(16, hours=23, minutes=59), kr, cycle, thresholds)) is None
    finding = stale(context(at_day(17), kr, cycle, thresholds))
    assert finding is not None
    assert finding.summary == "No check-in or value for 7 days (limit 7)"
    assert finding.asked == "Update it, retire it or escalate it within 3 days"
    assert retire_recommended(context(at_day(19, hours=23, minutes=59), kr, cycle, thresholds)) is None
    assert retire_recommended(context(at_day(20), kr, cycle, thresholds)) is not None


# --- off-track and plan overdue -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "elapsed_days", "is_off_track"),
    [
        (0.39, 49, False),
        (0.39, 50, True),
        (0.40, 50, False),
        (0.40, 49, False),
        (0.39, 60, True),
    ],
)
def test_a_key_result_is_off_track_below_confidence_040_once_half_the_cycle_is_gone(
    at_day: Any, cycle: CycleFacts, confidence: float, elapsed_days: int, is_off_track: bool
) -> None:
    kr = key_result(at_day(-1), **checked_in((at_day(45), confidence)))
    finding = off_track(context(at_day(elapsed_days), kr, cycle))
    assert (finding is not None) is is_off_track


def test_the_mid_cycle_mark_is_half_of_the_cycle_counted_to_midnight_after_its_last_day(at_day: Any, cycle: CycleFacts) -> None:
    kr = key_result(at_day(-1), **checked_in((at_day(45), 0.2)))
    assert off_track(context(at_day(49, hours=23, minutes=59), kr, cycle)) is None
    finding = off_track(context(at_day(50), kr, cycle))
    assert finding is not None
    assert (finding.rule, finding.severity, finding.audience) == (DriftRule.OFF_TRACK, Severity.WARNING, OWNER_AND_LEAD)
    assert finding.summary == "Confidence 0.2 (below 0.4) with 50% of the cycle gone"
    assert finding.anchor == at_day(45).isoformat()
    assert finding.facts == {"confidence": 0.2, "cycle_elapsed": 0.5, "off_track_confidence": 0.4, "low_since": at_day(45).isoformat()}


def test_the_off_track_episode_dates_from_the_first_low_check_in_of_the_run(at_day: Any, cycle: CycleFacts) -> None:
    kr = key_result(at_day(-1), **checked_in((at_day(40), 0.6), (at_day(47), 0.3), (at_day(54), 0.35)))
    finding = off_track(context(at_day(55), kr, cycle))
    assert finding is not None
    assert finding.anchor == at_day(47).isoformat()


def test_a_recovery_plan_filed_during_the_low_run_clears_off_track(at_day: Any, cycle: CycleFacts) -> None:
    plan = RecoveryPlan(at=at_day(52), option="change_tactic", owner="pm.ana", decision_needed="Two engineers")
    kr = key_result(at_day(-1), plan=plan, **checked_in((at_day(45), 0.3), (at_day(55), 0.25)))
    ctx = context(at_day(70), kr, cycle)
    assert off_track(ctx) is None
    assert plan_overdue(ctx) is None
    assert why_cleared(DriftRule.OFF_TRACK, ctx) == "recovery plan filed (change_tactic, owner pm.ana)"


def test_a_recovery_plan_filed_before_the_low_run_does_not_clear_it(at_day: Any, cycle: CycleFacts) -> None:
    plan = RecoveryPlan(at=at_day(30), option="change_target", owner="pm.ana", decision_needed="Lower the target")
    kr = key_result(at_day(-1), plan=plan, **checked_in((at_day(35), 0.6), (at_day(45), 0.3)))
    assert off_track(context(at_day(55), kr, cycle)) is not None


def test_off_track_clears_when_confidence_recovers(at_day: Any, cycle: CycleFacts) -> None:
    kr = key_result(at_day(-1), **checked_in((at_day(45), 0.3), (at_day(55), 0.5)))
    ctx = context(at_day(56), kr, cycle)
    assert off_track(ctx) is None
    assert why_cleared(DriftRule.OFF_TRACK, ctx) == "confidence 0.5 at the latest check-in"


@pytest.mark.parametrize(
    ("low_from", "off_track_from"),
    [(30, 50), (60, 60)],
    ids=["low-before-the-mark-counts-from-the-mark", "low-after-the-mark-counts-from-the-check-in"],
)
def test_the_plan_is_overdue_14_days_after_the_key_result_went_off_track(
    at_day: Any, cycle: CycleFacts, low_from: int, off_track_from: int
) -> None:
    kr = key_result(at_day(-1), **checked_in((at_day(low_from), 0.3)))
    assert off_track(context(at_day(off_track_from + 13), kr, cycle)) is not None
    assert plan_overdue(context(at_day(off_track_from + 13), kr, cycle)) is None
    assert plan_overdue(context(at_day(off_track_from + 13, hours=23, minutes=59), kr, cycle)) is None
    finding = plan_overdue(context(at_day(off_track_from + 14), kr, cycle))
    assert finding is not None
    assert (finding.severity, finding.audience) == (Severity.CRITICAL, (Audience.OWNER, Audience.PRODUCT_LEAD, Audience.PORTFOLIO_LEAD))
    assert finding.facts["off_track_days"] == 14
    assert finding.facts["off_track_since"] == at_day(off_track_from).isoformat()
    assert finding.anchor == at_day(low_from).isoformat()


def test_no_plan_is_overdue_once_a_plan_was_filed(at_day: Any, cycle: CycleFacts) -> None:
    plan = RecoveryPlan(at=at_day(62), option="change_resources", owner="lead.bo", decision_needed="Move a squad")
    kr = key_result(at_day(-1), plan=plan, **checked_in((at_day(40), 0.3)))
    assert plan_overdue(context(at_day(64), kr, cycle)) is None


def test_off_track_needs_a_check_in(at_day: Any, cycle: CycleFacts) -> None:
    assert off_track(context(at_day(80), key_result(at_day(-1)), cycle)) is None


# --- not moving ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("unchanged_days", "is_flat"), [(13, False), (14, True)])
def test_progress_unchanged_for_14_days_while_check_ins_continue_is_not_moving(
    at_day: Any, cycle: CycleFacts, unchanged_days: int, is_flat: bool
) -> None:
    kr = key_result(at_day(-1), **checked_in((at_day(12), 0.7), (at_day(20), 0.7)))
    log = progress((at_day(2), 0.1), (at_day(10), 0.3))
    finding = not_moving(context(at_day(10 + unchanged_days), kr, cycle, progress=log))
    assert (finding is not None) is is_flat
    if finding is not None:
        assert finding.summary == "Progress has stayed at 0.30 for 14 days although check-ins continue"
        assert finding.anchor == at_day(10).isoformat()
        assert finding.facts["last_checkin"] == at_day(20).isoformat()


def test_progress_never_scored_counts_as_unchanged_since_the_cycle_started(at_day: Any, cycle: CycleFacts) -> None:
    kr = key_result(at_day(-5), **checked_in((at_day(7), 0.7), (at_day(13), 0.7)))
    assert not_moving(context(at_day(13, hours=23, minutes=59), kr, cycle)) is None
    finding = not_moving(context(at_day(14), kr, cycle))
    assert finding is not None
    assert finding.facts["unchanged_since"] == at_day(0).isoformat()


def test_a_key_result_whose_check_ins_stopped_is_not_reported_as_not_moving(at_day: Any, cycle: CycleFacts) -> None:
    log = progress((at_day(10), 0.3))
    kr = key_result(at_day(-1), **checked_in((at_day(10), 0.7)))
    assert not_moving(context(at_day(24), kr, cycle, progress=log)) is None
    assert not_moving(context(at_day(30), key_result(at_day(-1)), cycle, progress=log)) is None


def test_a_key_result_at_full_progress_is_not_reported_as_not_moving(at_day: Any, cycle: CycleFacts) -> None:
    kr = key_result(at_day(-1), **checked_in((at_day(20), 0.9)))
    assert not_moving(context(at_day(30), kr, cycle, progress=progress((at_day(5), 1.0)))) is None


# --- confidence falling -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidences", "is_falling"),
    [
        ((0.7, 0.6, 0.5), True),
        ((0.9, 0.7, 0.6, 0.5), True),
        ((0.7, 0.6, 0.6), False),
        ((0.7, 0.7, 0.6), False),
        ((0.6, 0.7, 0.5), False),
        ((0.7, 0.6), False),
        ((0.6,), False),
        ((), False),
    ],
)
def test_confidence_falling_needs_a_fall_at_each_of_the_last_three_check_ins(
    at_day: Any, cycle: CycleFacts, confidences: tuple[float, ...], is_falling: bool
) -> None:
    kr = key_result(at_day(-1), **checked_in(*((at_day(7 * n), c) for n, c in enumerate(confidences, start=1))))
    finding = confidence_falling(context(at_day(30), kr, cycle))
    assert (finding is not None) is is_falling


def test_a_confidence_fall_is_anchored_at_the_check_in_that_completed_it(at_day: Any, cycle: CycleFacts) -> None:
    kr = key_result(at_day(-1), **checked_in((at_day(7), 0.7), (at_day(14), 0.6), (at_day(21), 0.5)))
    finding = confidence_falling(context(at_day(22), kr, cycle))
    assert finding is not None
    assert (finding.severity, finding.audience) == (Severity.INFO, OWNER_AND_LEAD)
    assert finding.summary == "Confidence fell over the last three check-ins: 0.7 → 0.6 → 0.5"
    assert finding.anchor == f"v{kr.recent_checkins[-1].version}"


# --- busy but flat ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("items", "is_busy"), [(3, False), (4, True)])
def test_four_items_done_in_30_days_with_flat_progress_is_busy_but_flat(at_day: Any, cycle: CycleFacts, items: int, is_busy: bool) -> None:
    log = progress((at_day(20), 0.30))
    delivery = delivered(*(at_day(60 + n) for n in range(items)))
    finding = busy_but_flat(context(at_day(70), key_result(at_day(-1)), cycle, progress=log, delivery=delivery))
    assert (finding is not None) is is_busy
    if finding is not None:
        assert finding.summary == "4 linked delivery items done in 30 days while progress moved +0.00"
        assert finding.anchor == at_day(60).isoformat()


@pytest.mark.parametrize(("progress_now", "is_flat"), [(0.34, True), (0.35, False)], ids=["gained-0.04", "gained-0.05"])
def test_progress_gained_below_005_in_the_window_is_flat(at_day: Any, cycle: CycleFacts, progress_now: float, is_flat: bool) -> None:
    log = progress((at_day(30), 0.30), (at_day(65), progress_now))
    delivery = delivered(*(at_day(55 + n) for n in range(4)))
    finding = busy_but_flat(context(at_day(70), key_result(at_day(-1)), cycle, progress=log, delivery=delivery))
    assert (finding is not None) is is_flat
    if finding is not None:
        assert finding.facts["progress_gained"] == 0.04


def test_items_done_before_the_30_day_window_do_not_make_a_key_result_busy(at_day: Any, cycle: CycleFacts) -> None:
    log = progress((at_day(20), 0.30))
    at = at_day(70)
    kr = key_result(at_day(-1))
    three_in_window = [at_day(60), at_day(61), at_day(62)]
    assert busy_but_flat(context(at, kr, cycle, progress=log, delivery=delivered(*three_in_window, at - timedelta(days=31)))) is None
    assert busy_but_flat(context(at, kr, cycle, progress=log, delivery=delivered(*three_in_window, at - timedelta(days=30)))) is None
    assert busy_but_flat(context(at, kr, cycle, progress=log, delivery=delivered(*three_in_window, None))) is None
    assert busy_but_flat(context(at, kr, cycle, progress=log, delivery=delivered(*three_in_window, at - timedelta(days=29)))) is not None


def test_a_key_result_without_linked_delivery_or_at_full_progress_is_never_busy_but_flat(at_day: Any, cycle: CycleFacts) -> None:
    four = delivered(*(at_day(60 + n) for n in range(4)))
    kr = key_result(at_day(-1))
    assert busy_but_flat(context(at_day(70), kr, cycle, progress=progress((at_day(20), 0.3)))) is None
    assert busy_but_flat(context(at_day(70), kr, cycle, progress=progress((at_day(20), 1.0)), delivery=four)) is None


# --- output phrased and not measurable ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "verb"),
    [
        ("Ship the new onboarding", "ship"),
        ("Launch the referral programme in Brazil", "launch"),
        ("Migrate: billing to the new ledger", "migrate"),
        ("Increase activation from 20% to 40%", None),
        ("Reduce build time from 30 to 10 minutes", None),
    ],
)
def test_a_key_result_phrased_as_a_deliverable_is_an_output_in_disguise(
    at_day: Any, cycle: CycleFacts, title: str, verb: str | None
) -> None:
    finding = output_phrased(context(at_day(1), key_result(at_day(-1), title=title), cycle))
    assert (finding.facts["verb"] if finding else None) == verb
    if finding is not None:
        assert (finding.severity, finding.audience, finding.anchor) == (Severity.INFO, (Audience.OWNER,), title)


@pytest.mark.parametrize(
    ("definition", "missing"),
    [
        ({"kind": KeyResultKind.METRIC, "baseline": None}, "baseline"),
        ({"kind": KeyResultKind.METRIC, "baseline": None, "target": None}, "baseline,target"),
        ({"kind": KeyResultKind.METRIC}, None),
        ({"kind": KeyResultKind.THRESHOLD, "baseline": None, "target": 99.9, "has_direction": False}, "direction"),
        ({"kind": KeyResultKind.THRESHOLD, "baseline": None, "target": None, "has_direction": True}, "target"),
        ({"kind": KeyResultKind.THRESHOLD, "baseline": None, "target": 99.9, "has_direction": True}, None),
        ({"kind": KeyResultKind.DERIVED, "baseline": None, "target": None}, None),
    ],
)
def test_a_key_result_without_the_numbers_its_kind_needs_is_not_measurable(
    at_day: Any, cycle: CycleFacts, definition: dict[str, Any], missing: str | None
) -> None:
    finding = not_measurable(context(at_day(1), key_result(at_day(-1), **definition), cycle))
    assert (finding.facts["missing"] if finding else None) == missing


def test_a_not_measurable_finding_says_what_to_set(at_day: Any, cycle: CycleFacts) -> None:
    finding = not_measurable(context(at_day(1), key_result(at_day(-1), baseline=None, target=None), cycle))
    assert finding is not None
    assert (finding.summary, finding.asked) == ("Not measurable: no baseline and no target", "Set the baseline and the target")


# --- focus --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("live_krs", "too_many"), [(5, False), (6, True)])
def test_more_than_five_key_results_on_an_objective_dilute_its_focus(live_krs: int, too_many: bool) -> None:
    objective = ObjectiveFacts(
        objective_id="obj-billing", cycle_id="2026-Q3", tier=2, title="Billing", owner="lead.bo", product_id="billing"
    )
    finding = too_many_key_results(objective, live_krs, DEFAULTS)
    assert (finding is not None) is too_many
    if finding is not None:
        assert (finding.rule, finding.node_id, finding.anchor) == (DriftRule.TOO_MANY_KEY_RESULTS, "obj-billing", "2026-Q3")
        assert finding.summary == "6 key results on one objective (at most 5)"


@pytest.mark.parametrize(("objectives", "too_many"), [(3, False), (4, True)])
def test_more_than_three_objectives_for_a_team_in_a_cycle_dilute_its_focus(objectives: int, too_many: bool) -> None:
    finding = too_many_objectives("payments", {"2026-Q3": objectives}, DEFAULTS)
    assert (finding is not None) is too_many
    if finding is not None:
        assert (finding.rule, finding.node_id, finding.audience) == (DriftRule.TOO_MANY_OBJECTIVES, "payments", (Audience.PRODUCT_LEAD,))
        assert finding.summary == "4 objectives for payments in cycle 2026-Q3 (at most 3)"


def test_the_cycle_with_most_objectives_is_the_one_reported() -> None:
    finding = too_many_objectives("payments", {"2026-Q3": 4, "2026-Q4": 5, "2026-Q2": 2}, DriftThresholds(max_objectives_per_team=3))
    assert finding is not None
    assert (finding.anchor, finding.facts["objectives"]) == ("2026-Q4", 5)


def test_the_focus_limits_are_the_portfolios() -> None:
    thresholds = DriftThresholds(max_krs_per_objective=2, max_objectives_per_team=1)
    objective = ObjectiveFacts(objective_id="obj-billing", cycle_id="2026-Q3", tier=2, title="Billing", owner="lead.bo")
    assert too_many_key_results(objective, 2, thresholds) is None
    assert too_many_key_results(objective, 3, thresholds) is not None
    assert too_many_objectives("payments", {"2026-Q3": 1}, thresholds) is None
    assert too_many_objectives("payments", {"2026-Q3": 2}, thresholds) is not None


def test_an_alert_on_a_node_that_left_the_live_set_is_cleared_for_that_reason() -> None:
    assert why_cleared(DriftRule.STALE, None) == "no longer in a live cycle (retired, removed, or the cycle closed)"

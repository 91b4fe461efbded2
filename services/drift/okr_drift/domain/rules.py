"""The drift rules as pure functions of a key result's facts, its portfolio's thresholds and a moment.

Each rule returns a :class:`Finding` when its condition holds at ``ctx.at`` and
``None`` otherwise; :func:`why_cleared` says, for an alert whose rule no longer
finds, what cleared it. Boundaries are inclusive where the design says "after N
days" or "≥": 14 days idle is stale, 13 days and 23 hours is not. Documented with
examples in docs/drift.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from okr_contracts.alerts import Audience, DriftRule, Severity
from okr_contracts.capacity import BalanceCheck, SquadLoad
from okr_contracts.kr_events import DriftThresholds, KeyResultKind
from okr_drift.domain.facts import CycleFacts, DeliveryLog, KeyResultFacts, ObjectiveFacts, ProgressLog

OUTPUT_VERBS = frozenset(
    {"build", "launch", "ship", "migrate", "implement", "release", "deliver", "deploy", "create", "develop", "complete", "finish", "roll"}
)
"""First words that phrase a key result as a deliverable (an output in disguise)."""

OWNER = (Audience.OWNER,)
OWNER_AND_LEAD = (Audience.OWNER, Audience.PRODUCT_LEAD)
EVERYONE = (Audience.OWNER, Audience.PRODUCT_LEAD, Audience.PORTFOLIO_LEAD)


@dataclass(frozen=True)
class Finding:
    """A rule's condition holds for a node: what to raise, for whom and why."""

    rule: DriftRule
    node_id: str
    severity: Severity
    audience: tuple[Audience, ...]
    summary: str
    asked: str
    anchor: str
    """What identifies this occurrence of the condition (e.g. the last update it dates from); part of the alert id."""
    facts: dict[str, float | int | bool | str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class KrContext:
    """Everything the key-result rules read."""

    at: datetime
    thresholds: DriftThresholds
    kr: KeyResultFacts
    cycle: CycleFacts
    progress: ProgressLog | None = None
    delivery: DeliveryLog | None = None


def days(n: int) -> timedelta:
    """N whole days."""
    return timedelta(days=n)


def last_activity(ctx: KrContext) -> tuple[datetime, str]:
    """The latest check-in, value or escalation (or the key result's definition, or its cycle's start) and which it was."""
    kr = ctx.kr
    candidates = [
        (kr.defined_at, "defined"),
        (ctx.cycle.start, "cycle started"),
        (kr.last_checkin_at, "check-in recorded"),
        (kr.last_value_at, "value recorded"),
        (kr.last_escalated_at, "escalated"),
    ]
    return max(((at, what) for at, what in candidates if at is not None), key=lambda pair: pair[0])


def stale(ctx: KrContext) -> Finding | None:
    """No check-in and no value for `stale_days`: the owner has until `retire_after_stale_days` to update, retire or escalate."""
    since, _ = last_activity(ctx)
    idle = ctx.at - since
    limit = ctx.thresholds.stale_days
    if idle < days(limit):
        return None
    grace = max(0, ctx.thresholds.retire_after_stale_days - limit)
    return Finding(
        DriftRule.STALE,
        ctx.kr.kr_id,
        Severity.WARNING,
        OWNER,
        f"No check-in or value for {idle.days} days (limit {limit})",
        f"Update it, retire it or escalate it within {grace} days",
        since.isoformat(),
        {"idle_days": idle.days, "last_update": since.isoformat(), "stale_days": limit},
    )


def retire_recommended(ctx: KrContext) -> Finding | None:
    """Stale for `retire_after_stale_days`: recommend retiring it."""
    since, _ = last_activity(ctx)
    idle = ctx.at - since
    limit = ctx.thresholds.retire_after_stale_days
    if idle < days(limit):
        return None
    return Finding(
        DriftRule.RETIRE_RECOMMENDED,
        ctx.kr.kr_id,
        Severity.WARNING,
        OWNER_AND_LEAD,
        f"No check-in or value for {idle.days} days (limit {limit}): nobody is steering it",
        "Retire it (or replace it) unless it still matters; if it does, update it",
        since.isoformat(),
        {"idle_days": idle.days, "last_update": since.isoformat(), "retire_after_stale_days": limit},
    )


@dataclass(frozen=True)
class OffTrack:
    """An off-track episode: low confidence past the cycle's mark, with no recovery plan filed during it."""

    confidence: float
    elapsed: float
    low_since: datetime
    since: datetime


def off_track_episode(ctx: KrContext) -> OffTrack | None:
    """The current off-track episode, if any."""
    kr, t = ctx.kr, ctx.thresholds
    confidence = kr.confidence
    if confidence is None or confidence >= t.off_track_confidence:
        return None
    elapsed = ctx.cycle.elapsed(ctx.at)
    if elapsed < t.off_track_after_cycle_fraction:
        return None
    low_since = kr.low_since or kr.recent_checkins[-1].at
    if kr.plan is not None and kr.plan.at >= low_since:
        return None
    mark = ctx.cycle.start + (ctx.cycle.end - ctx.cycle.start) * t.off_track_after_cycle_fraction
    return OffTrack(confidence, elapsed, low_since, max(low_since, mark))


def off_track(ctx: KrContext) -> Finding | None:
    """Latest confidence below `off_track_confidence` once `off_track_after_cycle_fraction` of the cycle elapsed: plan required."""
    episode = off_track_episode(ctx)
    if episode is None:
        return None
    t = ctx.thresholds
    return Finding(
        DriftRule.OFF_TRACK,
        ctx.kr.kr_id,
        Severity.WARNING,
        OWNER_AND_LEAD,
        f"Confidence {episode.confidence:g} (below {t.off_track_confidence:g}) with {episode.elapsed:.0%} of the cycle gone",
        f"File a recovery plan within {t.plan_due_days} days: change the tactic, the target or the resources, "
        "with an owner and the decision needed",
        episode.low_since.isoformat(),
        {
            "confidence": episode.confidence,
            "cycle_elapsed": round(episode.elapsed, 4),
            "off_track_confidence": t.off_track_confidence,
            "low_since": episode.low_since.isoformat(),
        },
    )


def plan_overdue(ctx: KrContext) -> Finding | None:
    """Off-track for `plan_due_days` (the next portfolio sync) with no recovery plan: escalate."""
    episode = off_track_episode(ctx)
    if episode is None:
        return None
    waited = ctx.at - episode.since
    due = ctx.thresholds.plan_due_days
    if waited < days(due):
        return None
    return Finding(
        DriftRule.PLAN_OVERDUE,
        ctx.kr.kr_id,
        Severity.CRITICAL,
        EVERYONE,
        f"Off-track for {waited.days} days with no recovery plan (due after {due})",
        "Escalated: decide at the portfolio sync whether to change the tactic, the target or the resources",
        episode.low_since.isoformat(),
        {
            "confidence": episode.confidence,
            "off_track_days": waited.days,
            "plan_due_days": due,
            "off_track_since": episode.since.isoformat(),
        },
    )


def progress_now(ctx: KrContext) -> tuple[float, datetime]:
    """Current progress and since when it has had that value (0 since its definition when never scored)."""
    point = ctx.progress.current if ctx.progress else None
    if point is None:
        return 0.0, ctx.kr.defined_at
    return point.progress, point.at


def not_moving(ctx: KrContext) -> Finding | None:
    """Progress unchanged for `not_moving_days` although check-ins continue (one within the window)."""
    progress, since = progress_now(ctx)
    since = max(since, ctx.cycle.start)
    limit = ctx.thresholds.not_moving_days
    last_checkin = ctx.kr.last_checkin_at
    if progress >= 1.0 or ctx.at - since < days(limit) or last_checkin is None or last_checkin <= ctx.at - days(limit):
        return None
    return Finding(
        DriftRule.NOT_MOVING,
        ctx.kr.kr_id,
        Severity.WARNING,
        OWNER_AND_LEAD,
        f"Progress has stayed at {progress:.2f} for {(ctx.at - since).days} days although check-ins continue",
        "Say in the next check-in what is blocking the metric, or change the tactic",
        since.isoformat(),
        {"progress": progress, "unchanged_since": since.isoformat(), "not_moving_days": limit, "last_checkin": last_checkin.isoformat()},
    )


def confidence_falling(ctx: KrContext) -> Finding | None:
    """Confidence down at each of the last three check-ins."""
    recent = ctx.kr.recent_checkins
    if len(recent) < 3:
        return None
    a, b, c = (checkin.confidence for checkin in recent[-3:])
    if not a > b > c:
        return None
    return Finding(
        DriftRule.CONFIDENCE_FALLING,
        ctx.kr.kr_id,
        Severity.INFO,
        OWNER_AND_LEAD,
        f"Confidence fell over the last three check-ins: {a:g} → {b:g} → {c:g}",
        "Say what changed and whether a recovery plan is needed",
        f"v{recent[-1].version}",
        {"confidences": f"{a:g}, {b:g}, {c:g}", "confidence": c},
    )


def busy_but_flat(ctx: KrContext) -> Finding | None:
    """`busy_items` linked delivery items done within `busy_window_days` while progress gained less than `flat_progress_delta`."""
    t = ctx.thresholds
    if ctx.delivery is None:
        return None
    start = ctx.at - days(t.busy_window_days)
    done = sorted(at for at in ctx.delivery.done_at.values() if at is not None and start < at <= ctx.at)
    if len(done) < t.busy_items:
        return None
    progress, _ = progress_now(ctx)
    before = ctx.progress.at(start) if ctx.progress else None
    gained = round(progress - (before or 0.0), 9)  # 0.35 − 0.30 is 0.05, not 0.0499…
    if progress >= 1.0 or gained >= t.flat_progress_delta:
        return None
    return Finding(
        DriftRule.BUSY_BUT_FLAT,
        ctx.kr.kr_id,
        Severity.WARNING,
        OWNER_AND_LEAD,
        f"{len(done)} linked delivery items done in {t.busy_window_days} days while progress moved {gained:+.2f}",
        "Investigate the value hypothesis: the work ships but the outcome does not move",
        done[-t.busy_items].isoformat(),
        {
            "items_done": len(done),
            "window_days": t.busy_window_days,
            "progress_gained": gained,
            "flat_progress_delta": t.flat_progress_delta,
        },
    )


def output_phrased(ctx: KrContext) -> Finding | None:
    """A key result phrased as a deliverable ("Build…", "Launch…", "Ship…", "Migrate…")."""
    words = ctx.kr.title.split(maxsplit=1)
    verb = words[0].strip(".,:;!").lower() if words else ""
    if verb not in OUTPUT_VERBS:
        return None
    return Finding(
        DriftRule.OUTPUT_PHRASED,
        ctx.kr.kr_id,
        Severity.INFO,
        OWNER,
        f"“{ctx.kr.title[:120]}” is phrased as a deliverable, an output in disguise",
        "Rephrase it as the outcome the deliverable should change, with a baseline and a target",
        ctx.kr.title,
        {"verb": verb},
    )


def not_measurable(ctx: KrContext) -> Finding | None:
    """A metric key result without baseline or target, or a threshold one without target or direction."""
    kr = ctx.kr
    missing: list[str] = []
    if kr.kind == KeyResultKind.METRIC:
        missing = [name for name, value in (("baseline", kr.baseline), ("target", kr.target)) if value is None]
    elif kr.kind == KeyResultKind.THRESHOLD:
        missing = [name for name, present in (("target", kr.target is not None), ("direction", kr.has_direction)) if not present]
    if not missing:
        return None
    return Finding(
        DriftRule.NOT_MEASURABLE,
        kr.kr_id,
        Severity.WARNING,
        OWNER,
        f"Not measurable: no {' and no '.join(missing)}",
        f"Set the {' and the '.join(missing)}",
        ",".join(missing),
        {"missing": ",".join(missing), "kind": kr.kind.value},
    )


KR_RULES: dict[DriftRule, Callable[[KrContext], Finding | None]] = {
    DriftRule.STALE: stale,
    DriftRule.RETIRE_RECOMMENDED: retire_recommended,
    DriftRule.OFF_TRACK: off_track,
    DriftRule.PLAN_OVERDUE: plan_overdue,
    DriftRule.NOT_MOVING: not_moving,
    DriftRule.CONFIDENCE_FALLING: confidence_falling,
    DriftRule.BUSY_BUT_FLAT: busy_but_flat,
    DriftRule.OUTPUT_PHRASED: output_phrased,
    DriftRule.NOT_MEASURABLE: not_measurable,
}


def too_many_key_results(objective: ObjectiveFacts, live_krs: int, thresholds: DriftThresholds) -> Finding | None:
    """More than `max_krs_per_objective` live key results on one objective dilutes focus."""
    limit = thresholds.max_krs_per_objective
    if live_krs <= limit:
        return None
    return Finding(
        DriftRule.TOO_MANY_KEY_RESULTS,
        objective.objective_id,
        Severity.INFO,
        OWNER_AND_LEAD,
        f"{live_krs} key results on one objective (at most {limit})",
        "Keep the key results that best show the outcome; retire or move the rest",
        objective.cycle_id,
        {"key_results": live_krs, "max_krs_per_objective": limit},
    )


def too_many_objectives(group: str, counts: dict[str, int], thresholds: DriftThresholds) -> Finding | None:
    """More than `max_objectives_per_team` objectives for one team in a live cycle dilutes focus (the worst cycle is reported)."""
    limit = thresholds.max_objectives_per_team
    over = {cycle: n for cycle, n in counts.items() if n > limit}
    if not over:
        return None
    cycle, count = max(sorted(over.items()), key=lambda item: item[1])
    return Finding(
        DriftRule.TOO_MANY_OBJECTIVES,
        group,
        Severity.INFO,
        (Audience.PRODUCT_LEAD,),
        f"{count} objectives for {group} in cycle {cycle} (at most {limit})",
        "Pick the objectives that matter most this cycle; move the rest to the backlog",
        cycle,
        {"objectives": count, "cycle_id": cycle, "max_objectives_per_team": limit},
    )


def over_allocated(team: str, loads: list[SquadLoad]) -> Finding | None:
    """A squad allocated more sprints than its declared capacity in a live cycle (the cycle most over is reported)."""
    over = [load for load in loads if load.over]
    if not over:
        return None
    load = max(sorted(over, key=lambda found: found.cycle_id), key=lambda found: found.over_by)
    assert load.capacity is not None
    objectives = len(load.allocations)
    return Finding(
        DriftRule.OVER_ALLOCATED,
        team,
        Severity.WARNING,
        (Audience.PRODUCT_LEAD, Audience.PORTFOLIO_LEAD),
        f"{team} is allocated {load.allocated:g} sprints in cycle {load.cycle_id} against a capacity of {load.capacity:g} "
        f"({objectives} objectives, {load.over_by:g} over)",
        "Take an objective off the squad, move sprints to a squad with room, or raise the capacity if it really grew",
        load.cycle_id,
        {
            "cycle_id": load.cycle_id,
            "capacity": load.capacity,
            "allocated": load.allocated,
            "over_by": load.over_by,
            "objectives": objectives,
            "allocations": ", ".join(f"{objective} {sprints:g}" for objective, sprints in load.allocations.items()),
        },
    )


def off_balance(cycle_id: str, check: BalanceCheck | None, unclassified: float) -> Finding | None:
    """A live cycle whose allocated sprints split over primary, secondary and exploration strays from the intended balance."""
    if check is None or not check.off:
        return None
    worst = check.worst
    deviation = check.deviations[worst]
    actual = " / ".join(f"{check.actual[p]:.0%}" for p in check.intended)
    intended = " / ".join(f"{check.intended[p]:.0%}" for p in check.intended)
    return Finding(
        DriftRule.OFF_BALANCE,
        cycle_id,
        Severity.WARNING,
        (Audience.PORTFOLIO_LEAD,),
        f"Cycle {cycle_id} splits its allocated sprints {actual} (primary / secondary / exploration) against {intended} intended: "
        f"{worst} is {abs(deviation):.0%} {'over' if deviation > 0 else 'under'} (margin {check.margin:.0%})",
        f"Rebalance the allocations towards {intended}, or change the intended balance if the plan changed on purpose",
        cycle_id,
        {
            "cycle_id": cycle_id,
            "worst": worst,
            "deviation": deviation,
            "margin": check.margin,
            **{f"actual_{p}": share for p, share in check.actual.items()},
            **{f"intended_{p}": share for p, share in check.intended.items()},
            "unclassified_sprints": unclassified,
        },
    )


def why_cleared(rule: DriftRule, ctx: KrContext | None) -> str:
    """Why an open alert of `rule` no longer holds (`ctx` is none when the node left the live set)."""
    if ctx is None:
        return "no longer in a live cycle (retired, removed, or the cycle closed)"
    if rule in (DriftRule.STALE, DriftRule.RETIRE_RECOMMENDED):
        return last_activity(ctx)[1]
    if rule in (DriftRule.OFF_TRACK, DriftRule.PLAN_OVERDUE):
        kr, plan = ctx.kr, ctx.kr.plan
        if plan is not None and kr.confidence is not None and kr.confidence < ctx.thresholds.off_track_confidence:
            return f"recovery plan filed ({plan.option}, owner {plan.owner})"
        return f"confidence {kr.confidence:g} at the latest check-in" if kr.confidence is not None else "confidence unknown"
    return _CLEARED.get(rule, "the condition no longer holds")


_CLEARED = {
    DriftRule.NOT_MOVING: "progress moved, or check-ins stopped",
    DriftRule.CONFIDENCE_FALLING: "confidence held or rose at the latest check-in",
    DriftRule.BUSY_BUT_FLAT: "progress moved, or fewer items were done in the window",
    DriftRule.OUTPUT_PHRASED: "rephrased as an outcome",
    DriftRule.NOT_MEASURABLE: "baseline and target set",
    DriftRule.TOO_MANY_KEY_RESULTS: "key results within the limit",
    DriftRule.TOO_MANY_OBJECTIVES: "objectives within the limit",
    DriftRule.OVER_ALLOCATED: "allocations within the capacity",
    DriftRule.OFF_BALANCE: "split within the margin of the intended balance",
}

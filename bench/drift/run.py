"""Drift: rule evaluations per second on a clock tick over a portfolio of 100,000 key results, beside the raw rate of iterating it.

Run from the repository root: ``.venv/bin/python bench/drift/run.py`` (or ``make bench-drift``).
No infrastructure: the portfolio is built in memory by folding generated contract
events (``okr.kr-events.v1`` history, ``okr.scores.v1`` progress, ``okr.delivery.v1``
work items) into one ``PortfolioDrift`` with ``apply_history``, ``apply_score`` and
``apply_delivery``. The raw baseline (every node visited and every fact a rule
reads read, no rule run) is measured in the same process on the same state.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import itertools
import pstats
import random
import resource
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from okr_contracts.delivery import DeliverySource, StatusCategory, WorkItemChanged
from okr_contracts.kr_events import (
    AarrrStage,
    CheckInRecorded,
    CycleCadence,
    CycleStarted,
    InvestmentHorizon,
    InvestmentPriority,
    KeyResultDefined,
    KeyResultEscalated,
    KeyResultKind,
    KeyResultRetired,
    KrEvent,
    ObjectiveAllocated,
    ObjectiveClassified,
    ObjectiveDefined,
    PortfolioDefined,
    ProductDefined,
    RecoveryOption,
    RecoveryPlanFiled,
    RollupMethod,
    SquadCapacitySet,
    TeamDefined,
    ThresholdDirection,
    ValueObserved,
)
from okr_contracts.scores import Derivation, NodeKind, NodeScored, ScoreStatus
from okr_drift.domain.alerts import AlertBook
from okr_drift.domain.evaluation import CYCLE_RULES, GROUP_RULES, OBJECTIVE_RULES, SQUAD_RULES, PortfolioDrift
from okr_drift.domain.portfolio import PortfolioState, Touched
from okr_drift.domain.rules import KR_RULES

PORTFOLIO = "acme"
CPO = "cpo@acme.example"
TICK_HOUR = datetime(2026, 9, 8, 9, 0, tzinfo=UTC)
AT = TICK_HOUR + timedelta(minutes=30)
"""The first tick, three quarters into the quarter. Every generated fact is on the hour: a tick a minute later crosses no boundary."""
YEAR = ("fy2026", date(2026, 1, 1), date(2026, 12, 31), CycleCadence.CUSTOM)
QUARTER = ("2026-q3", date(2026, 7, 1), date(2026, 9, 30), CycleCadence.QUARTERLY)
KRS_PER_OBJECTIVE = {3: 10, 4: 20, 5: 55, 6: 10, 7: 5}
"""Key results per team objective (weights, mean 4.8): over 5 is `too_many_key_results`."""
OBJECTIVES_PER_TEAM = {2: 30, 3: 50, 4: 20}
"""Objectives per team in the quarter (weights): over 3 is `too_many_objectives`."""
SQUAD_SPRINTS = 6.0
"""Every team's capacity per cycle."""
SPRINTS_PER_OBJECTIVE = {1: 20, 2: 50, 3: 30}
"""Sprints a team objective takes of its team (weights, mean 2.1): three objectives of 3, or four of 2, are `over_allocated`."""
PRIORITIES = {InvestmentPriority.PRIMARY: 70, InvestmentPriority.SECONDARY: 20, InvestmentPriority.EXPLORATION: 10}
"""Team objectives' priorities (weights): the quarter's split lands near the intended 70/20/10."""
PROFILES = {
    "healthy": 60,
    "falling": 8,
    "flat": 7,
    "off_track": 8,
    "stale": 10,
    "abandoned": 4,
    "escalated": 2,
    "retired": 1,
}
"""How a key result has been looked after (weights, percent); see :meth:`Workload.activity`."""
OUTPUT_TITLES = ("Launch", "Ship", "Build", "Migrate", "Deliver")
OUTCOME_TITLES = ("Raise", "Cut", "Grow", "Reduce", "Lift")
METRICS = ("weekly active teams", "trial-to-paid conversion", "time to first value", "support tickets per account", "net revenue retention")

WHAT_CHANGED = "Shipped the redesigned flow to half of the traffic; early numbers match last month's A/B test."
PLAN = {
    "option": RecoveryOption.CHANGE_TACTIC,
    "description": "Move two engineers from the platform team onto the activation funnel for three weeks.",
    "decision_needed": "Whether the platform roadmap can slip by three weeks.",
}

HISTORY, SCORE, DELIVERY = "history", "scores", "delivery"
Input = tuple[str, Any, Any, Any]
"""(topic, …): (HISTORY, event, occurred_at, None), (SCORE, record, None, None) or (DELIVERY, kr_id, item, change)."""


def hours_before(hours: int) -> datetime:
    """A moment on the hour, `hours` before the tick's hour."""
    return TICK_HOUR - timedelta(hours=hours)


@dataclass
class Shape:
    """What the generated portfolio holds, counted as it is generated."""

    key_results: int = 0
    objectives: int = 0
    teams: int = 0
    allocations: int = 0
    products: int = 0
    profiles: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Kr:
    """A generated key result: what its activity needs to know."""

    kr_id: str
    cycle_id: str
    tier: int
    kind: KeyResultKind
    owner: str
    defined_at: datetime


class Workload:
    """A seeded portfolio of `size` key results as contract events, in the order drift would receive them."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.rng = random.Random(seed)
        self.plan_rng = random.Random(seed + 1)
        """Draws the capacity plan apart from everything else, so the rest of the portfolio is what it was without one."""
        self.shape = Shape()
        self.versions: dict[str, int] = {}
        self.krs: list[Kr] = []
        self.records = itertools.count(1)
        self.score = NodeScored(
            portfolio_id=PORTFOLIO,
            node_id="template",
            node_kind=NodeKind.KEY_RESULT,
            tier=3,
            cycle_id=QUARTER[0],
            status=ScoreStatus.SCORED,
            progress=0.0,
            derivation=Derivation(method="metric", formula="(value − baseline) / (target − baseline)"),
            scoring_rules_version="2026.1",
            as_of=AT,
            source_event_id="template",
        )
        self.item = WorkItemChanged(
            source=DeliverySource.JIRA,
            external_id="template",
            portfolio_id=PORTFOLIO,
            key="ACME-1",
            title="Instrument the onboarding checklist and ship the first two steps behind a flag",
            status="In Progress",
            status_category=StatusCategory.IN_PROGRESS,
            changed_at=AT,
        )

    def head(self, aggregate_id: str, actor: str) -> dict[str, Any]:
        """Fields every history event carries, with the aggregate's next version."""
        return {
            "portfolio_id": PORTFOLIO,
            "aggregate_id": aggregate_id,
            "aggregate_version": self.next_version(aggregate_id),
            "actor": actor,
        }

    def next_version(self, aggregate_id: str) -> int:
        """The aggregate's next version."""
        version = self.versions[aggregate_id] = self.versions.get(aggregate_id, 0) + 1
        return version

    def _history(self, event: KrEvent, at: datetime) -> Input:
        return (HISTORY, event, at, None)

    # --- definitions ------------------------------------------------------------------------------------------

    def definitions(self) -> Iterator[Input]:
        """The portfolio, products, cycles, teams and objectives, then every key result (planning comes first)."""
        rng, shape = self.rng, self.shape
        shape.products = max(2, min(20, self.size // 5000))
        yield self._history(
            PortfolioDefined(**self.head(PORTFOLIO, CPO), name="Acme", owner=CPO, rollup_method=RollupMethod.WEIGHTED), hours_before(6000)
        )
        products = [f"p{n:02d}" for n in range(shape.products)]
        for product in products:
            yield self._history(
                ProductDefined(**self.head(product, CPO), product_id=product, name=f"Product {product}", lead=f"lead@{product}.example"),
                hours_before(5900),
            )
        for cycle_id, starts, ends, cadence in (YEAR, QUARTER):
            event = CycleStarted(
                **self.head(cycle_id, CPO), cycle_id=cycle_id, name=cycle_id, cadence=cadence, starts_on=starts, ends_on=ends
            )
            yield self._history(event, datetime.combine(starts, datetime.min.time(), UTC))
        planned: list[tuple[str, str, int, int]] = []  # objective, cycle, tier, KR counts
        team_objectives: list[tuple[str, str, str]] = []  # objective, team, lead
        objectives: list[Input] = []
        year_start = hours_before(24 * 246)
        quarter_start = hours_before(24 * 70)
        for n in range(2 + shape.products // 4):
            objective = f"o1-{n:02d}"
            objectives.append(self._objective(objective, YEAR[0], 1, None, None, CPO, year_start))
            planned.append((objective, YEAR[0], 1, 4))
        for i, product in enumerate(products):
            for n in range(4 if i == 0 else 3):
                objective = f"o2-{product}-{n}"
                objectives.append(self._objective(objective, QUARTER[0], 2, product, None, f"lead@{product}.example", quarter_start))
                planned.append((objective, QUARTER[0], 2, 4))
        remaining = self.size - 4 * len(planned)
        team_n = 0
        while remaining > 0:
            product = products[team_n % len(products)]
            team, lead = f"{product}-t{team_n:05d}", f"lead@{product}-t{team_n:05d}.example"
            team_n += 1
            yield self._history(
                TeamDefined(**self.head(team, CPO), team_id=team, name=f"Team {team}", product_id=product, lead=lead), hours_before(5800)
            )
            yield self._history(SquadCapacitySet(**self.head(team, CPO), team_id=team, sprints=SQUAD_SPRINTS), hours_before(5800))
            for n in range(_draw(rng, OBJECTIVES_PER_TEAM)):
                if remaining <= 0:
                    break
                krs = min(remaining, _draw(rng, KRS_PER_OBJECTIVE))
                remaining -= krs
                objective = f"o3-{team}-{n}"
                objectives.append(self._objective(objective, QUARTER[0], 3, product, team, lead, quarter_start))
                planned.append((objective, QUARTER[0], 3, krs))
                team_objectives.append((objective, team, lead))
        shape.teams = team_n
        shape.objectives = len(planned)
        yield from objectives
        yield from self._capacity_plan(team_objectives, quarter_start)
        for objective, cycle, tier, krs in planned:
            for k in range(krs):
                yield self._key_result(f"{objective}-kr{k}", objective, cycle, tier)

    def _capacity_plan(self, team_objectives: list[tuple[str, str, str]], start: datetime) -> Iterator[Input]:
        """Each team objective (objective, team, lead) allocated to its team for 1–3 sprints and classified (priority, AARRR, horizon)."""
        rng = self.plan_rng
        for objective, team, lead in team_objectives:
            at = start - timedelta(hours=rng.randrange(1, 24))
            sprints = float(_draw(rng, SPRINTS_PER_OBJECTIVE))
            yield self._history(ObjectiveAllocated(**self.head(objective, lead), objective_id=objective, team_id=team, sprints=sprints), at)
            tags = {
                "priority": _draw(rng, PRIORITIES),
                "aarrr_stage": rng.choice(list(AarrrStage)),
                "horizon": rng.choice(list(InvestmentHorizon)),
            }
            yield self._history(ObjectiveClassified(**self.head(objective, lead), objective_id=objective, **tags), at)
            self.shape.allocations += 1

    def _objective(
        self, objective: str, cycle: str, tier: int, product: str | None, team: str | None, owner: str, start: datetime
    ) -> Input:
        event = ObjectiveDefined(
            **self.head(objective, owner),
            objective_id=objective,
            cycle_id=cycle,
            tier=tier,
            title=f"Make {objective} the easiest part of the customer journey",
            owner=owner,
            product_id=product,
            team_id=team,
        )
        return self._history(event, start - timedelta(hours=self.rng.randrange(24, 24 * 7)))

    def _key_result(self, kr_id: str, objective: str, cycle: str, tier: int) -> Input:
        rng = self.rng
        owner = f"pm-{objective}@acme.example"
        shape: dict[str, Any] = {"kind": KeyResultKind.DERIVED}
        if tier == 3 and rng.random() < 0.85:
            baseline = float(rng.randrange(10, 60))
            shape = {"kind": KeyResultKind.METRIC, "baseline": baseline, "target": baseline + rng.randrange(10, 40), "unit": "%"}
            if rng.random() < 0.04:
                shape["baseline"] = None  # not measurable
        elif tier == 3:
            direction = None if rng.random() < 0.05 else rng.choice(tuple(ThresholdDirection))  # none: not measurable
            shape = {"kind": KeyResultKind.THRESHOLD, "target": float(rng.randrange(1, 99)), "direction": direction, "unit": "ms"}
        metric = rng.choice(METRICS)
        if tier == 3 and rng.random() < 0.07:  # an output in disguise
            title = f"{rng.choice(OUTPUT_TITLES)} the new {metric} dashboard for every enterprise account"
        else:
            title = f"{rng.choice(OUTCOME_TITLES)} {metric} for self-serve accounts by the end of the cycle"
        start = hours_before(24 * 246) if cycle == YEAR[0] else hours_before(24 * 70)
        defined_at = start + timedelta(hours=rng.randrange(0, 24 * 7))
        event = KeyResultDefined(
            **self.head(kr_id, owner), kr_id=kr_id, objective_id=objective, cycle_id=cycle, tier=tier, title=title, owner=owner, **shape
        )
        self.krs.append(Kr(kr_id, cycle, tier, event.kind, owner, defined_at))
        self.shape.key_results += 1
        return self._history(event, defined_at)

    # --- activity ---------------------------------------------------------------------------------------------

    def activity(self, kr: Kr) -> list[Input]:
        """A key result's check-ins, values, scores, linked work items and the odd escalation, plan or retirement, in time order.

        Profiles: *healthy* checks in weekly (the last within 6 days, with a value) and its
        progress moves; *falling* likewise, confidence down at each of its last three
        check-ins; *flat* checks in but its progress last moved 15–40 days ago;
        *off_track* reports confidence under 0.4 at its last 1–3 check-ins (a quarter of
        them filed a recovery plan); *stale* last checked in 14–20 days ago; *abandoned*
        22–50 days ago, or never; *escalated* checked in 16–25 days ago, escalated 1–5
        days ago; *retired* was retired last week. A quarter of the key results have 1–9
        linked work items started in the last 40 days, 80% of them done since.
        """
        rng = self.rng
        profile = _draw(rng, PROFILES)
        self.shape.profiles[profile] += 1
        last = {
            "stale": rng.randrange(14 * 24, 21 * 24),
            "abandoned": rng.randrange(22 * 24, 50 * 24),
            "escalated": rng.randrange(16 * 24, 25 * 24),
        }.get(profile, rng.randrange(1, 6 * 24))
        count = 0 if profile == "abandoned" and rng.random() < 0.5 else rng.choice((3, 3, 4))
        times = [hours_before(last + 168 * i + rng.randrange(-12, 12) * (i > 0)) for i in reversed(range(count))]
        times = [t for t in times if t > kr.defined_at]
        confidences = _confidences(rng, profile, len(times))
        has_value = kr.kind != KeyResultKind.DERIVED
        frozen = hours_before(rng.randrange(15 * 24, 40 * 24)) if profile == "flat" else None
        step = (0.0, 0.03) if profile == "off_track" else (0.04, 0.12)
        progress = round(rng.uniform(0.05, 0.3), 2) if times and times[0] - kr.defined_at > timedelta(days=21) else 0.0
        timed: list[tuple[datetime, int, Input]] = [(kr.defined_at, 1, (SCORE, self._score(kr, 0.0, kr.defined_at), None, None))]
        if frozen is not None:  # its last change of progress; the check-ins after it score the same
            flat = min(0.95, round(progress + 0.3, 2))
            timed.append((frozen, 1, (SCORE, self._score(kr, flat, frozen), None, None)))
        for i, (at, confidence) in enumerate(zip(times, confidences, strict=True)):
            timed.append((at, 0, (HISTORY, CheckInRecorded, kr.owner, {"confidence": confidence, "what_changed": WHAT_CHANGED})))
            if i == len(times) - 1 or rng.random() < 0.6:
                rise = min(1.0, round(progress + rng.uniform(*step), 2))
                progress = flat if frozen is not None and at >= frozen else rise
                if has_value:
                    value = {"value": round(progress * 100, 1), "observed_at": at, "source": "sql"}
                    timed.append((at, 0, (HISTORY, ValueObserved, "connector:kpi", value)))
                timed.append((at, 1, (SCORE, self._score(kr, progress, at), None, None)))
        if profile == "off_track" and times and rng.random() < 0.25:
            low_since = next(t for t, c in zip(times, confidences, strict=True) if c < 0.4)
            at = min(hours_before(1), low_since + timedelta(hours=rng.randrange(24, 72)))
            timed.append((at, 0, (HISTORY, RecoveryPlanFiled, kr.owner, {**PLAN, "owner": kr.owner})))
        if profile == "escalated":
            at = hours_before(rng.randrange(24, 5 * 24))
            timed.append((at, 0, (HISTORY, KeyResultEscalated, kr.owner, {"escalated_to": CPO, "reason": "Blocked on a vendor contract."})))
        if profile == "retired":
            at = hours_before(rng.randrange(24, 7 * 24))
            timed.append((at, 0, (HISTORY, KeyResultRetired, kr.owner, {"reason": "Superseded by the new pricing objective."})))
        if rng.random() < 0.25:
            timed.extend(self._work_items(kr))
        timed.sort(key=lambda entry: (entry[0], entry[1]))
        return [self._event(kr, at, entry) if entry[0] == HISTORY else entry for at, _, entry in timed]

    def _event(self, kr: Kr, at: datetime, entry: Input) -> Input:
        """A history event of the key result, built (and validated) once its version is known: its events are in time order now."""
        _, cls, actor, fields = entry
        return (HISTORY, cls(**self.head(kr.kr_id, actor), kr_id=kr.kr_id, **fields), at, None)

    def _score(self, kr: Kr, progress: float, at: datetime) -> NodeScored:
        update = {
            "node_id": kr.kr_id,
            "tier": kr.tier,
            "cycle_id": kr.cycle_id,
            "progress": progress,
            "as_of": at,
            "source_event_id": f"event-{next(self.records)}",
        }
        return self.score.model_copy(update=update)

    def _work_items(self, kr: Kr) -> Iterator[tuple[datetime, int, Input]]:
        rng = self.rng
        for n in range(rng.randrange(1, 10)):
            key = f"{kr.kr_id}-{n}"
            started = hours_before(rng.randrange(48, 40 * 24))
            changes: list[tuple[datetime, StatusCategory, datetime | None]] = [(started, StatusCategory.IN_PROGRESS, None)]
            if rng.random() < 0.8:
                done = min(hours_before(1), started + timedelta(hours=rng.randrange(24, 10 * 24)))
                changes.append((done, StatusCategory.DONE, done))
            for at, category, completed in changes:
                status = "Done" if category == StatusCategory.DONE else "In Progress"
                update = {"external_id": key, "kr_ids": (kr.kr_id,), "status": status, "status_category": category}
                change = self.item.model_copy(update={**update, "changed_at": at, "completed_at": completed})
                yield at, 2, (DELIVERY, kr.kr_id, f"jira:{key}", change)


def _draw(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(tuple(weights), weights=tuple(weights.values()))[0]


def _confidences(rng: random.Random, profile: str, n: int) -> list[float]:
    """Confidences of `n` check-ins, oldest first: only *falling* falls at each of the last three, only *off_track* ends under 0.4."""
    if profile == "falling":
        top = rng.choice((0.8, 0.85, 0.9))
        return [round(top - 0.1 * max(0, i - n + 3), 2) for i in range(n)]
    levels = [rng.choice((0.5, 0.6, 0.65, 0.7, 0.8, 0.9)) for _ in range(n)]
    if n >= 3 and levels[-3] > levels[-2] > levels[-1]:
        levels[-1] = levels[-2]
    if profile == "off_track" and n:
        low = rng.randrange(1, min(3, n) + 1)
        levels[-low:] = [rng.choice((0.1, 0.2, 0.3)) for _ in range(low)]
    return levels


# --- measuring ------------------------------------------------------------------------------------------------


@dataclass
class Fold:
    """Time spent in the fold, per input topic (ns), and inputs it refused (seen before or changing nothing)."""

    ns: Counter[str] = field(default_factory=Counter)
    count: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    generate_s: float = 0.0


def fold(state: PortfolioState, inputs: list[Input], figures: Fold) -> None:
    """Apply inputs one by one, timing each call of ``apply_*`` (and nothing else) by topic."""
    thresholds = state.facts.thresholds
    progress_window = timedelta(days=max(thresholds.busy_window_days, thresholds.not_moving_days) + 1)  # as the service passes them
    busy_window = timedelta(days=thresholds.busy_window_days)
    clock, ns, count = time.perf_counter_ns, figures.ns, figures.count
    for topic, a, b, c in inputs:
        touched: Touched | None
        start = clock()
        if topic == HISTORY:
            touched = state.apply_history(a, b)
        elif topic == SCORE:
            touched = state.apply_score(a, progress_window)
        else:
            touched = state.apply_delivery(a, b, c, busy_window)
        ns[topic] += clock() - start
        count[topic] += 1
        figures.refused += touched is None


def build(size: int, seed: int) -> tuple[PortfolioDrift, Workload, Fold]:
    """The portfolio folded into a fresh ``PortfolioDrift``, generated in chunks so the events never all sit in memory."""
    workload, drift, figures = Workload(size, seed), PortfolioDrift(PORTFOLIO), Fold()
    started = time.perf_counter()
    fold(drift.state, list(workload.definitions()), figures)
    for first in range(0, len(workload.krs), 1000):
        chunk = [entry for kr in workload.krs[first : first + 1000] for entry in workload.activity(kr)]
        fold(drift.state, chunk, figures)
    figures.generate_s = time.perf_counter() - started - sum(figures.ns.values()) / 1e9
    return drift, workload, figures


@dataclass(frozen=True)
class Census:
    """What one tick evaluates."""

    live_krs: int
    live_objectives: int
    groups: int
    squads: int
    cycles: int

    @property
    def evaluations(self) -> int:
        """Rule evaluations per tick: every key-result rule per live key result, the objective, group, squad and cycle rules per node."""
        return (
            self.live_krs * len(KR_RULES)
            + self.live_objectives * len(OBJECTIVE_RULES)
            + self.groups * len(GROUP_RULES)
            + self.squads * len(SQUAD_RULES)
            + self.cycles * len(CYCLE_RULES)
        )


def census(drift: PortfolioDrift, at: datetime) -> Census:
    state = drift.state
    live_krs = sum(1 for kr_id in state.krs if drift.kr_context(kr_id, at) is not None)
    live_objectives = sum(1 for o in state.objectives.values() if drift.live_cycle(o.cycle_id, at) is not None)
    return Census(live_krs, live_objectives, len(state.focus), len(state.teams), len(state.allocated_by_cycle))


def iterate_raw(drift: PortfolioDrift, at: datetime) -> int:
    """The raw baseline: visit every node a tick visits, in the same dicts, and read every fact a rule reads; run no rule, build nothing."""
    state, by_node = drift.state, drift.book.by_node
    cycles, progress, delivery, krs, objectives = state.cycles, state.progress, state.delivery, state.krs, state.objectives
    thresholds, read = state.facts.thresholds, 0
    for kr_id, kr in krs.items():
        alerts = by_node.get(kr_id)
        cycle = cycles.get(kr.cycle_id)
        if kr.retired or cycle is None or cycle.scored:
            continue
        log, items = progress.get(kr_id), delivery.get(kr_id)
        facts = (
            at,
            thresholds,
            cycle.starts_on,
            cycle.ends_on,
            kr.defined_at,
            kr.recent_checkins,
            kr.last_value_at,
            kr.last_escalated_at,
            kr.low_since,
            kr.plan,
            kr.title,
            kr.kind,
            kr.baseline,
            kr.target,
            kr.has_direction,
            log.points if log else None,
            items.done_at if items else None,
            alerts,
        )
        read += len(facts)
    for objective_id, objective in objectives.items():
        read += len((by_node.get(objective_id), cycles.get(objective.cycle_id), state.members.get(objective_id)))
    for group, members in state.focus.items():
        read += len((by_node.get(group), [objectives[o].tier for o in members]))
    for team_id, team in state.teams.items():
        allocated = [(objectives[o].cycle_id, objectives[o].allocations.get(team_id)) for o in state.allocated.get(team_id, ())]
        read += len((by_node.get(team_id), team.capacity, team.capacity_by_cycle, allocated))
    for cycle_id, members in state.allocated_by_cycle.items():
        read += len((by_node.get(cycle_id), [(objectives[o].priority, objectives[o].allocations) for o in members]))
    return read


class Pauses:
    """A `gc.callbacks` entry adding up how long the collector ran, and how many of its runs were full (generation 2)."""

    def __init__(self) -> None:
        self.ns, self.full, self._start = 0, 0, 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
        else:
            self.ns += time.perf_counter_ns() - self._start
            self.full += info["generation"] == 2


@dataclass
class Timed:
    """Seconds of each round, the collector's time within each, and how many alert changes each produced."""

    s: list[float] = field(default_factory=list)
    gc_s: list[float] = field(default_factory=list)
    full: list[int] = field(default_factory=list)
    changes: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        """The median round, in seconds."""
        return statistics.median(self.s)


def timed(record: Timed, call: Callable[[], Any]) -> Any:
    """Run `call` once, recording its seconds and the collector's time within it; returns what it returned."""
    pauses = Pauses()
    gc.callbacks.append(pauses)
    try:
        start = time.perf_counter()
        result = call()
        record.s.append(time.perf_counter() - start)
    finally:
        gc.callbacks.remove(pauses)
    record.gc_s.append(pauses.ns / 1e9)
    record.full.append(pauses.full)
    return result


def alert_memory(drift: PortfolioDrift, krs: int) -> tuple[int, int]:
    """Bytes the alerts raised for the first `krs` key results hold once the changes are dropped (tracemalloc), and how many."""
    sample = Touched(krs=set(itertools.islice(drift.state.krs, krs)))
    drift.book = AlertBook(PORTFOLIO)
    gc.collect()
    tracemalloc.start()
    try:
        raised = len(drift.evaluate(AT, sample))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    drift.book = AlertBook(PORTFOLIO)
    return held, raised


def rss_bytes() -> int:
    """Resident set size now (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Figures:
    """Everything one run measured."""

    shape: Shape
    census: Census
    folded: Fold
    build_gc_s: float
    rss_before: int
    rss_built: int
    tracked: int
    alert_bytes: int
    alerts_sampled: int
    collect: Timed
    raw: Timed
    first: Timed
    steady: Timed
    raised: Counter[str]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Size and rounds; the defaults finish in under two minutes on two cores."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("krs", type=int, nargs="?", default=100_000, help="key results in the portfolio (default 100000)")
    add("--rounds", type=int, default=5, help="timed rounds of each tick and of the raw baseline; their median is reported (default 5)")
    add("--seed", type=int, default=2026, help="seed of the generated portfolio (default 2026)")
    add("--profile", action="store_true", help="also profile one first and one steady tick (cProfile; top functions by own time)")
    args = parser.parse_args(argv)
    if min(args.krs, args.rounds) < 1:
        parser.error("the key results and --rounds must be positive")
    return args


def measure(args: argparse.Namespace) -> tuple[PortfolioDrift, Figures]:
    """Build the portfolio, then round after round: a full collection, the raw iteration, a first tick, a steady tick."""
    print(f"building a portfolio of {args.krs:,} key results …", file=sys.stderr, flush=True)
    gc.collect()
    rss_before, pauses = rss_bytes(), Pauses()
    gc.callbacks.append(pauses)
    drift, workload, folded = build(args.krs, args.seed)
    gc.callbacks.remove(pauses)
    gc.collect()
    rss_built, tracked = rss_bytes(), len(gc.get_objects())
    alert_bytes, sampled = alert_memory(drift, min(args.krs, 10_000))
    print(f"timing {args.rounds} rounds …", file=sys.stderr, flush=True)
    collect, raw, first, steady = Timed(), Timed(), Timed(), Timed()
    raised: Counter[str] = Counter()
    for _ in range(args.rounds):
        drift.book = AlertBook(PORTFOLIO)  # the first tick raises every alert again
        timed(collect, gc.collect)  # each round starts from the same collector state
        timed(raw, lambda: iterate_raw(drift, AT))
        changes = timed(first, lambda: drift.evaluate(AT))
        first.changes.append(len(changes))
        raised = Counter(str(change.alert.rule) for change in changes)
        del changes
        steady.changes.append(len(timed(steady, lambda: drift.evaluate(AT + timedelta(minutes=1)))))
    seen = census(drift, AT)
    return drift, Figures(
        workload.shape,
        seen,
        folded,
        pauses.ns / 1e9,
        rss_before,
        rss_built,
        tracked,
        alert_bytes,
        sampled,
        collect,
        raw,
        first,
        steady,
        raised,
    )


def main(argv: list[str] | None = None) -> int:
    """Measure, print the tables, and with --profile the profiles of a first and a steady tick."""
    started, args = time.monotonic(), parse_args(argv)
    drift, figures = measure(args)
    print("\n".join(report(args, figures)))
    if args.profile:
        print("\n".join(profile_ticks(drift)))
    print(f"finished in {time.monotonic() - started:.0f} s")
    return 0


def report(args: argparse.Namespace, f: Figures) -> Iterator[str]:
    """The tables: the portfolio and its fold, the ticks beside the raw iteration, the alerts, memory."""
    shape, seen, folded = f.shape, f.census, f.folded
    inputs, fold_s = sum(folded.count.values()), sum(folded.ns.values()) / 1e9
    yield (
        f"== portfolio: {shape.key_results:,} key results ({seen.live_krs:,} live), {shape.objectives:,} objectives,"
        f" {shape.teams:,} teams ({shape.allocations:,} objectives allocated to them), {shape.products} products, 2 live cycles;"
        f" first tick at {AT:%Y-%m-%d %H:%M} UTC =="
    )
    yield "   profiles: " + ", ".join(f"{name} {n / shape.key_results:.0%}" for name, n in shape.profiles.most_common())
    yield (
        f"   fold: {inputs:,} inputs in {fold_s:.1f} s, {inputs / fold_s:,.0f}/s ("
        + ", ".join(f"{topic} {folded.count[topic]:,} at {folded.count[topic] / (folded.ns[topic] / 1e9):,.0f}/s" for topic in folded.count)
        + f"), {folded.refused} refused; generating the inputs {folded.generate_s:.1f} s; garbage collection {f.build_gc_s:.1f} s in all"
    )
    per_tick = seen.evaluations
    yield (
        f"== clock tick: {per_tick:,} rule evaluations ({seen.live_krs:,} live KRs × {len(KR_RULES)} rules"
        f" + {seen.live_objectives:,} objectives + {seen.groups:,} focus groups + {seen.squads:,} squads + {seen.cycles:,} cycles);"
        f" median of {args.rounds} rounds =="
    )
    for label, tick in (("first tick (raises):", f.first), ("steady tick:", f.steady)):
        figure, raw_figure = f"{per_tick / tick.median:,.0f} eval/s", f"{per_tick / f.raw.median:,.0f}/s"
        yield _row(label, figure, "raw iteration:", raw_figure, f.raw.median / tick.median)
    for label, tick in (("first tick", f.first), ("steady tick", f.steady), ("raw iteration", f.raw)):
        changes = f"; {statistics.median(tick.changes):,.0f} alert changes" if tick.changes else ""
        yield (
            f"      {label}: {tick.median * 1000:,.0f} ms (rounds {min(tick.s) * 1000:,.0f}–{max(tick.s) * 1000:,.0f}),"
            f" {tick.median / seen.live_krs * 1e6:.2f} µs per live KR; garbage collection {statistics.median(tick.gc_s) * 1000:,.0f} ms"
            f" ({max(tick.full)} full){changes}"
        )
    yield f"      a full collection of this heap ({f.tracked:,} objects tracked): {f.collect.median * 1000:,.0f} ms"
    total = sum(f.raised.values())
    yield f"== alerts raised by the first tick: {total:,} ({total / seen.live_krs:.2f} per live KR) =="
    for rule, n in f.raised.most_common():
        yield f"   {rule:<22} {n:>8,}"
    grown, per_alert = f.rss_built - f.rss_before, f.alert_bytes / max(1, f.alerts_sampled)
    yield "== memory =="
    yield (
        f"   facts: {grown / 2**20:,.0f} MB RSS growth while building, {grown / shape.key_results:,.0f} B per key result"
        f" (process RSS {f.rss_built / 2**20:,.0f} MB after the build)"
    )
    yield (
        f"   open alerts: {per_alert:,.0f} B each (tracemalloc, {f.alerts_sampled:,} raised for the first 10,000 KRs),"
        f" about {per_alert * total / 2**20:,.0f} MB for the {total:,} of the first tick;"
        f" process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB"
    )


def _row(label: str, figure: str, raw_label: str, raw_figure: str, ratio: float) -> str:
    """One line of a table: a figure, its baseline, their ratio."""
    digits = 0 if ratio >= 100 else 1 if ratio >= 10 else 2 if ratio >= 0.1 else 3
    return f"   {label:<22} {figure:>20} | {raw_label:<14} {raw_figure:>16} | ratio {ratio:,.{digits}f}"


def profile_ticks(drift: PortfolioDrift) -> list[str]:
    """cProfile of one first tick (on an empty book) and one steady tick: the top functions by own time."""
    texts = []
    for name, fresh in (("first tick", True), ("steady tick", False)):
        if fresh:
            drift.book = AlertBook(PORTFOLIO)
        profiler = cProfile.Profile()
        profiler.runcall(drift.evaluate, AT + timedelta(minutes=0 if fresh else 1))
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
        texts.append(f"== profile: {name} ==\n{out.getvalue()}")
    return texts


if __name__ == "__main__":
    sys.exit(main())

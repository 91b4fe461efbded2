"""Events of the append-only key-result history, published on ``okr.kr-events.v1``.

Every event names its portfolio (the partition key, so a portfolio is totally
ordered) and the aggregate it belongs to with that aggregate's version, so a
consumer can tell a gap from a duplicate.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from okr_contracts.envelope import EventPayload
from okr_contracts.types import Confidence, FiniteFloat, Id, Principal, Progress, Text, Weight


class RollupMethod(StrEnum):
    """How a parent's score follows from its children (one method per portfolio)."""

    WEIGHTED = "weighted"
    KPI = "kpi"
    SAY_DO = "say_do"


class KeyResultKind(StrEnum):
    """How a key result's progress is measured."""

    METRIC = "metric"
    THRESHOLD = "threshold"
    DERIVED = "derived"


class ThresholdDirection(StrEnum):
    """Whether a threshold key result must stay at or above, or at or below, its target."""

    AT_LEAST = "at_least"
    AT_MOST = "at_most"


class RecoveryOption(StrEnum):
    """The one thing a recovery plan changes."""

    CHANGE_TACTIC = "change_tactic"
    CHANGE_TARGET = "change_target"
    CHANGE_RESOURCES = "change_resources"


class CycleCadence(StrEnum):
    """How long a cycle runs."""

    QUARTERLY = "quarterly"
    MONTHLY = "monthly"
    CUSTOM = "custom"


class InvestmentPriority(StrEnum):
    """Which share of capacity an objective draws on (the 70/20/10 rule)."""

    PRIMARY = "primary"
    SECONDARY = "secondary"
    EXPLORATION = "exploration"


class AarrrStage(StrEnum):
    """The stage of the customer funnel (pirate metrics) an objective moves."""

    ACQUISITION = "acquisition"
    ACTIVATION = "activation"
    RETENTION = "retention"
    REFERRAL = "referral"
    REVENUE = "revenue"


class InvestmentHorizon(StrEnum):
    """Whether an objective keeps the business running, grows it, or transforms it."""

    RUN = "run"
    GROW = "grow"
    TRANSFORM = "transform"


Sprints = Annotated[float, Field(ge=0.0, le=10_000.0, allow_inf_nan=False)]
"""An amount of a squad's time, in sprints (fractions allowed)."""


class Balance(BaseModel):
    """The intended split of allocated capacity over primary, secondary and exploration objectives; the shares sum to 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    primary: Progress = Field(default=0.7, description="Share of allocated sprints meant for primary objectives.")
    secondary: Progress = Field(default=0.2, description="Share meant for secondary objectives.")
    exploration: Progress = Field(default=0.1, description="Share meant for exploration.")

    @model_validator(mode="after")
    def _sums_to_one(self) -> Balance:
        total = self.primary + self.secondary + self.exploration
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"the shares sum to {total:g}; primary, secondary and exploration must sum to 1")
        return self

    def share(self, priority: InvestmentPriority) -> float:
        """The intended share of one priority."""
        return float(getattr(self, priority.value))


class Link(BaseModel):
    """A contributes-to link from a node to a node one tier above, with its weight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parent_id: Id = Field(description="Id of the objective or key result one tier above.")
    weight: Weight = Field(default=1.0, description="Weight of this node in the parent's rollup.")


class DriftThresholds(BaseModel):
    """Per-portfolio drift thresholds; the defaults are the documented product defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stale_days: int = Field(default=14, ge=1, description="Days without check-in or value before stale.")
    retire_after_stale_days: int = Field(default=21, ge=1, description="Stale days after which retiring is recommended.")
    off_track_confidence: Confidence = Field(default=0.4, description="Confidence below this is off-track.")
    off_track_after_cycle_fraction: Progress = Field(default=0.5, description="Share of the cycle elapsed before off-track applies.")
    plan_due_days: int = Field(default=14, ge=1, description="Days to file a recovery plan before escalation.")
    not_moving_days: int = Field(default=14, ge=1, description="Days of unchanged progress (with check-ins) before not-moving.")
    busy_items: int = Field(default=4, ge=1, description="Completed linked delivery items that make a KR busy.")
    busy_window_days: int = Field(default=30, ge=1, description="Window for counting completed delivery items.")
    flat_progress_delta: FiniteFloat = Field(default=0.05, ge=0, description="Progress change below this is flat.")
    max_objectives_per_team: int = Field(default=3, ge=1, description="Objectives per team per cycle before focus is diluted.")
    max_krs_per_objective: int = Field(default=5, ge=1, description="Key results per objective before focus is diluted.")
    capacity_settle_minutes: int = Field(
        default=10,
        ge=0,
        le=10_080,
        description="Minutes capacity, allocations and tags must stay unchanged before an over-allocation or off-balance alert is raised.",
    )


class KrEvent(EventPayload):
    """Fields common to every event of the key-result history."""

    portfolio_id: Id = Field(description="The portfolio; the Kafka key of this topic.")
    aggregate_id: Id = Field(description="The aggregate (portfolio, product, cycle, objective or key result) this event belongs to.")
    aggregate_version: int = Field(ge=1, description="Version of that aggregate after this event (1 for its first).")
    actor: Principal = Field(description="Who caused it: a user, or `connector:<name>`.")


class PortfolioDefined(KrEvent):
    """A portfolio was defined or its scoring settings redefined."""

    name: Text = Field(description="Display name.")
    owner: Principal = Field(description="Portfolio lead (usually the CPO).")
    rollup_method: RollupMethod = Field(description="Rollup method applied at every tier.")
    allow_mixed_methods: bool = Field(default=False, description="Whether nodes may override the method; the scorecard flags it.")
    say_do_hit_threshold: Progress = Field(default=1.0, description="Progress at or above which a child counts as hit in say-do.")
    drift: DriftThresholds = Field(default_factory=DriftThresholds, description="Drift thresholds.")


class ProductDefined(KrEvent):
    """A product line was added to the portfolio."""

    product_id: Id = Field(description="The product line.")
    name: Text = Field(description="Display name.")
    lead: Principal = Field(description="Product lead.")


class TeamDefined(KrEvent):
    """A team or squad was added to the portfolio (objectives name their owning team)."""

    team_id: Id = Field(description="The team or squad.")
    name: Text = Field(description="Display name.")
    product_id: Id | None = Field(default=None, description="Product line the team works on, if one.")
    lead: Principal = Field(description="Team lead.")


class CycleStarted(KrEvent):
    """A scoring cycle was opened."""

    cycle_id: Id = Field(description="The cycle.")
    name: Text = Field(description="Display name, e.g. `2026-Q3`.")
    cadence: CycleCadence = Field(description="Quarterly by default; rolling monthly cycles are allowed.")
    starts_on: date = Field(description="First day of the cycle.")
    ends_on: date = Field(description="Last day of the cycle.")

    @model_validator(mode="after")
    def _ends_after_start(self) -> CycleStarted:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


class ObjectiveDefined(KrEvent):
    """An objective was defined at a tier of the hierarchy."""

    objective_id: Id = Field(description="The objective.")
    cycle_id: Id = Field(description="The cycle it belongs to.")
    tier: int = Field(ge=1, le=3, description="1 portfolio, 2 product, 3 initiative or team.")
    title: Text = Field(description="The objective as its owner wrote it.")
    owner: Principal = Field(description="Who owns it.")
    product_id: Id | None = Field(default=None, description="Product line (tiers 2 and 3).")
    team_id: Id | None = Field(default=None, description="Owning team or squad, if any.")
    tags: tuple[str, ...] = Field(default=(), description="Tags, e.g. AARRR stage or run/grow/transform.")
    contributes_to: Link | None = Field(default=None, description="Node one tier above it contributes to.")
    rollup_method: RollupMethod | None = Field(
        default=None, description="Method for this node's own rollup when the portfolio allows mixing; none follows the portfolio."
    )


class KeyResultDefined(KrEvent):
    """A key result was defined under an objective."""

    kr_id: Id = Field(description="The key result.")
    objective_id: Id = Field(description="The objective it measures.")
    cycle_id: Id = Field(description="The cycle it belongs to.")
    tier: int = Field(ge=1, le=3, description="Tier of its objective.")
    title: Text = Field(description="The key result as its owner wrote it.")
    kind: KeyResultKind = Field(description="metric, threshold, or derived (progress from its contributors).")
    baseline: FiniteFloat | None = Field(default=None, description="Value at the start (metric KRs).")
    target: FiniteFloat | None = Field(default=None, description="Value to reach (metric) or to hold (threshold).")
    unit: str = Field(default="", max_length=40, description="Unit of baseline, target and values.")
    direction: ThresholdDirection | None = Field(default=None, description="For threshold KRs: at least or at most the target.")
    owner: Principal = Field(description="The product manager or squad owning it.")
    scorekeeper: Principal | None = Field(default=None, description="If set, only this principal (or a bound connector) records values.")
    kpi_binding: Id | None = Field(default=None, description="Metric key whose samples on okr.metrics.v1 become its values.")
    weight: Weight = Field(default=1.0, description="Weight within its objective.")
    contributes_to: Link | None = Field(default=None, description="Node one tier above it contributes to.")
    rollup_method: RollupMethod | None = Field(
        default=None, description="Method for rolling up its contributors when the portfolio allows mixing; none follows the portfolio."
    )


class CheckInRecorded(KrEvent):
    """The owner's weekly check-in on a key result."""

    kr_id: Id = Field(description="The key result.")
    confidence: Confidence = Field(description="Owner's forecast, 0.0 to 1.0.")
    value: FiniteFloat | None = Field(default=None, description="Current value, if reported with the check-in.")
    what_changed: Text = Field(description="What changed since the last check-in.")
    why: str = Field(default="", max_length=4000, description="Why it changed.")
    blocker: str | None = Field(default=None, max_length=4000, description="One blocker, if any.")
    decision_needed: str | None = Field(default=None, max_length=4000, description="One decision needed, if any.")


class ValueObserved(KrEvent):
    """A new current value of a key result's metric."""

    kr_id: Id = Field(description="The key result.")
    value: FiniteFloat = Field(description="The observed value, in the KR's unit.")
    observed_at: AwareDatetime = Field(description="When the value was true.")
    source: str = Field(min_length=1, max_length=200, description="`check-in`, `manual`, or the KPI source that produced it.")


class TargetChanged(KrEvent):
    """A key result's target was changed (never edited in place)."""

    kr_id: Id = Field(description="The key result.")
    old_target: FiniteFloat | None = Field(description="Target before.")
    new_target: FiniteFloat = Field(description="Target after.")
    reason: Text = Field(description="Why; shown in the readout.")


class WeightChanged(KrEvent):
    """A node's weight in its parent's rollup was changed."""

    node_id: Id = Field(description="The objective or key result.")
    parent_id: Id = Field(description="The parent the weight applies to.")
    old_weight: Weight = Field(description="Weight before.")
    new_weight: Weight = Field(description="Weight after.")
    reason: Text = Field(description="Why.")


class LinkChanged(KrEvent):
    """A node's contributes-to link was added, moved or removed."""

    node_id: Id = Field(description="The objective or key result.")
    old_link: Link | None = Field(description="Link before (none if it had none).")
    new_link: Link | None = Field(description="Link after (none removes it).")
    reason: Text = Field(description="Why.")


class KeyResultRetired(KrEvent):
    """A key result was retired; it stays in the history and stops counting."""

    kr_id: Id = Field(description="The key result.")
    reason: Text = Field(description="Why.")
    replaced_by: Id | None = Field(default=None, description="A key result that replaces it, if any.")


class KeyResultEscalated(KrEvent):
    """A key result was escalated to a lead."""

    kr_id: Id = Field(description="The key result.")
    escalated_to: Principal = Field(description="Who must decide.")
    reason: Text = Field(description="Why.")


class RecoveryPlanFiled(KrEvent):
    """A recovery plan for an off-track key result: exactly one option, an owner and the decision needed."""

    kr_id: Id = Field(description="The key result.")
    option: RecoveryOption = Field(description="Change the tactic, the target or the resources.")
    description: Text = Field(description="What will change.")
    owner: Principal = Field(description="Who owns the recovery.")
    decision_needed: Text = Field(description="The decision asked of the leads.")


class SquadCapacitySet(KrEvent):
    """A squad's capacity in sprints: for every cycle, or (with `cycle_id`) for one cycle, overriding that default."""

    team_id: Id = Field(description="The team or squad.")
    cycle_id: Id | None = Field(default=None, description="The one cycle this capacity is for; none sets the squad's default per cycle.")
    sprints: Sprints = Field(description="Sprints the squad can give per cycle (0: none).")
    reason: str = Field(default="", max_length=4000, description="Why, e.g. `two engineers on leave`.")


class ObjectiveAllocated(KrEvent):
    """An objective was allocated to a squad for a number of sprints of the objective's cycle, or its allocation changed."""

    objective_id: Id = Field(description="The objective.")
    team_id: Id = Field(description="The squad that gives the sprints.")
    sprints: Sprints = Field(gt=0.0, description="Sprints of the squad this objective takes in its cycle.")
    old_sprints: Sprints | None = Field(default=None, description="The allocation before (none when it is new).")
    reason: str = Field(default="", max_length=4000, description="Why, if said.")


class AllocationRemoved(KrEvent):
    """An objective's allocation to a squad was taken back; the sprints are free again."""

    objective_id: Id = Field(description="The objective.")
    team_id: Id = Field(description="The squad.")
    old_sprints: Sprints = Field(description="The allocation that was removed.")
    reason: Text = Field(description="Why.")


class ObjectiveClassified(KrEvent):
    """An objective's investment tags were set; each event states all three (none: not classified on that axis)."""

    objective_id: Id = Field(description="The objective.")
    priority: InvestmentPriority | None = Field(default=None, description="Primary, secondary or exploration (the 70/20/10 rule).")
    aarrr_stage: AarrrStage | None = Field(default=None, description="The funnel stage it moves.")
    horizon: InvestmentHorizon | None = Field(default=None, description="Run, grow or transform.")


class BalanceIntended(KrEvent):
    """The portfolio's intended split of allocated capacity, and how far the actual split may stray before drift alerts."""

    intended: Balance = Field(default_factory=Balance, description="Shares for primary, secondary and exploration (70/20/10 by default).")
    margin: Progress = Field(
        default=0.1, description="Largest difference, in share points, between an actual and an intended share that is still in balance."
    )
    reason: str = Field(default="", max_length=4000, description="Why, if said.")


class CycleScored(KrEvent):
    """A cycle was closed: final scores are the scores as of this event."""

    cycle_id: Id = Field(description="The cycle.")
    scored_at: AwareDatetime = Field(description="The scoring moment.")
    carried_over: tuple[Id, ...] = Field(default=(), description="Key results carried into the next cycle.")
    retired: tuple[Id, ...] = Field(default=(), description="Key results retired with the cycle.")
    next_cycle_id: Id | None = Field(default=None, description="Cycle the carried key results move to.")


KR_EVENTS: tuple[type[KrEvent], ...] = (
    PortfolioDefined,
    ProductDefined,
    TeamDefined,
    CycleStarted,
    ObjectiveDefined,
    KeyResultDefined,
    CheckInRecorded,
    ValueObserved,
    TargetChanged,
    WeightChanged,
    LinkChanged,
    KeyResultRetired,
    KeyResultEscalated,
    RecoveryPlanFiled,
    CycleScored,
    SquadCapacitySet,
    ObjectiveAllocated,
    AllocationRemoved,
    ObjectiveClassified,
    BalanceIntended,
)

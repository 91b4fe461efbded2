"""Request bodies of the HTTP API, typed with the contracts' value types so the wire and the API agree."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from okr_contracts.kr_events import (
    AarrrStage,
    Balance,
    CycleCadence,
    DriftThresholds,
    InvestmentHorizon,
    InvestmentPriority,
    KeyResultKind,
    Link,
    RecoveryOption,
    RollupMethod,
    Sprints,
    ThresholdDirection,
)
from okr_contracts.types import Confidence, FiniteFloat, Id, Principal, Progress, Text, Weight


class Body(BaseModel):
    """Strict bodies: an unknown field is an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class PortfolioSettings(Body):
    name: Text
    owner: Principal = Field(description="Portfolio lead.")
    rollup_method: RollupMethod = RollupMethod.WEIGHTED
    allow_mixed_methods: bool = False
    say_do_hit_threshold: Progress = 1.0
    drift: DriftThresholds = Field(default_factory=DriftThresholds)


class DefinePortfolio(PortfolioSettings):
    portfolio_id: Id


class DefineProduct(Body):
    product_id: Id
    name: Text
    lead: Principal


class DefineTeam(Body):
    team_id: Id
    name: Text
    lead: Principal
    product_id: Id | None = None


class StartCycle(Body):
    cycle_id: Id
    name: Text
    cadence: CycleCadence = CycleCadence.QUARTERLY
    starts_on: date
    ends_on: date


class CloseCycle(Body):
    carry: list[Id] = Field(default_factory=list, description="Key results carried into next_cycle_id.")
    retire: list[Id] = Field(default_factory=list, description="Key results retired with the cycle.")
    default: str | None = Field(default=None, pattern="^(carry|retire)$", description="What happens to key results not listed.")
    next_cycle_id: Id | None = None


class DefineObjective(Body):
    objective_id: Id
    cycle_id: Id
    tier: int = Field(ge=1, le=3)
    title: Text
    owner: Principal
    product_id: Id | None = None
    team_id: Id | None = None
    tags: tuple[str, ...] = ()
    contributes_to: Link | None = None
    rollup_method: RollupMethod | None = Field(
        default=None, description="Method for this objective's own rollup, if not the portfolio's (only where it allows mixed methods)."
    )


class DefineKeyResult(Body):
    kr_id: Id
    objective_id: Id
    title: Text
    kind: KeyResultKind = KeyResultKind.METRIC
    baseline: FiniteFloat | None = None
    target: FiniteFloat | None = None
    unit: str = Field(default="", max_length=40)
    direction: ThresholdDirection | None = None
    owner: Principal
    scorekeeper: Principal | None = None
    kpi_binding: Id | None = None
    weight: Weight = 1.0
    contributes_to: Link | None = None
    rollup_method: RollupMethod | None = Field(
        default=None, description="Method for rolling up its contributors, if not the portfolio's (only where it allows mixed methods)."
    )


class RecordCheckIn(Body):
    confidence: Confidence = Field(description="Owner's forecast, 0.0 to 1.0.")
    value: FiniteFloat | None = Field(default=None, description="Current value, if known.")
    what_changed: Text
    why: str = Field(default="", max_length=4000)
    blocker: str | None = Field(default=None, max_length=4000, description="One blocker, if any.")
    decision_needed: str | None = Field(default=None, max_length=4000, description="One decision needed, if any.")
    occurred_at: AwareDatetime | None = Field(default=None, description="When the check-in happened, if not now (imports).")


class RecordValue(Body):
    value: FiniteFloat
    observed_at: AwareDatetime | None = Field(default=None, description="When the value was true; now by default.")
    source: str = Field(default="manual", min_length=1, max_length=200)


class ChangeTarget(Body):
    new_target: FiniteFloat
    reason: Text


class ChangeWeight(Body):
    parent_id: Id
    new_weight: Weight
    reason: Text


class ChangeLink(Body):
    new_link: Link | None = Field(description="The new contributes-to link; null removes it.")
    reason: Text


class Retire(Body):
    reason: Text
    replaced_by: Id | None = None


class Escalate(Body):
    escalated_to: Principal
    reason: Text


class FileRecoveryPlan(Body):
    option: RecoveryOption = Field(description="Exactly one: change_tactic, change_target or change_resources.")
    description: Text
    owner: Principal
    decision_needed: Text


Allocated = Annotated[Sprints, Field(gt=0.0)]
"""Sprints an objective takes of a squad: more than none (a removal takes an allocation back)."""


class SetCapacity(Body):
    sprints: Sprints = Field(description="Sprints the squad can give per cycle (0: none).")
    cycle_id: Id | None = Field(default=None, description="The one cycle this capacity is for; null sets the squad's default per cycle.")
    reason: str = Field(default="", max_length=4000, description="Why, e.g. `two engineers on leave`.")


class Allocate(Body):
    sprints: Allocated = Field(description="Sprints of the squad the objective takes in its cycle.")
    reason: str = Field(default="", max_length=4000)


class RemoveAllocation(Body):
    reason: Text


class ClassifyObjective(Body):
    priority: InvestmentPriority | None = Field(default=None, description="primary, secondary or exploration; null: unclassified.")
    aarrr_stage: AarrrStage | None = Field(default=None, description="The funnel stage it moves; null: unclassified.")
    horizon: InvestmentHorizon | None = Field(default=None, description="run, grow or transform; null: unclassified.")


class BalanceShares(Body):
    """The intended split of allocated capacity (shares summing to 1) and the margin around it."""

    primary: Progress = Field(description="Share of allocated sprints meant for primary objectives.")
    secondary: Progress = Field(description="Share meant for secondary objectives.")
    exploration: Progress = Field(description="Share meant for exploration.")
    margin: Progress = Field(default=0.1, description="Largest difference between an actual and an intended share still in balance.")

    @model_validator(mode="after")
    def _sums_to_one(self) -> BalanceShares:
        self.intended()
        return self

    def intended(self) -> Balance:
        """The shares as the contract's balance (which checks that they sum to 1)."""
        return Balance(primary=self.primary, secondary=self.secondary, exploration=self.exploration)


class IntendBalance(BalanceShares):
    reason: str = Field(default="", max_length=4000)

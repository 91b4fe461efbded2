"""What drift knows about a portfolio: the facts the rules read, folded from the three input topics.

Each fact is an entity (portfolio, product, team, cycle, objective, key result,
progress log, delivery log) that the store keeps as one JSON document, so an
input rewrites only the entities it touched. Folding is idempotent: history
events are skipped when their aggregate version was applied before, score
records when they are not newer than the last one, delivery changes when they
are not newer than the item's last change.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property

from pydantic import BaseModel, Field

from okr_contracts.delivery import DeliverySource, StatusCategory
from okr_contracts.kr_events import AarrrStage, Balance, DriftThresholds, InvestmentHorizon, InvestmentPriority, KeyResultKind


class Entity(BaseModel):
    """A stored fact with the version of the history aggregate it was last changed by."""

    version: int = 0


class PortfolioFacts(Entity):
    """The portfolio: its lead, drift thresholds, and intended balance of capacity with its margin."""

    portfolio_id: str
    lead: str = ""
    thresholds: DriftThresholds = Field(default_factory=DriftThresholds)
    balance: Balance = Field(default_factory=Balance)
    balance_margin: float = 0.1
    capacity_changed_at: datetime | None = Field(
        default=None, description="When a capacity, allocation, tag or the balance last changed: capacity alerts wait for it to settle."
    )


class ProductFacts(Entity):
    """A product line and its lead."""

    product_id: str
    lead: str


class TeamFacts(Entity):
    """A team (or squad), its lead, and its capacity in sprints: a default per cycle and per-cycle overrides."""

    team_id: str
    lead: str
    product_id: str | None = None
    name: str = ""
    capacity: float | None = Field(default=None, description="Sprints per cycle; none when never declared.")
    capacity_by_cycle: dict[str, float] = Field(default_factory=dict, description="Sprints for one cycle, overriding the default.")


class CycleFacts(Entity):
    """A cycle: first and last day; scored once closed."""

    cycle_id: str
    starts_on: date
    ends_on: date
    scored: bool = False

    @cached_property
    def start(self) -> datetime:
        """The first moment of the cycle (UTC midnight of its first day)."""
        return datetime.combine(self.starts_on, time(0), UTC)

    @cached_property
    def end(self) -> datetime:
        """The moment the cycle is over (UTC midnight after its last day)."""
        return datetime.combine(self.ends_on + timedelta(days=1), time(0), UTC)

    def elapsed(self, at: datetime) -> float:
        """Share of the cycle elapsed at `at`, 0 before it starts, 1 after it ends."""
        span = (self.end - self.start).total_seconds()
        share = (at - self.start).total_seconds() / span
        return min(1.0, max(0.0, share))


class ObjectiveFacts(Entity):
    """An objective: cycle, tier, owner, product and team."""

    objective_id: str
    cycle_id: str
    tier: int
    title: str
    owner: str
    product_id: str | None = None
    team_id: str | None = None
    allocations: dict[str, float] = Field(default_factory=dict, description="Sprints of each squad it takes in its cycle.")
    priority: InvestmentPriority | None = None
    aarrr_stage: AarrrStage | None = None
    horizon: InvestmentHorizon | None = None

    @property
    def focus_group(self) -> str | None:
        """The team whose focus it counts against: its team, else (below tier 1) its product."""
        if self.team_id:
            return self.team_id
        return self.product_id if self.tier > 1 else None


class CheckIn(BaseModel):
    """One check-in as the rules need it."""

    at: datetime
    confidence: float
    version: int = Field(description="The key result's aggregate version of the check-in: identifies it.")


class RecoveryPlan(BaseModel):
    """The latest recovery plan filed for a key result."""

    at: datetime
    option: str
    owner: str
    decision_needed: str


class KeyResultFacts(Entity):
    """A key result's definition and the history facts the rules read."""

    kr_id: str
    objective_id: str
    cycle_id: str
    title: str
    kind: KeyResultKind
    baseline: float | None = None
    target: float | None = None
    has_direction: bool = False
    owner: str
    defined_at: datetime
    retired: bool = False
    recent_checkins: list[CheckIn] = Field(default_factory=list, description="The last few check-ins, oldest first.")
    low_since: datetime | None = Field(default=None, description="First check-in of the current run below the off-track confidence.")
    last_value_at: datetime | None = None
    last_escalated_at: datetime | None = None
    plan: RecoveryPlan | None = None

    @property
    def last_checkin_at(self) -> datetime | None:
        """When the latest check-in was recorded."""
        return self.recent_checkins[-1].at if self.recent_checkins else None

    @property
    def confidence(self) -> float | None:
        """Latest confidence; unknown before the first check-in."""
        return self.recent_checkins[-1].confidence if self.recent_checkins else None


class ProgressPoint(BaseModel):
    """Progress (clamped) from a score record, and when it became so."""

    at: datetime
    progress: float


class ProgressLog(Entity):
    """A key result's progress over time from okr.scores.v1: one point per change, pruned to the longest window."""

    kr_id: str
    points: list[ProgressPoint] = Field(default_factory=list)
    last_as_of: datetime | None = None
    last_sources: list[str] = Field(
        default_factory=list, description="Source events of the records as of `last_as_of` (a check-in and its value share a moment)."
    )

    def at(self, moment: datetime) -> float | None:
        """Progress at a moment: the last point at or before it; none before the first."""
        found = None
        for point in self.points:
            if point.at > moment:
                break
            found = point.progress
        return found

    @property
    def current(self) -> ProgressPoint | None:
        """The latest point."""
        return self.points[-1] if self.points else None


class DeliveryItem(BaseModel):
    """What a person needs to recognise a linked item and see where it stands; the times are the log's."""

    source: DeliverySource
    key: str | None = Field(default=None, description="The vendor's key (`ENG-42`); none for a chat message.")
    title: str = Field(default="", description="The item's title, or the first line of a chat message.")
    url: str | None = None
    status: str = Field(default="", description="The vendor's status name, or a chat signal's kind (`blocker`, `decision_needed`).")
    status_category: StatusCategory | None = Field(default=None, description="None for a chat signal.")


class DeliveryLog(Entity):
    """Delivery items linked to a key result: when each reached done (none if it is not done), its last change, and what it is.

    `done_at` and `changed_at` hold every item (busy-but-flat reads `done_at`); `items` describes them.
    Logs stored before descriptions were kept have none until the item's next change.
    """

    kr_id: str
    done_at: dict[str, datetime | None] = Field(default_factory=dict)
    changed_at: dict[str, datetime] = Field(default_factory=dict)
    items: dict[str, DeliveryItem] = Field(default_factory=dict)

    def done_between(self, start: datetime, end: datetime) -> int:
        """Items done in (start, end]."""
        return sum(1 for at in self.done_at.values() if at is not None and start < at <= end)

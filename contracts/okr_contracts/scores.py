"""Scores of every node with their derivation, published on ``okr.scores.v1``.

Compacted and keyed by ``<portfolio_id>/<node_id>`` (node ids are unique only within a
portfolio): the latest record per node is its current score.
Each record carries enough to recompute it by hand ("the math visible").
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from okr_contracts.envelope import EventPayload
from okr_contracts.kr_events import RollupMethod
from okr_contracts.types import Confidence, FiniteFloat, Id, Progress


def score_key(portfolio_id: str, node_id: str) -> str:
    """The Kafka key of a node's records on okr.scores.v1."""
    return f"{portfolio_id}/{node_id}"


class NodeKind(StrEnum):
    """What kind of node a score is for."""

    OBJECTIVE = "objective"
    KEY_RESULT = "key_result"


class ScoreStatus(StrEnum):
    """Whether there is data behind the score; silence is never green."""

    SCORED = "scored"
    PENDING = "pending"
    RETIRED = "retired"


class DerivationInput(BaseModel):
    """One child (or the node's own observation) that went into a score."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node_id: Id = Field(description="The child node, or the node itself for its own metric.")
    weight: FiniteFloat | None = Field(default=None, description="Weight used, for weighted rollups.")
    progress: Progress = Field(description="Clamped progress used in the rollup.")
    raw_progress: FiniteFloat | None = Field(default=None, description="Unclamped ratio, if a metric.")
    value: FiniteFloat | None = Field(default=None, description="Current value used, for metric and KPI rollups.")
    unit: str | None = Field(default=None, description="Unit of `value`.")
    confidence: Confidence | None = Field(default=None, description="Latest confidence, if known.")
    pending: bool = Field(default=False, description="True when the child has no data yet and counts as 0.")
    hit: bool | None = Field(default=None, description="For say-do: whether it reached the hit threshold.")


class Derivation(BaseModel):
    """How a score was computed, so a reader can recompute it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: RollupMethod | str = Field(description="`weighted`, `kpi`, `say_do`, or `metric` / `threshold` for a KR's own value.")
    formula: str = Field(min_length=1, description="The formula with the numbers filled in.")
    inputs: tuple[DerivationInput, ...] = Field(default=(), description="Children or observations used.")
    baseline: FiniteFloat | None = Field(default=None, description="Baseline used, for metric and KPI.")
    target: FiniteFloat | None = Field(default=None, description="Target used, for metric, threshold and KPI.")
    hit_threshold: Progress | None = Field(default=None, description="Hit threshold used, for say-do.")


class NodeScored(EventPayload):
    """The current score of an objective or key result."""

    portfolio_id: Id = Field(description="The portfolio.")
    node_id: Id = Field(description="The objective or key result; unique within its portfolio.")
    node_kind: NodeKind = Field(description="Objective or key result.")
    tier: int = Field(ge=1, le=3, description="Tier of the node.")
    cycle_id: Id = Field(description="The cycle.")
    title: str = Field(default="", max_length=4000, description="The objective or key result as its owner wrote it.")
    product_id: Id | None = Field(default=None, description="Product line of the node (tiers 2 and 3), if any.")
    objective_id: Id | None = Field(default=None, description="For a key result: the objective it measures.")
    contributes_to: Id | None = Field(default=None, description="The node one tier above whose score this one feeds, if linked.")
    status: ScoreStatus = Field(description="Scored, pending (no data yet) or retired.")
    progress: Progress = Field(description="Progress clamped to [0, 1].")
    raw_progress: FiniteFloat | None = Field(default=None, description="Unclamped ratio for metric KRs (over/under-achievement).")
    confidence: Confidence | None = Field(default=None, description="Weighted mean of known confidences; none when unknown.")
    mixed_methods: bool = Field(default=False, description="True when the portfolio allows mixing and this subtree mixes methods.")
    derivation: Derivation = Field(description="The math visible.")
    scoring_rules_version: str = Field(min_length=1, description="Version of the scoring rules that produced it.")
    as_of: AwareDatetime = Field(description="Time of the last history event included.")
    source_event_id: str = Field(min_length=1, description="Id of the last history event included.")


SCORE_EVENTS: tuple[type[EventPayload], ...] = (NodeScored,)

"""Every worked example of docs/scoring.md, one test each, named by its example number.

Numbers are compared exactly: each expected float is written as the same IEEE
operation the rule performs (``1 / 3`` for a third), so ``pytest.approx`` appears
only where the documented decimal is not what the computation gives bit for bit.
"""

from __future__ import annotations

import copy
import json
import math
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from okr_contracts.envelope import Envelope, EventPayload
from okr_contracts.kr_events import (
    CheckInRecorded,
    KeyResultDefined,
    KeyResultKind,
    KeyResultRetired,
    KrEvent,
    Link,
    ObjectiveDefined,
    PortfolioDefined,
    RollupMethod,
    ThresholdDirection,
    ValueObserved,
)
from okr_contracts.scores import NodeScored, ScoreStatus
from okr_rollup import views
from okr_rollup.domain.errors import MixedMethodsRefused, UnitMismatch
from okr_rollup.domain.projection import SCORE_ID_NAMESPACE, PortfolioProjection, ScoreRecord, canonical
from okr_rollup.domain.scoring import (
    RULES_VERSION,
    Contribution,
    Score,
    num,
    score_kpi,
    score_metric,
    score_objective,
    score_say_do,
    score_threshold,
    score_weighted,
)

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[3] / "docs" / "scoring.md"
OBSERVED_AT = datetime(2026, 8, 12, 9, 30, tzinfo=UTC)


def churn(value: float | None, confidence: float | None = None) -> Score:
    """Examples 3.2 to 3.6: reduce monthly churn from 5% to 2%, at a value."""
    return score_metric("kr-churn", baseline=5.0, target=2.0, unit="%", value=value, confidence=confidence)


def kid(node_id: str, weight: float = 1.0, progress: float = 0.0, **fields: Any) -> Contribution:
    """A child as its parent's rollup sees it."""
    return Contribution(node_id=node_id, weight=weight, progress=progress, **fields)


def formula(score: Score) -> str:
    return score.derivation.formula


class History:
    """Contract events of the portfolio "acme" in their envelopes, each aggregate's versions counted."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.envelopes: list[Envelope[EventPayload]] = []

    def add(self, event_type: type[KrEvent], aggregate_id: str, **fields: Any) -> Envelope[EventPayload]:
        version = self.versions.get(aggregate_id, 0) + 1
        self.versions[aggregate_id] = version
        event: EventPayload = event_type(
            portfolio_id="acme", aggregate_id=aggregate_id, aggregate_version=version, actor="cpo@example.com", **fields
        )
        envelope: Envelope[EventPayload] = Envelope.wrap(event, producer="checkins")
        self.envelopes.append(envelope)
        return envelope

    def portfolio(self, method: RollupMethod, *, allow_mixed: bool = False) -> Envelope[EventPayload]:
        return self.add(
            PortfolioDefined, "acme", name="Acme", owner="cpo@example.com", rollup_method=method, allow_mixed_methods=allow_mixed
        )

    def objective(
        self, objective_id: str, tier: int, *, link: Link | None = None, method: RollupMethod | None = None
    ) -> Envelope[EventPayload]:
        return self.add(
            ObjectiveDefined,
            objective_id,
            objective_id=objective_id,
            cycle_id="2026-Q3",
            tier=tier,
            title=objective_id,
            owner="lead.bo@example.com",
            product_id="billing" if tier > 1 else None,
            contributes_to=link,
            rollup_method=method,
        )

    def key_result(self, kr_id: str, objective_id: str, tier: int, kind: KeyResultKind, **fields: Any) -> Envelope[EventPayload]:
        return self.add(
            KeyResultDefined,
            kr_id,
            kr_id=kr_id,
            objective_id=objective_id,
            cycle_id="2026-Q3",
            tier=tier,
            title=kr_id,
            kind=kind,
            owner="pm.ana@example.com",
            **fields,
        )

    def value(self, kr_id: str, value: float) -> Envelope[EventPayload]:
        return self.add(ValueObserved, kr_id, kr_id=kr_id, value=value, observed_at=OBSERVED_AT, source="manual")

    def check_in(self, kr_id: str, confidence: float) -> Envelope[EventPayload]:
        return self.add(CheckInRecorded, kr_id, kr_id=kr_id, confidence=confidence, what_changed="weekly check-in")

    def retire(self, kr_id: str) -> Envelope[EventPayload]:
        return self.add(KeyResultRetired, kr_id, kr_id=kr_id, reason="replaced")


class Scores:
    """A projection of "acme" and the latest record it produced for each node."""

    def __init__(self, history: History) -> None:
        self.projection = PortfolioProjection("acme")
        self.latest: dict[str, ScoreRecord] = {}
        self.produced: list[ScoreRecord] = []
        for envelope in history.envelopes:
            self.apply(envelope)

    def apply(self, envelope: Envelope[EventPayload]) -> list[ScoreRecord] | None:
        records = self.projection.apply(envelope)
        for record in records or []:
            self.latest[record.node_id] = record
            self.produced.append(record)
        return records

    def __getitem__(self, node_id: str) -> NodeScored:
        return self.latest[node_id].envelope.data


def squad(method: RollupMethod) -> History:
    """Examples 8.x: a derived tier-2 key result fed by two tier-3 key results of a squad."""
    h = History()
    h.portfolio(method)
    h.objective("obj-billing", 2)
    h.key_result("kr-retention", "obj-billing", 2, KeyResultKind.DERIVED, unit="%")
    h.objective("obj-squad", 3)
    recovered = Link(parent_id="kr-retention", weight=3.0)
    h.key_result(
        "kr-recovered", "obj-squad", 3, KeyResultKind.METRIC, baseline=0.0, target=100.0, unit="payments", contributes_to=recovered
    )
    uptime = Link(parent_id="kr-retention", weight=1.0)
    h.key_result(
        "kr-uptime",
        "obj-squad",
        3,
        KeyResultKind.THRESHOLD,
        target=99.9,
        direction=ThresholdDirection.AT_LEAST,
        unit="%",
        contributes_to=uptime,
    )
    h.value("kr-recovered", 50.0)
    h.value("kr-uptime", 99.95)
    return h


def billing(method: RollupMethod, *, allow_mixed: bool = False, billing_method: RollupMethod | None = None) -> History:
    """Examples 11.1 and 13.2 to 16.1: a portfolio objective, a product objective linked to it, two key results."""
    h = History()
    h.portfolio(method, allow_mixed=allow_mixed)
    h.objective("obj-growth", 1)
    h.objective("obj-billing", 2, link=Link(parent_id="obj-growth"), method=billing_method)
    h.key_result("kr-activation", "obj-billing", 2, KeyResultKind.METRIC, baseline=20.0, target=40.0, unit="%")
    h.key_result("kr-latency", "obj-billing", 2, KeyResultKind.THRESHOLD, target=300.0, direction=ThresholdDirection.AT_MOST, unit="ms")
    h.value("kr-activation", 30.0)
    h.value("kr-latency", 250.0)
    return h


# 1. Reading a score


def test_formulas_show_numbers_with_at_most_four_decimals_and_no_negative_zero() -> None:
    """Example 1.1."""
    assert [num(x) for x in (1 / 3, 2.50, -0.0, 1234.56789, 0.00004)] == ["0.3333", "2.5", "0", "1234.5679", "0"]


def test_a_formula_writes_twelve_terms_then_points_to_the_inputs() -> None:
    """Example 1.2."""
    score = score_weighted([kid(f"kr-{i:02d}", progress=1.0) for i in range(1, 14)])
    twelve = " + ".join(["1*1"] * 12)
    ones = " + ".join(["1"] * 12)
    assert formula(score) == f"({twelve} + ... (1 more, see inputs)) / ({ones} + ... (1 more, see inputs)) = 1"
    assert [i.node_id for i in score.derivation.inputs] == [f"kr-{i:02d}" for i in range(1, 14)]


# 3. Metric key results


def test_an_increasing_metric_scores_the_share_of_the_way_from_baseline_to_target() -> None:
    """Example 3.1."""
    score = score_metric("kr-teams", baseline=1200.0, target=2000.0, unit="teams", value=1500.0, confidence=0.7)
    assert (score.status, score.progress, score.raw_progress, score.confidence) == (ScoreStatus.SCORED, 0.375, 0.375, 0.7)
    assert formula(score) == "(1500 - 1200) / (2000 - 1200) = 0.375"
    assert (score.derivation.baseline, score.derivation.target) == (1200.0, 2000.0)


def test_a_decreasing_metric_part_way_to_its_target_scores_a_third() -> None:
    """Example 3.2."""
    score = churn(4.0, confidence=0.6)
    assert (score.status, score.progress, score.raw_progress, score.confidence) == (ScoreStatus.SCORED, 1 / 3, 1 / 3, 0.6)
    assert formula(score) == "(4 - 5) / (2 - 5) = 0.3333"


def test_a_decreasing_metric_moving_the_wrong_way_is_negative_raw_and_zero_clamped() -> None:
    """Example 3.3."""
    score = churn(6.0)
    assert (score.status, score.progress, score.raw_progress) == (ScoreStatus.SCORED, 0.0, -1 / 3)
    assert formula(score) == "(6 - 5) / (2 - 5) = -0.3333, clamped to 0"


def test_decreasing_metric_past_its_target_is_clamped_to_one() -> None:
    """Example 3.4."""
    score = churn(1.0)
    assert (score.status, score.progress, score.raw_progress) == (ScoreStatus.SCORED, 1.0, 4 / 3)
    assert formula(score) == "(1 - 5) / (2 - 5) = 1.3333, clamped to 1"


def test_a_metric_whose_baseline_has_not_moved_scores_zero() -> None:
    """Example 3.5."""
    score = churn(5.0)
    assert (score.status, score.progress, score.raw_progress) == (ScoreStatus.SCORED, 0.0, 0.0)
    assert score.raw_progress is not None
    assert math.copysign(1.0, score.raw_progress) == 1.0  # 0 / (2 - 5) is -0.0 in floating point; it is published as 0.0
    assert formula(score) == "(5 - 5) / (2 - 5) = 0"


def test_a_metric_with_no_value_yet_is_pending_at_zero() -> None:
    """Example 3.6."""
    score = churn(None, confidence=0.6)
    assert (score.status, score.progress, score.raw_progress, score.confidence) == (ScoreStatus.PENDING, 0.0, None, 0.6)
    assert formula(score) == "no value observed yet: progress 0 (pending)"
    assert score.derivation.inputs[0].pending


def test_a_metric_without_a_baseline_is_not_measurable() -> None:
    """Example 3.7."""
    score = score_metric("kr-nps", baseline=None, target=40.0, unit="points", value=31.0, confidence=None)
    assert (score.status, score.progress, score.raw_progress, score.value) == (ScoreStatus.PENDING, 0.0, None, 31.0)
    assert formula(score) == "not measurable: a metric needs a baseline and a different target; progress 0 (pending)"


def test_a_metric_whose_target_equals_its_baseline_is_not_measurable() -> None:
    """Example 3.8."""
    score = score_metric("kr-nps", baseline=40.0, target=40.0, unit="points", value=41.0, confidence=None)
    assert (score.status, score.progress, score.raw_progress) == (ScoreStatus.PENDING, 0.0, None)
    assert formula(score) == "not measurable: a metric needs a baseline and a different target; progress 0 (pending)"


# 4. Threshold key results


def availability(value: float | None) -> Score:
    return score_threshold("kr-availability", target=99.9, direction=ThresholdDirection.AT_LEAST, unit="%", value=value, confidence=None)


def latency(value: float | None) -> Score:
    return score_threshold("kr-latency", target=300.0, direction=ThresholdDirection.AT_MOST, unit="ms", value=value, confidence=None)


def test_an_at_least_threshold_that_is_met_scores_one() -> None:
    """Example 4.1."""
    score = availability(99.95)
    assert (score.status, score.progress, score.raw_progress) == (ScoreStatus.SCORED, 1.0, None)
    assert formula(score) == "99.95 >= 99.9 is met: progress 1"


def test_an_at_least_threshold_that_is_not_met_scores_zero() -> None:
    """Example 4.2."""
    score = availability(99.8)
    assert (score.status, score.progress) == (ScoreStatus.SCORED, 0.0)
    assert formula(score) == "99.8 >= 99.9 is not met: progress 0"


def test_an_at_most_threshold_exactly_at_its_target_is_met() -> None:
    """Example 4.3."""
    score = latency(300.0)
    assert (score.status, score.progress) == (ScoreStatus.SCORED, 1.0)
    assert formula(score) == "300 <= 300 is met: progress 1"


def test_an_at_most_threshold_above_its_target_is_not_met() -> None:
    """Example 4.4."""
    score = latency(320.0)
    assert (score.status, score.progress) == (ScoreStatus.SCORED, 0.0)
    assert formula(score) == "320 <= 300 is not met: progress 0"


def test_a_threshold_with_no_value_yet_is_pending_at_zero() -> None:
    """Example 4.5."""
    score = latency(None)
    assert (score.status, score.progress) == (ScoreStatus.PENDING, 0.0)
    assert formula(score) == "no value observed yet: progress 0 (pending)"


def test_a_threshold_without_a_direction_is_not_measurable() -> None:
    """Example 4.6."""
    score = score_threshold("kr-availability", target=99.9, direction=None, unit="%", value=99.95, confidence=None)
    assert (score.status, score.progress) == (ScoreStatus.PENDING, 0.0)
    assert formula(score) == "not measurable: a threshold needs a target and a direction; progress 0 (pending)"


# 5. Weighted rollup


def test_a_weighted_rollup_divides_the_weighted_progress_by_the_weights() -> None:
    """Example 5.1."""
    score = score_weighted([kid("kr-b", 1.0, 1.0), kid("kr-a", 3.0, 0.25)])
    assert (score.status, score.progress, score.raw_progress) == (ScoreStatus.SCORED, 0.4375, None)
    assert formula(score) == "(3*0.25 + 1*1) / (3 + 1) = 0.4375"
    assert [(i.node_id, i.weight, i.progress) for i in score.derivation.inputs] == [("kr-a", 3.0, 0.25), ("kr-b", 1.0, 1.0)]


def test_a_child_of_weight_zero_is_listed_but_changes_nothing() -> None:
    """Example 5.2."""
    score = score_weighted([kid("kr-a", 3.0, 0.25), kid("kr-b", 1.0, 1.0), kid("kr-c", 0.0, 1.0, confidence=1.0)])
    assert (score.status, score.progress, score.confidence) == (ScoreStatus.SCORED, 0.4375, None)
    assert formula(score) == "(3*0.25 + 1*1 + 0*1) / (3 + 1 + 0) = 0.4375"
    assert [i.node_id for i in score.derivation.inputs] == ["kr-a", "kr-b", "kr-c"]


def test_when_every_weight_is_zero_nothing_counts_and_the_parent_is_pending() -> None:
    """Example 5.3."""
    score = score_weighted([kid("kr-a", 0.0, 0.25), kid("kr-b", 0.0, 1.0)])
    assert (score.status, score.progress) == (ScoreStatus.PENDING, 0.0)
    assert formula(score) == "every weight is 0: nothing counts, progress 0 (pending)"
    assert len(score.derivation.inputs) == 2


def test_a_parent_with_no_children_yet_is_pending_at_zero() -> None:
    """Example 5.4 (empty children)."""
    score = score_weighted([])
    assert (score.status, score.progress, score.confidence) == (ScoreStatus.PENDING, 0.0, None)
    assert formula(score) == "no contributors yet: progress 0 (pending)"
    assert score.derivation.inputs == ()


# 6. KPI rollup


def arr(*children: Contribution) -> Score:
    """Examples 6.1 to 6.9: grow annual recurring revenue from 100 to 200 MEUR, the sum of the products' revenue."""
    return score_kpi("kr-arr", unit="MEUR", baseline=100.0, target=200.0, children=children)


def test_a_kpi_adds_its_childrens_values_then_scores_the_sum_as_a_metric() -> None:
    """Example 6.1."""
    score = arr(kid("kr-payments", progress=0.5, value=60.0, unit="MEUR"), kid("kr-billing", progress=1.0, value=70.0, unit="MEUR"))
    assert (score.status, score.progress, score.raw_progress, score.value, score.unit) == (ScoreStatus.SCORED, 0.3, 0.3, 130.0, "MEUR")
    assert formula(score) == "value = 70 + 60 = 130 MEUR; (130 - 100) / (200 - 100) = 0.3"
    assert all(i.weight is None for i in score.derivation.inputs)


def test_a_kpi_sum_below_its_baseline_is_negative_raw_and_zero_clamped() -> None:
    """Example 6.2."""
    score = arr(kid("kr-billing", value=50.0, unit="MEUR"), kid("kr-payments", value=40.0, unit="MEUR"))
    assert (score.status, score.progress, score.raw_progress, score.value) == (ScoreStatus.SCORED, 0.0, -0.1, 90.0)
    assert formula(score) == "value = 50 + 40 = 90 MEUR; (90 - 100) / (200 - 100) = -0.1, clamped to 0"


def test_a_kpi_child_without_a_value_adds_zero() -> None:
    """Example 6.3."""
    score = arr(kid("kr-billing", value=70.0, unit="MEUR"), kid("kr-payments", unit="MEUR", pending=True))
    assert (score.status, score.progress, score.raw_progress, score.value) == (ScoreStatus.SCORED, 0.0, -0.3, 70.0)
    assert formula(score) == "value = 70 + 0 = 70 MEUR; (70 - 100) / (200 - 100) = -0.3, clamped to 0"


def test_a_decreasing_kpi_reads_as_met_while_a_child_is_silent() -> None:
    """Example 6.4: pins today's behaviour, which docs/scoring.md flags as under review."""
    score = score_kpi(
        "kr-tickets",
        unit="tickets",
        baseline=1000.0,
        target=500.0,
        children=[kid("kr-billing-tickets", value=300.0, unit="tickets"), kid("kr-payments-tickets", unit="tickets", pending=True)],
    )
    assert (score.status, score.progress, score.raw_progress, score.value) == (ScoreStatus.SCORED, 1.0, 1.4, 300.0)
    assert formula(score) == "value = 300 + 0 = 300 tickets; (300 - 1000) / (500 - 1000) = 1.4, clamped to 1"


def test_a_kpi_child_in_another_unit_is_refused() -> None:
    """Example 6.5 (unit mismatch)."""
    with pytest.raises(UnitMismatch, match=r"^kr-payments is in 'MUSD'; kr-arr adds values in 'MEUR'$"):
        arr(kid("kr-billing", value=70.0, unit="MEUR"), kid("kr-payments", value=60.0, unit="MUSD"))


def test_an_objective_cannot_contribute_to_a_kpi_key_result() -> None:
    """Example 6.6."""
    with pytest.raises(UnitMismatch, match=r"^obj-squad is without a value \(an objective\); kr-arr adds values in 'MEUR'$"):
        arr(kid("obj-squad", progress=0.5))


def test_objectives_under_kpi_take_the_weighted_mean_because_they_have_no_unit() -> None:
    """Example 6.7."""
    score = score_objective(RollupMethod.KPI, [kid("kr-arr", 1.0, 1.0), kid("kr-nrr", 1.0, 0.5)], hit_threshold=1.0)
    assert (score.status, score.progress, score.derivation.method) == (ScoreStatus.SCORED, 0.75, RollupMethod.WEIGHTED)
    assert formula(score) == "objectives have no unit, so under kpi they take the weighted mean: (1*1 + 1*0.5) / (1 + 1) = 0.75"


def test_a_kpi_with_no_contributors_yet_is_pending() -> None:
    """Example 6.8."""
    score = arr()
    assert (score.status, score.progress, score.raw_progress, score.value) == (ScoreStatus.PENDING, 0.0, None, None)
    assert formula(score) == "no contributors yet: progress 0 (pending)"


def test_a_kpi_whose_children_are_all_pending_is_pending() -> None:
    """Example 6.9."""
    score = arr(kid("kr-billing", unit="MEUR", pending=True), kid("kr-payments", unit="MEUR", pending=True))
    assert (score.status, score.progress, score.raw_progress, score.value) == (ScoreStatus.PENDING, 0.0, None, 0.0)
    assert formula(score) == "value = 0 + 0 = 0 MEUR; (0 - 100) / (200 - 100) = -1, clamped to 0 (pending: no child has data yet)"


# 7. Say-do rollup


def test_say_do_is_the_share_of_children_at_the_hit_threshold() -> None:
    """Example 7.1."""
    children = [kid("kr-a", progress=1.0), kid("kr-b", progress=0.5), kid("kr-c", pending=True), kid("kr-d", progress=1.0)]
    score = score_say_do(children, hit_threshold=1.0)
    assert (score.status, score.progress, score.derivation.hit_threshold) == (ScoreStatus.SCORED, 0.5, 1.0)
    assert formula(score) == "2 of 4 children at or above 1: 2 / 4 = 0.5"
    assert [(i.node_id, i.hit, i.weight) for i in score.derivation.inputs] == [
        ("kr-a", True, None),
        ("kr-b", False, None),
        ("kr-c", False, None),
        ("kr-d", True, None),
    ]


def test_say_do_with_a_lower_hit_threshold_counts_every_child_that_reached_it() -> None:
    """Example 7.2."""
    children = [kid("kr-a", progress=1.0), kid("kr-b", progress=0.75), kid("kr-c", pending=True), kid("kr-d", progress=0.5)]
    score = score_say_do(children, hit_threshold=0.7)
    assert (score.status, score.progress) == (ScoreStatus.SCORED, 0.5)
    assert formula(score) == "2 of 4 children at or above 0.7: 2 / 4 = 0.5"


def test_say_do_with_no_children_yet_is_pending() -> None:
    """Example 7.3."""
    score = score_say_do([], hit_threshold=1.0)
    assert (score.status, score.progress) == (ScoreStatus.PENDING, 0.0)
    assert formula(score) == "no contributors yet: progress 0 (pending)"


# 8. Derived key results


def test_a_derived_key_result_takes_the_weighted_progress_of_its_contributors() -> None:
    """Example 8.1."""
    scores = Scores(squad(RollupMethod.WEIGHTED))
    retention = scores["kr-retention"]
    assert (retention.status, retention.progress, retention.raw_progress) == (ScoreStatus.SCORED, 0.625, None)
    assert retention.derivation.method == RollupMethod.WEIGHTED
    assert retention.derivation.formula == "(3*0.5 + 1*1) / (3 + 1) = 0.625"


def test_a_derived_key_result_under_say_do_counts_its_contributors_that_hit() -> None:
    """Example 8.2."""
    scores = Scores(squad(RollupMethod.SAY_DO))
    retention = scores["kr-retention"]
    assert (retention.status, retention.progress) == (ScoreStatus.SCORED, 0.5)
    assert retention.derivation.formula == "1 of 2 children at or above 1: 1 / 2 = 0.5"


# 9. Objectives


def test_an_objective_weighs_its_key_results_and_the_objectives_linked_to_it() -> None:
    """Example 9.1."""
    children = [kid("obj-squad", 1.0, 0.25), kid("kr-latency", 1.0, 1.0), kid("kr-activation", 2.0, 0.5)]
    score = score_objective(RollupMethod.WEIGHTED, children, hit_threshold=1.0)
    assert (score.status, score.progress, score.raw_progress) == (ScoreStatus.SCORED, 0.5625, None)
    assert formula(score) == "(2*0.5 + 1*1 + 1*0.25) / (2 + 1 + 1) = 0.5625"


# 10. Pending: silence is never green


def test_a_pending_child_counts_as_zero() -> None:
    """Example 10.1."""
    score = score_weighted([kid("kr-a", progress=1.0), kid("kr-b", pending=True)])
    assert (score.status, score.progress) == (ScoreStatus.SCORED, 0.5)
    assert formula(score) == "(1*1 + 1*0) / (1 + 1) = 0.5"
    assert [i.pending for i in score.derivation.inputs] == [False, True]


def test_a_parent_whose_children_are_all_pending_is_pending() -> None:
    """Example 10.2."""
    score = score_weighted([kid("kr-a", pending=True), kid("kr-b", pending=True)])
    assert (score.status, score.progress) == (ScoreStatus.PENDING, 0.0)
    assert formula(score) == "(1*0 + 1*0) / (1 + 1) = 0 (pending: no child has data yet)"


def test_a_pending_child_never_hits_even_at_a_zero_hit_threshold() -> None:
    """Example 10.3."""
    score = score_say_do([kid("kr-a", progress=0.0), kid("kr-b", pending=True)], hit_threshold=0.0)
    assert (score.status, score.progress) == (ScoreStatus.SCORED, 0.5)
    assert formula(score) == "1 of 2 children at or above 0: 1 / 2 = 0.5"


# 11. Retired key results


def test_a_retired_key_result_leaves_every_rollup() -> None:
    """Example 11.1."""
    h = billing(RollupMethod.WEIGHTED)
    h.key_result(
        "kr-legacy",
        "obj-billing",
        2,
        KeyResultKind.METRIC,
        baseline=0.0,
        target=10.0,
        unit="%",
        contributes_to=Link(parent_id="obj-growth"),
    )
    h.value("kr-legacy", 10.0)
    scores = Scores(h)
    assert scores["kr-legacy"].derivation.formula == "(10 - 0) / (10 - 0) = 1"
    assert scores["obj-billing"].derivation.formula == "(1*0.5 + 1*1 + 1*1) / (1 + 1 + 1) = 0.8333"
    assert scores["obj-growth"].derivation.formula == "(1*1 + 1*0.8333) / (1 + 1) = 0.9167"

    scores.apply(h.retire("kr-legacy"))
    legacy = scores["kr-legacy"]
    assert (legacy.status, legacy.progress, legacy.raw_progress, legacy.derivation.method) == (ScoreStatus.RETIRED, 0.0, None, "retired")
    assert legacy.derivation.formula == "retired: no longer counts in any rollup"
    assert scores["obj-billing"].derivation.formula == "(1*0.5 + 1*1) / (1 + 1) = 0.75"
    assert scores["obj-growth"].derivation.formula == "(1*0.75) / (1) = 0.75"
    assert [i.node_id for i in scores["obj-growth"].derivation.inputs] == ["obj-billing"]


# 12. Confidence


def test_confidence_is_the_weighted_mean_of_the_known_confidences() -> None:
    """Example 12.1."""
    score = score_weighted([kid("kr-a", 3.0, 0.25, confidence=0.5), kid("kr-b", 1.0, 1.0, confidence=1.0), kid("kr-c", 2.0, 0.5)])
    assert score.confidence == 0.625


def test_confidence_stays_unknown_until_someone_checks_in() -> None:
    """Example 12.2."""
    score = score_weighted([kid("kr-a", 3.0, 0.25), kid("kr-b", 1.0, 1.0)])
    assert score.confidence is None


def test_a_key_results_own_check_in_confidence_wins_over_its_contributors() -> None:
    """Example 12.3."""
    children = [kid("kr-a", 3.0, 0.25, confidence=0.5), kid("kr-b", 1.0, 1.0, confidence=1.0)]
    assert score_weighted(children, own_confidence=0.8).confidence == 0.8
    assert score_say_do(children, hit_threshold=1.0, own_confidence=0.8).confidence == 0.8


def test_confidence_under_say_do_is_weighted_although_the_score_is_not() -> None:
    """Example 12.4."""
    score = score_say_do([kid("kr-a", 3.0, 1.0, confidence=0.5), kid("kr-b", 1.0, 0.0, confidence=1.0)], hit_threshold=1.0)
    assert (score.progress, score.confidence) == (0.5, 0.625)


# 13. Mixed methods


def state(projection: PortfolioProjection) -> dict[str, Any]:
    """Everything a projection scores from and has published, as a deep copy."""
    tree = projection.tree
    # Edges only: the rollback keeps an empty child map for a refused link's parent, which holds no edge.
    edges = {parent: dict(children) for parent, children in tree.children.items() if children}
    kept = (tree.settings, tree.nodes, edges, tree.versions, projection.computed, projection.published, projection.events)
    return dict(zip(("settings", "nodes", "edges", "versions", "computed", "published", "events"), copy.deepcopy(kept), strict=True))


def test_mixed_methods_are_refused_unless_the_portfolio_allows_them() -> None:
    """Example 13.1: the refused event changes nothing, so it is refused again on a redelivery."""
    h = History()
    scores = Scores(h)
    scores.apply(h.portfolio(RollupMethod.WEIGHTED))
    scores.apply(h.objective("obj-growth", 1))
    before = state(scores.projection)
    refused = h.objective("obj-billing", 2, link=Link(parent_id="obj-growth"), method=RollupMethod.SAY_DO)
    with pytest.raises(MixedMethodsRefused, match="obj-billing rolls up by say_do but the portfolio uses weighted"):
        scores.apply(refused)
    assert state(scores.projection) == before
    with pytest.raises(MixedMethodsRefused):
        scores.apply(refused)


def test_allowed_mixed_methods_flag_the_node_its_ancestors_and_the_scorecard() -> None:
    """Example 13.2."""
    scores = Scores(billing(RollupMethod.WEIGHTED, allow_mixed=True, billing_method=RollupMethod.SAY_DO))
    assert scores["kr-activation"].derivation.formula == "(30 - 20) / (40 - 20) = 0.5"
    assert scores["kr-latency"].derivation.formula == "250 <= 300 is met: progress 1"
    assert scores["obj-billing"].derivation.formula == "1 of 2 children at or above 1: 1 / 2 = 0.5"
    assert scores["obj-growth"].derivation.formula == "(1*0.5) / (1) = 0.5"
    flags = {node_id: scores[node_id].mixed_methods for node_id in scores.latest}
    assert flags == {"obj-growth": True, "obj-billing": True, "kr-activation": False, "kr-latency": False}
    now = views.payloads({node_id: record.value for node_id, record in scores.latest.items()})
    card = views.scorecard(now, {}, window_days=14)
    assert [(c["objective_id"], c["score"], c["mixed_methods"]) for c in card] == [("obj-growth", 0.5, True)]


# 14. When a record is published


def test_a_new_value_publishes_the_key_result_and_its_ancestors_only() -> None:
    """Example 14.1."""
    h = billing(RollupMethod.WEIGHTED)
    scores = Scores(h)
    records = scores.apply(h.value("kr-activation", 35.0)) or []
    assert [r.node_id for r in records] == ["kr-activation", "obj-billing", "obj-growth"]
    assert scores["kr-activation"].derivation.formula == "(35 - 20) / (40 - 20) = 0.75"
    assert scores["obj-billing"].derivation.formula == "(1*0.75 + 1*1) / (1 + 1) = 0.875"


def test_a_check_in_that_changes_no_score_publishes_nothing() -> None:
    """Example 14.2."""
    h = billing(RollupMethod.WEIGHTED)
    scores = Scores(h)
    assert [r.node_id for r in scores.apply(h.check_in("kr-activation", 0.5)) or []] == ["kr-activation", "obj-billing", "obj-growth"]
    assert scores.apply(h.check_in("kr-activation", 0.5)) == []


def test_a_redelivered_event_publishes_nothing() -> None:
    """Example 14.3."""
    h = billing(RollupMethod.WEIGHTED)
    scores = Scores(h)
    assert scores.apply(h.envelopes[-1]) is None


# 15. Determinism


def test_the_order_children_arrive_in_changes_nothing() -> None:
    """Example 15.1: 0.6 / 3 has no exact binary form, hence approx against the documented 0.2."""
    children = [kid("kr-a", progress=0.1), kid("kr-b", progress=0.2), kid("kr-c", progress=0.3)]
    scores = [score_weighted(order) for order in (children, children[::-1], [children[1], children[2], children[0]])]
    assert scores[0] == scores[1] == scores[2]
    assert scores[0].progress == math.fsum([0.1, 0.2, 0.3]) / 3 == pytest.approx(0.2)
    assert 0.1 + 0.2 + 0.3 != 0.3 + 0.2 + 0.1  # why the rules use fsum over sorted inputs
    assert formula(scores[0]) == "(1*0.1 + 1*0.2 + 1*0.3) / (1 + 1 + 1) = 0.2"


def test_replaying_the_same_history_gives_byte_identical_records() -> None:
    """Example 15.2."""
    h = billing(RollupMethod.WEIGHTED)
    h.check_in("kr-activation", 0.5)
    h.value("kr-activation", 35.0)
    first, second = Scores(h), Scores(h)
    assert [r.value for r in first.produced] == [r.value for r in second.produced]
    for record in first.produced:
        data = json.loads(record.value)
        assert record.value == json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert record.value == canonical(record.envelope.as_json())


def test_a_score_records_id_and_times_come_from_its_source_event() -> None:
    """Example 15.3."""
    h = billing(RollupMethod.WEIGHTED)
    scores = Scores(h)
    source = h.value("kr-activation", 35.0)
    record = (scores.apply(source) or [])[-1]
    assert record.node_id == "obj-growth"
    assert record.envelope.event_id == uuid.uuid5(SCORE_ID_NAMESPACE, f"acme/obj-growth/{source.event_id}")
    assert record.envelope.occurred_at == record.envelope.recorded_at == source.recorded_at
    assert (record.envelope.data.as_of, record.envelope.data.source_event_id) == (source.recorded_at, str(source.event_id))
    assert record.envelope.producer == "rollup"


# 16. The scoring-rules version


def test_every_record_names_the_rules_version_the_document_describes() -> None:
    """Example 16.1."""
    scores = Scores(billing(RollupMethod.WEIGHTED))
    assert {scores[node_id].scoring_rules_version for node_id in scores.latest} == {RULES_VERSION}
    assert f"| {RULES_VERSION} |" in DOC.read_text(encoding="utf-8")

"""The scoring rules as pure functions: numbers in, a score with its derivation out.

Every function returns a :class:`Score` whose derivation names its inputs and
writes the formula with the numbers filled in, so a reader can recompute it by
hand (docs/scoring.md has a worked example of each rule). Sums use
:func:`math.fsum` over inputs sorted by node id, so a score never depends on the
order children were added in: the same history gives byte-identical scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from okr_contracts.kr_events import RollupMethod, ThresholdDirection
from okr_contracts.scores import Derivation, DerivationInput, ScoreStatus
from okr_rollup.domain.errors import UnitMismatch

RULES_VERSION = "1"
"""Version of these rules; bump it with any change that can alter a published score (see docs/scoring.md)."""

FORMULA_TERMS = 12
"""Terms written out in a formula before it abbreviates; the inputs always list every child."""

_BY_NODE = attrgetter("node_id")


@dataclass(frozen=True)
class Contribution:
    """What one child brings to its parent's rollup.

    A parent is scored again whenever one of its children changes; the projection hands
    over the same object for every child that did not, so the derivation input made of
    it is kept on it (the last one asked for, with its hit and weighting) and built once.
    """

    node_id: str
    weight: float
    progress: float
    raw_progress: float | None = None
    value: float | None = None
    unit: str | None = None
    confidence: float | None = None
    pending: bool = False


@dataclass(frozen=True)
class Score:
    """A node's score: clamped progress, the raw ratio where there is one, confidence and the derivation."""

    status: ScoreStatus
    progress: float
    confidence: float | None
    derivation: Derivation
    raw_progress: float | None = None
    value: float | None = None
    unit: str | None = None

    def contribution(self, node_id: str, weight: float) -> Contribution:
        """This score as a child of a parent, with the child's weight there (the same object each time it is asked for)."""
        kept: dict[tuple[str, float], Contribution] | None = self.__dict__.get("_contributions")
        if kept is None:
            kept = {}
            object.__setattr__(self, "_contributions", kept)  # a cache, not a field: frozen, equality and hash ignore it
        found = kept.get((node_id, weight))
        if found is None:
            found = kept[node_id, weight] = Contribution(
                node_id=node_id,
                weight=weight,
                progress=self.progress,
                raw_progress=self.raw_progress,
                value=self.value,
                unit=self.unit,
                confidence=self.confidence,
                pending=self.status is not ScoreStatus.SCORED,
            )
        return found


def num(x: float) -> str:
    """A number as formulas show it: at most four decimals, no trailing zeros."""
    text = f"{x:.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def clamp(x: float) -> float:
    """Progress as it rolls up: the raw ratio limited to [0, 1]."""
    return min(1.0, max(0.0, x))


def metric_ratio(baseline: float, target: float, value: float) -> float:
    """Raw progress of a metric: (value - baseline) / (target - baseline); decreasing metrics need no special case."""
    return (value - baseline) / (target - baseline) + 0.0  # + 0.0: a decreasing metric at its baseline gives -0.0, published as 0.0


def retired() -> Score:
    """A retired key result: kept in the history, out of every rollup."""
    return Score(ScoreStatus.RETIRED, 0.0, None, Derivation(method="retired", formula="retired: no longer counts in any rollup"))


def score_metric(
    node_id: str, *, baseline: float | None, target: float | None, unit: str, value: float | None, confidence: float | None
) -> Score:
    """A metric key result: the raw ratio kept, progress clamped; no value yet is 0 and pending."""
    observed = Contribution(node_id, weight=1.0, progress=0.0, value=value, unit=unit, confidence=confidence, pending=value is None)
    if baseline is None or target is None or baseline == target:
        formula = "not measurable: a metric needs a baseline and a different target; progress 0 (pending)"
        return _pending("metric", formula, (observed,), confidence, value=value, unit=unit, baseline=baseline, target=target)
    if value is None:
        formula = "no value observed yet: progress 0 (pending)"
        return _pending("metric", formula, (observed,), confidence, unit=unit, baseline=baseline, target=target)
    raw = metric_ratio(baseline, target, value)
    progress = clamp(raw)
    formula = f"({num(value)} - {num(baseline)}) / ({num(target)} - {num(baseline)}) = {num(raw)}" + _clamped(raw, progress)
    own = Contribution(node_id, weight=1.0, progress=progress, raw_progress=raw, value=value, unit=unit, confidence=confidence)
    derivation = Derivation(method="metric", formula=formula, inputs=(_input(own),), baseline=baseline, target=target)
    return Score(ScoreStatus.SCORED, progress, confidence, derivation, raw_progress=raw, value=value, unit=unit)


def score_threshold(
    node_id: str,
    *,
    target: float | None,
    direction: ThresholdDirection | None,
    unit: str,
    value: float | None,
    confidence: float | None,
) -> Score:
    """A threshold key result: progress 1 while the latest value meets the threshold, else 0."""
    observed = Contribution(node_id, weight=1.0, progress=0.0, value=value, unit=unit, confidence=confidence, pending=value is None)
    if target is None or direction is None:
        formula = "not measurable: a threshold needs a target and a direction; progress 0 (pending)"
        return _pending("threshold", formula, (observed,), confidence, value=value, unit=unit, target=target)
    if value is None:
        return _pending("threshold", "no value observed yet: progress 0 (pending)", (observed,), confidence, unit=unit, target=target)
    met = value >= target if direction is ThresholdDirection.AT_LEAST else value <= target
    sign = ">=" if direction is ThresholdDirection.AT_LEAST else "<="
    progress = 1.0 if met else 0.0
    formula = f"{num(value)} {sign} {num(target)} is {'met' if met else 'not met'}: progress {num(progress)}"
    own = Contribution(node_id, weight=1.0, progress=progress, value=value, unit=unit, confidence=confidence)
    derivation = Derivation(method="threshold", formula=formula, inputs=(_input(own),), target=target)
    return Score(ScoreStatus.SCORED, progress, confidence, derivation, value=value, unit=unit)


def score_weighted(children: Iterable[Contribution], *, own_confidence: float | None = None, note: str = "") -> Score:
    """Weighted rollup: sum(w * p) / sum(w) over the children; pending children count as 0."""
    kids = _sorted(children)
    confidence = own_confidence if own_confidence is not None else rollup_confidence(kids)
    inputs = tuple([_input(c) for c in kids])
    if not kids:
        return _pending(RollupMethod.WEIGHTED, note + "no contributors yet: progress 0 (pending)", (), confidence)
    total = math.fsum([c.weight for c in kids])
    if total == 0:
        return _pending(RollupMethod.WEIGHTED, note + "every weight is 0: nothing counts, progress 0 (pending)", kids, confidence)
    progress = math.fsum([c.weight * c.progress for c in kids]) / total
    written = [_written(c) for c in kids]
    terms = _terms(term for term, _ in written)
    weights = _terms(weight for _, weight in written)
    status = _status(kids)
    formula = f"{note}({terms}) / ({weights}) = {num(progress)}" + _pending_note(status)
    derivation = Derivation(method=RollupMethod.WEIGHTED, formula=formula, inputs=inputs)
    return Score(status, progress, confidence, derivation)


def score_say_do(children: Iterable[Contribution], *, hit_threshold: float, own_confidence: float | None = None) -> Score:
    """Say-do rollup: the share of children whose progress reached the hit threshold (pending never hits)."""
    kids = _sorted(children)
    confidence = own_confidence if own_confidence is not None else rollup_confidence(kids)
    if not kids:
        return _pending(RollupMethod.SAY_DO, "no contributors yet: progress 0 (pending)", (), confidence, hit_threshold=hit_threshold)
    hits = [not c.pending and c.progress >= hit_threshold for c in kids]
    progress = sum(hits) / len(kids)
    formula = f"{sum(hits)} of {len(kids)} children at or above {num(hit_threshold)}: {sum(hits)} / {len(kids)} = {num(progress)}"
    status = _status(kids)
    formula += _pending_note(status)
    inputs = tuple(_input(c, hit=hit, weighted=False) for c, hit in zip(kids, hits, strict=True))
    derivation = Derivation(method=RollupMethod.SAY_DO, formula=formula, inputs=inputs, hit_threshold=hit_threshold)
    return Score(status, progress, confidence, derivation)


def score_kpi(
    node_id: str,
    *,
    unit: str,
    baseline: float | None,
    target: float | None,
    children: Iterable[Contribution],
    own_confidence: float | None = None,
) -> Score:
    """KPI rollup: the parent's value is the sum of its children's values (same unit), then progress as for a metric."""
    kids = _sorted(children)
    for child in kids:
        if child.unit != unit:
            shown = f"in {child.unit!r}" if child.unit is not None else "without a value (an objective)"
            raise UnitMismatch(f"{child.node_id} is {shown}; {node_id} adds values in {unit!r}")
    confidence = own_confidence if own_confidence is not None else rollup_confidence(kids)
    metric: dict[str, Any] = {"unit": unit, "baseline": baseline, "target": target}
    if not kids:
        return _pending(RollupMethod.KPI, "no contributors yet: progress 0 (pending)", (), confidence, **metric)
    value = math.fsum(c.value or 0.0 for c in kids)
    summed = f"value = {_terms(num(c.value or 0.0) for c in kids)} = {num(value)} {unit}".rstrip()
    if baseline is None or target is None or baseline == target:
        formula = f"{summed}; not measurable without a baseline and a different target: progress 0 (pending)"
        return _pending(RollupMethod.KPI, formula, kids, confidence, value=value, weighted=False, **metric)
    raw = metric_ratio(baseline, target, value)
    progress = clamp(raw)
    formula = f"{summed}; ({num(value)} - {num(baseline)}) / ({num(target)} - {num(baseline)}) = {num(raw)}" + _clamped(raw, progress)
    if (status := _status(kids)) is ScoreStatus.PENDING:
        return _pending(RollupMethod.KPI, formula + _pending_note(status), kids, confidence, value=value, weighted=False, **metric)
    inputs = tuple(_input(c, weighted=False) for c in kids)
    derivation = Derivation(method=RollupMethod.KPI, formula=formula, inputs=inputs, baseline=baseline, target=target)
    return Score(ScoreStatus.SCORED, progress, confidence, derivation, raw_progress=raw, value=value, unit=unit)


def score_objective(method: RollupMethod, children: Iterable[Contribution], *, hit_threshold: float) -> Score:
    """An objective's score: its key results and contributors by the method; under kpi it has no unit, so weighted."""
    if method is RollupMethod.SAY_DO:
        return score_say_do(children, hit_threshold=hit_threshold)
    note = "objectives have no unit, so under kpi they take the weighted mean: " if method is RollupMethod.KPI else ""
    return score_weighted(children, note=note)


def rollup_confidence(children: Sequence[Contribution]) -> float | None:
    """Weighted mean of the children's known confidences; unknown when none is known."""
    known = [c for c in children if c.confidence is not None and c.weight > 0]
    if not known:
        return None
    return math.fsum([c.weight * (c.confidence or 0.0) for c in known]) / math.fsum([c.weight for c in known])


def _sorted(children: Iterable[Contribution]) -> list[Contribution]:
    return sorted(children, key=_BY_NODE)


def _status(kids: Sequence[Contribution]) -> ScoreStatus:
    return ScoreStatus.PENDING if all(c.pending for c in kids) else ScoreStatus.SCORED


def _pending(
    method: str,
    formula: str,
    kids: Sequence[Contribution],
    confidence: float | None,
    *,
    value: float | None = None,
    unit: str | None = None,
    baseline: float | None = None,
    target: float | None = None,
    hit_threshold: float | None = None,
    weighted: bool = True,
) -> Score:
    inputs = tuple(_input(c, weighted=weighted) for c in kids)
    derivation = Derivation(method=method, formula=formula, inputs=inputs, baseline=baseline, target=target, hit_threshold=hit_threshold)
    return Score(ScoreStatus.PENDING, 0.0, confidence, derivation, value=value, unit=unit)


def _written(c: Contribution) -> tuple[str, str]:
    """A child's term in a weighted formula and its weight there, as written; kept on the child like its input."""
    kept: tuple[str, str] | None = c.__dict__.get("_written")
    if kept is None:
        kept = (f"{num(c.weight)}*{num(c.progress)}", num(c.weight))
        object.__setattr__(c, "_written", kept)  # a cache, not a field: frozen, equality and hash ignore it
    return kept


def _input(c: Contribution, *, hit: bool | None = None, weighted: bool = True) -> DerivationInput:
    kept: tuple[bool | None, bool, DerivationInput] | None = c.__dict__.get("_input")
    if kept is not None and kept[0] is hit and kept[1] is weighted:
        return kept[2]
    found = DerivationInput(
        node_id=c.node_id,
        weight=c.weight if weighted else None,
        progress=c.progress,
        raw_progress=c.raw_progress,
        value=c.value,
        unit=c.unit,
        confidence=c.confidence,
        pending=c.pending,
        hit=hit,
    )
    object.__setattr__(c, "_input", (hit, weighted, found))  # a cache, not a field: frozen, equality and hash ignore it
    return found


def _terms(parts: Iterable[str]) -> str:
    items = list(parts)
    if len(items) <= FORMULA_TERMS:
        return " + ".join(items)
    return " + ".join(items[:FORMULA_TERMS]) + f" + ... ({len(items) - FORMULA_TERMS} more, see inputs)"


def _pending_note(status: ScoreStatus) -> str:
    return " (pending: no child has data yet)" if status is ScoreStatus.PENDING else ""


def _clamped(raw: float, progress: float) -> str:
    return f", clamped to {num(progress)}" if raw != progress else ""

"""One portfolio's live scores, projected event by event from the key-result history.

Incremental: an event recomputes the nodes it touched and their ancestors, lowest
tier first, nothing else. Idempotent: an aggregate version seen before changes
nothing. A score record is produced only when what it says changes (score,
confidence, status, derivation or placement), never merely because time passed;
its envelope is derived from the history event (id, times), so replaying the same
history gives byte-identical records. Next to the scores, each cycle's capacity view is
folded from the same events (:mod:`okr_rollup.domain.capacity`); capacity events
produce no score records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from okr_contracts.envelope import Envelope, EventPayload
from okr_contracts.kr_events import KeyResultKind, KrEvent, RollupMethod
from okr_contracts.scores import NodeKind
from okr_rollup.domain.capacity import CapacityProjection, CapacityView
from okr_rollup.domain.errors import MixedMethodsRefused
from okr_rollup.domain.records import PRODUCER, SCORE_ID_NAMESPACE, VOLATILE, Placement, RecordWriter, ScoreRecord, Source, canonical
from okr_rollup.domain.rules import SCHEDULE, RuleSet, Schedule
from okr_rollup.domain.scoring import Contribution, Score
from okr_rollup.domain.tree import Node, Tree

__all__ = [
    "PRODUCER",
    "SCORE_ID_NAMESPACE",
    "VOLATILE",
    "CapacityView",
    "Computed",
    "PortfolioProjection",
    "ScoreRecord",
    "canonical",
    "replay",
]


@dataclass(frozen=True)
class Computed:
    """What a node's parents need of its score."""

    score: Score
    mixed: bool


class PortfolioProjection:
    """The scores of every node of one portfolio, and its capacity per cycle."""

    def __init__(self, portfolio_id: str, schedule: Schedule = SCHEDULE) -> None:
        self.tree = Tree(portfolio_id)
        self.schedule = schedule
        self.rules: RuleSet | None = None
        self.computed: dict[str, Computed] = {}
        self.writer = RecordWriter(portfolio_id)
        self.published: dict[str, bytes] = self.writer.published
        self.capacity = CapacityProjection()
        self.capacity_changed: list[CapacityView] = []
        """The capacity views the last applied event changed (stored with its input row)."""
        self.events = 0

    def apply(self, envelope: Envelope[EventPayload]) -> list[ScoreRecord] | None:
        """Apply one history event; the records it changes, or None for a redelivery (nothing changes).

        The capacity views it changed are in :attr:`capacity_changed` until the next event.

        Raises :class:`~okr_rollup.domain.errors.ScoringRefused` for an event that would
        leave a node unscorable; the projection is then exactly as before.
        """
        event = envelope.data
        if not isinstance(event, KrEvent):
            raise TypeError(f"the projection takes okr.kr-events.v1 events, not {envelope.type}")
        self.capacity_changed = []
        if self.tree.is_duplicate(event):
            return None
        rules = self.schedule.at(envelope.recorded_at)
        self.tree.begin()
        try:
            touched = self.tree.evolve(event)
            if rules is not self.rules and self.rules is not None:  # new rules in force: every node is scored again
                touched |= set(self.tree.nodes)
            order = self._ancestry(touched)
            fresh: dict[str, Computed] = {}
            for node in order:
                fresh[node.node_id] = self._compute(node, fresh, rules)
        except Exception:
            self.tree.rollback()
            raise
        self.tree.commit()
        self.rules = rules
        self.computed.update(fresh)
        self.capacity_changed = self.capacity.apply(event, envelope.recorded_at)
        self.events += 1
        source = Source.of(envelope)
        return [r for node in order if (r := self._record(node, source, rules)) is not None]

    def _ancestry(self, touched: set[str]) -> list[Node]:
        """The touched defined nodes and all their ancestors, children before parents."""
        seen: dict[str, Node] = {}
        frontier = list(touched)
        while frontier:
            node = self.tree.node(frontier.pop())
            if node is not None and node.node_id not in seen:
                seen[node.node_id] = node
                frontier.extend(node.parents())
        return sorted(seen.values(), key=lambda n: (-n.tier, n.is_objective, n.node_id))

    def _compute(self, node: Node, fresh: dict[str, Computed], rules: RuleSet) -> Computed:
        method = self._method(node)
        kids: list[Contribution] = []
        mixed = method is not self.tree.settings["rollup_method"]
        nodes, computed = self.tree.nodes, self.computed
        for child_id, weight in self.tree.children.get(node.node_id, {}).items():
            child = nodes.get(child_id)
            found = fresh.get(child_id) or computed.get(child_id)
            if child is None or not child.defined or child.retired or found is None:
                continue
            kids.append(found.score.contribution(child_id, weight))
            mixed = mixed or found.mixed
        score = self._score(node, method, kids, rules)
        return Computed(score, mixed and self.tree.settings["allow_mixed_methods"])

    def _method(self, node: Node) -> RollupMethod:
        settings = self.tree.settings
        portfolio_method: RollupMethod = settings["rollup_method"]
        if node.method is None or node.method is portfolio_method:
            return portfolio_method
        if not settings["allow_mixed_methods"]:
            raise MixedMethodsRefused(
                f"{node.node_id} rolls up by {node.method.value} but the portfolio uses {portfolio_method.value} "
                "and does not allow mixed methods"
            )
        return node.method

    def _score(self, node: Node, method: RollupMethod, kids: list[Contribution], rules: RuleSet) -> Score:
        hit = float(self.tree.settings["say_do_hit_threshold"])
        if node.is_objective:
            return rules.objective(method, kids, hit_threshold=hit)
        if node.retired:
            return rules.retired()
        if node.kind is KeyResultKind.THRESHOLD:
            return rules.threshold(
                node.node_id, target=node.target, direction=node.direction, unit=node.unit, value=node.value, confidence=node.confidence
            )
        if method is RollupMethod.KPI and (kids or node.kind is KeyResultKind.DERIVED):
            return rules.kpi(
                node.node_id, unit=node.unit, baseline=node.baseline, target=node.target, children=kids, own_confidence=node.confidence
            )
        if node.kind is KeyResultKind.METRIC:
            return rules.metric(
                node.node_id, baseline=node.baseline, target=node.target, unit=node.unit, value=node.value, confidence=node.confidence
            )
        if method is RollupMethod.SAY_DO:
            return rules.say_do(kids, hit_threshold=hit, own_confidence=node.confidence)
        return rules.weighted(kids, own_confidence=node.confidence)

    def _record(self, node: Node, source: Source, rules: RuleSet) -> ScoreRecord | None:
        computed = self.computed[node.node_id]
        return self.writer.record(self._placement(node), computed.score, computed.mixed, rules.version, source)

    def _placement(self, node: Node) -> Placement:
        return Placement(
            node_id=node.node_id,
            node_kind=NodeKind.OBJECTIVE if node.is_objective else NodeKind.KEY_RESULT,
            tier=node.tier,
            cycle_id=node.cycle_id,
            title=node.title,
            product_id=node.product_id or self._objective_product(node),
            objective_id=node.objective_id,
            contributes_to=node.link.parent_id if node.link else None,
        )

    def _objective_product(self, node: Node) -> str | None:
        objective = self.tree.node(node.objective_id) if node.objective_id else None
        return objective.product_id if objective else None


def replay(
    portfolio_id: str,
    envelopes: Iterable[Envelope[EventPayload]],
    schedule: Schedule = SCHEDULE,
    *,
    views: list[tuple[int, CapacityView]] | None = None,
) -> PortfolioProjection:
    """A projection rebuilt from a history, oldest first (what a restart and an audit do).

    With `views`, every capacity view the history produced is appended to it with the
    position (1, 2, …) of the event that produced it: the rows the store holds for it.
    """
    projection = PortfolioProjection(portfolio_id, schedule)
    for envelope in envelopes:
        projection.apply(envelope)
        if views is not None:
            views += [(projection.events, view) for view in projection.capacity_changed]
    return projection

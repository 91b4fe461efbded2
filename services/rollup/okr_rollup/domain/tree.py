"""A portfolio's hierarchy as the rollup needs it, evolved from the key-result history.

Tolerant of order: an event about a node not defined yet (a child linked to a
parent that has not arrived, a check-in before its key result) is kept on a
placeholder and counts once the definition arrives. Every change goes through a
journal, so the projection can take back an event that would leave a node
unscorable (it is then dead-lettered and the tree is exactly as before).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from okr_contracts.kr_events import (
    CheckInRecorded,
    CycleScored,
    KeyResultDefined,
    KeyResultKind,
    KeyResultRetired,
    KrEvent,
    Link,
    LinkChanged,
    ObjectiveDefined,
    PortfolioDefined,
    RollupMethod,
    TargetChanged,
    ValueObserved,
    WeightChanged,
)


@dataclass
class Node:
    """An objective or key result, or a placeholder for one referred to before its definition."""

    node_id: str
    defined: bool = False
    is_objective: bool = False
    tier: int = 0
    cycle_id: str = ""
    title: str = ""
    product_id: str | None = None
    objective_id: str | None = None
    link: Link | None = None
    method: RollupMethod | None = None
    weight: float = 1.0
    kind: KeyResultKind = KeyResultKind.DERIVED
    baseline: float | None = None
    target: float | None = None
    unit: str = ""
    direction: Any = None
    value: float | None = None
    observed_at: datetime | None = None
    confidence: float | None = None
    retired: bool = False

    def parents(self) -> list[str]:
        """The nodes whose score this node feeds: its objective (key results) and its link's parent."""
        found = [self.objective_id] if self.objective_id else []
        return [*found, self.link.parent_id] if self.link else found


DEFAULT_SETTINGS = {"rollup_method": RollupMethod.WEIGHTED, "allow_mixed_methods": False, "say_do_hit_threshold": 1.0}


@dataclass
class Tree:
    """One portfolio's nodes, contributes-to edges (by parent, even before the parent exists) and settings."""

    portfolio_id: str
    settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    nodes: dict[str, Node] = field(default_factory=dict)
    children: dict[str, dict[str, float]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def is_duplicate(self, event: KrEvent) -> bool:
        """Whether this aggregate version was applied already (a redelivery)."""
        return self.versions.get(event.aggregate_id, 0) >= event.aggregate_version

    def node(self, node_id: str) -> Node | None:
        """A defined node, or none."""
        found = self.nodes.get(node_id)
        return found if found is not None and found.defined else None

    def evolve(self, event: KrEvent) -> set[str]:
        """Apply one event; returns the ids whose own inputs changed (their ancestors change too)."""
        self._set(self.versions, event.aggregate_id, event.aggregate_version)
        match event:
            case PortfolioDefined():
                fields = ("rollup_method", "allow_mixed_methods", "say_do_hit_threshold")
                self._set_attr(self, "settings", {name: getattr(event, name) for name in fields})
                return {n.node_id for n in self.nodes.values() if n.defined}
            case ObjectiveDefined():
                return self._define(event.objective_id, _objective_fields(event))
            case KeyResultDefined():
                return self._define(event.kr_id, _key_result_fields(event))
            case CheckInRecorded():
                return self._edit(event.kr_id, confidence=event.confidence)
            case ValueObserved():
                return self._observe(event)
            case TargetChanged():
                return self._edit(event.kr_id, target=event.new_target)
            case WeightChanged():
                return self._reweigh(event)
            case LinkChanged():
                return self._relink(event.node_id, event.new_link)
            case KeyResultRetired():
                return self._edit(event.kr_id, retired=True)
            case CycleScored():
                return self._close_cycle(event)
            case _:
                return set()

    def begin(self) -> None:
        """Start journalling changes (one event)."""
        self._undo.clear()

    def commit(self) -> None:
        """Keep the journalled changes."""
        self._undo.clear()

    def rollback(self) -> None:
        """Undo every change since :meth:`begin`."""
        while self._undo:
            self._undo.pop()()

    def _define(self, node_id: str, fields: dict[str, Any]) -> set[str]:
        node = self._placeholder(node_id)
        old_parents = node.parents()
        self._edit(node_id, defined=True, **fields)
        self._rewire(node, old_parents)
        return {node_id, *old_parents}

    def _observe(self, event: ValueObserved) -> set[str]:
        node = self._placeholder(event.kr_id)
        if node.observed_at is not None and event.observed_at < node.observed_at:
            return set()  # an older observation arriving late does not replace the latest value
        return self._edit(event.kr_id, value=event.value, observed_at=event.observed_at)

    def _reweigh(self, event: WeightChanged) -> set[str]:
        node = self._placeholder(event.node_id)
        if node.link is not None and node.link.parent_id == event.parent_id:
            self._edit(node.node_id, link=Link(parent_id=event.parent_id, weight=event.new_weight))
        else:
            self._edit(node.node_id, weight=event.new_weight)
        self._rewire(node, node.parents())
        return {node.node_id}

    def _relink(self, node_id: str, link: Link | None) -> set[str]:
        node = self._placeholder(node_id)
        old_parents = node.parents()
        self._edit(node_id, link=link)
        self._rewire(node, old_parents)
        return {node_id, *old_parents}

    def _close_cycle(self, event: CycleScored) -> set[str]:
        touched: set[str] = set()
        for kr_id in event.retired:
            touched |= self._edit(kr_id, retired=True)
        for kr_id in event.carried_over:
            touched |= self._edit(kr_id, cycle_id=event.next_cycle_id or self._placeholder(kr_id).cycle_id)
        return touched

    def _rewire(self, node: Node, old_parents: list[str]) -> None:
        for parent in old_parents:
            self._set(self._edges(parent), node.node_id, None)
        if node.objective_id:
            self._set(self._edges(node.objective_id), node.node_id, node.weight)
        if node.link:
            self._set(self._edges(node.link.parent_id), node.node_id, node.link.weight)

    def _edges(self, parent_id: str) -> dict[str, float]:
        """The child edges of a parent (known or not yet), created journalled when missing."""
        edges = self.children.get(parent_id)
        if edges is None:
            edges = {}
            self._set(self.children, parent_id, edges)
        return edges

    def _placeholder(self, node_id: str) -> Node:
        node = self.nodes.get(node_id)
        if node is None:
            node = Node(node_id)
            self._set(self.nodes, node_id, node)
        return node

    def _edit(self, node_id: str, **changes: Any) -> set[str]:
        node = self._placeholder(node_id)
        for name, value in changes.items():
            self._set_attr(node, name, value)
        return {node_id}

    def _set_attr(self, obj: Any, name: str, value: Any) -> None:
        old = getattr(obj, name)
        setattr(obj, name, value)
        self._undo.append(lambda: setattr(obj, name, old))

    def _set(self, mapping: dict[str, Any], key: str, value: Any) -> None:
        """Set (or, with None, delete) a key, journalled."""
        missing = key not in mapping
        old = mapping.get(key)
        if value is None:
            mapping.pop(key, None)
        else:
            mapping[key] = value
        self._undo.append(lambda: mapping.pop(key, None) if missing else mapping.__setitem__(key, old))


def _objective_fields(event: ObjectiveDefined) -> dict[str, Any]:
    return {
        "is_objective": True,
        "tier": event.tier,
        "cycle_id": event.cycle_id,
        "title": event.title,
        "product_id": event.product_id,
        "link": event.contributes_to,
        "method": event.rollup_method,
    }


def _key_result_fields(event: KeyResultDefined) -> dict[str, Any]:
    return {
        "tier": event.tier,
        "cycle_id": event.cycle_id,
        "title": event.title,
        "objective_id": event.objective_id,
        "link": event.contributes_to,
        "method": event.rollup_method,
        "weight": event.weight,
        "kind": event.kind,
        "baseline": event.baseline,
        "target": event.target,
        "unit": event.unit,
        "direction": event.direction,
    }

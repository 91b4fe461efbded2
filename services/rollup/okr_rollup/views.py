"""Read models built from stored score records: the scorecard, the tree and a node's explanation; and the capacity views.

Each function takes the latest record per node (``{node_id: payload}``, as the
store returns them for a moment) and shapes it for people; no scoring happens
here, so what the API shows is exactly what was published. The capacity views are
stored whole (``okr_rollup.domain.capacity``) and only selected here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

FLAT = 0.005
"""A trend smaller than this (in progress) shows as flat."""

Records = Mapping[str, dict[str, Any]]


def payload(value: bytes) -> dict[str, Any]:
    """The payload (`data`) of a stored score envelope."""
    data: dict[str, Any] = json.loads(value)["data"]
    return data


def payloads(raw: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    """The payloads of stored score envelopes, by node id."""
    return {node_id: payload(value) for node_id, value in raw.items()}


def scorecard(now: Records, then: Records, *, window_days: int, cycle_id: str | None = None) -> list[dict[str, Any]]:
    """Each portfolio objective: score, confidence, trend over the window, the product driving most movement, mixed flag."""
    cards = []
    for node in sorted(now.values(), key=lambda n: n["node_id"]):
        if node["tier"] != 1 or node["node_kind"] != "objective" or (cycle_id and node["cycle_id"] != cycle_id):
            continue
        before = then.get(node["node_id"])
        cards.append(
            {
                "objective_id": node["node_id"],
                "title": node["title"],
                "cycle_id": node["cycle_id"],
                "status": node["status"],
                "score": node["progress"],
                "confidence": node["confidence"],
                "trend": trend(node["progress"], before["progress"] if before else None, window_days),
                "driver": driver(node["node_id"], now, then),
                "mixed_methods": node["mixed_methods"],
                "as_of": node["as_of"],
            }
        )
    return cards


def trend(current: float, previous: float | None, window_days: int) -> dict[str, Any]:
    """The change over the window with an arrow and a word, readable without colour."""
    delta = current - (previous or 0.0)
    arrow, word = ("↑", "up") if delta >= FLAT else ("↓", "down") if delta <= -FLAT else ("→", "flat")
    return {"arrow": arrow, "label": f"{word} {abs(delta):.2f}", "delta": delta, "from": previous, "window_days": window_days}


def driver(objective_id: str, now: Records, then: Records) -> dict[str, Any] | None:
    """The product whose tier-2 contributors moved the objective (directly or via its key results) most.

    A contributor's movement is its change in progress over the window times its share
    of the parent it feeds (its weight over the parent's total weight): what it moved there.
    """
    targets = {objective_id} | {n["node_id"] for n in now.values() if n.get("objective_id") == objective_id}
    movement: dict[str, float] = defaultdict(float)
    for node in now.values():
        parent = now.get(node.get("contributes_to") or "")
        if node["tier"] == 2 and parent is not None and parent["node_id"] in targets and node.get("product_id"):
            before = then.get(node["node_id"])
            movement[node["product_id"]] += (node["progress"] - (before["progress"] if before else 0.0)) * share(parent, node["node_id"])
    moved = [(abs(delta), product, delta) for product, delta in sorted(movement.items()) if abs(delta) >= FLAT]
    if not moved:
        return None
    _, product, delta = max(moved, key=lambda m: m[0])
    return {"product_id": product, "movement": delta}


def share(parent: Mapping[str, Any], child_id: str) -> float:
    """A child's share of its parent's score: weight over total weight, or one over the children without weights."""
    inputs = parent["derivation"]["inputs"]
    weights = {i["node_id"]: i["weight"] if i["weight"] is not None else 1.0 for i in inputs}
    total = sum(weights.values())
    return weights.get(child_id, 0.0) / total if total else 0.0


def tree(records: Records) -> list[dict[str, Any]]:
    """The hierarchy as nested nodes, portfolio objectives at the top; every node with its score."""
    kids: dict[str, list[str]] = defaultdict(list)
    for node in records.values():
        for parent in (node.get("objective_id"), node.get("contributes_to")):
            if parent:
                kids[parent].append(node["node_id"])
    roots = sorted(n["node_id"] for n in records.values() if not n.get("objective_id") and not n.get("contributes_to"))
    return [_branch(records, kids, root, set()) for root in roots]


def _branch(records: Records, kids: Mapping[str, list[str]], node_id: str, path: set[str]) -> dict[str, Any]:
    node = records[node_id]
    below = [c for c in sorted(kids.get(node_id, ())) if c in records and c not in path]
    return {**summary(node), "children": [_branch(records, kids, c, path | {node_id}) for c in below]}


def summary(node: Mapping[str, Any]) -> dict[str, Any]:
    """A node's score without its derivation."""
    keys = ("node_id", "node_kind", "tier", "title", "product_id", "cycle_id", "status", "progress", "raw_progress", "confidence")
    return {**{k: node.get(k) for k in keys}, "method": node["derivation"]["method"], "mixed_methods": node["mixed_methods"]}


def explanation(node: Mapping[str, Any], records: Records) -> dict[str, Any]:
    """A node's score, its derivation, and the current record of each input it used."""
    inputs = []
    for used in node["derivation"]["inputs"]:
        child = records.get(used["node_id"])
        inputs.append({**used, "title": child["title"] if child else None, "status": child["status"] if child else None})
    return {
        **summary(node),
        "formula": node["derivation"]["formula"],
        "derivation": {**node["derivation"], "inputs": inputs},
        "scoring_rules_version": node["scoring_rules_version"],
        "as_of": node["as_of"],
        "source_event_id": node["source_event_id"],
    }


def capacity(stored: Iterable[tuple[bytes, datetime]]) -> list[dict[str, Any]]:
    """Each cycle that has squads: its stored view (view bytes, since when it holds) with that moment as `as_of`."""
    cycles = []
    for raw, since in stored:
        view: dict[str, Any] = json.loads(raw)
        if view["squads"]:
            cycles.append({**view, "as_of": since.isoformat()})
    return cycles

"""Finding a node in the scored tree, and what each input adds to a node's score."""

from __future__ import annotations

from typing import Any

import pytest

from okr_web.scorecard import contributions, locate


def node(node_id: str, *children: dict[str, Any], kind: str = "objective") -> dict[str, Any]:
    """A node of the rollup's tree (`GET …/tree`), with only what the pages read."""
    return {"node_id": node_id, "node_kind": kind, "title": node_id.title(), "children": list(children)}


KEY_RESULTS = (node("activated", kind="key_result"), node("churn", kind="key_result"))
TREE = [
    node("grow", node("activation", *KEY_RESULTS), node("reliability", node("uptime", kind="key_result"))),
    node("hire", node("recruiting")),
]


def ids(nodes: list[dict[str, Any]]) -> list[str]:
    return [n["node_id"] for n in nodes]


def test_a_nodes_trail_runs_from_the_top_down_to_its_parent_and_lists_its_children() -> None:
    trail, children = locate(TREE, "activation")
    assert (ids(trail), ids(children)) == (["grow"], ["activated", "churn"])


def test_a_key_result_deep_down_has_the_whole_trail_and_no_children() -> None:
    trail, children = locate(TREE, "uptime")
    assert (ids(trail), children) == (["grow", "reliability"], [])


def test_a_top_node_has_no_trail() -> None:
    trail, children = locate(TREE, "hire")
    assert (trail, ids(children)) == ([], ["recruiting"])


def test_a_node_not_in_the_tree_has_neither() -> None:
    assert locate(TREE, "nowhere") == ([], [])
    assert locate([], "grow") == ([], [])


def explained(method: str, *inputs: tuple[str, float | None, float]) -> dict[str, Any]:
    """A node's explanation (`GET …/nodes/{id}`): its method and each input's weight and progress."""
    used = [{"node_id": n, "weight": w, "progress": p, "title": n.title(), "status": "scored"} for n, w, p in inputs]
    return {"node_id": "grow", "method": method, "derivation": {"method": method, "inputs": used}}


def test_a_weighted_input_shows_its_share_and_what_it_adds() -> None:
    rows = contributions(explained("weighted", ("activation", 2, 0.2222), ("reliability", 1, 1.0)))
    assert [r["share"] for r in rows] == pytest.approx([2 / 3, 1 / 3])
    assert [r["adds"] for r in rows] == pytest.approx([2 / 3 * 0.2222, 1 / 3])
    assert sum(r["adds"] for r in rows) == pytest.approx((2 * 0.2222 + 1) / 3)  # the node's own score
    assert rows[0]["title"] == "Activation"  # the input's other fields stay


def test_an_input_without_a_weight_counts_as_weight_one() -> None:
    rows = contributions(explained("weighted", ("a", None, 0.5), ("b", 3, 0.0)))
    assert [r["share"] for r in rows] == pytest.approx([0.25, 0.75])


def test_inputs_all_weighted_zero_add_nothing_rather_than_fail() -> None:
    rows = contributions(explained("weighted", ("a", 0, 0.5), ("b", 0, 1.0)))
    assert [(r["share"], r["adds"]) for r in rows] == [(0.0, 0.0), (0.0, 0.0)]


@pytest.mark.parametrize("method", ["kpi", "say_do", "metric", "threshold"])
def test_other_methods_show_no_share(method: str) -> None:
    rows = contributions(explained(method, ("a", 2, 0.5)))
    assert [(r["share"], r["adds"], r["progress"]) for r in rows] == [(None, None, 0.5)]

"""The read API over a real store: scorecard, tree, explanation, as-of, and its refusals as problem+json."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from okr_rollup.application import RollupService
from okr_rollup.store import ScoreStore

READER = {"Authorization": "Bearer reader"}


async def discard(records: Sequence[tuple[str, bytes]]) -> None:
    """Kafka is not part of these tests; the store is."""


async def seeded(store: ScoreStore, history: Any) -> Any:
    """The standard portfolio; beta moves a lot over the last two weeks, alpha a little."""
    service = RollupService(store, discard)
    for envelope in [*history.standard(), history.value("a1", 10.0), history.value("b1", 10.0), history.check_in("a1", 0.5)]:
        await service.handle(envelope)
    before = history.now
    history.now += timedelta(days=20)
    for envelope in [history.value("a1", 20.0), history.value("b1", 90.0), history.check_in("b1", 0.9)]:
        await service.handle(envelope)
    return before


async def test_the_scorecard_shows_score_confidence_trend_and_the_product_driving_it(
    client: TestClient, store: ScoreStore, history: Any
) -> None:
    await seeded(store, history)
    body = client.get(f"/v1/portfolios/{history.pid}/scorecard", headers=READER, params={"as_of": history.now.isoformat()}).json()
    [card] = body["objectives"]
    assert card["objective_id"] == "P"
    assert card["score"] == pytest.approx((2 * 0.1 + 0.9) / 3)  # a1 at 20 of 100 and a2 pending average 0.1 for alpha
    assert card["confidence"] == pytest.approx((2 * 0.5 + 0.9) / 3)
    assert card["trend"]["arrow"] == "↑"
    assert card["trend"]["label"].startswith("up ")
    assert card["driver"]["product_id"] == "beta"
    assert card["mixed_methods"] is False


async def test_the_tree_nests_every_node_under_the_portfolio_objective(client: TestClient, store: ScoreStore, history: Any) -> None:
    await seeded(store, history)
    [root] = client.get(f"/v1/portfolios/{history.pid}/tree", headers=READER).json()["roots"]
    assert root["node_id"] == "P"
    [p1] = root["children"]
    assert [c["node_id"] for c in p1["children"]] == ["A", "B"]
    assert [c["node_id"] for c in p1["children"][0]["children"]] == ["a1", "a2"]


async def test_a_node_explains_its_score_and_shows_it_as_of_a_past_moment(client: TestClient, store: ScoreStore, history: Any) -> None:
    before = await seeded(store, history)
    now = client.get(f"/v1/portfolios/{history.pid}/nodes/b1", headers=READER).json()
    assert now["progress"] == pytest.approx(0.9)
    assert now["formula"] == "(90 - 0) / (100 - 0) = 0.9"
    then = client.get(f"/v1/portfolios/{history.pid}/nodes/b1", headers=READER, params={"as_of": before.isoformat()}).json()
    assert then["progress"] == pytest.approx(0.1)
    parent = client.get(f"/v1/portfolios/{history.pid}/nodes/p1", headers=READER).json()
    assert [(i["node_id"], i["weight"], i["title"]) for i in parent["derivation"]["inputs"]] == [
        ("A", 2.0, "Objective A"),
        ("B", 1.0, "Objective B"),
    ]
    history_items = client.get(f"/v1/portfolios/{history.pid}/nodes/b1/history", headers=READER).json()["items"]
    assert [(round(i["progress"], 2), i["confidence"]) for i in history_items] == [(0.0, None), (0.1, None), (0.9, None), (0.9, 0.9)]


async def test_bad_requests_get_problems(client: TestClient, store: ScoreStore, history: Any) -> None:
    await seeded(store, history)
    base = f"/v1/portfolios/{history.pid}"
    cases = [
        (client.get(f"{base}/scorecard"), 401),
        (client.get(f"{base}/scorecard", headers={"Authorization": "Bearer elsewhere"}), 403),
        (client.get("/v1/portfolios/nobody/scorecard", headers=READER), 404),
        (client.get(f"{base}/nodes/missing", headers=READER), 404),
        (client.get(f"{base}/tree", headers=READER, params={"as_of": "2026-07-01T09:00:00"}), 422),
        (client.get(f"{base}/scorecard", headers=READER, params={"window_days": 0}), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"

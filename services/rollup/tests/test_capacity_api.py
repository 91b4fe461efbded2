"""Capacity views through the service, the store (SQLite and PostgreSQL) and the read API: stored with their event, read as of a moment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from okr_rollup.application import RollupService
from okr_rollup.domain.projection import canonical
from okr_rollup.store import ScoreStore, SqliteScoreStore
from okr_runtime.consumer import Delivery

READER = {"Authorization": "Bearer reader"}


async def discard(records: Sequence[tuple[str, bytes]]) -> None:
    """Kafka is not part of these tests; the store is."""


def planned(history: Any) -> list[Any]:
    """Squad core (6 sprints a cycle) takes A and B in q3; web (4 in q3 only) takes C, an exploration."""
    return [
        history.portfolio(),
        history.cycle("q3"),
        history.team("core", "Core"),
        history.team("web", "Web"),
        history.capacity("core", 6.0),
        history.capacity("web", 4.0, cycle="q3"),
        history.objective("A", 1),
        history.objective("B", 1),
        history.objective("C", 1),
        history.allocate("A", "core", 3.0),
        history.allocate("B", "core", 3.0),
        history.allocate("C", "web", 2.0),
        history.classify("A", "primary", "acquisition", "grow"),
        history.classify("B", "primary", "retention", "run"),
        history.classify("C", "exploration", "referral", "transform"),
    ]


async def feed(service: RollupService, events: list[Any]) -> None:
    for envelope in events:
        await service.handle(envelope)


def delivered(events: list[Any]) -> list[tuple[Any, Delivery]]:
    return [(envelope, Delivery("okr.kr-events.v1", 0, n, None, {})) for n, envelope in enumerate(events)]


def rows(store: ScoreStore, pid: str) -> list[tuple[str, int, bytes]]:
    return [(v.cycle_id, v.seq, v.view) for v in store.capacity(pid)]


async def test_each_cycles_latest_view_is_stored_with_the_event_that_changed_it(store: ScoreStore, history: Any) -> None:
    events = planned(history)
    service = RollupService(store, discard)
    await feed(service, events)
    projection = await service.projection(history.pid)
    [stored] = store.capacity(history.pid)
    assert (stored.cycle_id, stored.seq, stored.view) == ("q3", len(events), projection.capacity.written["q3"])
    assert stored.as_of == history.now
    assert store.capacity(history.pid, cycle_id="q4") == []


async def test_a_view_as_of_a_past_moment_is_the_one_that_held_then(store: ScoreStore, history: Any) -> None:
    service = RollupService(store, discard)
    await feed(service, planned(history))
    before = history.now
    projection = await service.projection(history.pid)
    then = projection.capacity.written["q3"]
    await feed(service, [history.objective("D", 1), history.allocate("D", "core", 2.0)])
    assert [v.view for v in store.capacity(history.pid, before)] == [then]
    assert [v.view for v in store.capacity(history.pid)] == [projection.capacity.written["q3"]] != [then]
    assert store.capacity(history.pid, before - timedelta(days=1)) == []


async def test_a_restart_rebuilds_the_views_without_storing_any_twice(store: ScoreStore, history: Any) -> None:
    events = planned(history)
    await feed(RollupService(store, discard), events)
    stored = rows(store, history.pid)
    restarted = RollupService(store, discard)
    await feed(restarted, events)  # redelivered after the restart: all duplicates
    assert store.load(history.pid).capacity_rows == 8
    assert rows(store, history.pid) == stored
    await feed(restarted, [history.allocate("A", "core", 5.0)])
    assert store.load(history.pid).capacity_rows == 9


async def test_views_missing_for_events_stored_before_views_were_kept_are_written_on_loading(
    store: ScoreStore, history: Any, tmp_path: Path
) -> None:
    events = planned(history)
    reference = SqliteScoreStore(tmp_path / "reference.sqlite")
    await feed(RollupService(reference, discard), events)
    for seq, envelope in enumerate(events, start=1):  # as a rollup without capacity views stored them
        store.append(history.pid, seq, str(envelope.event_id), canonical(envelope.as_json()), [])
    await RollupService(store, discard).projection(history.pid)
    assert rows(store, history.pid) == rows(reference, history.pid)
    assert store.load(history.pid).capacity_rows == reference.load(history.pid).capacity_rows == 8
    reference.close()


async def test_a_batch_stores_the_same_views_as_one_event_at_a_time(store: ScoreStore, history: Any, tmp_path: Path) -> None:
    events = planned(history)
    other = SqliteScoreStore(tmp_path / "one-by-one.sqlite")
    await feed(RollupService(other, discard), events)
    assert await RollupService(store, discard).handle_batch(delivered(events)) == [None] * len(events)
    assert rows(store, history.pid) == rows(other, history.pid)
    assert store.load(history.pid).capacity_rows == other.load(history.pid).capacity_rows
    other.close()


async def test_the_capacity_route_shows_each_squad_and_the_split_of_a_cycle(client: TestClient, store: ScoreStore, history: Any) -> None:
    await feed(RollupService(store, discard), [*planned(history), history.objective("D", 1), history.allocate("D", "core", 2.0)])
    body = client.get(f"/v1/portfolios/{history.pid}/capacity", headers=READER).json()
    assert (body["portfolio_id"], body["as_of"]) == (history.pid, None)
    [cycle] = body["cycles"]
    assert (cycle["cycle_id"], cycle["name"], cycle["as_of"]) == ("q3", "Q3", history.now.isoformat())
    core, web = cycle["squads"]
    assert (core["team_id"], core["name"], core["capacity"], core["allocated"], core["free"], core["over_by"], core["over"]) == (
        "core",
        "Core",
        6.0,
        8.0,
        -2.0,
        2.0,
        True,
    )
    assert core["utilisation"] == pytest.approx(8 / 6)
    assert [(a["objective_id"], a["title"], a["sprints"]) for a in core["allocations"]] == [
        ("A", "Objective A", 3.0),
        ("B", "Objective B", 3.0),
        ("D", "Objective D", 2.0),
    ]
    assert (web["team_id"], web["allocated"], web["free"], web["over"], web["utilisation"]) == ("web", 2.0, 2.0, False, 0.5)
    balance = cycle["balance"]
    assert [(p["priority"], p["intended"], p["sprints"], p["actual"], p["deviation"]) for p in balance["priorities"]] == [
        ("primary", 0.7, 6.0, 0.75, 0.05),
        ("secondary", 0.2, 0.0, 0.0, -0.2),
        ("exploration", 0.1, 2.0, 0.25, 0.15),
    ]
    assert (balance["margin"], balance["unclassified"], balance["worst"], balance["off"]) == (0.1, 2.0, "secondary", True)
    assert [(v["value"], v["sprints"]) for v in cycle["aarrr"]["values"] if v["sprints"]] == [
        ("acquisition", 3.0),
        ("retention", 3.0),
        ("referral", 2.0),
    ]
    assert [(v["value"], v["share"]) for v in cycle["horizon"]["values"]] == [("run", 0.375), ("grow", 0.375), ("transform", 0.25)]
    assert cycle["horizon"]["unclassified"] == 2.0


async def test_the_capacity_route_answers_as_of_a_moment_and_for_one_cycle(client: TestClient, store: ScoreStore, history: Any) -> None:
    service = RollupService(store, discard)
    await feed(service, planned(history))
    before = history.now
    await feed(service, [history.cycle("q4"), history.objective("D", 1, cycle="q4"), history.allocate("D", "core", 7.0)])
    base = f"/v1/portfolios/{history.pid}/capacity"
    now = client.get(base, headers=READER).json()
    assert [(c["cycle_id"], c["squads"][0]["over_by"]) for c in now["cycles"]] == [("q3", 0.0), ("q4", 1.0)]
    then = client.get(base, headers=READER, params={"as_of": before.isoformat()}).json()
    assert (then["as_of"], [c["cycle_id"] for c in then["cycles"]]) == (before.isoformat(), ["q3"])
    only = client.get(base, headers=READER, params={"cycle_id": "q4"}).json()
    assert [c["cycle_id"] for c in only["cycles"]] == ["q4"]
    early = client.get(base, headers=READER, params={"as_of": (before - timedelta(days=30)).isoformat()})
    assert (early.status_code, early.json()["cycles"]) == (200, [])  # a known portfolio before it had capacity


async def test_a_portfolio_without_capacity_events_has_no_cycles(client: TestClient, store: ScoreStore, history: Any) -> None:
    await feed(RollupService(store, discard), history.standard())
    answer = client.get(f"/v1/portfolios/{history.pid}/capacity", headers=READER)
    assert (answer.status_code, answer.json()["cycles"]) == (200, [])


async def test_bad_capacity_requests_get_problems(client: TestClient, store: ScoreStore, history: Any) -> None:
    await feed(RollupService(store, discard), planned(history))
    base = f"/v1/portfolios/{history.pid}/capacity"
    cases = [
        (client.get(base), 401),
        (client.get(base, headers={"Authorization": "Bearer elsewhere"}), 403),
        (client.get("/v1/portfolios/nobody/capacity", headers=READER), 404),
        (client.get(base, headers=READER, params={"as_of": "2026-07-01T09:00:00"}), 422),
        (client.get(base, headers=READER, params={"as_of": "yesterday"}), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
    unknown = client.get("/v1/portfolios/nobody/capacity", headers=READER).json()
    assert (unknown["type"], unknown["detail"]) == ("urn:okrstream:problem:unknown-id", "no events of portfolio nobody")
    naive = client.get(base, headers=READER, params={"as_of": "2026-07-01T09:00:00"}).json()
    assert naive["detail"] == "as_of needs a time zone, e.g. 2026-08-12T09:30:00Z"

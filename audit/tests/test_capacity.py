"""Capacity in an audit: the replay keeps each cycle's view as the rollup stores it, and the rollup's answer is checked field by field."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from okr_audit.capacity import CapacityDiscrepancy, compare_capacity
from okr_audit.history import read_lines, records
from okr_audit.replay import Replayed, capacity_cycles, replay_history
from okr_audit.sources import SourceError, read_capacity
from okr_contracts.export import envelope_of
from okr_contracts.topics import KR_EVENTS_TOPIC
from okr_rollup.application import RollupService
from okr_rollup.http import install_api
from okr_rollup.store import SqliteScoreStore
from okr_runtime.auth import Authenticator
from okr_runtime.problems import install_problem_handlers

from .conftest import AUDITOR, CPO, Story, tokens


@pytest.fixture
def planned(story: Story, tmp_path: Path) -> Path:
    """The story's quarter with a plan: squad core (6 per cycle) takes alpha's 3 and beta's 3 sprints, growth (4 in q3) grow's 2;
    alpha is primary, beta secondary, the balance 60/30/10 ±0.15. A week later beta takes 4 (core over by 1) and grow gives its 2 back."""
    p = story.pid
    for team in ("core", "growth"):
        story.post(f"/{p}/teams", {"team_id": team, "name": f"{team.title()} squad", "lead": "cpo"})
    steps: list[tuple[str, dict[str, Any]]] = [
        ("teams/core/capacity", {"sprints": 6}),
        ("teams/growth/capacity", {"sprints": 4, "cycle_id": "q3"}),
        ("objectives/o-alpha/allocations/core", {"sprints": 3}),
        ("objectives/o-beta/allocations/core", {"sprints": 3}),
        ("objectives/grow/allocations/growth", {"sprints": 2}),
        ("objectives/o-alpha/classification", {"priority": "primary", "aarrr_stage": "acquisition", "horizon": "grow"}),
        ("objectives/o-beta/classification", {"priority": "secondary", "aarrr_stage": "retention", "horizon": "run"}),
        ("balance", {"primary": 0.6, "secondary": 0.3, "exploration": 0.1, "margin": 0.15}),
    ]
    for route, body in steps:
        put(story, route, body)
    story.week_ends.append(story.clock.now + timedelta(hours=1))
    story.clock.now += timedelta(days=7)
    put(story, "objectives/o-beta/allocations/core", {"sprints": 4})
    story.post(f"/{p}/objectives/grow/allocations/growth/remove", {"reason": "no longer needed"})
    path = tmp_path / "planned.jsonl"
    story.export(path)
    return path


def put(story: Story, path: str, body: dict[str, Any]) -> None:
    story.clock.now += timedelta(minutes=1)
    response = story.client.put(f"/v1/portfolios/{story.pid}/{path}", json=body, headers=CPO)
    assert response.status_code == 201, response.text


@pytest.fixture
def rollup(planned: Path, tmp_path: Path) -> Iterator[SqliteScoreStore]:
    """The rollup service's store after it consumed the history, as Kafka delivers it."""
    store = SqliteScoreStore(tmp_path / "rollup.sqlite")
    asyncio.run(feed(RollupService(store, publish), planned))
    yield store
    store.close()


async def feed(service: RollupService, history: Path) -> None:
    for record in records(read_lines(history)):
        await service.handle(KR_EVENTS_TOPIC.decode(envelope_of(record).to_json_bytes()))


async def publish(records: Any) -> None:
    """The scores go nowhere: only the store's capacity rows are read here."""


@pytest.fixture
def read_api(rollup: SqliteScoreStore) -> TestClient:
    """The rollup's read API over its store, as an auditor reaches it."""
    app = FastAPI()
    install_problem_handlers(app)
    install_api(app, rollup, Authenticator(tokens()))
    return TestClient(app, base_url="http://rollup", headers=AUDITOR)


def replay(history: Path, as_of: datetime | None = None) -> Replayed:
    return replay_history("acme", records(read_lines(history)), as_of=as_of)


def test_the_replay_keeps_each_cycles_view_as_the_rollup_stored_it_at_every_moment(planned: Path, rollup: SqliteScoreStore) -> None:
    moments = sorted({envelope_of(r).recorded_at for r in records(read_lines(planned))})
    seen = set()
    for moment in [moments[0] - timedelta(seconds=1), *moments]:
        replayed = replay(planned, moment)
        kept = {cycle: (view.as_of, view.view) for cycle, view in replayed.capacity.items()}
        assert kept == {view.cycle_id: (view.as_of, view.view) for view in rollup.capacity("acme", moment)}
        seen |= {view for _, view in kept.values()}
    assert len(seen) == 10  # one per capacity event: the plan's eight steps and the two a week later (defining a squad is none)


def test_the_replayed_capacity_follows_the_arithmetic_by_hand(planned: Path, story: Story) -> None:
    [before] = capacity_cycles(replay(planned, story.week_ends[-1]))
    squads = {s["team_id"]: (s["capacity"], s["allocated"], s["free"], s["over"]) for s in before["squads"]}
    assert squads == {"core": (6.0, 6.0, 0.0, False), "growth": (4.0, 2.0, 2.0, False)}  # core is full, not over
    [after] = capacity_cycles(replay(planned))
    core = next(s for s in after["squads"] if s["team_id"] == "core")
    assert (core["allocated"], core["free"], core["over_by"], core["over"]) == (7.0, -1.0, 1.0, True)
    shares = {p["priority"]: (p["actual"], p["deviation"]) for p in after["balance"]["priorities"]}
    assert shares == {
        "primary": (pytest.approx(3 / 7), pytest.approx(3 / 7 - 0.6)),
        "secondary": (pytest.approx(4 / 7), pytest.approx(4 / 7 - 0.3)),
        "exploration": (0.0, -0.1),
    }
    assert (after["balance"]["worst"], after["balance"]["off"]) == ("secondary", True)


def test_the_rollups_answer_through_its_read_api_matches_the_replay_as_of_any_moment(
    planned: Path, read_api: TestClient, story: Story
) -> None:
    for moment in (story.week_ends[0], story.week_ends[-1], None):
        replayed = replay(planned, moment)
        at = moment or replayed.last_recorded_at
        report = compare_capacity("acme", read_capacity(read_api, "acme", at), capacity_cycles(replayed), at)
        assert (report.ok, report.compared) == (True, 0 if moment == story.week_ends[0] else 1)


def test_the_read_api_refusing_or_not_knowing_the_portfolio_is_a_source_error(read_api: TestClient) -> None:
    with pytest.raises(SourceError, match="nowhere/capacity answered 404: Not found: no events of portfolio nowhere"):
        read_capacity(read_api, "nowhere", None)
    read_api.headers["Authorization"] = "Bearer wrong"
    with pytest.raises(SourceError, match="answered 401"):
        read_capacity(read_api, "acme", None)


@pytest.fixture
def replayed(planned: Path) -> list[dict[str, Any]]:
    return capacity_cycles(replay(planned))


def differences(served: list[dict[str, Any]], replayed: list[dict[str, Any]]) -> list[str]:
    return [str(d) for d in compare_capacity("acme", served, replayed, None).differences]


def test_a_number_deep_in_a_cycle_is_named_by_its_path(replayed: list[dict[str, Any]]) -> None:
    served = copy.deepcopy(replayed)
    core = next(s for s in served[0]["squads"] if s["team_id"] == "core")
    next(a for a in core["allocations"] if a["objective_id"] == "o-beta")["sprints"] = 3.0
    next(p for p in served[0]["balance"]["priorities"] if p["priority"] == "exploration")["intended"] = 0.0
    assert differences(served, replayed) == [
        "differs: q3 balance.priorities[exploration].intended: served 0.0, replayed 0.1",
        "differs: q3 squads[core].allocations[o-beta].sprints: served 3.0, replayed 4.0",
    ]


def test_a_flag_served_as_a_number_differs_but_a_whole_number_equals_its_float(replayed: list[dict[str, Any]]) -> None:
    served = copy.deepcopy(replayed)
    core = next(s for s in served[0]["squads"] if s["team_id"] == "core")
    core["over"], core["allocated"] = 1, 7
    assert differences(served, replayed) == ["differs: q3 squads[core].over: served 1, replayed true"]


def test_a_cycle_served_without_a_view_in_the_replay_or_replayed_and_not_served_is_reported(replayed: list[dict[str, Any]]) -> None:
    extra = {**replayed[0], "cycle_id": "q4"}
    assert differences([*replayed, extra], replayed) == [
        f"not-derivable: q4: served (as of {replayed[0]['as_of']}), but no event of the history gives this cycle a view"
    ]
    report = compare_capacity("acme", [], replayed, None)
    assert [(d.kind, d.cycle_id) for d in report.differences] == [(CapacityDiscrepancy.MISSING, "q3")]
    assert (report.compared, report.matched) == (1, 0)


def test_a_field_missing_a_squad_left_out_and_a_new_order_are_differences(replayed: list[dict[str, Any]]) -> None:
    reordered = copy.deepcopy(replayed)
    reordered[0]["squads"].reverse()
    assert differences(reordered, replayed) == ['differs: q3 squads order: served ["growth", "core"], replayed ["core", "growth"]']
    served = copy.deepcopy(replayed)
    del served[0]["squads"][1]
    del served[0]["balance"]["worst"]
    assert differences(served, replayed)[0] == 'differs: q3 balance.worst: served absent, replayed "secondary"'
    assert differences(served, replayed)[1].startswith(
        'differs: q3 squads[growth]: served absent, replayed {"allocated": 0.0, "allocations": [], "capacity": 4.0'
    )


def test_the_same_moment_written_in_another_time_zone_is_the_same(replayed: list[dict[str, Any]]) -> None:
    moment = datetime.fromisoformat(replayed[0]["as_of"])
    served = [{**replayed[0], "as_of": moment.astimezone(timezone(timedelta(hours=2))).isoformat()}]
    later = [{**replayed[0], "as_of": (moment + timedelta(microseconds=1)).isoformat()}]
    assert differences(served, replayed) == []
    assert differences(later, replayed) == [
        f'differs: q3 as_of: served "{(moment + timedelta(microseconds=1)).isoformat()}", replayed "{moment.isoformat()}"'
    ]

"""`okr audit replay` and `okr audit capacity` on the demo: each cycle's capacity replayed, and the rollup's answer checked against it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from okr_audit.sources import export_from_store
from okr_checkins.application import CheckinsApplication
from okr_rollup.store import ScoreStore

Rows = Callable[[str], list[list[str]]]
PAYMENTS = ["Payments squad (squad-payments)", "4", "5", "1", "no"]  # checkout-converts and smarter-retries, 2 sprints each
SEARCH = ["Search squad (squad-search)", "1", "6", "5", "no"]
PRIORITIES = ["primary", "secondary", "exploration"]


@pytest.fixture
def export(checkins: CheckinsApplication, tmp_path: Path) -> Callable[[str, str], Path]:
    """`export(portfolio, name)`: the portfolio's history as checkins holds it now, in a file of that name."""

    def write(portfolio: str, name: str) -> Path:
        path = tmp_path / name
        export_from_store(checkins, portfolio, path)
        return path

    return write


def tamper(scores: ScoreStore, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit the demo's latest stored capacity view in the rollup's store, as someone with access to its database could."""
    with scores.transaction() as cur:
        cur.execute("SELECT input_seq, view FROM rollup_capacity WHERE portfolio_id = 'demo' ORDER BY input_seq DESC LIMIT 1")
        seq, raw = cur.fetchone()
        view = json.loads(raw)
        change(view)
        cur.execute("UPDATE rollup_capacity SET view = ? WHERE portfolio_id = 'demo' AND input_seq = ?", (json.dumps(view), seq))


def test_a_replay_prints_each_cycles_squads_and_its_split_after_the_scorecard(okr: Any, demo: str, export: Any, rows: Rows) -> None:
    shown = okr("audit", "replay", export(demo, "demo.jsonl"))
    assert shown.exit_code == 0, shown.output
    assert "capacity of 2026 Q4 (2026-q4), as of 2026-10-05T09:00:00+00:00" in shown.output
    assert shown.output.index("grow-revenue") < shown.output.index("capacity of 2026 Q4")
    assert [r for r in rows(shown.output) if " squad (" in r[0]] == [PAYMENTS, SEARCH]
    assert [r[:5] for r in rows(shown.output) if r[0] in PRIORITIES] == [
        ["primary", "0", "—", "0.60", "—"],
        ["secondary", "0", "—", "0.30", "—"],
        ["exploration", "0", "—", "0.10", "—"],
    ]
    assert "balance not judged: no allocated objective has a priority; 5 sprints without a priority left out of the shares" in shown.output


def test_a_replay_as_of_before_an_allocation_shows_the_plan_then_and_after_it_the_squad_over(
    okr: Any, planned: str, export: Any, rows: Rows
) -> None:
    history = export("demo", "demo.jsonl")
    then = okr("audit", "replay", history, "--as-of", planned).output
    assert [r for r in rows(then) if " squad (" in r[0]] == [PAYMENTS, SEARCH]
    assert "balance not judged" in then
    now = okr("audit", "replay", history).output
    assert ["Search squad (squad-search)", "7", "6", "-1", "yes, by 1"] in rows(now)
    assert [r[:5] for r in rows(now) if r[0] in PRIORITIES] == [
        ["primary", "2", "0.22", "0.60", "-0.38"],
        ["secondary", "0", "0.00", "0.30", "-0.30"],
        ["exploration", "7", "0.78", "0.10", "+0.68"],
    ]
    assert "balance off: exploration furthest from its intended share (+0.68), beyond the margin 0.15; 2 sprints" in now


def test_the_rollups_capacity_matches_the_replay_as_of_the_histories_end(okr: Any, planned: str, export: Any) -> None:
    history = export("demo", "demo.jsonl")
    checked = okr("audit", "capacity", history, "--rollup", "http://rollup")
    assert checked.exit_code == 0, checked.output
    assert checked.output.strip().splitlines() == [
        "all 1 cycles match: the capacity of demo the rollup serves as of 2026-10-06T09:00:00+00:00 is the replay's of 30 events"
    ]
    before = okr("audit", "capacity", history, "--rollup", "http://rollup", "--as-of", planned)
    assert before.exit_code == 0, before.output
    assert f"as of {planned} is the replay's of 27 events" in before.output


def test_views_changed_after_the_export_are_not_compared(okr: Any, demo: str, export: Any, api: TestClient, relay: Any, clock: Any) -> None:
    early = export(demo, "early.jsonl")
    clock.now += timedelta(minutes=5)
    assert api.put(f"/v1/portfolios/{demo}/objectives/search-finds/allocations/squad-search", json={"sprints": 9}).status_code == 201
    relay(demo)
    checked = okr("audit", "capacity", early, "--rollup", "http://rollup")
    assert checked.exit_code == 0, checked.output
    assert "all 1 cycles match" in checked.output
    later = okr("audit", "capacity", export(demo, "later.jsonl"), "--rollup", "http://rollup")
    assert later.exit_code == 0, later.output


def test_a_tampered_capacity_row_in_the_rollup_is_named_with_what_it_serves_and_what_the_replay_says(
    okr: Any, planned: str, export: Any, scores: ScoreStore
) -> None:
    def change(view: dict[str, Any]) -> None:
        search = next(s for s in view["squads"] if s["team_id"] == "squad-search")
        search.update(capacity=8.0, free=1.0, over_by=0.0, over=False)  # the over-commitment hidden
        view["balance"]["off"] = False

    tamper(scores, change)
    checked = okr("audit", "capacity", export("demo", "demo.jsonl"), "--rollup", "http://rollup")
    assert checked.exit_code == 1, checked.output
    assert checked.output.splitlines() == [
        "  differs: 2026-q4 balance.off: served false, replayed true",
        "  differs: 2026-q4 squads[squad-search].capacity: served 8.0, replayed 6.0",
        "  differs: 2026-q4 squads[squad-search].free: served 1.0, replayed -1.0",
        "  differs: 2026-q4 squads[squad-search].over: served false, replayed true",
        "  differs: 2026-q4 squads[squad-search].over_by: served 0.0, replayed 1.0",
        "5 differences: 0 of 1 cycles of demo match the replay as of 2026-10-06T09:00:00+00:00",
    ]


def test_a_tampered_history_is_not_replayed_for_a_capacity_check(okr: Any, demo: str, export: Any) -> None:
    history = export(demo, "demo.jsonl")
    lines = history.read_bytes().splitlines()
    history.write_bytes(b"\n".join(lines[:3] + lines[4:]) + b"\n")
    checked = okr("audit", "capacity", history, "--rollup", "http://rollup")
    assert checked.exit_code == 1
    assert "fails verification (1 findings): not replayed" in checked.output


def test_a_capacity_check_that_cannot_reach_or_read_the_rollup_exits_2(
    okr: Any, demo: str, export: Any, api: TestClient, closed_url: str
) -> None:
    history = export(demo, "demo.jsonl")
    unreachable = okr("audit", "capacity", history, "--rollup", closed_url, real=True)
    assert unreachable.exit_code == 2
    assert f"error: could not read {closed_url}/v1/portfolios/demo/capacity" in unreachable.output
    refused = okr("audit", "capacity", history, "--rollup", "http://rollup", token="wrong")
    assert refused.exit_code == 2
    assert "http://rollup/v1/portfolios/demo/capacity answered 401" in refused.output
    tokenless = okr("audit", "capacity", history, "--rollup", "http://rollup", token=None)
    assert tokenless.exit_code == 2
    assert "a bearer token is needed" in tokenless.output
    assert api.post("/v1/portfolios", json={"portfolio_id": "other", "name": "Other", "owner": "cpo@example.com"}).status_code == 201
    unknown = okr("audit", "capacity", export("other", "other.jsonl"), "--rollup", "http://rollup")
    assert unknown.exit_code == 2
    assert "answered 404: Not found: no events of portfolio other" in unknown.output

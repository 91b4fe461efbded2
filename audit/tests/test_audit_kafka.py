"""The audit against the running system: the quarter recorded through checkins, scored by the rollup through real Kafka,
exported, replayed, and checked against what okr.scores.v1 holds and what the scorecard showed each week."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from okr_audit.check import check
from okr_audit.history import read_lines, records
from okr_audit.replay import replay_history, scorecard_rows
from okr_audit.sources import export_from_checkins, read_scores
from okr_checkins.bootstrap import create_app as create_checkins
from okr_checkins.settings import CheckinsSettings
from okr_cli.main import app as okr
from okr_rollup.bootstrap import create_app as create_rollup
from okr_rollup.settings import RollupSettings
from okr_runtime.auth import hash_token

pytestmark = pytest.mark.integration
CPO = {"Authorization": "Bearer t-cpo"}


def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.json"
    entries = [
        {"sha256": hash_token("t-cpo"), "principal": "cpo", "roles": ["portfolio_lead"]},
        {"sha256": hash_token("t-auditor"), "principal": "auditor", "roles": ["auditor"]},
    ]
    path.write_text(json.dumps({"tokens": entries}))
    return path


def flatten(roots: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The rollup's tree as one entry per node: what the scorecard shows of it."""
    found: dict[str, dict[str, Any]] = {}
    for node in roots:
        found[node["node_id"]] = {k: node[k] for k in ("status", "progress", "raw_progress", "confidence")}
        found |= flatten(node["children"])
    return found


def test_the_published_scores_are_exactly_the_replay_and_each_week_is_what_the_scorecard_showed(
    kafka_bootstrap: str, tmp_path: Path, unique: str, wait_for: Any, clock: Any, tell: Any
) -> None:
    pid = f"audit-{unique}"
    common: dict[str, Any] = {"kafka_bootstrap": kafka_bootstrap, "tokens_file": tokens_file(tmp_path)}
    checkins = CheckinsSettings(sqlite_path=tmp_path / "history.sqlite", kpi_group=f"kpi.{unique}", relay_idle_s=0.2, **common)
    rollup = RollupSettings(store_path=tmp_path / "rollup.sqlite", group=f"rollup.{unique}", **common)
    with TestClient(create_checkins(checkins, clock=clock)) as writer, TestClient(create_rollup(rollup)) as reader:
        story = tell(writer, clock, pid)
        writer.headers["Authorization"] = "Bearer t-auditor"
        history = tmp_path / f"{pid}.jsonl"
        exported = export_from_checkins(writer, pid, history)
        whole = replay_history(pid, records(read_lines(history)))

        def published() -> list[bytes]:
            return asyncio.run(read_scores(kafka_bootstrap, pid))

        wait_for(lambda: check(whole, published()).ok, timeout_s=90)  # the rollup has caught up with the history
        report = check(whole, published())
        assert (report.compared, report.matched) == (len(whole.records), len(whole.records))

        result = CliRunner().invoke(okr, ["audit", "check", str(history), "--bootstrap", kafka_bootstrap])
        assert result.exit_code == 0, result.output
        assert f"all {len(whole.records)} published scores of {pid} match the replay of {exported.length} events" in result.output

        for moment in story.week_ends:
            then = replay_history(pid, records(read_lines(history)), as_of=moment)
            shown = reader.get(
                f"/v1/portfolios/{pid}/tree", params={"as_of": moment.isoformat()}, headers={"Authorization": "Bearer t-cpo"}
            )
            assert shown.status_code == 200, shown.text
            replayed = {r["node_id"]: {k: r[k] for k in ("status", "progress", "raw_progress", "confidence")} for r in scorecard_rows(then)}
            assert flatten(shown.json()["roots"]) == replayed

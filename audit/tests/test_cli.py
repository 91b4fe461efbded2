"""The `okr audit` commands end to end on files: exit 0 when all is well, 1 when something was found, 2 when they cannot run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from okr_audit.sources import SourceError, export_from_checkins, read_head
from okr_cli.main import app
from okr_contracts.export import canonical_json

runner = CliRunner()


def okr(*args: str | Path, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, ["audit", *map(str, args)], env=env)


@pytest.mark.parametrize("store_vars", ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)], indirect=True)
def test_an_export_from_the_event_store_verifies_against_its_saved_head(story: Any, store_vars: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "out" / "acme.jsonl"
    target.parent.mkdir()
    result = okr("export", "acme", "-o", target, "--from-store", env=store_vars)
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == story.export(tmp_path / "api.jsonl")[0]
    verified = okr("verify", target)
    assert verified.exit_code == 0, verified.output
    assert f"intact: {len(target.read_bytes().splitlines())} records of acme" in verified.output
    assert "its end checked against the trusted head" in verified.output


def test_an_export_through_the_api_carries_the_head_in_its_headers(story: Any, tmp_path: Path) -> None:
    story.client.headers["Authorization"] = "Bearer t-auditor"
    exported = export_from_checkins(story.client, "acme", tmp_path / "acme.jsonl")
    lines = (tmp_path / "acme.jsonl").read_bytes().splitlines()
    assert (exported.length, exported.head) == (len(lines), json.loads(lines[-1])["hash"])
    assert read_head(exported.save_beside(tmp_path / "acme.jsonl")).hash == exported.head
    with pytest.raises(SourceError, match="answered 404: Not found: no portfolio 'nowhere'"):
        export_from_checkins(story.client, "nowhere", tmp_path / "nowhere.jsonl")
    story.client.headers["Authorization"] = "Bearer wrong"
    with pytest.raises(SourceError, match="answered 401"):
        export_from_checkins(story.client, "acme", tmp_path / "acme.jsonl")


def test_an_export_needs_exactly_one_source_and_a_known_portfolio(story: Any, store_vars: dict[str, str], tmp_path: Path) -> None:
    none = okr("export", "acme", "-o", tmp_path / "a.jsonl")
    assert none.exit_code == 2
    assert "give exactly one source" in none.output
    unknown = okr("export", "nowhere", "-o", tmp_path / "b.jsonl", "--from-store", env=store_vars)
    assert unknown.exit_code == 2
    assert "holds no history of portfolio 'nowhere'" in unknown.output
    assert not (tmp_path / "b.jsonl").exists()
    nowhere = okr(
        "export", "acme", "-o", tmp_path / "c.jsonl", "--from-store", env={**store_vars, "OKR_SQLITE_PATH": str(tmp_path / "no.sqlite")}
    )
    assert nowhere.exit_code == 2
    assert "no event store at" in nowhere.output
    assert not (tmp_path / "no.sqlite").exists()  # looking did not create an empty store


def test_a_tampered_file_fails_verification_and_is_not_replayed(exported: Path) -> None:
    lines = exported.read_bytes().splitlines()
    del lines[4]
    exported.write_bytes(b"\n".join(lines) + b"\n")
    verified = okr("verify", exported)
    assert verified.exit_code == 1
    assert "line 5 (position 5): removed: position 5 is missing after line 4" in verified.output
    assert "its end not checked" in verified.output
    replayed = okr("replay", exported)
    assert replayed.exit_code == 1
    assert "fails verification (1 findings): not replayed" in replayed.output


def test_a_replay_as_of_a_moment_prints_the_scorecard_and_writes_each_nodes_latest_record(exported: Path, story: Any) -> None:
    out = exported.with_name("scores.jsonl")
    result = okr("replay", exported, "--as-of", story.week_ends[0].isoformat(), "-o", out, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "users" in result.output
    assert "(30 - 0) / (100 - 0) = 0.3" in result.output
    assert "┘\ncapacity: no cycle has squads (no capacity declared, nothing allocated)\n" in result.output  # right after the table
    written = [json.loads(line)["data"] for line in out.read_bytes().splitlines()]
    assert sorted(d["node_id"] for d in written) == ["churn", "grow", "o-alpha", "o-beta", "reach", "uptime", "users"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "2026-07-10T09:00:00"], "needs a time zone"),
        (["--as-of", "last tuesday"], "is not an ISO 8601 time"),
        (["--rules", "9"], "scoring rules version '9' is not known"),
    ],
)
def test_a_replay_with_a_bad_option_says_what_is_wrong(exported: Path, args: list[str], message: str) -> None:
    result = okr("replay", exported, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_check_states_that_all_scores_match_or_lists_each_difference(exported: Path) -> None:
    scores = exported.with_name("published.jsonl")
    assert okr("replay", exported, "--every", "-o", scores).exit_code == 0
    agreed = okr("check", exported, "--scores", scores)
    assert agreed.exit_code == 0, agreed.output
    count = len(scores.read_bytes().splitlines())
    events = len(exported.read_bytes().splitlines())
    assert f"all {count} published scores of acme match the replay of {events} events byte for byte" in agreed.output
    lines = scores.read_bytes().splitlines()
    last_users = max(i for i, line in enumerate(lines) if json.loads(line)["data"]["node_id"] == "users")
    record = json.loads(lines[last_users])
    record["data"]["confidence"] = 0.85  # the owner said 0.8
    lines[last_users] = canonical_json(record)
    scores.write_bytes(b"\n".join(lines) + b"\n")
    report = exported.with_name("report.json")
    differs = okr("check", exported, "--scores", scores, "--report", report)
    assert differs.exit_code == 1
    assert f"1 differences: {count - 1} of {count} published scores match" in differs.output
    written = json.loads(report.read_text())
    assert (written["ok"], [d["kind"] for d in written["differences"]]) == (False, ["differs"])
    assert "confidence: published 0.85, replayed 0.8" in written["differences"][0]["detail"]


def test_check_needs_exactly_one_source_of_published_scores(exported: Path) -> None:
    result = okr("check", exported)
    assert result.exit_code == 2
    assert "--scores FILE or --bootstrap SERVERS" in result.output
    missing = okr("check", exported, "--scores", exported.with_name("nothing.jsonl"))
    assert missing.exit_code == 2
    assert "is not a file" in missing.output

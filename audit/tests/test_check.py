"""Checking published scores against the replay: all match, or each difference is listed with what differs."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from okr_audit.check import Discrepancy, check
from okr_audit.history import read_lines, records
from okr_audit.replay import Replayed, replay_history
from okr_contracts.export import canonical_json
from okr_rollup.domain.rules import EPOCH, V1, InForce, RuleSet, Schedule


def replayed(history: Path, **options: Any) -> Replayed:
    return replay_history("acme", records(read_lines(history)), **options)


def kinds(report: Any) -> list[tuple[Discrepancy, str | None]]:
    return [(d.kind, d.node_id) for d in report.differences]


def test_every_published_record_matches_byte_for_byte(exported: Path) -> None:
    replay = replayed(exported)
    report = check(replay, [r.value for r in replay.records])
    assert report.ok
    assert (report.compared, report.matched, report.superseded) == (len(replay.records), len(replay.records), 0)


def test_a_compacted_topic_holding_only_each_nodes_latest_record_still_matches(exported: Path) -> None:
    replay = replayed(exported)
    report = check(replay, [r.value for r in replay.latest.values()])
    assert report.ok
    assert (report.compared, report.superseded) == (len(replay.latest), len(replay.records) - len(replay.latest))


def test_an_altered_score_is_listed_with_the_fields_that_differ(exported: Path) -> None:
    replay = replayed(exported)
    published = [r.value for r in replay.records]
    target = next(i for i, r in enumerate(replay.records) if r.node_id == "reach")
    record = json.loads(published[target])
    record["data"]["progress"] = 0.9
    published[target] = canonical_json(record)
    report = check(replay, published)
    assert kinds(report) == [(Discrepancy.DIFFERS, "reach")]
    assert "progress: published 0.9, replayed 0.0" in report.differences[0].detail
    assert report.matched == len(published) - 1


def test_scores_published_under_other_rules_are_not_taken_for_these(exported: Path) -> None:
    other = RuleSet("2-test")  # the same functions under another version: only the version differs
    theirs = replayed(exported, schedule=Schedule([InForce(EPOCH, V1), InForce(EPOCH + timedelta(days=1), other)]))
    report = check(replayed(exported), [r.value for r in theirs.latest.values()])
    assert {d.kind for d in report.differences} == {Discrepancy.DIFFERS}
    assert "scoring_rules_version: published '2-test', replayed '1'" in report.differences[0].detail


def test_a_missing_latest_score_and_a_score_no_event_explains_are_both_listed(exported: Path) -> None:
    replay = replayed(exported)
    published = [r.value for r in replay.records if r.value != replay.latest["churn"].value]
    forged = json.loads(published[0])
    forged["event_id"] = "00000000-0000-5000-8000-000000000000"
    published.append(canonical_json(forged))
    report = check(replay, published)
    assert sorted(kinds(report)) == [(Discrepancy.MISSING, "churn"), (Discrepancy.NOT_DERIVABLE, forged["data"]["node_id"])]


def test_other_portfolios_repeats_and_later_records_are_set_aside_not_compared(exported: Path, story: Any) -> None:
    whole, early = replayed(exported), replayed(exported, as_of=story.week_ends[1])
    other = json.loads(whole.records[0].value)
    other["data"]["portfolio_id"] = "someone-else"
    published = [r.value for r in whole.records] + [whole.records[3].value, canonical_json(other)]
    report = check(early, published)
    assert report.ok
    assert (report.compared, report.repeated) == (len(early.records), 1)
    assert report.later == len(whole.records) - len(early.records)


def test_a_message_that_is_not_a_score_record_is_reported(exported: Path) -> None:
    replay = replayed(exported)
    report = check(replay, [*(r.value for r in replay.records), b"not json"])
    assert kinds(report) == [(Discrepancy.UNREADABLE, None)]

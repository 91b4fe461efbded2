"""`okr capacity`: each cycle's squads against their capacity and its split against the intended balance, as the rollup serves them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Rows = Callable[[str], list[list[str]]]


def test_capacity_shows_a_squad_over_its_capacity_in_words_and_the_split_off_balance(okr: Any, planned: str, rows: Rows) -> None:
    shown = okr("capacity", "demo")
    assert shown.exit_code == 0, shown.output
    assert "capacity of 2026 Q4 (2026-q4)" in shown.output
    assert [r for r in rows(shown.output) if " squad (" in r[0]] == [
        ["Payments squad (squad-payments)", "4", "5", "1", "no"],
        ["Search squad (squad-search)", "7", "6", "-1", "yes, by 1"],
    ]
    assert "balance off: exploration furthest from its intended share (+0.68), beyond the margin 0.15" in shown.output


def test_capacity_as_of_a_past_moment_and_as_json(okr: Any, planned: str, rows: Rows) -> None:
    then = okr("capacity", "demo", "--as-of", planned)
    assert then.exit_code == 0, then.output
    assert ["Search squad (squad-search)", "1", "6", "5", "no"] in rows(then.output)
    assert "balance not judged" in then.output
    document = json.loads(okr("capacity", "demo", "--cycle", "2026-q4", "--json").output)
    [cycle] = document["cycles"]
    search = next(s for s in cycle["squads"] if s["team_id"] == "squad-search")
    assert (search["allocated"], search["capacity"], search["over"]) == (7, 6, True)
    other = okr("capacity", "demo", "--cycle", "2027-q1")
    assert other.output.strip() == "capacity: no cycle has squads (no capacity declared, nothing allocated)"


def test_capacity_of_an_unknown_portfolio_or_with_a_naive_moment_fails_with_the_reason(okr: Any, demo: str) -> None:
    unknown = okr("capacity", "nobody")
    assert unknown.exit_code == 1, unknown.output
    assert "no events of portfolio nobody" in unknown.output
    naive = okr("capacity", "demo", "--as-of", "2026-10-05T09:00:00")
    assert naive.exit_code == 2, naive.output
    assert "needs a time zone" in naive.output

"""`okr scorecard`: the rollup's scores of check-ins recorded through the checkins API, as a table, a tree or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

Rows = Callable[[str], list[list[str]]]


@pytest.fixture
def week(okr: Any, demo: str, relay: Any, clock: Any) -> str:
    """Checkout conversion checked in on day 1 (3.45: half way) and day 8 (3.8: hit), scored; an hour after that, as --as-of."""
    for days, confidence, value in ((1, "0.7", "3.45"), (7, "0.8", "3.8")):
        clock.now += timedelta(days=days)
        recorded = okr("checkin", demo, "checkout-conversion", "--confidence", confidence, "--value", value, "--what-changed", "new flow")
        assert recorded.exit_code == 0, recorded.output
    relay(demo)
    return str((clock.now + timedelta(hours=1)).isoformat())


def test_the_scorecard_shows_each_objectives_score_confidence_trend_and_driving_product(okr: Any, week: str, rows: Rows) -> None:
    # checkout-converts is (1.0 + pending 0) / 2 = 0.5, two thirds of net revenue retention: 1/3; three days ago it was 1/6
    shown = okr("scorecard", "demo", "--as-of", week, "--window-days", "3")
    assert shown.exit_code == 0, shown.output
    assert "demo as of 2026-10-13T10:00:00+00:00, trend over 3 days" in shown.output
    assert rows(shown.output) == [
        ["Grow revenue from existing customers (grow-revenue)", "33%", "0.80", "↑ up 0.17", "checkout (+0.17)", "scored", ""]
    ]
    over_two_weeks = okr("scorecard", "demo", "--as-of", week)
    assert rows(over_two_weeks.output)[0][3:5] == ["↑ up 0.33", "checkout (+0.33)"]  # nothing was scored two weeks before


def test_the_scorecard_before_any_check_in_shows_unknown_confidence_and_no_driver(okr: Any, demo: str, clock: Any, rows: Rows) -> None:
    shown = okr("scorecard", demo, "--as-of", (clock.now + timedelta(hours=1)).isoformat())
    assert shown.exit_code == 0, shown.output
    [row] = rows(shown.output)
    assert row == ["Grow revenue from existing customers (grow-revenue)", "0%", "unknown", "→ flat 0.00", "—", "pending", ""]


def test_a_cycle_without_portfolio_objectives_says_so(okr: Any, week: str, rows: Rows) -> None:
    assert len(rows(okr("scorecard", "demo", "--as-of", week, "--cycle", "2026-q4").output)) == 1
    other = okr("scorecard", "demo", "--as-of", week, "--cycle", "2027-q1")
    assert other.exit_code == 0, other.output
    assert "demo as of 2026-10-13T10:00:00+00:00: no portfolio objectives in cycle 2027-q1" in other.output


def test_the_tree_nests_key_results_product_objectives_and_initiatives_and_shows_what_is_pending(okr: Any, week: str) -> None:
    shown = okr("scorecard", "demo", "--as-of", week, "--tree")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    expected = [
        "objective grow-revenue: Grow revenue from existing customers — 33% scored, confidence 0.80",
        "KR net-revenue-retention: Net revenue retention from 102% to 110% — 33% scored, confidence 0.80",
        "product objective checkout-converts: Checkout converts more returning buyers — 50% scored, confidence 0.80, product checkout",
        "KR checkout-conversion: Raise checkout conversion from 3.1% to 3.8% — 100% scored, confidence 0.80, product checkout",
        "KR payment-failures: Cut failed payments from 4% to 2% — pending, product checkout",
        "initiative smarter-retries: Retry failed card payments at the right moment — pending, product checkout",
        "KR retry-recovery: Recover 30% of failed payments by retrying — pending, product checkout",
        "product objective search-finds: Search finds what buyers want — pending, product search",
    ]
    found = [next(i for i, line in enumerate(lines) if line.endswith(text)) for text in expected]
    assert found == sorted(found)
    depth = [len(lines[i]) - len(text) for i, text in zip(found, expected, strict=True)]
    assert depth[:7] == sorted(depth[:7])  # each one level under the one before, down to the initiative's key result
    assert depth[7] == depth[2]  # search-finds is checkout-converts' sibling


def test_json_prints_the_apis_document(okr: Any, week: str) -> None:
    shown = okr("scorecard", "demo", "--as-of", week, "--json")
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    assert (document["portfolio_id"], document["window_days"]) == ("demo", 14)
    [card] = document["objectives"]
    assert (card["objective_id"], card["score"], card["driver"]["product_id"]) == ("grow-revenue", pytest.approx(1 / 3), "checkout")
    tree = json.loads(okr("scorecard", "demo", "--as-of", week, "--tree", "--json").stdout)
    assert [root["node_id"] for root in tree["roots"]] == ["grow-revenue"]


@pytest.mark.parametrize(
    ("args", "token", "status", "message"),
    [
        (["nowhere"], "t-cpo", 1, "reading the scorecard of nowhere: 404 Not found: no scores for portfolio nowhere"),
        (["demo", "--tree"], "t-elsewhere", 1, "reading the tree of demo: 403 Forbidden: this token does not reach portfolio demo"),
        (["demo"], "t-nobody", 1, "401 Unauthorized: send a valid token as `Authorization: Bearer <token>`"),
        (["demo"], None, 2, "a bearer token is needed: --token or OKR_TOKEN"),
        (["demo", "--as-of", "2026-10-13T10:00"], "t-cpo", 2, "--as-of '2026-10-13T10:00' needs a time zone"),
        (["demo", "--as-of", "last week"], "t-cpo", 2, "--as-of 'last week' is not an ISO 8601 time"),
        (["demo", "--window-days", "0"], "t-cpo", 2, "Invalid value for '--window-days'"),
    ],
)
def test_a_refusal_exits_1_with_the_apis_reason_and_a_command_that_cannot_run_exits_2(
    okr: Any, demo: str, args: list[str], token: str | None, status: int, message: str
) -> None:
    shown = okr("scorecard", *args, token=token)
    assert shown.exit_code == status, shown.output
    assert message in " ".join(shown.output.split()), shown.output


def test_an_unreachable_rollup_exits_2(okr: Any, closed_url: str) -> None:
    shown = okr("scorecard", "demo", "--rollup", closed_url, real=True)
    assert shown.exit_code == 2, shown.output
    assert f"reading the scorecard of demo: cannot reach {closed_url}" in shown.output

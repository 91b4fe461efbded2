"""`okr alerts`: drift's alerts about the demo portfolio as a table, filtered, or as JSON; refusals and failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

Rows = Callable[[str], list[list[str]]]
LEAD = {"Authorization": "Bearer t-cpo"}
STALE = "No check-in or value for 15 days (limit 14)"


@pytest.fixture
def stale(demo: str, relay: Any, clock: Any) -> str:
    """Fifteen days after the demo was defined without a check-in: every key result is stale (limit 14 days)."""
    clock.now += timedelta(days=15)
    relay.tick()
    return demo


def test_alerts_show_severity_rule_node_summary_state_and_when_they_were_raised(okr: Any, stale: str, rows: Rows) -> None:
    shown = okr("alerts", stale)
    assert shown.exit_code == 0, shown.output
    assert "demo: 6 open or acknowledged alerts, newest first" in shown.output
    assert ["warning", "stale", "checkout-conversion", STALE, "open", "2026-10-20 09:00 UTC"] in rows(shown.output)
    assert sorted(row[2] for row in rows(shown.output)) == [
        "checkout-conversion",
        "net-revenue-retention",
        "payment-failures",
        "retry-recovery",
        "search-latency",
        "search-success",
    ]


def test_alerts_are_filtered_by_state_product_owner_and_rule(okr: Any, stale: str, relay: Any, clock: Any, rows: Rows) -> None:
    clock.now += timedelta(hours=1)  # a check-in without a value: no longer stale, but its progress has not moved
    assert okr("checkin", stale, "checkout-conversion", "--confidence", "0.6", "--what-changed", "new flow").exit_code == 0
    relay(stale)
    search = okr("alerts", stale, "--product", "search", "--rule", "stale")
    assert [row[2] for row in rows(search.output)] == ["search-latency", "search-success"]
    resolved = okr("alerts", stale, "--state", "resolved")
    assert [row[1:3] + row[4:5] for row in rows(resolved.output)] == [["stale", "checkout-conversion", "resolved"]]
    both = rows(okr("alerts", stale, "--state", "open", "--state", "resolved").output)
    assert len(both) == 7
    assert [both[0][i] for i in (0, 1, 2, 4, 5)] == ["warning", "not_moving", "checkout-conversion", "open", "2026-10-20 10:00 UTC"]
    nobody = okr("alerts", stale, "--owner", "nobody@example.com")
    assert (nobody.exit_code, nobody.output.strip()) == (0, "no open or acknowledged alerts of demo match")


def test_an_acknowledged_alert_says_who_acknowledged_it(okr: Any, stale: str, apps: dict[str, FastAPI], rows: Rows) -> None:
    listed = json.loads(okr("alerts", stale, "--json").stdout)
    alert_id = next(a["alert_id"] for a in listed["items"] if a["node_id"] == "search-latency")
    with TestClient(apps["drift"]) as drift:
        answer = drift.post(f"/v1/portfolios/{stale}/alerts/{alert_id}/acknowledge", headers=LEAD, json={"note": "on it"})
        assert answer.status_code == 200, answer.text
    acknowledged = okr("alerts", stale, "--state", "acknowledged")
    assert [row[2:] for row in rows(acknowledged.output)] == [
        ["search-latency", STALE, "acknowledged by cpo@example.com", "2026-10-20 09:00 UTC"]
    ]


def test_json_prints_the_apis_document(okr: Any, stale: str) -> None:
    shown = okr("alerts", stale, "--rule", "stale", "--product", "checkout", "--json")
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    assert document["portfolio_id"] == "demo"
    assert sorted((a["rule"], a["node_id"], a["severity"]) for a in document["items"]) == [
        ("stale", "checkout-conversion", "warning"),
        ("stale", "payment-failures", "warning"),
        ("stale", "retry-recovery", "warning"),
    ]


@pytest.mark.parametrize(
    ("args", "token", "status", "message"),
    [
        (["demo"], "t-elsewhere", 1, "reading the alerts of demo: 403 Forbidden: this token does not reach portfolio demo"),
        (["demo"], "t-nobody", 1, "401 Unauthorized"),
        (["demo"], None, 2, "a bearer token is needed: --token or OKR_TOKEN"),
        (["demo", "--state", "closed"], "t-cpo", 2, "'closed' is not one of 'open', 'acknowledged', 'resolved'"),
        (["demo", "--rule", "vibes"], "t-cpo", 2, "Invalid value for '--rule': Value error, 'vibes' is not one of 'stale',"),
    ],
)
def test_a_refusal_exits_1_with_the_apis_reason_and_a_command_that_cannot_run_exits_2(
    okr: Any, stale: str, args: list[str], token: str | None, status: int, message: str
) -> None:
    shown = okr("alerts", *args, token=token)
    assert shown.exit_code == status, shown.output
    assert message in " ".join(shown.output.split()), shown.output


def test_an_unreachable_drift_exits_2(okr: Any, closed_url: str) -> None:
    shown = okr("alerts", "demo", "--drift", closed_url, real=True)
    assert shown.exit_code == 2, shown.output
    assert f"reading the alerts of demo: cannot reach {closed_url}" in shown.output

"""`okr checkin`: a check-in recorded through the checkins API once, retried safely with its key, and refused clearly."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from okr_checkins.application import CheckinsApplication

KR = "checkout-conversion"


def stored(checkins: CheckinsApplication) -> int:
    return checkins.recorder.max_notification_id() or 0


def key_of(output: str) -> str:
    found = re.search(r"Idempotency-Key (\S+) \(to retry this check-in safely: --idempotency-key \1\)", output)
    assert found, output
    return found.group(1)


def test_a_check_in_is_recorded_and_the_events_it_appended_are_printed(okr: Any, demo: str, api: TestClient) -> None:
    recorded = okr(
        "checkin", demo, KR, "--confidence", "0.7", "--value", "3.45", "--what-changed", "One-page checkout shipped",
        "--why", "early numbers", "--blocker", "fraud review queue", "--decision-needed", "extend the trial to all markets",
    )  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    assert recorded.stdout.splitlines() == [
        f"recorded the check-in of {KR} in demo:",
        f"  CheckInRecorded {KR} (version 2, position 28)",
        f"  ValueObserved {KR} (version 3, position 29)",
    ]
    kr = api.get(f"/v1/portfolios/demo/key-results/{KR}").json()
    assert (kr["confidence"], kr["value"]) == (0.7, 3.45)
    last = kr["last_check_in"]
    assert (last["what_changed"], last["why"], last["blocker"], last["decision_needed"]) == (
        "One-page checkout shipped",
        "early numbers",
        "fraud review queue",
        "extend the trial to all markets",
    )


def test_a_retry_with_the_printed_key_records_nothing_again_and_a_different_body_with_it_is_refused(
    okr: Any, demo: str, checkins: CheckinsApplication
) -> None:
    first = okr("checkin", demo, KR, "--confidence", "0.6", "--what-changed", "weekly")
    assert first.exit_code == 0, first.output
    key = key_of(first.output)
    assert key != key_of(okr("checkin", demo, KR, "--confidence", "0.6", "--what-changed", "weekly").output)  # a new key each run
    before = stored(checkins)
    retried = okr("checkin", demo, KR, "--confidence", "0.6", "--what-changed", "weekly", "--idempotency-key", key)
    assert retried.exit_code == 0, retried.output
    assert "already recorded by an earlier try with this key; nothing was recorded again" in retried.stdout
    assert f"CheckInRecorded {KR} (version 2, position 28)" in retried.stdout
    assert stored(checkins) == before
    changed = okr("checkin", demo, KR, "--confidence", "0.9", "--what-changed", "weekly", "--idempotency-key", key)
    assert changed.exit_code == 1, changed.output
    assert "422 Idempotency-Key reused" in changed.output
    assert stored(checkins) == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--confidence", "1.5"], "--confidence 1.5 is outside 0.0 to 1.0 (0.7 means a 70% chance to hit it); nothing was sent"),
        (["--confidence", "-0.1"], "--confidence -0.1 is outside 0.0 to 1.0"),
        (["--confidence", "nan"], "--confidence nan is outside 0.0 to 1.0"),
        (["--confidence", "0.5", "--what-changed", "  "], "--what-changed: String should have at least 1 character; nothing was sent"),
        (["--confidence", "0.5", "--value", "inf"], "--value: Input should be a finite number; nothing was sent"),
    ],
)
def test_a_bad_option_is_refused_before_anything_is_sent(
    okr: Any, demo: str, checkins: CheckinsApplication, options: list[str], message: str
) -> None:
    before = stored(checkins)
    refused = okr("checkin", demo, KR, "--what-changed", "weekly", *options)
    assert refused.exit_code == 2, refused.output
    assert message in refused.output
    assert "Idempotency-Key" not in refused.output
    assert stored(checkins) == before


@pytest.mark.parametrize(
    ("kr", "token", "message"),
    [
        ("no-such-kr", "t-cpo", "check-in of no-such-kr in demo: 404 Not found: no key result 'no-such-kr' in this portfolio"),
        (KR, "t-elsewhere", f"recording the check-in of {KR} in demo: 403 Forbidden: this token does not reach portfolio demo"),
        ("net-revenue-retention", "t-cpo", "422 Invalid command: net-revenue-retention is derived: its progress comes from its"),
    ],
)
def test_a_refusal_by_the_api_exits_1_with_its_reason_and_records_nothing(
    okr: Any, demo: str, checkins: CheckinsApplication, kr: str, token: str, message: str
) -> None:
    before = stored(checkins)
    refused = okr("checkin", demo, kr, "--confidence", "0.5", "--value", "105", "--what-changed", "weekly", token=token)
    assert refused.exit_code == 1, refused.output
    assert message in " ".join(refused.output.split()), refused.output
    assert stored(checkins) == before


def test_without_a_token_nothing_is_sent(okr: Any, demo: str, checkins: CheckinsApplication) -> None:
    before = stored(checkins)
    refused = okr("checkin", demo, KR, "--confidence", "0.5", "--what-changed", "weekly", token=None)
    assert (refused.exit_code, refused.output.strip()) == (2, "error: a bearer token is needed: --token or OKR_TOKEN")
    assert stored(checkins) == before


def test_an_unreachable_api_exits_2_after_printing_the_key_to_retry_with(okr: Any, closed_url: str) -> None:
    failed = okr("checkin", "demo", KR, "--confidence", "0.5", "--what-changed", "weekly", "--checkins", closed_url, real=True)
    assert failed.exit_code == 2, failed.output
    assert key_of(failed.output)
    assert f"recording the check-in of {KR} in demo: cannot reach {closed_url}" in failed.output

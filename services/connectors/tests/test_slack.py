"""Slack Events API requests, which messages count, and the blockers and decision requests they raise."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from okr_connectors.vendors import slack
from okr_connectors.vendors.errors import PayloadRejected
from okr_connectors.vendors.slack import MessageEvent, UrlVerification
from okr_contracts.delivery import DeliverySource, SignalKind, SignalRaised

PAYLOADS = Path(__file__).parent / "payloads"
KNOWN = frozenset({"kr-activation", "kr-checkout", "KR-7"})
DEFAULT = ("kr-checkout",)


def load(name: str) -> dict[str, Any]:
    """A payload file, as the HTTP layer hands it over (``json.loads`` of the body)."""
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return data


def with_event(**changes: Any) -> dict[str, Any]:
    """The captured message callback with its event changed."""
    body = load("slack_event_callback_message.json")
    body["event"].update(changes)
    return body


def message(text: str) -> MessageEvent:
    """The captured message with another text."""
    return MessageEvent(
        event_id="Ev079SP4TP1P", team_id="T06NRA6HM3P", channel="C06NRA6JLER", user="U06NU4E26M9", text=text, ts="1719209506.817929"
    )


def signal(text: str, known: frozenset[str] = KNOWN, default: tuple[str, ...] = DEFAULT) -> SignalRaised | None:
    """What a message with this text raises."""
    return slack.signal_from_message(message(text), known_krs=known, default_krs=default)


def test_url_verification_answers_with_the_challenge() -> None:
    assert slack.parse_request(load("slack_url_verification.json")) == UrlVerification(
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    )


def test_url_verification_without_a_challenge_is_rejected() -> None:
    with pytest.raises(PayloadRejected, match="missing challenge"):
        slack.parse_request({"type": "url_verification", "token": "x"})


def test_a_persons_message_is_read_from_the_callback() -> None:
    assert slack.parse_request(load("slack_event_callback_message.json")) == MessageEvent(
        event_id="Ev079SP4TP1P",
        team_id="T06NRA6HM3P",
        channel="C06NRA6JLER",
        user="U06NU4E26M9",
        text="Hello, this is a normal text message",
        ts="1719209506.817929",
    )


def test_a_thread_reply_is_a_message_too() -> None:
    request = slack.parse_request(with_event(thread_ts="1719209000.000100"))
    assert isinstance(request, MessageEvent)


@pytest.mark.parametrize("subtype", ["bot_message", "message_changed", "message_deleted", "channel_join", "file_share", "thread_broadcast"])
def test_messages_with_a_subtype_are_ignored(subtype: str) -> None:
    assert slack.parse_request(with_event(subtype=subtype)) is None


def test_a_message_from_a_bot_is_ignored() -> None:
    assert slack.parse_request(with_event(bot_id="B123ABC456")) is None


def test_a_message_posted_through_an_app_is_ignored() -> None:
    assert slack.parse_request(with_event(app_id="A0757RM31HN")) is None


def test_a_message_from_the_apps_own_bot_user_is_ignored() -> None:
    assert slack.parse_request(with_event(user="U074G5E1ANR")) is None


def test_the_apps_own_post_echoed_back_is_ignored() -> None:
    posted = load("slack_chat_postMessage_response_ok.json")
    body = load("slack_event_callback_message.json")
    body["event"] = {**posted["message"], "channel": posted["channel"], "event_ts": posted["ts"]}
    assert slack.parse_request(body) is None


@pytest.mark.parametrize("event_type", ["reaction_added", "app_mention", "member_joined_channel"])
def test_other_event_types_are_ignored(event_type: str) -> None:
    assert slack.parse_request(with_event(type=event_type)) is None


def test_a_rate_limit_notice_is_ignored() -> None:
    notice = {
        "token": "x",
        "type": "app_rate_limited",
        "team_id": "T06NRA6HM3P",
        "minute_rate_limited": 1518467820,
        "api_app_id": "A0757RM31HN",
    }
    assert slack.parse_request(notice) is None


@pytest.mark.parametrize("name", ["slack_chat_postMessage_response_ok.json", "slack_chat_postMessage_response_error.json"])
def test_a_web_api_response_is_not_a_request(name: str) -> None:
    with pytest.raises(PayloadRejected, match="Slack request body has no type"):
        slack.parse_request(load(name))


def test_an_unknown_request_type_is_rejected_by_name() -> None:
    with pytest.raises(PayloadRejected, match="unknown Slack request type 'block_actions'"):
        slack.parse_request({"type": "block_actions"})


def test_a_callback_without_an_event_is_rejected() -> None:
    body = load("slack_event_callback_message.json")
    del body["event"]
    with pytest.raises(PayloadRejected, match="event must be a JSON object"):
        slack.parse_request(body)


@pytest.mark.parametrize(
    ("field", "message"), [("user", "missing event.user"), ("channel", "missing event.channel"), ("ts", "missing event.ts")]
)
def test_a_message_missing_a_field_is_rejected_naming_it(field: str, message: str) -> None:
    body = load("slack_event_callback_message.json")
    del body["event"][field]
    with pytest.raises(PayloadRejected, match=message):
        slack.parse_request(body)


def test_a_callback_without_an_event_id_is_rejected() -> None:
    body = load("slack_event_callback_message.json")
    del body["event_id"]
    with pytest.raises(PayloadRejected, match="missing event_id"):
        slack.parse_request(body)


def test_a_malformed_message_timestamp_is_rejected() -> None:
    with pytest.raises(PayloadRejected, match=r"event\.ts must be a Slack timestamp"):
        slack.parse_request(with_event(ts="yesterday"))


def test_a_body_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(PayloadRejected, match="must be a JSON object"):
        slack.parse_request("challenge")  # type: ignore[arg-type]


def test_the_captured_small_talk_raises_nothing() -> None:
    request = slack.parse_request(load("slack_event_callback_message.json"))
    assert isinstance(request, MessageEvent)
    assert slack.signal_from_message(request, known_krs=KNOWN, default_krs=DEFAULT) is None


def test_a_blocker_marker_raises_a_blocker_about_the_named_kr() -> None:
    raised = slack.signal_from_message(
        MessageEvent(
            event_id="Ev079SP4TP1P",
            team_id="T06NRA6HM3P",
            channel="C06NRA6JLER",
            user="U06NU4E26M9",
            text=":blocker: kr-activation waits on the legal review",
            ts="1719209506.817929",
            permalink="https://example.slack.com/archives/C06NRA6JLER/p1719209506817929",
        ),
        known_krs=KNOWN,
        default_krs=DEFAULT,
    )
    assert raised == SignalRaised(
        source=DeliverySource.SLACK,
        external_id="C06NRA6JLER:1719209506.817929",
        delivery_id="Ev079SP4TP1P",
        kr_ids=("kr-activation",),
        kind=SignalKind.BLOCKER,
        channel="C06NRA6JLER",
        author="U06NU4E26M9",
        text=":blocker: kr-activation waits on the legal review",
        permalink="https://example.slack.com/archives/C06NRA6JLER/p1719209506817929",
        posted_at=datetime(2024, 6, 24, 6, 11, 46, 817929, tzinfo=UTC),
    )
    assert raised.portfolio_id is None


@pytest.mark.parametrize(
    "text",
    [
        "Blocker: the sandbox is down",
        "blocker: the sandbox is down",
        "status update\n  BLOCKER: the sandbox is down",
        "sandbox down :Blocker:",
    ],
)
def test_a_blocker_marker_without_a_kr_is_about_the_default_krs(text: str) -> None:
    raised = signal(text)
    assert raised is not None
    assert (raised.kind, raised.kr_ids) == (SignalKind.BLOCKER, DEFAULT)


@pytest.mark.parametrize("text", ["Decision needed: ship without SSO?", "ship without SSO :decision:", "notes\ndecision needed: pricing"])
def test_a_decision_marker_asks_for_a_decision(text: str) -> None:
    raised = signal(text)
    assert raised is not None
    assert raised.kind is SignalKind.DECISION_NEEDED


def test_a_marker_in_the_middle_of_a_line_is_no_marker() -> None:
    assert signal("the blocker: nothing, all green") is None
    assert signal("no decision needed: all green") is None


def test_with_both_markers_the_blocker_wins() -> None:
    raised = signal(":decision: or :blocker: for kr-checkout")
    assert raised is not None
    assert raised.kind is SignalKind.BLOCKER


def test_a_marker_with_no_kr_and_no_default_raises_a_signal_about_no_kr() -> None:
    raised = signal(":blocker: the sandbox is down", default=())
    assert raised is not None
    assert raised.kr_ids == ()


def test_a_named_kr_said_to_be_blocked_is_a_blocker() -> None:
    raised = signal("kr-activation is blocked by the data migration")
    assert raised is not None
    assert (raised.kind, raised.kr_ids) == (SignalKind.BLOCKER, ("kr-activation",))


def test_a_named_kr_blocking_something_is_a_blocker() -> None:
    raised = signal("Infra work is Blocking KR-7.")
    assert raised is not None
    assert (raised.kind, raised.kr_ids) == (SignalKind.BLOCKER, ("KR-7",))


def test_a_question_naming_a_kr_asks_for_a_decision() -> None:
    raised = signal("Should we drop kr-activation for this cycle?")
    assert raised is not None
    assert (raised.kind, raised.kr_ids) == (SignalKind.DECISION_NEEDED, ("kr-activation",))


def test_a_named_kr_without_marker_block_or_question_raises_nothing() -> None:
    assert signal("kr-activation is going well") is None


def test_unblocked_is_not_blocked() -> None:
    assert signal("kr-activation is unblocked now") is None


def test_a_question_or_block_without_a_known_kr_raises_nothing() -> None:
    assert signal("are we blocked on the kr-unknown thing?") is None


def test_kr_prefix_names_a_known_kr() -> None:
    raised = signal("kr:kr-checkout is blocked on payments")
    assert raised is not None
    assert raised.kr_ids == ("kr-checkout",)


def test_kr_prefix_naming_no_known_kr_names_nothing() -> None:
    assert signal("kr:kr-unknown is blocked") is None


def test_kr_ids_are_case_sensitive() -> None:
    assert signal("KR-ACTIVATION is blocked") is None


def test_slack_formatting_and_punctuation_around_a_kr_are_ignored() -> None:
    raised = signal("*kr-activation*, (kr:KR-7) and `kr-checkout`: blocked")
    assert raised is not None
    assert raised.kr_ids == ("kr-activation", "KR-7", "kr-checkout")


def test_named_krs_are_listed_once_in_order_of_mention() -> None:
    raised = signal(":blocker: KR-7 then kr-activation then KR-7 again")
    assert raised is not None
    assert raised.kr_ids == ("KR-7", "kr-activation")


def test_the_default_krs_apply_only_when_none_is_named() -> None:
    raised = signal(":blocker: kr-activation", default=("kr-checkout", "KR-7"))
    assert raised is not None
    assert raised.kr_ids == ("kr-activation",)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("1719209506.817929", datetime(2024, 6, 24, 6, 11, 46, 817929, tzinfo=UTC)),
        ("1503435956.000247", datetime(2017, 8, 22, 21, 5, 56, 247, tzinfo=UTC)),
        ("1503435956", datetime(2017, 8, 22, 21, 5, 56, tzinfo=UTC)),
    ],
)
def test_a_message_timestamp_is_an_exact_moment(ts: str, expected: datetime) -> None:
    assert slack.posted_at(ts) == expected

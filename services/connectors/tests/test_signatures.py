"""Webhook signatures: Slack's published test vector, Jira and Linear HMACs, and every way a request is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from okr_connectors.signatures import SignatureRejected, verify_jira, verify_linear, verify_slack

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = b"shared-webhook-secret"


def raw(name: str) -> bytes:
    """A payload file's bytes exactly as a vendor would send them."""
    return (PAYLOADS / name).read_bytes()


def hex_hmac(secret: bytes, message: bytes) -> str:
    """What a vendor computes: the hex HMAC-SHA256 of a message."""
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def slack_vector() -> dict[str, str]:
    """The key=value pairs of Slack's signing test vector."""
    lines = (PAYLOADS / "slack_signing_test_vector.txt").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


# Jira


def test_jira_accepts_the_hmac_of_the_raw_body() -> None:
    body = raw("jira_issue_created.json")
    verify_jira(SECRET, body, f"sha256={hex_hmac(SECRET, body)}")


def test_jira_accepts_upper_case_hex() -> None:
    body = raw("jira_issue_created.json")
    verify_jira(SECRET, body, f"sha256={hex_hmac(SECRET, body).upper()}")


def test_jira_rejects_a_tampered_body() -> None:
    body = raw("jira_issue_updated_status_to_done.json")
    header = f"sha256={hex_hmac(SECRET, body)}"
    with pytest.raises(SignatureRejected, match="does not match"):
        verify_jira(SECRET, body.replace(b'"Done"', b'"Open"'), header)


def test_jira_rejects_a_signature_made_with_another_secret() -> None:
    body = raw("jira_issue_created.json")
    with pytest.raises(SignatureRejected, match="does not match"):
        verify_jira(SECRET, body, f"sha256={hex_hmac(b'another-secret', body)}")


@pytest.mark.parametrize("header", [None, ""])
def test_jira_rejects_a_request_without_the_header(header: str | None) -> None:
    with pytest.raises(SignatureRejected, match="missing X-Hub-Signature"):
        verify_jira(SECRET, b"{}", header)


@pytest.mark.parametrize("header", ["sha1=" + "a" * 40, "sha256=" + "z" * 64, "sha256=abc", "a" * 64, "sha256"])
def test_jira_rejects_a_header_of_the_wrong_format(header: str) -> None:
    with pytest.raises(SignatureRejected, match="bad format"):
        verify_jira(SECRET, b"{}", header)


# Linear

LINEAR_BODY = raw("linear_issue_create.json")
LINEAR_SIGNED_AT = datetime(2023, 4, 11, 10, 10, 16, 78000, tzinfo=UTC)
"""The fixture's ``webhookTimestamp``, 1681207816078 ms."""


def test_linear_accepts_a_fresh_signed_delivery() -> None:
    verify_linear(SECRET, LINEAR_BODY, hex_hmac(SECRET, LINEAR_BODY), now=LINEAR_SIGNED_AT + timedelta(seconds=5))


@pytest.mark.parametrize("offset", [timedelta(seconds=60), timedelta(seconds=-60)])
def test_linear_accepts_a_delivery_exactly_sixty_seconds_off(offset: timedelta) -> None:
    verify_linear(SECRET, LINEAR_BODY, hex_hmac(SECRET, LINEAR_BODY), now=LINEAR_SIGNED_AT + offset)


@pytest.mark.parametrize("offset", [timedelta(seconds=60, milliseconds=1), timedelta(seconds=-60, milliseconds=-1), timedelta(hours=6)])
def test_linear_rejects_a_delivery_more_than_sixty_seconds_off(offset: timedelta) -> None:
    with pytest.raises(SignatureRejected, match="outside the window"):
        verify_linear(SECRET, LINEAR_BODY, hex_hmac(SECRET, LINEAR_BODY), now=LINEAR_SIGNED_AT + offset)


def test_linear_window_can_be_widened() -> None:
    verify_linear(SECRET, LINEAR_BODY, hex_hmac(SECRET, LINEAR_BODY), now=LINEAR_SIGNED_AT + timedelta(seconds=90), window_s=120)


def test_linear_rejects_a_tampered_body_before_looking_at_its_timestamp() -> None:
    signature = hex_hmac(SECRET, LINEAR_BODY)
    with pytest.raises(SignatureRejected, match="does not match"):
        verify_linear(SECRET, LINEAR_BODY.replace(b"Urgent", b"Low"), signature, now=LINEAR_SIGNED_AT + timedelta(days=999))


def test_linear_rejects_a_signature_made_with_another_secret() -> None:
    with pytest.raises(SignatureRejected, match="does not match"):
        verify_linear(SECRET, LINEAR_BODY, hex_hmac(b"another-secret", LINEAR_BODY), now=LINEAR_SIGNED_AT)


@pytest.mark.parametrize("signature", [None, ""])
def test_linear_rejects_a_request_without_the_header(signature: str | None) -> None:
    with pytest.raises(SignatureRejected, match="missing Linear-Signature"):
        verify_linear(SECRET, LINEAR_BODY, signature, now=LINEAR_SIGNED_AT)


def test_linear_rejects_a_header_of_the_wrong_format() -> None:
    with pytest.raises(SignatureRejected, match="bad format"):
        verify_linear(SECRET, LINEAR_BODY, "sha256=" + hex_hmac(SECRET, LINEAR_BODY), now=LINEAR_SIGNED_AT)


def test_linear_judges_the_signed_body_timestamp_so_a_replayed_body_stays_stale() -> None:
    # Re-signing is impossible without the secret, so an old delivery replayed now fails on its own timestamp.
    with pytest.raises(SignatureRejected, match="outside the window"):
        verify_linear(SECRET, LINEAR_BODY, hex_hmac(SECRET, LINEAR_BODY), now=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("body", [b'{"type": "Issue"}', b'{"webhookTimestamp": "1681207816078"}', b"not json", b"[1, 2]"])
def test_linear_rejects_a_signed_body_without_a_numeric_timestamp(body: bytes) -> None:
    with pytest.raises(SignatureRejected, match="webhookTimestamp"):
        verify_linear(SECRET, body, hex_hmac(SECRET, body), now=LINEAR_SIGNED_AT)


def test_linear_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_linear(SECRET, LINEAR_BODY, hex_hmac(SECRET, LINEAR_BODY), now=datetime(2023, 4, 11, 10, 10, 16))


# Slack

VECTOR = slack_vector()
SLACK_SECRET = VECTOR["signing_secret"].encode()
SLACK_BODY = VECTOR["body"].encode()
SLACK_TS = VECTOR["X-Slack-Request-Timestamp"]
SLACK_SIGNATURE = VECTOR["X-Slack-Signature"]
SLACK_SIGNED_AT = datetime(2018, 7, 12, 18, 36, 58, tzinfo=UTC)
"""The vector's timestamp, 1531420618."""


def test_slack_accepts_its_published_test_vector() -> None:
    assert SLACK_SIGNATURE == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    verify_slack(SLACK_SECRET, SLACK_BODY, SLACK_TS, SLACK_SIGNATURE, now=SLACK_SIGNED_AT)


@pytest.mark.parametrize("offset", [timedelta(seconds=300), timedelta(seconds=-300)])
def test_slack_accepts_a_request_exactly_five_minutes_off(offset: timedelta) -> None:
    verify_slack(SLACK_SECRET, SLACK_BODY, SLACK_TS, SLACK_SIGNATURE, now=SLACK_SIGNED_AT + offset)


@pytest.mark.parametrize("offset", [timedelta(seconds=300, microseconds=1), timedelta(seconds=-301), timedelta(days=1)])
def test_slack_rejects_a_request_more_than_five_minutes_off(offset: timedelta) -> None:
    with pytest.raises(SignatureRejected, match="outside the window"):
        verify_slack(SLACK_SECRET, SLACK_BODY, SLACK_TS, SLACK_SIGNATURE, now=SLACK_SIGNED_AT + offset)


def test_slack_rejects_a_tampered_body() -> None:
    with pytest.raises(SignatureRejected, match="does not match"):
        verify_slack(SLACK_SECRET, SLACK_BODY.replace(b"roadrunner", b"coyote"), SLACK_TS, SLACK_SIGNATURE, now=SLACK_SIGNED_AT)


def test_slack_rejects_a_timestamp_other_than_the_signed_one() -> None:
    with pytest.raises(SignatureRejected, match="does not match"):
        verify_slack(SLACK_SECRET, SLACK_BODY, str(int(SLACK_TS) + 1), SLACK_SIGNATURE, now=SLACK_SIGNED_AT)


def test_slack_rejects_a_signature_made_with_another_secret() -> None:
    with pytest.raises(SignatureRejected, match="does not match"):
        verify_slack(b"another-secret", SLACK_BODY, SLACK_TS, SLACK_SIGNATURE, now=SLACK_SIGNED_AT)


def test_slack_rejects_a_request_without_a_timestamp_header() -> None:
    with pytest.raises(SignatureRejected, match="missing X-Slack-Request-Timestamp"):
        verify_slack(SLACK_SECRET, SLACK_BODY, None, SLACK_SIGNATURE, now=SLACK_SIGNED_AT)


def test_slack_rejects_a_request_without_a_signature_header() -> None:
    with pytest.raises(SignatureRejected, match="missing X-Slack-Signature"):
        verify_slack(SLACK_SECRET, SLACK_BODY, SLACK_TS, "", now=SLACK_SIGNED_AT)


@pytest.mark.parametrize("timestamp", ["1531420618.5", "soon", "-1531420618"])
def test_slack_rejects_a_timestamp_that_is_not_whole_seconds(timestamp: str) -> None:
    with pytest.raises(SignatureRejected, match="bad format of X-Slack-Request-Timestamp"):
        verify_slack(SLACK_SECRET, SLACK_BODY, timestamp, SLACK_SIGNATURE, now=SLACK_SIGNED_AT)


@pytest.mark.parametrize("signature", ["v1=" + "a" * 64, "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", "v0=xyz"])
def test_slack_rejects_a_signature_of_the_wrong_format(signature: str) -> None:
    with pytest.raises(SignatureRejected, match="bad format of X-Slack-Signature"):
        verify_slack(SLACK_SECRET, SLACK_BODY, SLACK_TS, signature, now=SLACK_SIGNED_AT)


def test_slack_signs_json_event_bodies_the_same_way() -> None:
    body = raw("slack_event_callback_message.json")
    event_time = str(json.loads(body)["event_time"])
    signature = "v0=" + hex_hmac(SLACK_SECRET, f"v0:{event_time}:".encode() + body)
    verify_slack(SLACK_SECRET, body, event_time, signature, now=datetime.fromtimestamp(int(event_time), UTC))

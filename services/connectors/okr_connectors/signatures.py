"""Webhook authenticity: Jira, Linear and Slack request signatures, checked in constant time.

Pure functions of the secret, the raw body as received and the headers; the moment is given,
never read. Each returns None for a genuine request and raises ``SignatureRejected`` saying why
otherwise: a missing header, a header of the wrong format, a signature that does not match, or
a signed timestamp outside the replay window (the boundary itself is accepted).

- Jira admin webhooks: ``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>``; nothing is
  timestamped, so deliveries are deduplicated on ``X-Atlassian-Webhook-Identifier`` instead.
- Linear: ``Linear-Signature: <hex HMAC-SHA256(secret, body)>``, then the signed body's
  ``webhookTimestamp`` (milliseconds) within 60 s of now. The unsigned ``Linear-Timestamp``
  header is not read: the body's timestamp wins.
- Slack: ``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<timestamp>:<body>")>`` with
  ``X-Slack-Request-Timestamp`` (seconds) within 300 s of now.

The signature is checked before the timestamp, so a timestamp is only judged once it is known
to be signed. Hex digits are accepted in either case.
"""

from __future__ import annotations

import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_SLACK_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class SignatureRejected(ValueError):
    """A webhook request is not authentic or is too old; the message says why."""


def verify_jira(secret: bytes, body: bytes, header: str | None) -> None:
    """Check a Jira ``X-Hub-Signature`` header against the raw body."""
    if not header:
        raise SignatureRejected("missing X-Hub-Signature header")
    method, _, digest = header.strip().partition("=")
    if method != "sha256" or not _HEX_SHA256.fullmatch(digest):
        raise SignatureRejected("bad format of X-Hub-Signature header: expected sha256=<64 hex digits>")
    _compare(_hmac_hex(secret, body), digest, "X-Hub-Signature")


def verify_linear(secret: bytes, body: bytes, signature: str | None, *, now: datetime, window_s: float = 60) -> None:
    """Check a ``Linear-Signature`` header against the raw body, then the body's ``webhookTimestamp`` against now."""
    verify_linear_signature(secret, body, signature)
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    verify_linear_timestamp(document, now=now, window_s=window_s)


def verify_linear_signature(secret: bytes, body: bytes, signature: str | None) -> None:
    """Check a ``Linear-Signature`` header against the raw body (the first half of :func:`verify_linear`)."""
    if not signature:
        raise SignatureRejected("missing Linear-Signature header")
    digest = signature.strip()
    if not _HEX_SHA256.fullmatch(digest):
        raise SignatureRejected("bad format of Linear-Signature header: expected 64 hex digits")
    _compare(_hmac_hex(secret, body), digest, "Linear-Signature")


def verify_linear_timestamp(document: Any, *, now: datetime, window_s: float = 60) -> None:
    """Check the signed body's ``webhookTimestamp`` against now, given the body as parsed (None when it is not JSON).

    The second half of :func:`verify_linear`, for a caller that parses the verified body once for this and for its contents.
    """
    _within_window(_linear_timestamp(document), now, window_s)


def verify_slack(secret: bytes, body: bytes, timestamp: str | None, signature: str | None, *, now: datetime, window_s: float = 300) -> None:
    """Check ``X-Slack-Signature`` over ``v0:<timestamp>:<body>``, then ``X-Slack-Request-Timestamp`` against now."""
    if not timestamp:
        raise SignatureRejected("missing X-Slack-Request-Timestamp header")
    if not signature:
        raise SignatureRejected("missing X-Slack-Signature header")
    if not _SLACK_TIMESTAMP.fullmatch(timestamp.strip()):
        raise SignatureRejected("bad format of X-Slack-Request-Timestamp header: expected whole seconds since the epoch")
    version, _, digest = signature.strip().partition("=")
    if version != "v0" or not _HEX_SHA256.fullmatch(digest):
        raise SignatureRejected("bad format of X-Slack-Signature header: expected v0=<64 hex digits>")
    seconds = timestamp.strip()
    _compare(_hmac_hex(secret, b"v0:" + seconds.encode() + b":" + body), digest, "X-Slack-Signature")
    _within_window(int(seconds) * 1_000_000, now, window_s)


def _hmac_hex(secret: bytes, message: bytes) -> str:
    return hmac.digest(secret, message, "sha256").hex()


def _compare(expected: str, given: str, header: str) -> None:
    if not hmac.compare_digest(expected.encode(), given.lower().encode()):
        raise SignatureRejected(f"{header} does not match the body: wrong secret or altered body")


def _linear_timestamp(document: Any) -> int:
    """The signed ``webhookTimestamp`` of a parsed Linear body, in microseconds since the epoch."""
    value = document.get("webhookTimestamp") if isinstance(document, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SignatureRejected("bad format: the signed Linear body has no numeric webhookTimestamp")
    return round(value * 1000)


def _within_window(signed_at_us: int, now: datetime, window_s: float) -> None:
    """Whole microseconds throughout, so that the boundary is exact."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    age_us = (now - _EPOCH) // _MICROSECOND - signed_at_us
    if abs(age_us) > round(window_s * 1_000_000):
        direction = "old" if age_us > 0 else "ahead"
        raise SignatureRejected(f"timestamp outside the window: {abs(age_us) / 1e6:.3f} s {direction}, at most {window_s:g} s allowed")

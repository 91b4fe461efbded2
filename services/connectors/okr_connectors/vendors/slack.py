"""Slack Events API requests, and the blockers and decision requests people raise in mapped channels.

``parse_request`` keeps only plain messages written by people: a message with a ``subtype``
(bot_message, message_changed, message_deleted, channel_join, file_share, thread_broadcast, …),
a ``bot_id`` or an ``app_id``, or written by the app's own bot user (an ``authorizations`` entry
with ``is_bot``), is ignored, as are other event types and ``app_rate_limited`` notices.

``signal_from_message`` decides whether a message is a signal about key results:

- A marker gives the kind: ``:blocker:`` anywhere or a line starting ``blocker:`` → blocker;
  ``:decision:`` anywhere or a line starting ``decision needed:`` → decision needed (markers are
  case-insensitive; with both, blocker wins).
- A message naming a known KR without a marker is a blocker if it says "blocked" or "blocking",
  else a decision request if it ends with "?", else no signal.
- A KR is named by a word equal to one of ``known_krs`` (surrounding punctuation and Slack's
  ``*bold*``/``_italic_``/`` `code` `` marks ignored) or by ``kr:<id>``; ids are case-sensitive,
  and a ``kr:<id>`` naming no known KR names nothing.
- The signal's KRs are those named, in order of mention, else ``default_krs``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from okr_connectors.vendors.doc import Doc, build
from okr_connectors.vendors.errors import PayloadRejected
from okr_contracts.delivery import DeliverySource, SignalKind, SignalRaised

_BLOCKER = re.compile(r":blocker:|^\s*blocker:", re.IGNORECASE | re.MULTILINE)
_DECISION = re.compile(r":decision:|^\s*decision needed:", re.IGNORECASE | re.MULTILINE)
_BLOCKED = re.compile(r"\bblock(?:ed|ing)\b", re.IGNORECASE)
_TS = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,6}))?")
_PUNCTUATION = "()[]{}<>\"'`*_~.,;:!?"
_MAX_TEXT = 40_000


@dataclass(frozen=True)
class UrlVerification:
    """Slack checking the request URL: answer with the challenge."""

    challenge: str


@dataclass(frozen=True)
class MessageEvent:
    """A plain message a person posted in a channel."""

    event_id: str
    team_id: str
    channel: str
    user: str
    text: str
    ts: str
    permalink: str | None = None


def parse_request(body: dict[str, Any]) -> UrlVerification | MessageEvent | None:
    """A URL verification or a person's message; None for any other event; rejected when neither kind of request."""
    if not isinstance(body, dict):
        raise PayloadRejected("Slack request body must be a JSON object")
    kind = body.get("type")
    if kind == "url_verification":
        return UrlVerification(Doc.of(body, "").required_text("challenge"))
    if kind == "event_callback":
        return _message(Doc.of(body, ""), Doc.of(body.get("event"), "event"))
    if kind == "app_rate_limited":
        return None
    raise PayloadRejected(f"unknown Slack request type {kind!r}" if kind else "Slack request body has no type")


def _message(envelope: Doc, event: Doc) -> MessageEvent | None:
    if event.text("type") != "message" or any(event.at(key) is not None for key in ("subtype", "bot_id", "app_id")):
        return None
    user = event.required_text("user")
    if user in _own_bot_users(envelope):
        return None
    ts = event.required_text("ts")
    if not _TS.fullmatch(ts):
        raise PayloadRejected(f"event.ts must be a Slack timestamp like 1719209506.817929, not {ts!r}")
    text = event.at("text")
    return MessageEvent(
        event_id=envelope.required_text("event_id"),
        team_id=envelope.required_text("team_id"),
        channel=event.required_text("channel"),
        user=user,
        text=text if isinstance(text, str) else "",
        ts=ts,
    )


def _own_bot_users(envelope: Doc) -> set[str]:
    authorizations = envelope.at("authorizations")
    entries = authorizations if isinstance(authorizations, list) else []
    return {
        entry["user_id"] for entry in entries if isinstance(entry, dict) and entry.get("is_bot") and isinstance(entry.get("user_id"), str)
    }


def signal_from_message(message: MessageEvent, *, known_krs: frozenset[str], default_krs: tuple[str, ...]) -> SignalRaised | None:
    """The blocker or decision request a message raises, per the rules above; None when it raises neither."""
    named = _named_krs(message.text, known_krs)
    kind = _kind(message.text, named)
    if kind is None:
        return None
    return build(
        SignalRaised,
        f"Slack message {message.channel}:{message.ts}",
        source=DeliverySource.SLACK,
        external_id=f"{message.channel}:{message.ts}",
        delivery_id=message.event_id,
        kr_ids=named or default_krs,
        kind=kind,
        channel=message.channel,
        author=message.user,
        text=message.text[:_MAX_TEXT],
        permalink=message.permalink,
        posted_at=posted_at(message.ts),
    )


def posted_at(ts: str) -> datetime:
    """The moment of a Slack message timestamp (seconds and microseconds since the epoch), in UTC."""
    match = _TS.fullmatch(ts)
    if match is None:
        raise PayloadRejected(f"not a Slack timestamp: {ts!r}")
    seconds, fraction = match.groups()
    micros = int((fraction or "0").ljust(6, "0"))
    return datetime.fromtimestamp(int(seconds), UTC) + timedelta(microseconds=micros)


def _kind(text: str, named: tuple[str, ...]) -> SignalKind | None:
    if _BLOCKER.search(text):
        return SignalKind.BLOCKER
    if _DECISION.search(text):
        return SignalKind.DECISION_NEEDED
    if not named:
        return None
    if _BLOCKED.search(text):
        return SignalKind.BLOCKER
    return SignalKind.DECISION_NEEDED if text.rstrip().endswith("?") else None


def _named_krs(text: str, known_krs: frozenset[str]) -> tuple[str, ...]:
    named: dict[str, None] = {}
    for word in text.split():
        trimmed = word.strip(_PUNCTUATION)
        prefixed = (candidate[3:].strip(_PUNCTUATION) for candidate in (word, trimmed) if candidate[:3].lower() == "kr:")
        kr = next((candidate for candidate in (word, trimmed, *prefixed) if candidate in known_krs), None)
        if kr is not None:
            named[kr] = None
    return tuple(named)

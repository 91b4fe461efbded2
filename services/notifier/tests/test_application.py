"""Delivering stored notifications: the channel decides the sender; an incoming webhook's URL is read from the environment."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from okr_notifier.application import deliverer
from okr_notifier.senders import SendFailed, SlackSender
from okr_notifier.sendlog import Send


class RecordingSlack(SlackSender):
    """The real sender's checks, with the network replaced by a record of what would be posted."""

    def __init__(self) -> None:
        super().__init__(httpx.AsyncClient(), bot_token="xoxb-1", allowed_hosts=frozenset({"slack.com", "hooks.slack.com"}))
        self.posted: list[tuple[str, str, dict[str, Any]]] = []

    async def post_message(self, channel: str, message: dict[str, Any]) -> str:
        self.posted.append(("api", channel, message))
        return "1.0"

    async def post_webhook(self, url: str, message: dict[str, Any]) -> None:
        self.posted.append(("webhook", url, message))


def send(address: str) -> Send:
    return Send("a1", "raised", address, "slack", address, {"channel": address, "message": {"text": "hi"}})


async def test_a_webhook_address_posts_to_the_url_in_its_environment_variable_and_a_user_to_the_api() -> None:
    slack = RecordingSlack()
    deliver = deliverer(slack, None, {"SLACK_HOOK_ACME": "https://hooks.slack.com/services/T/B/X"})
    await deliver(send("webhook:SLACK_HOOK_ACME"))
    await deliver(send("U-1"))
    assert slack.posted == [
        ("webhook", "https://hooks.slack.com/services/T/B/X", {"text": "hi"}),
        ("api", "U-1", {"text": "hi"}),
    ]


async def test_an_unset_webhook_variable_or_an_unconfigured_channel_fails_for_good() -> None:
    deliver = deliverer(RecordingSlack(), None, {})
    with pytest.raises(SendFailed) as missing:
        await deliver(send("webhook:SLACK_HOOK_ACME"))
    assert not missing.value.retryable
    assert "SLACK_HOOK_ACME" in missing.value.reason
    mail = Send("a1", "raised", "bo", "email", "bo@example.com", {"to": "bo@example.com", "subject": "s", "text": "t", "html": "h"})
    with pytest.raises(SendFailed, match="e-mail is not configured"):
        await deliver(mail)

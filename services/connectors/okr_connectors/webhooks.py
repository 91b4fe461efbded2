"""The three webhook receivers: verify the signature, parse, map, store, answer.

A request is answered once its events are in the store (a few milliseconds),
so Slack's 3 s, Linear's 5 s and Jira's timeouts are met whatever Kafka does;
the relay publishes from the store. Refusals are problems: 401 for a signature
that does not verify (nothing stored), 400 for a body that is not JSON, 422 for
a payload of an unknown or malformed kind, 404 for a vendor that is not configured.
A retried delivery (same delivery id) or a change already polled is a duplicate: 200, nothing stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import SecretStr

from okr_connectors import intake
from okr_connectors.mapping import MappingSource
from okr_connectors.settings import ConnectorsSettings
from okr_connectors.signatures import SignatureRejected, verify_jira, verify_linear, verify_slack
from okr_connectors.store import ConnectorStore, Item
from okr_connectors.vendors import jira, linear, slack
from okr_connectors.vendors.errors import PayloadRejected
from okr_contracts.delivery import DeliveryEvent
from okr_runtime.problems import Problem

Status = Literal["accepted", "duplicate", "ignored", "unmapped", "challenge"]


@dataclass(frozen=True)
class Outcome:
    """What a webhook request came to."""

    status: Status
    detail: str = ""
    challenge: str | None = None


class Webhooks:
    """The receivers over the store and the mapping in force (asked for each request); `notify` wakes the relay."""

    def __init__(
        self,
        settings: ConnectorsSettings,
        store: ConnectorStore,
        mappings: MappingSource,
        notify: Callable[[], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self.mappings = mappings
        self.notify = notify
        self.clock = clock

    async def jira(self, body: bytes, headers: Mapping[str, str]) -> Outcome:
        """A Jira admin webhook delivery."""
        secret = _secret(self.settings.jira_webhook_secret, "Jira", "OKR_CONNECTORS_JIRA_WEBHOOK_SECRET")
        _verified(lambda: verify_jira(secret, body, headers.get("x-hub-signature")))
        delivery = headers.get("x-atlassian-webhook-identifier")
        event = _parsed(lambda: jira.parse_webhook(_json(body), delivery_id=delivery))
        return await self._store("jira", delivery, event)

    async def linear(self, body: bytes, headers: Mapping[str, str]) -> Outcome:
        """A Linear webhook delivery."""
        secret = _secret(self.settings.linear_webhook_secret, "Linear", "OKR_CONNECTORS_LINEAR_WEBHOOK_SECRET")
        _verified(lambda: verify_linear(secret, body, headers.get("linear-signature"), now=self.clock()))
        delivery = headers.get("linear-delivery")
        event = _parsed(lambda: linear.parse_webhook(_json(body), delivery_id=delivery))
        return await self._store("linear", delivery, event)

    async def slack(self, body: bytes, headers: Mapping[str, str]) -> Outcome:
        """A Slack Events API request: the URL check, or an event callback."""
        secret = _secret(self.settings.slack_signing_secret, "Slack", "OKR_CONNECTORS_SLACK_SIGNING_SECRET")
        signature = headers.get("x-slack-signature")
        _verified(lambda: verify_slack(secret, body, headers.get("x-slack-request-timestamp"), signature, now=self.clock()))
        request = _parsed(lambda: slack.parse_request(_json(body)))
        if isinstance(request, slack.UrlVerification):
            return Outcome("challenge", challenge=request.challenge)
        if request is None:
            return Outcome("ignored")
        mapping = await asyncio.to_thread(self.mappings.current)
        channel = mapping.slack_channels.get(request.channel)
        if channel is None:
            return Outcome("ignored", f"channel {request.channel} is not configured")
        known = mapping.known_krs(channel.portfolio_id)
        signal = slack.signal_from_message(request, known_krs=known, default_krs=tuple(channel.kr_ids))
        if signal is None:
            return Outcome("ignored", "no blocker or decision marker and no key result named")
        return await self._write("slack", f"event:{request.event_id}", intake.item_for(mapping.apply(signal), signal))

    async def _store(self, source: str, delivery: str | None, event: DeliveryEvent | None) -> Outcome:
        if event is None:
            return Outcome("ignored", "an event kind the connectors do not track")
        mapping = await asyncio.to_thread(self.mappings.current)
        mapped = mapping.apply(event)
        return await self._write(source, f"delivery:{delivery}" if delivery else None, intake.item_for(mapped, event))

    async def _write(self, source: str, delivery_key: str | None, item: Item) -> Outcome:
        items = [Item(delivery_key), item] if delivery_key else [item]
        new = await asyncio.to_thread(self.store.accept, source, items)
        if item.unmapped is not None:
            return Outcome("unmapped", "no mapping rule claims it; see GET /v1/connectors/unmapped")
        if new < len(items):
            return Outcome("duplicate")
        self.notify()
        return Outcome("accepted")


def _secret(value: SecretStr | None, vendor: str, setting: str) -> bytes:
    if value is None:
        raise Problem(404, "Not configured", f"{vendor} webhooks are not configured (set {setting})")
    return value.get_secret_value().encode()


def _verified(check: Callable[[], None]) -> None:
    try:
        check()
    except SignatureRejected as exc:
        raise Problem(401, "Signature rejected", str(exc), type_="urn:okrstream:problem:bad-signature") from exc


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Problem(400, "Malformed JSON", f"the body is not JSON: {exc}") from exc


def _parsed(parse: Callable[[], Any]) -> Any:
    try:
        return parse()
    except PayloadRejected as exc:
        raise Problem(422, "Payload rejected", str(exc), type_="urn:okrstream:problem:payload-rejected") from exc

"""The three webhook receivers: verify the signature, parse, map, store, answer.

A request is answered once its events are in the store (a few milliseconds),
so Slack's 3 s, Linear's 5 s and Jira's timeouts are met whatever Kafka does;
the relay publishes from the store. Refusals are problems: 401 for a signature
that does not verify (nothing stored), 400 for a body that is not JSON, 422 for
a payload of an unknown or malformed kind, 404 for a vendor that is not configured.
A retried delivery (same delivery id) or a change already polled is a duplicate: 200, nothing stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import SecretStr

from okr_connectors import intake
from okr_connectors.group_commit import GroupCommit, Write, Written
from okr_connectors.mapping import Mapping as ConnectorMapping
from okr_connectors.mapping import MappingSource
from okr_connectors.settings import ConnectorsSettings
from okr_connectors.signatures import SignatureRejected, verify_jira, verify_linear_signature, verify_linear_timestamp, verify_slack
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
    """The receivers over the store and the mapping in force; `notify` wakes the relay.

    Requests are written by a group commit (:mod:`okr_connectors.group_commit`): the mapping in force is read
    once per batch of concurrent requests, just before their transaction, so a changed mapping applies to the next request.
    """

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
        self.intake = GroupCommit(store, mappings)

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
        _verified(lambda: verify_linear_signature(secret, body, headers.get("linear-signature")))
        document = _json_or_none(body)  # parsed once: for the signed timestamp, then for the contents
        _verified(lambda: verify_linear_timestamp(document, now=self.clock()))
        delivery = headers.get("linear-delivery")
        event = _parsed(lambda: linear.parse_webhook(document, delivery_id=delivery))
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
        message = request

        def plan(mapping: ConnectorMapping) -> Write | Outcome:
            channel = mapping.slack_channels.get(message.channel)
            if channel is None:
                return Outcome("ignored", f"channel {message.channel} is not configured")
            known = mapping.known_krs(channel.portfolio_id)
            signal = slack.signal_from_message(message, known_krs=known, default_krs=tuple(channel.kr_ids))
            if signal is None:
                return Outcome("ignored", "no blocker or decision marker and no key result named")
            return _write("slack", f"event:{message.event_id}", intake.item_for(mapping.apply(signal), signal))

        return self._answer(await self.intake.run(plan))

    async def _store(self, source: str, delivery: str | None, event: DeliveryEvent | None) -> Outcome:
        if event is None:
            return Outcome("ignored", "an event kind the connectors do not track")
        parsed, delivery_key = event, f"delivery:{delivery}" if delivery else None

        def plan(mapping: ConnectorMapping) -> Write:
            return _write(source, delivery_key, intake.item_for(mapping.apply(parsed), parsed))

        return self._answer(await self.intake.run(plan))

    def _answer(self, result: Written | Outcome) -> Outcome:
        if isinstance(result, Outcome):
            return result
        item = result.write.items[-1]
        if item.unmapped is not None:
            return Outcome("unmapped", "no mapping rule claims it; see GET /v1/connectors/unmapped")
        if result.new < len(result.write.items):
            return Outcome("duplicate")
        self.notify()
        return Outcome("accepted")


def _write(source: str, delivery_key: str | None, item: Item) -> Write:
    """The change's item, after its delivery's key when the vendor gave one (a retried delivery is then a duplicate)."""
    return Write(source, [Item(delivery_key), item] if delivery_key else [item])


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


def _json_or_none(body: bytes) -> Any:
    """A verified Linear body as JSON, or None when it is not (its timestamp check then refuses it, as it always has)."""
    try:
        return json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        return None


def _parsed(parse: Callable[[], Any]) -> Any:
    try:
        return parse()
    except PayloadRejected as exc:
        raise Problem(422, "Payload rejected", str(exc), type_="urn:okrstream:problem:payload-rejected") from exc

"""`/v1/connectors/mappings/{portfolio_id}`: who may read and replace a portfolio's mapping, what is refused, and that
the next webhook delivery is mapped by it, after the operators' file, while what was accepted keeps its mapping."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from okr_connectors.http import install_api
from okr_connectors.mapping import Mapping
from okr_connectors.portfolio_mappings import LiveMapping
from okr_connectors.settings import ConnectorsSettings
from okr_connectors.store import ConnectorStore, SqliteConnectorStore
from okr_connectors.webhooks import Webhooks
from okr_runtime.auth import Authenticator, TokenEntry, TokenRole, hash_token
from okr_runtime.problems import install_problem_handlers

PAYLOADS = Path(__file__).parent / "payloads"
JIRA, SLACK = "jira-secret", "8f742231b10e8888abcd99yyyzzz85a5"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PROBLEM = "application/problem+json"
FILE_CHANNEL, OWN_CHANNEL = "C06NRA6JLER", "C0OWN"
LEAD = frozenset({TokenRole.PORTFOLIO_LEAD})
TOKENS = [
    TokenEntry(sha256=hash_token("lead"), principal="ana@example.com", roles=LEAD),
    TokenEntry(sha256=hash_token("lead-elsewhere"), principal="bo@example.com", roles=LEAD, portfolios=frozenset({"beta"})),
    TokenEntry(sha256=hash_token("reader"), principal="cy@example.com"),
]
FILE = Mapping.model_validate(
    {
        "rules": [{"source": "jira", "project": "TES", "portfolio_id": "acme", "kr_ids": ["kr-activation"]}],
        "slack_channels": {FILE_CHANNEL: {"portfolio_id": "acme", "kr_ids": ["kr-activation"]}},
    }
)
"""The operators' mapping file."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConnectorStore]:
    found = SqliteConnectorStore(tmp_path / "connectors.sqlite")
    yield found
    found.close()


@pytest.fixture
def client(store: ConnectorStore) -> TestClient:
    """The connectors' HTTP side as the service builds it: webhooks mapping with the file, then the stored mappings."""
    app = FastAPI()
    install_problem_handlers(app)
    settings = ConnectorsSettings(jira_webhook_secret=JIRA, slack_signing_secret=SLACK)
    webhooks = Webhooks(settings, store, LiveMapping(FILE, store), notify=lambda: None, clock=lambda: NOW)
    install_api(app, webhooks, store, Authenticator(TOKENS), file_mapping=FILE)
    return TestClient(app)


def put(client: TestClient, portfolio: str, body: dict[str, Any], token: str | None = "lead") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.put(f"/v1/connectors/mappings/{portfolio}", json=body, headers=headers)


def get(client: TestClient, portfolio: str, token: str | None = "lead") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(f"/v1/connectors/mappings/{portfolio}", headers=headers)


def jira_rule(project: str, portfolio: str, *krs: str) -> dict[str, Any]:
    return {"source": "jira", "project": project, "portfolio_id": portfolio, "kr_ids": list(krs)}


def jira_post(client: TestClient, project: str, *, updated: str, delivery: str) -> str:
    body = json.loads((PAYLOADS / "jira_issue_updated_status_to_done.json").read_text())
    body["issue"]["fields"]["project"]["key"] = project
    body["issue"]["fields"]["updated"] = updated
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(JIRA.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature": signature, "X-Atlassian-Webhook-Identifier": delivery}
    status: str = client.post("/webhooks/jira", content=raw, headers=headers).json()["status"]
    return status


def slack_blocker(client: TestClient, channel: str, event_id: str) -> str:
    body = json.loads((PAYLOADS / "slack_event_callback_message.json").read_text())
    body["event"]["channel"], body["event"]["text"], body["event_id"] = channel, ":blocker: the sandbox is down", event_id
    raw, timestamp = json.dumps(body).encode(), str(int(NOW.timestamp()))
    signature = "v0=" + hmac.new(SLACK.encode(), f"v0:{timestamp}:".encode() + raw, hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
    status: str = client.post("/webhooks/slack", content=raw, headers=headers).json()["status"]
    return status


def published(store: ConnectorStore) -> list[tuple[str, list[str]]]:
    """The portfolio and key results of every event stored for Kafka, in order."""
    return [(data["portfolio_id"], data["kr_ids"]) for _, out in store.unpublished() for data in [json.loads(out.value)["data"]]]


def test_reading_or_replacing_a_mapping_needs_a_token(client: TestClient) -> None:
    for answer in (get(client, "acme", token=None), put(client, "acme", {}, token=None), get(client, "acme", token="forged")):
        assert (answer.status_code, answer.headers["content-type"]) == (401, PROBLEM)


def test_only_a_portfolio_lead_whose_token_reaches_the_portfolio_may_replace_its_mapping(client: TestClient, store: ConnectorStore) -> None:
    body = {"rules": [jira_rule("PAY", "acme", "kr-1")]}
    not_lead = put(client, "acme", body, token="reader")
    assert (not_lead.status_code, not_lead.headers["content-type"]) == (403, PROBLEM)
    assert "portfolio_lead" in not_lead.json()["detail"]
    elsewhere = put(client, "acme", body, token="lead-elsewhere")
    assert (elsewhere.status_code, elsewhere.json()["detail"]) == (403, "this token does not reach portfolio acme")
    assert get(client, "acme", token="lead-elsewhere").status_code == 403
    assert store.portfolio_mapping("acme").version == 0
    assert put(client, "beta", {"rules": [jira_rule("B", "beta")]}, token="lead-elsewhere").status_code == 200
    read = get(client, "beta", token="reader")  # reading needs no role
    assert (read.status_code, read.headers["etag"], read.json()["version"], read.json()["updated_by"]) == (200, '"1"', 1, "bo@example.com")


def test_a_rule_or_channel_naming_another_portfolio_is_refused_naming_the_entry(client: TestClient, store: ConnectorStore) -> None:
    body = {
        "rules": [jira_rule("PAY", "acme"), jira_rule("WEB", "beta")],
        "slack_channels": {OWN_CHANNEL: {"portfolio_id": "acme"}, "C0THEIRS": {"portfolio_id": "beta"}},
    }
    refused = put(client, "acme", body)
    assert (refused.status_code, refused.headers["content-type"]) == (422, PROBLEM)
    assert refused.json()["entries"] == ["rules[1]", "slack_channels.C0THEIRS"]
    assert (
        "every rule and channel must name portfolio acme; these name another: rules[1], slack_channels.C0THEIRS" in refused.json()["detail"]
    )
    invalid = put(client, "acme", {"rules": [{"portfolio_id": "acme", "kr_ids": ["kr-1"]}]})
    assert invalid.status_code == 422
    assert "body.rules.0: Value error, a rule needs at least one matcher" in invalid.json()["detail"]
    assert store.portfolio_mapping("acme").version == 0


def test_a_slack_channel_another_portfolios_mapping_has_is_refused_with_409(client: TestClient, store: ConnectorStore) -> None:
    assert put(client, "acme", {"slack_channels": {OWN_CHANNEL: {"portfolio_id": "acme"}}}).status_code == 200
    clash = put(client, "beta", {"rules": [jira_rule("B", "beta")], "slack_channels": {OWN_CHANNEL: {"portfolio_id": "beta"}}})
    assert (clash.status_code, clash.headers["content-type"]) == (409, PROBLEM)
    assert (clash.json()["channel"], clash.json()["portfolio_id"]) == (OWN_CHANNEL, "acme")
    assert store.portfolio_mapping("beta").version == 0


def test_replacing_a_mapping_with_the_same_content_changes_nothing_and_says_so(client: TestClient) -> None:
    body = {"rules": [jira_rule("PAY", "acme", "kr-1")], "slack_channels": {FILE_CHANNEL: {"portfolio_id": "acme"}}}
    first = put(client, "acme", body)
    assert (first.status_code, first.json()["changed"], first.json()["version"], first.headers["etag"]) == (200, True, 1, '"1"')
    assert first.json()["overridden_channels"] == [FILE_CHANNEL]  # the operators' file maps it: its entry is in force
    again = put(client, "acme", body, token="lead")
    assert (again.status_code, again.json()["changed"], again.json()["version"]) == (200, False, 1)
    assert again.json()["updated_at"] == first.json()["updated_at"]
    assert put(client, "acme", {"rules": [jira_rule("PAY", "acme", "kr-2")]}).json()["version"] == 2


def test_a_stored_mapping_maps_the_next_delivery_at_once_and_what_was_accepted_keeps_its_mapping(
    client: TestClient, store: ConnectorStore
) -> None:
    assert jira_post(client, "OPS", updated="2026-11-22T10:00:00.000+0000", delivery="d-1") == "unmapped"
    assert put(client, "ops", {"rules": [jira_rule("OPS", "ops", "kr-uptime")]}).json()["changed"] is True
    assert jira_post(client, "OPS", updated="2026-11-22T10:00:00.000+0000", delivery="d-2") == "accepted"
    assert put(client, "ops", {"rules": [jira_rule("OPS", "ops", "kr-latency")]}).json()["version"] == 2
    assert jira_post(client, "OPS", updated="2026-11-22T11:00:00.000+0000", delivery="d-3") == "accepted"
    assert published(store) == [("ops", ["kr-uptime"]), ("ops", ["kr-latency"])]


def test_the_operators_file_keeps_precedence_over_a_stored_mapping(client: TestClient, store: ConnectorStore) -> None:
    body = {"rules": [jira_rule("TES", "beta", "kr-beta")], "slack_channels": {FILE_CHANNEL: {"portfolio_id": "beta"}}}
    assert put(client, "beta", body).json()["overridden_channels"] == [FILE_CHANNEL]
    assert put(client, "gamma", {"slack_channels": {OWN_CHANNEL: {"portfolio_id": "gamma", "kr_ids": ["kr-gamma"]}}}).status_code == 200
    assert jira_post(client, "TES", updated="2026-11-22T10:00:00.000+0000", delivery="d-1") == "accepted"
    assert slack_blocker(client, FILE_CHANNEL, "Ev1") == "accepted"
    assert slack_blocker(client, OWN_CHANNEL, "Ev2") == "accepted"
    assert published(store) == [("acme", ["kr-activation"]), ("acme", ["kr-activation"]), ("gamma", ["kr-gamma"])]

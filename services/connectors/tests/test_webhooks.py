"""The webhook receivers over a real store: signatures, dedup, mapping, refusals as problem+json, nothing stored when refused."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from okr_connectors.http import install_api
from okr_connectors.mapping import Mapping
from okr_connectors.settings import ConnectorsSettings
from okr_connectors.store import ConnectorStore, SqliteConnectorStore
from okr_connectors.webhooks import Webhooks
from okr_runtime.auth import Authenticator, TokenEntry, hash_token
from okr_runtime.problems import install_problem_handlers

PAYLOADS = Path(__file__).parent / "payloads"
JIRA, LINEAR, SLACK = "jira-secret", "linear-secret", "8f742231b10e8888abcd99yyyzzz85a5"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PROBLEM = "application/problem+json"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConnectorStore]:
    found = SqliteConnectorStore(tmp_path / "connectors.sqlite")
    yield found
    found.close()


@pytest.fixture
def client(store: ConnectorStore) -> TestClient:
    settings = ConnectorsSettings(jira_webhook_secret=JIRA, linear_webhook_secret=LINEAR, slack_signing_secret=SLACK)
    mapping = Mapping.model_validate(
        {
            "rules": [{"source": "jira", "project": "TES", "portfolio_id": "acme", "kr_ids": ["kr-activation"]}],
            "slack_channels": {"C06NRA6JLER": {"portfolio_id": "acme", "kr_ids": ["kr-activation"]}},
        }
    )
    app = FastAPI()
    install_problem_handlers(app)
    webhooks = Webhooks(settings, store, mapping, notify=lambda: None, clock=lambda: NOW)
    install_api(app, webhooks, store, Authenticator([TokenEntry(sha256=hash_token("ops"), principal="ops")]))
    return TestClient(app)


def payload(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return loaded


def jira_post(client: TestClient, body: bytes, *, secret: str = JIRA, delivery: str = "d-1") -> Any:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post("/webhooks/jira", content=body, headers={"X-Hub-Signature": signature, "X-Atlassian-Webhook-Identifier": delivery})


def slack_post(client: TestClient, body: bytes, *, at: datetime = NOW, secret: str = SLACK) -> Any:
    timestamp = str(int(at.timestamp()))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return client.post("/webhooks/slack", content=body, headers={"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature})


def published(store: ConnectorStore) -> list[tuple[str, dict[str, Any]]]:
    return [(out.key, json.loads(out.value)) for _, out in store.unpublished()]


def test_a_signed_jira_change_is_stored_for_kafka_mapped_to_its_portfolio_and_a_retry_is_a_duplicate(
    client: TestClient, store: ConnectorStore
) -> None:
    body = (PAYLOADS / "jira_issue_updated_status_to_done.json").read_bytes()
    first = jira_post(client, body)
    assert (first.status_code, first.json()) == (200, {"status": "accepted"})
    [(key, envelope)] = published(store)
    assert key == "acme"
    assert envelope["type"] == "WorkItemChanged"
    data = envelope["data"]
    assert (data["key"], data["status_category"], data["portfolio_id"], data["kr_ids"]) == ("TES-41", "done", "acme", ["kr-activation"])
    assert data["delivery_id"] == "d-1"

    assert jira_post(client, body).json() == {"status": "duplicate"}  # Jira's retry: same delivery id
    assert jira_post(client, body, delivery="d-2").json() == {"status": "duplicate"}  # same change, another delivery
    assert len(published(store)) == 1


@pytest.mark.parametrize(
    ("secret", "tamper", "reason"),
    [("wrong", False, "does not match"), (JIRA, True, "does not match")],
)
def test_a_forged_or_tampered_jira_body_is_refused_and_nothing_is_stored(
    client: TestClient, store: ConnectorStore, secret: str, tamper: bool, reason: str
) -> None:
    body = (PAYLOADS / "jira_issue_updated_status_to_done.json").read_bytes()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    sent = body.replace(b"Done", b"Open") if tamper else body
    response = client.post("/webhooks/jira", content=sent, headers={"X-Hub-Signature": signature})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert reason in response.json()["detail"]
    assert published(store) == []
    assert store.counts()["accepted"] == {}


def test_malformed_json_and_unknown_event_types_are_refused_with_the_reason(client: TestClient, store: ConnectorStore) -> None:
    not_json = jira_post(client, b"{not json")
    assert (not_json.status_code, not_json.headers["content-type"]) == (400, PROBLEM)
    assert "not JSON" in not_json.json()["detail"]
    unknown = jira_post(client, json.dumps({"webhookEvent": "jira:something_new", "timestamp": 1}).encode())
    assert (unknown.status_code, unknown.headers["content-type"]) == (422, PROBLEM)
    assert "jira:something_new" in unknown.json()["detail"]
    assert published(store) == []


def test_an_item_no_rule_claims_is_counted_as_unmapped_and_listed(client: TestClient, store: ConnectorStore) -> None:
    body = payload("jira_issue_updated_status_to_done.json")
    body["issue"]["fields"]["project"]["key"] = "OPS"
    response = jira_post(client, json.dumps(body).encode())
    assert response.json()["status"] == "unmapped"
    assert published(store) == []
    listed = client.get("/v1/connectors/unmapped", headers={"Authorization": "Bearer ops"}).json()["items"]
    assert [(i["source"], i["summary"]["project"], i["summary"]["key"]) for i in listed] == [("jira", "OPS", "TES-41")]
    status = client.get("/v1/connectors/status", headers={"Authorization": "Bearer ops"}).json()
    assert status["unmapped"] == {"jira": {"items": 1, "deliveries": 1}}
    assert client.get("/v1/connectors/status").status_code == 401


def test_slack_url_verification_is_answered_with_the_challenge(client: TestClient) -> None:
    body = (PAYLOADS / "slack_url_verification.json").read_bytes()
    response = slack_post(client, body)
    assert response.status_code == 200
    assert response.json() == {"challenge": payload("slack_url_verification.json")["challenge"]}


def test_a_slack_blocker_in_a_mapped_channel_becomes_a_signal_once(client: TestClient, store: ConnectorStore) -> None:
    body = payload("slack_event_callback_message.json")
    body["event"]["text"] = ":blocker: the payments API sandbox is down for kr-activation"
    raw = json.dumps(body).encode()
    assert slack_post(client, raw).json() == {"status": "accepted"}
    assert slack_post(client, raw).json() == {"status": "duplicate"}  # Slack's retry: same event_id
    [(key, envelope)] = published(store)
    assert (key, envelope["type"], envelope["data"]["kind"], envelope["data"]["kr_ids"]) == (
        "acme",
        "SignalRaised",
        "blocker",
        ["kr-activation"],
    )


def test_a_plain_slack_message_is_ignored(client: TestClient, store: ConnectorStore) -> None:
    response = slack_post(client, (PAYLOADS / "slack_event_callback_message.json").read_bytes())
    assert response.json()["status"] == "ignored"
    assert published(store) == []


def test_a_slack_request_outside_the_five_minute_window_is_refused(client: TestClient, store: ConnectorStore) -> None:
    body = (PAYLOADS / "slack_url_verification.json").read_bytes()
    assert slack_post(client, body, at=NOW - timedelta(seconds=301)).status_code == 401
    assert slack_post(client, body, at=NOW - timedelta(seconds=300)).status_code == 200


def test_a_linear_delivery_signed_more_than_a_minute_ago_is_refused(client: TestClient, store: ConnectorStore) -> None:
    body = payload("linear_issue_create.json")
    body["webhookTimestamp"] = int((NOW - timedelta(seconds=61)).timestamp() * 1000)
    raw = json.dumps(body).encode()
    signature = hmac.new(LINEAR.encode(), raw, hashlib.sha256).hexdigest()
    response = client.post("/webhooks/linear", content=raw, headers={"Linear-Signature": signature, "Linear-Delivery": "x"})
    assert response.status_code == 401, response.text
    assert published(store) == []


def linear_post(client: TestClient, raw: bytes, delivery: str = "l-1") -> Any:
    signature = hmac.new(LINEAR.encode(), raw, hashlib.sha256).hexdigest()
    return client.post("/webhooks/linear", content=raw, headers={"Linear-Signature": signature, "Linear-Delivery": delivery})


def test_a_linear_delivery_within_the_minute_is_read_and_a_signed_body_that_is_not_json_is_refused_as_unsigned(
    client: TestClient, store: ConnectorStore
) -> None:
    body = payload("linear_issue_create.json")
    body["webhookTimestamp"] = int((NOW - timedelta(seconds=60)).timestamp() * 1000)
    answer = linear_post(client, json.dumps(body).encode())
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "unmapped"  # read to the end: no rule of this fixture claims Linear items
    assert set(store.counts()["unmapped"]) == {"linear"}
    not_json = linear_post(client, b"webhookTimestamp=1", delivery="l-2")
    assert (not_json.status_code, not_json.headers["content-type"]) == (401, PROBLEM)
    assert "webhookTimestamp" in not_json.json()["detail"]


def test_a_vendor_without_a_secret_is_not_configured(store: ConnectorStore) -> None:
    app = FastAPI()
    install_problem_handlers(app)
    install_api(app, Webhooks(ConnectorsSettings(), store, Mapping(), notify=lambda: None), store, Authenticator([]))
    response = TestClient(app).post("/webhooks/jira", content=b"{}")
    assert (response.status_code, response.headers["content-type"]) == (404, PROBLEM)
    assert "OKR_CONNECTORS_JIRA_WEBHOOK_SECRET" in response.json()["detail"]

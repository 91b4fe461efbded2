"""Signed webhooks reach okr.delivery.v1 through the real connectors service and real Kafka: once each, keyed by portfolio."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from okr_connectors.bootstrap import create_app
from okr_connectors.settings import ConnectorsSettings
from okr_contracts.topics import DELIVERY_TOPIC
from okr_runtime.auth import hash_token

pytestmark = pytest.mark.integration

PAYLOADS = Path(__file__).parents[2] / "services" / "connectors" / "tests" / "payloads"
SECRET = "jira-secret"


def signed(body: bytes, delivery: str, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-Hub-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "X-Atlassian-Webhook-Identifier": delivery,
    }


def test_a_signed_jira_webhook_is_published_once_keyed_by_portfolio_and_a_forged_one_never(
    kafka_bootstrap: str, tmp_path: Path, unique: str, consume: Any
) -> None:
    pid = f"acme-{unique}"
    project = f"P{unique.replace('-', '')[:8].upper()}"
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(f"rules:\n  - {{source: jira, project: {project}, portfolio_id: {pid}, kr_ids: [kr-activation]}}\n")
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"sha256": hash_token("ops"), "principal": "ops"}]}))
    settings = ConnectorsSettings(
        kafka_bootstrap=kafka_bootstrap,
        tokens_file=tokens,
        store_path=tmp_path / "connectors.sqlite",
        mapping_file=mapping,
        jira_webhook_secret=SECRET,
        relay_idle_s=0.1,
    )
    change = json.loads((PAYLOADS / "jira_issue_updated_status_to_done.json").read_text())
    change["issue"]["fields"]["project"]["key"] = project
    forged = dict(change, issue=dict(change["issue"], id="999999"))
    body, forged_body = json.dumps(change).encode(), json.dumps(forged).encode()

    with TestClient(create_app(settings)) as client:
        assert client.post("/webhooks/jira", content=forged_body, headers=signed(forged_body, "f-1", "not-the-secret")).status_code == 401
        for delivery in ("d-1", "d-1", "d-2"):  # a retry, and the same change delivered again
            response = client.post("/webhooks/jira", content=body, headers=signed(body, delivery))
            assert response.status_code == 200, response.text
        records = consume(kafka_bootstrap, DELIVERY_TOPIC.name, lambda seen: len(seen) >= 1, key=pid.encode())
        client.post("/webhooks/jira", content=body, headers=signed(body, "d-3"))
        marker = dict(change, issue=dict(change["issue"], fields=dict(change["issue"]["fields"], updated="2019-02-15T19:16:40.477-0800")))
        marker_body = json.dumps(marker).encode()
        assert client.post("/webhooks/jira", content=marker_body, headers=signed(marker_body, "d-4")).json() == {"status": "accepted"}
        records = consume(kafka_bootstrap, DELIVERY_TOPIC.name, lambda seen: len(seen) >= 2, key=pid.encode())

    envelopes = [json.loads(r.value) for r in records]
    assert [e["data"]["changed_at"] for e in envelopes] == ["2019-02-16T03:15:40.477000Z", "2019-02-16T03:16:40.477000Z"]
    assert {e["data"]["external_id"] for e in envelopes} == {change["issue"]["id"]}
    assert all(e["data"]["portfolio_id"] == pid and e["data"]["kr_ids"] == ["kr-activation"] for e in envelopes)
    headers = dict(records[0].headers)
    assert headers["okr-event-id"].decode() == envelopes[0]["event_id"]

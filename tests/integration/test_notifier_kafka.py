"""Alerts on okr.alerts.v1 reach people through the real notifier, real Kafka, a real SMTP server and a Slack-compatible HTTP server.

The Slack server answers as Slack's API does: a 429 with Retry-After and a 500 before success for one
user, `ok: false` (channel_not_found) for a broken destination. Each person gets exactly one message per
alert state; a redelivery and a restart add none; the broken destination ends on the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from okr_contracts.alerts import AlertAcknowledged, AlertRaised, AlertResolved, Audience, DriftRule, Severity
from okr_contracts.envelope import Envelope, EventPayload, Headers
from okr_contracts.topics import ALERTS_TOPIC, dead_letter_topic
from okr_notifier.bootstrap import create_app
from okr_notifier.settings import NotifierSettings

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


class Slack:
    """A Slack-compatible chat.postMessage: U-flaky gets a 429 then a 500 before success; C-broken is channel_not_found."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, str]] = []
        self.flaky_calls = 0
        self.lock = threading.Lock()
        slack = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer, extra = slack.answer(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(json.dumps(answer).encode())

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        channel = body["channel"]
        with self.lock:
            if channel == "U-flaky" and self.flaky_calls < 2:
                self.flaky_calls += 1
                if self.flaky_calls == 1:
                    return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
                return 500, {"ok": False, "error": "internal_error"}, {}
            if channel == "C-broken":
                return 200, {"ok": False, "error": "channel_not_found"}, {}
            self.delivered.append((channel, body["text"]))
        return 200, {"ok": True, "channel": channel, "ts": f"{time.time():.6f}"}, {}


class Mailbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def slack() -> Iterator[Slack]:
    found = Slack()
    yield found
    found.server.shutdown()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with socket.socket() as probe:  # aiosmtpd checks it is up by connecting, so it needs a real port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def routing(tmp_path: Path, pid: str) -> Path:
    path = tmp_path / "routing.json"
    people = {
        "pm-bo": {"slack_user": "U-ok", "email": "bo@example.com"},
        "lead-ana": {"slack_user": "U-flaky"},
        "cpo": {"slack_user": "C-broken"},
    }
    config = {"link_base": "https://okr.example.com", "portfolios": {pid: {"people": people, "rules": [{"channels": ["slack", "email"]}]}}}
    path.write_text(json.dumps(config))
    return path


def lifecycle(pid: str, alert: str | None = None) -> list[Envelope[EventPayload]]:
    common: dict[str, Any] = {"alert_id": alert or f"off_track:k1:{pid}", "portfolio_id": pid, "rule": DriftRule.OFF_TRACK, "node_id": "k1"}
    raised = AlertRaised(
        **common,
        severity=Severity.WARNING,
        audience=(Audience.OWNER, Audience.PRODUCT_LEAD, Audience.PORTFOLIO_LEAD),
        recipients=("pm-bo", "lead-ana", "cpo"),
        summary="Confidence 0.3 (below 0.4) with 66% of the cycle gone",
        asked="File a recovery plan",
        facts={"confidence": 0.3},
        raised_at=AT,
    )
    acknowledged = AlertAcknowledged(**common, by="pm-bo", note="plan by Friday", acknowledged_at=AT)
    resolved = AlertResolved(**common, reason="recovery plan filed", resolved_at=AT)
    return [Envelope.wrap(e, producer="drift", occurred_at=AT, recorded_at=AT) for e in (raised, acknowledged, resolved)]


def publish(bootstrap: str, envelopes: list[Envelope[EventPayload]]) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for envelope in envelopes:
                headers = [(k, v.encode()) for k, v in envelope.headers().items()]
                await producer.send_and_wait(
                    ALERTS_TOPIC.name, envelope.to_json_bytes(), key=ALERTS_TOPIC.key_for(envelope), headers=headers
                )
        finally:
            await producer.stop()

    asyncio.run(send())


def test_each_person_gets_one_message_per_alert_state_across_redelivery_and_restart_and_a_dead_destination_is_dead_lettered(
    kafka_bootstrap: str, tmp_path: Path, unique: str, consume: Any, wait_for: Any, slack: Slack, mailbox: tuple[Mailbox, int]
) -> None:
    pid = f"acme-{unique}"
    box, smtp_port = mailbox
    group = f"notifier.{unique}"
    settings = NotifierSettings(
        kafka_bootstrap=kafka_bootstrap,
        group=group,
        store_path=tmp_path / "notifier.sqlite",
        routing_file=routing(tmp_path, pid),
        slack_bot_token="xoxb-test",
        slack_api_base=slack.url,
        slack_allowed_hosts="127.0.0.1",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_starttls=False,
        max_attempts=3,
        dispatch_idle_s=0.1,
        dlq_retry_backoff_s=0.1,
    )
    events = lifecycle(pid)
    expected_slack = {(user, state) for user in ("U-ok", "U-flaky") for state in ("raised", "acknowledged", "resolved")}

    def slack_states() -> list[tuple[str, str]]:
        return [(channel, _state(text)) for channel, text in slack.delivered]

    with TestClient(create_app(settings, require_https=False)):
        publish(kafka_bootstrap, events)
        wait_for(lambda: set(slack_states()) == expected_slack and len(box.messages) == 3)
        publish(kafka_bootstrap, events)  # a redelivery of the whole lifecycle
        dead = consume(kafka_bootstrap, dead_letter_topic(group), lambda seen: len(seen) >= 3, key=f"off_track:k1:{pid}".encode())

    with TestClient(create_app(settings, require_https=False)):  # a restart over the same send log
        publish(kafka_bootstrap, events)
        marker = lifecycle(pid, alert=f"stale:k1:{pid}")[0]  # after the copies on the portfolio's partition
        publish(kafka_bootstrap, [marker])
        wait_for(lambda: len(slack.delivered) >= len(expected_slack) + 2 and len(box.messages) >= 4)

    marked = [(channel, state) for channel, state in slack_states()[len(expected_slack) :]]
    assert sorted(marked) == [("U-flaky", "raised"), ("U-ok", "raised")]  # only the new alert: the copies before it sent nothing
    assert sorted(slack_states()[: len(expected_slack)]) == sorted(expected_slack)  # once each, U-flaky after a 429 and a 500
    assert slack.flaky_calls == 2
    assert sorted(m["To"] for m in box.messages) == ["bo@example.com"] * 4  # three states, and the marker alert
    assert all(m.get_content_type() == "multipart/alternative" for m in box.messages)
    reasons = [dict(r.headers)[Headers.DLQ_REASON].decode() for r in dead]
    assert len(reasons) == 3
    assert all("channel_not_found" in reason for reason in reasons)
    assert {json.loads(r.value)["state"] for r in dead} == {"raised", "acknowledged", "resolved"}


def _state(text: str) -> str:
    lowered = text.lower()
    return "acknowledged" if "acknowledged" in lowered else "resolved" if "resolved" in lowered else "raised"

"""The cadence over real HTTP (a local server answering as drift's and rollup's read APIs do) and a real send log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from okr_notifier.cadence import CadenceRunner, ReadApis
from okr_notifier.routing import RoutingConfig
from okr_notifier.sendlog import SendLog, SqliteSendLog

WEDNESDAY = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)  # ISO week 47; the week started Monday 16 November
EXCEPTIONS = {
    "portfolio_id": "acme",
    "counts": {"live_key_results": 12, "key_results_with_exceptions": 2, "skipped_green": 10, "by_rule": {"off_track": 1, "stale": 1}},
    "products": [
        {
            "product_id": "alpha",
            "nodes": [
                {
                    "node_id": "k1",
                    "node_kind": "key_result",
                    "title": "Weekly active teams <b>",
                    "product_id": "alpha",
                    "owner": "pm-bo",
                    "confidence": 0.3,
                    "recovery_plan": {"option": "change_resources", "owner": "pm-bo", "decision_needed": "Two more engineers"},
                    "alerts": [
                        {"alert_id": "a1", "rule": "off_track", "severity": "warning", "summary": "Confidence 0.3", "asked": "Plan"}
                    ],
                },
                {
                    "node_id": "k2",
                    "node_kind": "key_result",
                    "title": "Churn",
                    "product_id": "alpha",
                    "owner": "pm-cy",
                    "confidence": None,
                    "recovery_plan": None,
                    "alerts": [
                        {"alert_id": "a2", "rule": "stale", "severity": "warning", "summary": "No check-in for 15 days", "asked": "Update"}
                    ],
                },
                {
                    "node_id": "core",
                    "node_kind": "team",
                    "title": "core",
                    "product_id": "alpha",
                    "owner": None,
                    "confidence": None,
                    "recovery_plan": None,
                    "alerts": [
                        {
                            "alert_id": "a3",
                            "rule": "over_allocated",
                            "severity": "warning",
                            "summary": "core is allocated 9 sprints in cycle q against a capacity of 6",
                            "asked": "Take an objective off the squad",
                        }
                    ],
                },
            ],
        }
    ],
}
SCORECARD = {
    "portfolio_id": "acme",
    "objectives": [
        {
            "objective_id": "grow",
            "title": "Grow",
            "score": 0.42,
            "confidence": 0.55,
            "trend": {"arrow": "↑", "label": "up 0.08", "delta": 0.08},
            "driver": {"product_id": "alpha", "movement": 0.05},
            "mixed_methods": False,
        }
    ],
}


class Apis:
    """Answers as drift and rollup do; `fail` makes every answer a 503."""

    def __init__(self) -> None:
        self.fail = False
        self.calls: list[str] = []
        apis = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                apis.calls.append(url.path)
                status, body = apis.answer(url.path, parse_qs(url.query), self.headers.get("Authorization"))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body).encode())

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, query: dict[str, list[str]], auth: str | None) -> tuple[int, Any]:
        if self.fail:
            return 503, {"title": "Unavailable"}
        if auth != "Bearer t-notifier":
            return 401, {"title": "Unauthorized"}
        if path.endswith("/check-ins"):
            before = query["before"][0]
            assert before == "2026-11-16T00:00:00+00:00"
            rows = [
                {"kr_id": "k2", "title": "Churn", "owner": "pm-cy", "last_check_in": None},
                {"kr_id": "k1", "title": "Weekly active teams", "owner": "pm-bo", "last_check_in": "2026-11-10T09:00:00+00:00"},
                {"kr_id": "k3", "title": "NPS", "owner": "pm-bo", "last_check_in": "2026-11-09T09:00:00+00:00"},
            ]
            return 200, {"portfolio_id": "acme", "key_results": rows}
        if path.endswith("/exceptions"):
            return 200, EXCEPTIONS
        if path.endswith("/scorecard"):
            return 200, SCORECARD
        return 404, {"title": "Not found"}


@pytest.fixture
def apis() -> Iterator[Apis]:
    found = Apis()
    yield found
    found.server.shutdown()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SendLog]:
    found = SqliteSendLog(tmp_path / "notifier.sqlite")
    yield found
    found.close()


ROUTING = RoutingConfig.model_validate(
    {
        "link_base": "https://okr.example.com",
        "portfolios": {
            "acme": {
                "people": {
                    "pm-bo": {"slack_user": "U-BO"},
                    "pm-cy": {"email": "cy@example.com"},
                    "cpo": {"email": "cpo@example.com"},
                },
                "cadence": {
                    "name": "Acme",
                    "digest_to": ["cpo"],
                    "digest_anchor": "2026-11-09",
                    "readout_to": ["cpo"],
                    "readout_day": 1,
                },
            }
        },
    }
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def runner(apis: Apis, log: SendLog, clock: Clock) -> tuple[CadenceRunner, httpx.AsyncClient]:
    client = httpx.AsyncClient(timeout=5)
    return CadenceRunner(ROUTING, ReadApis(client, apis.url, apis.url, "t-notifier"), log, clock), client


def queued(log: SendLog, now: datetime) -> list[tuple[str, str, str, str]]:
    return sorted((s.alert_id, s.state, s.recipient, s.channel) for s in log.due(now + timedelta(days=1), limit=100))


async def test_owners_without_a_check_in_this_week_are_reminded_once_from_the_reminder_hour(apis: Apis, log: SendLog) -> None:
    clock = Clock(WEDNESDAY - timedelta(minutes=1))
    cadence, client = await runner(apis, log, clock)
    async with client:
        assert await cadence.run_once() == 2  # the digest and the readout; the reminders are not due before 09:00
        clock.now = WEDNESDAY
        assert await cadence.run_once() == 2  # the two owners who owe a check-in
        assert await cadence.run_once() == 0
        restarted = CadenceRunner(ROUTING, cadence.apis, log, clock)
        assert await restarted.run_once() == 0
    reminders = [q for q in queued(log, WEDNESDAY) if q[1] == "reminder"]
    assert reminders == [("reminder:acme:2026-W47", "reminder", "pm-bo", "slack"), ("reminder:acme:2026-W47", "reminder", "pm-cy", "email")]
    [bo] = [s for s in log.due(WEDNESDAY + timedelta(days=1)) if s.recipient == "pm-bo"]
    text = bo.payload["message"]["text"]
    assert "2 key result(s)" in text
    assert "https://okr.example.com/portfolios/acme/nodes/k1" in text


async def test_the_sync_digest_goes_once_per_period_with_the_exceptions_only(apis: Apis, log: SendLog) -> None:
    clock = Clock(datetime(2026, 11, 20, 8, 0, tzinfo=UTC))  # 11 days after the anchor: the sync of 9 November
    cadence, client = await runner(apis, log, clock)
    async with client:
        await cadence.run_once()
        clock.now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 14 days after: the next sync
        await cadence.run_once()
    digests = [s for s in log.due(clock.now + timedelta(days=1)) if s.state == "digest"]
    assert [s.alert_id for s in digests] == ["digest:acme:2026-11-09", "digest:acme:2026-11-23"]
    html, text = digests[0].payload["html"], digests[0].payload["text"]
    assert "2 of 12 live key results need attention" in text
    assert "10 on track are not listed" in text
    assert "Weekly active teams &lt;b&gt;" in html  # escaped
    assert "decision needed: Two more engineers" in text
    assert '<a href="https://okr.example.com/portfolios/acme/nodes/k1">' in html
    assert '<a href="https://okr.example.com/portfolios/acme#capacity">core</a>' in html  # a squad has no page: its capacity


async def test_the_monthly_readout_is_mailed_once_with_reallocations_from_the_recovery_plans(apis: Apis, log: SendLog) -> None:
    clock = Clock(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))
    cadence, client = await runner(apis, log, clock)
    async with client:
        await cadence.run_once()
        await cadence.run_once()
    [readout] = [s for s in log.due(clock.now + timedelta(days=1)) if s.state == "readout"]
    assert (readout.alert_id, readout.address) == ("readout:acme:2026-12", "cpo@example.com")
    assert "November 2026" in readout.payload["subject"] + readout.payload["text"]
    assert "Two more engineers" in readout.payload["text"]
    assert "42%" in readout.payload["text"]


async def test_an_unavailable_api_queues_nothing_and_the_next_tick_tries_again(apis: Apis, log: SendLog) -> None:
    apis.fail = True
    clock = Clock(WEDNESDAY)
    cadence, client = await runner(apis, log, clock)
    async with client:
        assert await cadence.run_once() == 0
        apis.fail = False
        assert await cadence.run_once() == 4

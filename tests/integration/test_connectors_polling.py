"""Polled Jira issues reach okr.delivery.v1 on a real Kafka exactly once, across a poller restart whose window overlaps the last poll.

A local HTTP server plays Jira's ``search/jql``; the poller writes to the connector store,
and a small relay here publishes the outbox the way the service's relay does (in order,
key and value as stored, marked published once acknowledged).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from okr_connectors.jira_poll import JiraPoller
from okr_connectors.mapping import Mapping, MappingRule
from okr_connectors.polling import Http
from okr_connectors.store import ConnectorStore, SqliteConnectorStore
from okr_contracts.delivery import WorkItemChanged
from okr_contracts.envelope import Headers
from okr_contracts.topics import DELIVERY_TOPIC
from okr_runtime.kafka import ensure_topics

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class FakeJira:
    """Jira's `GET /rest/api/3/search/jql` over in-memory issues: the JQL `updated >=` bound (UTC), oldest first, token pages."""

    def __init__(self) -> None:
        self.issues: list[dict[str, Any]] = []
        self.queries: list[dict[str, str]] = []
        jira = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {key: values[-1] for key, values in parse_qs(url.query).items()}
                jira.queries.append(query)
                body = json.dumps(jira.search(query)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def search(self, query: dict[str, str]) -> dict[str, Any]:
        bound = re.search(r'updated >= "([^"]+)"', query["jql"])
        assert bound is not None, query["jql"]
        since = datetime.strptime(bound.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        matching = sorted((i for i in self.issues if _updated(i) >= since), key=_updated)
        start = int(query.get("nextPageToken", "0"))
        end = start + int(query["maxResults"])
        if end < len(matching):
            return {"issues": matching[start:end], "nextPageToken": str(end), "isLast": False}
        return {"issues": matching[start:end], "isLast": True}


def _updated(issue: dict[str, Any]) -> datetime:
    return datetime.strptime(issue["fields"]["updated"], "%Y-%m-%dT%H:%M:%S.%f%z")


def issue(n: int, minutes: int, project: str = "PAY") -> dict[str, Any]:
    status = {"id": "3", "name": "In Progress", "statusCategory": {"id": 4, "key": "indeterminate", "name": "In Progress"}}
    updated = (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    fields = {"summary": f"Issue {n}", "status": status, "project": {"key": project}, "labels": [], "updated": updated}
    return {
        "id": str(20000 + n),
        "key": f"{project}-{n}",
        "self": f"https://acme.atlassian.net/rest/api/3/issue/{20000 + n}",
        "fields": fields,
    }


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    server = FakeJira()
    yield server
    server.close()


async def relay(store: ConnectorStore, bootstrap: str) -> tuple[int, int] | None:
    """Publish the outbox in order and mark it published; the (partition, offset) of the last record sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    last = None
    try:
        rows = await asyncio.to_thread(store.unpublished)
        for _, out in rows:
            envelope = json.loads(out.value)
            headers = [(Headers.EVENT_ID, envelope["event_id"].encode()), (Headers.EVENT_TYPE, envelope["type"].encode())]
            sent = await producer.send_and_wait(out.topic, out.value, key=out.key.encode(), headers=headers)
            last = (sent.partition, sent.offset)
        await asyncio.to_thread(store.mark_published, [row_id for row_id, _ in rows])
    finally:
        await producer.stop()
    return last


def poller(store: ConnectorStore, jira: FakeJira, mapping: Mapping, client: httpx.AsyncClient) -> JiraPoller:
    return JiraPoller(
        store, mapping, Http(client), url=jira.url, email="bot@acme.test", api_token="t", page_size=2, since=T0 - timedelta(hours=1)
    )


async def test_each_polled_issue_change_reaches_kafka_exactly_once_across_a_restart(
    kafka_bootstrap: str, unique: str, tmp_path: Path, jira: FakeJira, consume: Callable[..., list[Any]]
) -> None:
    await ensure_topics(kafka_bootstrap, [DELIVERY_TOPIC], replication_factor=1)
    portfolio = f"poll-{unique}"
    mapping = Mapping(rules=(MappingRule(source="jira", project="PAY", portfolio_id=portfolio, kr_ids=("kr-checkout",)),))
    jira.issues = [issue(n, minutes) for n, minutes in enumerate((1, 10, 20, 29, 30), 1)] + [issue(9, 15, project="OPS")]

    async with httpx.AsyncClient(timeout=10) as client:
        store = SqliteConnectorStore(tmp_path / "connectors.sqlite")
        first = await poller(store, jira, mapping, client).run_once()
        last = await relay(store, kafka_bootstrap)
        store.close()

        jira.issues.append(issue(6, 31))  # one new issue; PAY-4 and PAY-5 fall in the restarted poll's overlap
        restarted = SqliteConnectorStore(tmp_path / "connectors.sqlite")
        second = await poller(restarted, jira, mapping, client).run_once()
        last = await relay(restarted, kafka_bootstrap) or last
        restarted.close()

    assert (first.new, first.unmapped, second.items, second.new, second.duplicates) == (5, 1, 3, 1, 2)
    assert jira.queries[-1]["jql"] == 'updated >= "2026-03-01 09:28" ORDER BY updated ASC'
    assert last is not None
    records = await asyncio.to_thread(
        consume,
        kafka_bootstrap,
        DELIVERY_TOPIC.name,
        lambda seen: any((r.partition, r.offset) == last for r in seen),
        key=portfolio.encode(),
    )
    events = [DELIVERY_TOPIC.decode(record.value) for record in records]
    items = [e.data for e in events if isinstance(e.data, WorkItemChanged)]
    changes = [(item.key, item.changed_at) for item in items]
    expected = [(f"PAY-{n}", T0 + timedelta(minutes=m)) for n, m in ((1, 1), (2, 10), (3, 20), (4, 29), (5, 30), (6, 31))]
    assert changes == expected
    assert len({e.event_id for e in events}) == len(events) == 6
    assert {dict(record.headers)[Headers.EVENT_ID].decode() for record in records} == {str(e.event_id) for e in events}
    assert all(item.portfolio_id == portfolio and item.kr_ids == ("kr-checkout",) for item in items)

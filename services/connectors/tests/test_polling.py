"""Polling Jira and Linear against a real local HTTP server: pages in order, checkpoints per page, retries, resuming, no duplicates.

The server (a `ThreadingHTTPServer` on 127.0.0.1) holds issues in memory, answers Jira's
`search/jql` and Linear's GraphQL `issues` like the vendors do (filtered by the JQL bound
or `since`, paged by cursor), and fails on request when a test injects a fault. Sleeps and
the clock are injected, so retries do not wait.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from okr_connectors.backfill import main as backfill_main
from okr_connectors.jira_poll import JiraPoller
from okr_connectors.linear_poll import QUERY, LinearPoller
from okr_connectors.mapping import Mapping, MappingRule
from okr_connectors.polling import Http, PageStats, PollerConfigError, PollFailed, PollStats, RetryPolicy, retry_after
from okr_connectors.settings import ConnectorsSettings
from okr_connectors.store import ConnectorStore, PostgresConnectorStore, SqliteConnectorStore
from okr_contracts.delivery import WorkItemChanged
from okr_contracts.topics import DELIVERY_TOPIC

PAYLOADS = Path(__file__).parent / "payloads"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
T0 = NOW - timedelta(days=1)
PORTFOLIO = "payments"
MAPPING = Mapping(
    rules=(
        MappingRule(source="jira", project="PAY", portfolio_id=PORTFOLIO, kr_ids=("kr-checkout",)),
        MappingRule(source="linear", team="ENG", portfolio_id=PORTFOLIO, kr_ids=("kr-activation",)),
    )
)
OpenStore = Callable[[], ConnectorStore]


# ---------------------------------------------------------------- the fake vendors


@dataclass(frozen=True)
class Seen:
    """A request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    reply: Reply
    times: int
    when: Callable[[Seen], bool]


class Vendors:
    """Jira Cloud and Linear as far as the pollers use them, on one local HTTP server."""

    def __init__(self) -> None:
        self.jira: list[dict[str, Any]] = []
        self.linear: list[dict[str, Any]] = []
        self.jira_zone = ZoneInfo("UTC")
        self.linear_newest_first = False
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, reply: Reply, *, times: int = 1, when: Callable[[Seen], bool] = lambda seen: True) -> None:
        """Answer `reply` instead, `times` times, to requests `when` matches."""
        self.faults.append(Fault(reply, times, when))

    def heal(self) -> None:
        self.faults.clear()

    def answer(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            for fault in self.faults:
                if fault.times > 0 and fault.when(seen):
                    fault.times -= 1
                    return fault.reply
        if seen.method == "GET" and seen.path == "/rest/api/3/search/jql":
            return self._jira_search(seen.query)
        if seen.method == "POST" and seen.path == "/graphql":
            return self._linear_issues(seen.body["variables"])
        return Reply(404, {"errorMessages": [f"no route {seen.method} {seen.path}"]})

    def _jira_search(self, query: dict[str, str]) -> Reply:
        bound = re.search(r'updated >= "(\d{4}-\d\d-\d\d \d\d:\d\d)" ORDER BY updated ASC$', query["jql"])
        if bound is None:
            return Reply(400, {"errorMessages": [f"unbounded JQL: {query['jql']}"], "errors": {}})
        since = datetime.strptime(bound.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=self.jira_zone)
        matching = sorted((i for i in self.jira if _jira_time(i) >= since), key=lambda i: (_jira_time(i), i["id"]))
        start = int(query.get("nextPageToken", "page-at-0").removeprefix("page-at-"))
        end = start + int(query["maxResults"])
        if end < len(matching):
            return Reply(200, {"issues": matching[start:end], "nextPageToken": f"page-at-{end}", "isLast": False})
        return Reply(200, {"issues": matching[start:end], "isLast": True})  # the last page has no nextPageToken (JRACLOUD-92184)

    def _linear_issues(self, variables: dict[str, Any]) -> Reply:
        since = datetime.fromisoformat(variables["since"])
        matching = sorted((i for i in self.linear if _linear_time(i) >= since), key=_linear_time, reverse=self.linear_newest_first)
        start = int((variables["after"] or "cursor-0").removeprefix("cursor-"))
        end = start + variables["first"]
        info = {"hasNextPage": end < len(matching), "endCursor": f"cursor-{min(end, len(matching))}"}
        return Reply(200, {"data": {"issues": {"nodes": matching[start:end], "pageInfo": info}}})


def _handler(vendors: Vendors) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            url = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(url.query).items()}
            headers = {key.lower(): value for key, value in self.headers.items()}
            reply = vendors.answer(Seen(self.command, url.path, query, headers, json.loads(raw) if raw else None))
            data = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            for key, value in {"Content-Type": "application/json", **reply.headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


def _jira_time(issue: dict[str, Any]) -> datetime:
    return datetime.strptime(issue["fields"]["updated"], "%Y-%m-%dT%H:%M:%S.%f%z")


def _linear_time(issue: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(issue["updatedAt"])


JIRA_TEMPLATE = json.loads((PAYLOADS / "jira_search_jql_page1_handwritten_fixture.json").read_text())["issues"][0]


def jira_issue(
    n: int, updated: datetime, *, project: str = "PAY", labels: tuple[str, ...] = (), parent: str | None = None
) -> dict[str, Any]:
    """A `search/jql` issue shaped like the handwritten fixture, with the fields the poller asks for."""
    issue: dict[str, Any] = copy.deepcopy(JIRA_TEMPLATE)
    issue_id = str(10000 + n)
    issue |= {"id": issue_id, "key": f"{project}-{n}", "self": f"https://example.atlassian.net/rest/api/3/issue/{issue_id}"}
    issue["fields"] |= {
        "summary": f"Jira issue {n}",
        "project": {"key": project},
        "labels": list(labels),
        "issuetype": {"name": "Story"},
        "updated": updated.astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        + updated.astimezone(ZoneInfo("Europe/Berlin")).strftime("%z"),
    }
    if parent:
        issue["fields"]["parent"] = {"id": "9000", "key": parent}
    return issue


def linear_issue(n: int, updated: datetime, *, team: str = "ENG", labels: tuple[str, ...] = ()) -> dict[str, Any]:
    """An `issues` node as Linear answers the poller's selection."""
    return {
        "id": f"8d3c5b5e-0000-4000-8000-{n:012d}",
        "identifier": f"{team}-{n}",
        "title": f"Linear issue {n}",
        "url": f"https://linear.app/acme/issue/{team}-{n}",
        "updatedAt": updated.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "completedAt": None,
        "state": {"type": "started", "name": "In Progress"},
        "team": {"key": team},
        "project": {"id": "2f6c3c1e-project"},
        "labels": {"nodes": [{"name": label} for label in labels]},
        "assignee": None,
        "parent": None,
    }


# ---------------------------------------------------------------- fixtures


class Sleeps(list[float]):
    """The injected sleep: remembers what it was asked to wait."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    server = Vendors()
    yield server
    server.close()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def http(sleeps: Sleeps) -> AsyncIterator[Http]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield Http(client, RetryPolicy(attempts=5, backoff_s=1.0), sleep=sleeps, clock=lambda: NOW)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens stores over one empty database (a SQLite file, or a fresh schema in the session's PostgreSQL), as a restarted process would."""
    opened: list[ConnectorStore] = []
    if request.param == "sqlite":

        def sqlite_store() -> ConnectorStore:
            opened.append(SqliteConnectorStore(tmp_path / "connectors.sqlite"))
            return opened[-1]

        yield sqlite_store
    else:
        dsn: str = request.getfixturevalue("postgres_dsn")
        schema: str = request.getfixturevalue("postgres_schema")

        def postgres_store() -> ConnectorStore:
            opened.append(PostgresConnectorStore(dsn, schema))
            return opened[-1]

        yield postgres_store
    for found in opened:
        found.close()


@pytest.fixture
def store(open_store: OpenStore) -> ConnectorStore:
    return open_store()


def jira(store: ConnectorStore, vendors: Vendors, http: Http, poller: type[JiraPoller] = JiraPoller, **options: Any) -> JiraPoller:
    merged: dict[str, Any] = {"page_size": 2, "clock": lambda: NOW} | options
    return poller(store, MAPPING, http, url=vendors.url, email="bot@acme.test", api_token="jira-token", **merged)


def linear(store: ConnectorStore, vendors: Vendors, http: Http, **options: Any) -> LinearPoller:
    merged: dict[str, Any] = {"page_size": 2, "clock": lambda: NOW} | options
    return LinearPoller(store, MAPPING, http, url=f"{vendors.url}/graphql", api_key="lin_api_key", **merged)


def published(store: ConnectorStore) -> list[WorkItemChanged]:
    """The outbox's events, oldest first."""
    found = []
    for _, out in store.unpublished():
        assert out.topic == DELIVERY_TOPIC.name
        data = DELIVERY_TOPIC.decode(out.value).data
        assert isinstance(data, WorkItemChanged)
        assert out.key == data.portfolio_id
        found.append(data)
    return found


def changes(store: ConnectorStore) -> list[tuple[str, datetime]]:
    return [(event.key, event.changed_at) for event in published(store)]


def checkpoints_per_page(store: ConnectorStore, source: str) -> tuple[list[Any], Callable[[PageStats], None]]:
    """What the store's checkpoint was after each page (read from the progress callback, which runs once a page is stored)."""
    seen: list[Any] = []
    return seen, lambda page: seen.append(store.checkpoint(source))


def minutes(*offsets: float) -> list[datetime]:
    return [T0 + timedelta(minutes=m) for m in offsets]


# ---------------------------------------------------------------- Jira


async def test_jira_pages_are_stored_in_order_each_with_its_checkpoint(vendors: Vendors, http: Http, store: ConnectorStore) -> None:
    times = minutes(1, 2.5, 4, 5.25, 7)
    vendors.jira = [jira_issue(n, at) for n, at in enumerate(times, 1)][::-1]  # the server sorts; the store must not depend on input order
    seen, progress = checkpoints_per_page(store, "jira")

    stats = await jira(store, vendors, http).run_once(progress)

    assert changes(store) == [(f"PAY-{n}", at) for n, at in enumerate(times, 1)]
    assert seen == [{"updated": times[1].isoformat()}, {"updated": times[3].isoformat()}, {"updated": times[4].isoformat()}]
    assert (stats.pages, stats.items, stats.new, stats.duplicates, stats.unmapped, stats.rejected) == (3, 5, 5, 0, 0, 0)
    requests = vendors.seen
    assert [r.query.get("nextPageToken") for r in requests] == [None, "page-at-2", "page-at-4"]
    assert {(r.query["fields"], r.query["maxResults"]) for r in requests} == {("*navigable", "2")}
    assert requests[0].headers["authorization"] == "Basic " + base64.b64encode(b"bot@acme.test:jira-token").decode()
    event = published(store)[0]
    assert (event.portfolio_id, event.kr_ids, event.url) == (PORTFOLIO, ("kr-checkout",), "https://example.atlassian.net/browse/PAY-1")


async def test_the_jql_bound_is_the_checkpoint_less_the_overlap_in_the_jira_time_zone(
    vendors: Vendors, http: Http, store: ConnectorStore
) -> None:
    store.accept("jira", [], ("jira", {"updated": "2026-03-02T10:15:30.500000+00:00"}))
    poller = jira(store, vendors, http, scope="project in (PAY, OPS)", timezone="Asia/Kolkata")

    await poller.run_once()

    # 10:15:30.5 UTC − 2 min = 10:13:30.5 UTC = 15:43:30.5 in Kolkata (+05:30), rounded down to the minute
    assert vendors.seen[0].query["jql"] == '(project in (PAY, OPS)) AND updated >= "2026-03-02 15:43" ORDER BY updated ASC'


async def test_a_first_jira_poll_starts_thirty_days_back_or_at_poll_since(vendors: Vendors, http: Http, store: ConnectorStore) -> None:
    await jira(store, vendors, http).run_once()
    settings = ConnectorsSettings(
        jira_url=vendors.url,
        jira_email="bot@acme.test",
        jira_api_token="t",
        jira_timezone="America/New_York",
        poll_since="2026-01-15T08:00",
    )
    await JiraPoller.from_settings(settings, store, MAPPING, http).run_once()

    bounds = [r.query["jql"] for r in vendors.seen]
    assert bounds == ['updated >= "2026-01-31 12:00" ORDER BY updated ASC', 'updated >= "2026-01-15 03:00" ORDER BY updated ASC']


async def test_a_rate_limit_waits_as_long_as_retry_after_says(vendors: Vendors, http: Http, store: ConnectorStore, sleeps: Sleeps) -> None:
    vendors.jira = [jira_issue(n, at) for n, at in enumerate(minutes(1, 2, 3), 1)]
    vendors.fail(Reply(429, {"errorMessages": ["Rate limit exceeded"]}, {"Retry-After": "7"}))
    vendors.fail(
        Reply(429, {}, {"Retry-After": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}),
        when=lambda s: "nextPageToken" in s.query,
    )

    stats = await jira(store, vendors, http).run_once()

    assert sleeps == [7.0, 30.0]
    assert [key for key, _ in changes(store)] == ["PAY-1", "PAY-2", "PAY-3"]
    assert stats.pages == 2


async def test_a_server_error_is_retried_with_exponential_backoff(
    vendors: Vendors, http: Http, store: ConnectorStore, sleeps: Sleeps
) -> None:
    vendors.jira = [jira_issue(1, T0)]
    vendors.fail(Reply(500, {"errorMessages": ["boom"]}), times=1)
    vendors.fail(Reply(503, {}), times=2)

    await jira(store, vendors, http).run_once()

    assert sleeps == [1.0, 2.0, 4.0]
    assert [key for key, _ in changes(store)] == ["PAY-1"]


async def test_a_server_error_past_the_attempts_fails_the_poll_and_keeps_the_last_good_checkpoint(
    vendors: Vendors, http: Http, open_store: OpenStore, sleeps: Sleeps
) -> None:
    times = minutes(1, 2, 3, 4, 5)
    vendors.jira = [jira_issue(n, at) for n, at in enumerate(times, 1)]
    vendors.fail(Reply(500, {"errorMessages": ["internal"]}), times=99, when=lambda s: s.query.get("nextPageToken") == "page-at-2")
    store = open_store()

    with pytest.raises(PollFailed, match="server error 500 after 5 attempts"):
        await jira(store, vendors, http).run_once()

    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert store.checkpoint("jira") == {"updated": times[1].isoformat()}
    assert [key for key, _ in changes(store)] == ["PAY-1", "PAY-2"]

    vendors.heal()
    restarted = open_store()  # a new process: new store handle on the same database, new poller
    stats = await jira(restarted, vendors, http).run_once()

    assert vendors.seen[-3].query["jql"] == f'updated >= "{(times[1] - timedelta(minutes=2)):%Y-%m-%d %H:%M}" ORDER BY updated ASC'
    assert [key for key, _ in changes(restarted)] == ["PAY-1", "PAY-2", "PAY-3", "PAY-4", "PAY-5"]
    assert (stats.items, stats.new, stats.duplicates) == (5, 3, 2)
    assert restarted.checkpoint("jira") == {"updated": times[4].isoformat()}


async def test_a_restart_resumes_from_the_checkpoint_and_stores_no_duplicate(vendors: Vendors, http: Http, open_store: OpenStore) -> None:
    vendors.jira = [jira_issue(n, at) for n, at in enumerate(minutes(1, 10, 20, 29, 30), 1)]
    first = await jira(open_store(), vendors, http).run_once()
    vendors.jira.append(jira_issue(6, T0 + timedelta(minutes=31)))
    vendors.jira[1] = jira_issue(2, T0 + timedelta(minutes=32))  # PAY-2 changed again

    restarted = open_store()
    second = await jira(restarted, vendors, http).run_once()

    assert vendors.seen[-1].query["jql"] == f'updated >= "{T0 + timedelta(minutes=28):%Y-%m-%d %H:%M}" ORDER BY updated ASC'
    assert (first.new, second.items, second.new, second.duplicates) == (5, 4, 2, 2)  # PAY-4 and PAY-5 were in the overlap
    assert [key for key, _ in changes(restarted)] == ["PAY-1", "PAY-2", "PAY-3", "PAY-4", "PAY-5", "PAY-6", "PAY-2"]
    assert len(set(changes(restarted))) == 7


async def test_unmapped_items_are_counted_and_recorded_for_an_operator(vendors: Vendors, http: Http, store: ConnectorStore) -> None:
    vendors.jira = [
        jira_issue(1, T0, project="PAY"),
        jira_issue(2, T0 + timedelta(minutes=1), project="OPS", labels=("infra",), parent="OPS-1"),
        jira_issue(3, T0 + timedelta(minutes=2), project="OPS"),
    ]
    stats = await jira(store, vendors, http).run_once()

    assert (stats.items, stats.new, stats.unmapped) == (3, 1, 2)
    assert [key for key, _ in changes(store)] == ["PAY-1"]
    summaries = {row["external_id"]: row["summary"] for row in store.unmapped("jira")}
    assert summaries["10002"] == {
        "key": "OPS-2",
        "title": "Jira issue 2",
        "project": "OPS",
        "parent_key": "OPS-1",
        "team": None,
        "labels": ["infra"],
    }
    assert store.counts()["unmapped"] == {"jira": {"items": 2, "deliveries": 2}}


async def test_an_item_the_parser_rejects_is_counted_and_skipped(vendors: Vendors, http: Http, store: ConnectorStore) -> None:
    broken = jira_issue(2, T0 + timedelta(minutes=1))
    del broken["fields"]["status"]
    vendors.jira = [jira_issue(1, T0), broken, jira_issue(3, T0 + timedelta(minutes=2))]

    stats = await jira(store, vendors, http).run_once()

    assert (stats.items, stats.new, stats.rejected) == (3, 2, 1)
    assert [key for key, _ in changes(store)] == ["PAY-1", "PAY-3"]


async def test_a_refusal_fails_the_poll_at_once(vendors: Vendors, http: Http, store: ConnectorStore, sleeps: Sleeps) -> None:
    vendors.fail(Reply(401, {"errorMessages": ["Client must be authenticated"]}))

    with pytest.raises(PollFailed, match=r"401.*Client must be authenticated"):
        await jira(store, vendors, http).run_once()
    assert sleeps == []
    assert store.checkpoint("jira") is None


async def test_a_re_poll_into_another_store_gives_the_same_event_ids(vendors: Vendors, http: Http, tmp_path: Path) -> None:
    vendors.jira = [jira_issue(n, at) for n, at in enumerate(minutes(1, 2, 3), 1)]
    one, two = SqliteConnectorStore(tmp_path / "one.sqlite"), SqliteConnectorStore(tmp_path / "two.sqlite")
    await jira(one, vendors, http).run_once()
    await jira(two, vendors, http).run_once()

    ids = [[json.loads(out.value)["event_id"] for _, out in store.unpublished()] for store in (one, two)]
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 3


# ---------------------------------------------------------------- Linear


async def test_linear_pages_are_stored_in_order_each_with_its_checkpoint(vendors: Vendors, http: Http, store: ConnectorStore) -> None:
    times = minutes(1, 2, 3, 4, 5)
    vendors.linear = [linear_issue(n, at) for n, at in enumerate(times, 1)] + [linear_issue(9, T0 + timedelta(minutes=6), team="OPS")]
    store.accept("linear", [], ("linear", {"updated": (T0 - timedelta(hours=1)).isoformat()}))
    seen, progress = checkpoints_per_page(store, "linear")

    stats = await linear(store, vendors, http).run_once(progress)

    assert changes(store) == [(f"ENG-{n}", at) for n, at in enumerate(times, 1)]
    assert seen == [
        {"updated": times[1].isoformat()},
        {"updated": times[3].isoformat()},
        {"updated": (T0 + timedelta(minutes=6)).isoformat()},
    ]
    assert (stats.pages, stats.items, stats.new, stats.unmapped) == (3, 6, 5, 1)
    request = vendors.seen[0]
    assert request.headers["authorization"] == "lin_api_key"
    assert request.body["query"] == QUERY
    assert "orderBy: updatedAt" in QUERY
    assert request.body["variables"] == {"first": 2, "after": None, "since": "2026-03-01T10:58:00.000Z"}  # checkpoint − 2 min
    assert [r.body["variables"]["after"] for r in vendors.seen] == [None, "cursor-2", "cursor-4"]


async def test_a_linear_rate_limit_in_the_graphql_answer_waits_for_the_reset(
    vendors: Vendors, http: Http, store: ConnectorStore, sleeps: Sleeps
) -> None:
    vendors.linear = [linear_issue(1, T0)]
    reset_ms = int((NOW + timedelta(seconds=12)).timestamp() * 1000)
    limited = {"errors": [{"message": "Rate limit exceeded", "extensions": {"type": "ratelimited", "code": "RATELIMITED"}}]}
    vendors.fail(Reply(400, limited, {"x-ratelimit-requests-remaining": "0", "x-ratelimit-requests-reset": str(reset_ms)}))
    vendors.fail(Reply(429, {}, {"Retry-After": "3"}))

    await linear(store, vendors, http).run_once()

    assert sleeps == [12.0, 3.0]
    assert [key for key, _ in changes(store)] == ["ENG-1"]


async def test_other_graphql_errors_fail_the_poll_at_once(vendors: Vendors, http: Http, store: ConnectorStore, sleeps: Sleeps) -> None:
    vendors.fail(Reply(200, {"errors": [{"message": "Argument 'first' must be at most 250"}]}))

    with pytest.raises(PollFailed, match="must be at most 250"):
        await linear(store, vendors, http).run_once()
    assert sleeps == []


async def test_newest_first_linear_pages_move_the_checkpoint_only_when_the_poll_completes(
    vendors: Vendors, http: Http, open_store: OpenStore
) -> None:
    times = minutes(1, 2, 3, 4, 5)
    vendors.linear = [linear_issue(n, at) for n, at in enumerate(times, 1)]
    vendors.linear_newest_first = True
    vendors.fail(Reply(502, {}), times=99, when=lambda s: s.body["variables"]["after"] == "cursor-4")
    store = open_store()
    seen, progress = checkpoints_per_page(store, "linear")

    with pytest.raises(PollFailed):
        await linear(store, vendors, http).run_once(progress)
    assert seen == [None, None]  # resuming from ENG-5's time would skip ENG-1, which was not read yet
    assert [key for key, _ in changes(store)] == ["ENG-5", "ENG-4", "ENG-3", "ENG-2"]

    vendors.heal()
    restarted = open_store()
    stats = await linear(restarted, vendors, http).run_once()
    assert (stats.new, stats.duplicates) == (1, 4)
    assert [key for key, _ in changes(restarted)] == ["ENG-5", "ENG-4", "ENG-3", "ENG-2", "ENG-1"]
    assert restarted.checkpoint("linear") == {"updated": times[4].isoformat()}


# ---------------------------------------------------------------- the retry policy, the poll loop and the backfill command


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"Retry-After": "120"}, 120.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "Mon, 02 Mar 2026 12:01:00 GMT"}, 60.0),
        ({"Retry-After": "Mon, 02 Mar 2026 11:00:00 GMT"}, 0.0),
        ({"x-ratelimit-requests-remaining": "0", "x-ratelimit-requests-reset": str(int(NOW.timestamp() * 1000) + 45_000)}, 45.0),
        ({"x-ratelimit-requests-reset": str(int(NOW.timestamp()) + 20)}, 20.0),
        ({"x-ratelimit-requests-remaining": "100", "x-ratelimit-requests-reset": "1", "x-ratelimit-complexity-remaining": "0",
          "x-ratelimit-complexity-reset": str(int(NOW.timestamp() * 1000) + 90_000)}, 90.0),
        ({"x-ratelimit-requests-remaining": "5", "x-ratelimit-requests-reset": "1772452800000"}, None),
        ({}, None),
    ],
)  # fmt: skip
def test_retry_after_reads_seconds_http_dates_and_linear_reset_times(headers: dict[str, str], wait: float | None) -> None:
    assert retry_after(httpx.Headers(headers), NOW) == wait


async def test_a_rate_limit_longer_than_the_policy_allows_fails_the_poll(vendors: Vendors, store: ConnectorStore, sleeps: Sleeps) -> None:
    vendors.fail(Reply(429, {}, {"Retry-After": "3600"}))
    async with httpx.AsyncClient() as client:
        http = Http(client, RetryPolicy(max_wait_s=900), sleep=sleeps, clock=lambda: NOW)
        with pytest.raises(PollFailed, match="asked to wait 3600s"):
            await jira(store, vendors, http).run_once()
    assert sleeps == []


async def test_the_poll_loop_backs_off_after_a_failure_and_stops_when_asked(
    vendors: Vendors, http: Http, store: ConnectorStore, caplog: pytest.LogCaptureFixture
) -> None:
    vendors.jira = [jira_issue(1, T0)]
    vendors.fail(Reply(403, {"errorMessages": ["forbidden"]}))
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="okr_connectors.polling")

    polled = asyncio.Event()

    class Watched(JiraPoller):
        async def run_once(self, progress: Callable[[PageStats], None] | None = None, *, since: datetime | None = None) -> PollStats:
            stats = await super().run_once(progress, since=since)
            polled.set()
            return stats

    loop = asyncio.create_task(jira(store, vendors, http, Watched).run(0.01, stop))
    await asyncio.wait_for(polled.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(loop, timeout=5)

    messages = [record.getMessage() for record in caplog.records]
    assert any("jira poll failed (1 in a row)" in m and "403" in m for m in messages)
    assert any(m.startswith("poll done: jira: 1 pages, 1 items: 1 new") for m in messages)


async def test_the_poll_loop_refuses_an_interval_of_zero(vendors: Vendors, http: Http, store: ConnectorStore) -> None:
    with pytest.raises(PollerConfigError, match="must be positive"):
        await jira(store, vendors, http).run(0, asyncio.Event())


def backfill_settings(vendors: Vendors, tmp_path: Path, **extra: Any) -> ConnectorsSettings:
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"rules": [{"source": "jira", "project": "PAY", "portfolio_id": PORTFOLIO}]}))
    values = {
        "event_store": "sqlite",
        "store_path": tmp_path / "backfill.sqlite",
        "mapping_file": mapping,
        "jira_url": vendors.url,
        "jira_email": "bot@acme.test",
        "jira_api_token": "t",
        "poll_since": T0.isoformat(),
    }
    return ConnectorsSettings.model_validate(values | extra)


def test_the_backfill_command_polls_to_the_end_and_prints_a_summary(
    vendors: Vendors, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vendors.jira = [jira_issue(n, at) for n, at in enumerate(minutes(1, 2, 3), 1)] + [
        jira_issue(4, T0 + timedelta(minutes=4), project="OPS")
    ]
    settings = backfill_settings(vendors, tmp_path)

    assert backfill_main(["jira", "--page-size", "3"], settings) == 0

    out = capsys.readouterr().out
    assert "backfill jira: 2 pages, 4 items: 3 new, 0 duplicates, 1 unmapped, 0 rejected" in out
    assert "outbox: 3 events waiting" in out
    store = SqliteConnectorStore(settings.store_path)
    assert store.checkpoint("jira") == {"updated": (T0 + timedelta(minutes=4)).isoformat()}
    store.close()

    assert backfill_main(["jira", "--since", T0.isoformat()], settings) == 0  # reads everything again: nothing new
    assert "4 items: 0 new, 3 duplicates, 1 unmapped" in capsys.readouterr().out


def test_the_backfill_command_says_what_is_missing_or_failed(vendors: Vendors, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert backfill_main(["linear"], backfill_settings(vendors, tmp_path)) == 2
    assert "Linear polling needs OKR_CONNECTORS_LINEAR_API_KEY" in capsys.readouterr().err

    vendors.fail(Reply(400, {"errorMessages": ["Field 'updatd' does not exist"]}))
    assert backfill_main(["jira"], backfill_settings(vendors, tmp_path)) == 1
    err = capsys.readouterr().err
    assert "backfill jira failed" in err
    assert "does not exist" in err
    assert "checkpoint kept at null" in err

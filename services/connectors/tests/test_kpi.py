"""KPI pulls against a real local HTTP server and the session's PostgreSQL, the scheduler, and the config file."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from psycopg import sql

from okr_connectors.kpi import (
    HttpKpiSource,
    KpiConfig,
    KpiConfigInvalid,
    KpiPullFailed,
    KpiScheduler,
    PullResult,
    SqlKpiSource,
    pull_http,
    pull_sql,
)
from okr_contracts.metrics import KpiSampled

WINDOW = {"starts_on": "2026-07-01", "ends_on": "2026-09-30"}
NOW = datetime(2026, 8, 3, 12, 0, tzinfo=UTC)


@dataclass
class Site:
    """A real HTTP server on 127.0.0.1 answering each path with a canned response, and recording what it was sent."""

    base_url: str
    routes: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    received: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def json(self, path: str, body: Any, status: int = 200) -> str:
        return self.raw(path, json.dumps(body).encode(), status=status, content_type="application/json")

    def raw(self, path: str, body: bytes, *, status: int = 200, content_type: str = "text/plain") -> str:
        self.routes[path] = (status, content_type, body)
        return self.base_url + path


@pytest.fixture
def site() -> Iterator[Site]:
    site = Site("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.received.append((self.path, dict(self.headers.items())))
            status, content_type, body = site.routes.get(self.path, (404, "application/json", b'{"error": "no such path"}'))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield site
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def http_source(url: str, selector: str = "$.value", **extra: Any) -> HttpKpiSource:
    env = extra.pop("env", {})
    fields = {"kind": "http", "name": "billing", "metric": "mrr", "unit": "EUR", "url": url, "selector": selector, "window": WINDOW}
    return HttpKpiSource.model_validate(fields | extra, context={"env": env})


def sql_source(query: str, **extra: Any) -> SqlKpiSource:
    fields = {"kind": "sql", "name": "warehouse", "metric": "wau", "dsn_env": "WAREHOUSE_DSN", "query": query, "window": WINDOW}
    return SqlKpiSource.model_validate(fields | extra)


async def failure(pull: Awaitable[PullResult]) -> KpiPullFailed:
    with pytest.raises(KpiPullFailed) as caught:
        await pull
    return caught.value


# HTTP pulls


async def test_http_pull_samples_the_selected_number_at_the_pull_moment(site: Site, client: httpx.AsyncClient) -> None:
    url = site.json("/billing", {"data": {"mrr": 1234.5}})
    source = http_source(url, "$.data.mrr", portfolio_id="acme")

    result = await pull_http(client, source, now=NOW)

    assert result.skipped_outside_window == 0
    assert result.samples == [
        KpiSampled(
            metric="mrr",
            portfolio_id="acme",
            value=1234.5,
            unit="EUR",
            observed_at=NOW,
            source="http:billing",
            source_ref=f"{url} $.data.mrr",
        )
    ]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("$.totals.eu.active", 17),
        ("$.series[1].value", 2.5),
        ("$.series[-1].value", 2.5),
        ("$.regions[?(@.code == 'us')].users", 41),
        ("$.as_text", 42.5),
        ("$.as_text_exponent", -1200),
        ("$.as_text_padded", 7),
    ],
)
async def test_selectors_reach_nested_and_array_values_and_read_numbers_held_in_strings(
    site: Site, client: httpx.AsyncClient, selector: str, expected: float
) -> None:
    body = {
        "totals": {"eu": {"active": 17}},
        "series": [{"value": 1}, {"value": 2.5}],
        "regions": [{"code": "eu", "users": 12}, {"code": "us", "users": 41}],
        "as_text": "42.5",
        "as_text_exponent": "-1.2e3",
        "as_text_padded": " 7 ",
    }
    result = await pull_http(client, http_source(site.json("/kpi", body), selector), now=NOW)

    assert [sample.value for sample in result.samples] == [expected]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("12 EUR", '"12 EUR" is not a number'),
        ("1_000", '"1_000" is not a number'),
        ("\u0663", '"\\u0663" is not a number'),
        ("", '"" is not a number'),
        ("NaN", '"NaN" is not a number'),
        ("1e400", '"1e400" is not a finite number'),
        (True, "true is not a number"),
        (None, "null is not a number"),
        ([1], "[1] is not a number"),
        ({"n": 1}, '{"n": 1} is not a number'),
    ],
)
async def test_a_selected_value_that_is_not_a_finite_number_fails_the_pull(
    site: Site, client: httpx.AsyncClient, value: object, reason: str
) -> None:
    source = http_source(site.json("/kpi", {"value": value}))

    failed = await failure(pull_http(client, source, now=NOW))

    assert failed.source == "billing"
    assert failed.reason == f"selector $.value: {reason}"
    assert not failed.retryable


@pytest.mark.parametrize(("selector", "matched"), [("$.missing", "nothing"), ("$.series[*].value", "2 values"), ("$..value", "3 values")])
async def test_a_selector_must_match_exactly_one_value(site: Site, client: httpx.AsyncClient, selector: str, matched: str) -> None:
    source = http_source(site.json("/kpi", {"value": 1, "series": [{"value": 1}, {"value": 2}]}), selector)

    failed = await failure(pull_http(client, source, now=NOW))

    assert failed.reason == f"selector {selector} matched {matched}; it must select exactly one"
    assert not failed.retryable


async def test_a_server_error_is_retryable(site: Site, client: httpx.AsyncClient) -> None:
    url = site.json("/kpi", {"error": "boom"}, status=500)

    failed = await failure(pull_http(client, http_source(url), now=NOW))

    assert failed.reason == f"HTTP 500 Internal Server Error from {url}"
    assert failed.retryable


async def test_a_client_error_is_not_retryable(site: Site, client: httpx.AsyncClient) -> None:
    failed = await failure(pull_http(client, http_source(f"{site.base_url}/gone"), now=NOW))

    assert failed.reason == f"HTTP 404 Not Found from {site.base_url}/gone"
    assert not failed.retryable


async def test_too_many_requests_is_retryable(site: Site, client: httpx.AsyncClient) -> None:
    failed = await failure(pull_http(client, http_source(site.json("/kpi", {}, status=429)), now=NOW))

    assert failed.retryable


async def test_a_body_that_is_not_json_fails_the_pull(site: Site, client: httpx.AsyncClient) -> None:
    url = site.raw("/kpi", b"<html>maintenance</html>", content_type="text/html")

    failed = await failure(pull_http(client, http_source(url), now=NOW))

    assert failed.reason == "response is not JSON (content-type text/html)"
    assert not failed.retryable


async def test_a_server_that_does_not_answer_is_retryable(client: httpx.AsyncClient) -> None:
    failed = await failure(pull_http(client, http_source(f"http://127.0.0.1:{closed_port()}/kpi"), now=NOW))

    assert failed.reason.startswith("request failed: ConnectError")
    assert failed.retryable


async def test_observed_at_comes_from_the_body_in_utc(site: Site, client: httpx.AsyncClient) -> None:
    url = site.json("/kpi", {"value": 3, "meta": {"as_of": "2026-08-01T10:00:00+02:00"}})

    result = await pull_http(client, http_source(url, observed_at_selector="$.meta.as_of"), now=NOW)

    assert [sample.observed_at for sample in result.samples] == [datetime(2026, 8, 1, 8, 0, tzinfo=UTC)]
    assert result.samples[0].observed_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("as_of", "reason"),
    [
        ("2026-08-01T10:00:00", "2026-08-01T10:00:00 has no UTC offset"),
        ("yesterday", '"yesterday" is not an ISO 8601 timestamp'),
        (1785571200, "1785571200 is not a timestamp"),
    ],
)
async def test_an_observed_at_that_is_not_an_aware_timestamp_fails_the_pull(
    site: Site, client: httpx.AsyncClient, as_of: object, reason: str
) -> None:
    url = site.json("/kpi", {"value": 3, "as_of": as_of})

    failed = await failure(pull_http(client, http_source(url, observed_at_selector="$.as_of"), now=NOW))

    assert failed.reason == f"selector $.as_of: {reason}"


@pytest.mark.parametrize(
    ("as_of", "inside"),
    [
        ("2026-06-30T23:59:59.999999Z", False),
        ("2026-07-01T00:00:00Z", True),
        ("2026-07-01T01:00:00+01:00", True),
        ("2026-09-30T23:59:59.999999Z", True),
        ("2026-10-01T00:00:00Z", False),
        ("2026-09-30T23:30:00-01:00", False),
    ],
)
async def test_samples_outside_the_cycle_window_are_skipped_and_counted(
    site: Site, client: httpx.AsyncClient, as_of: str, inside: bool
) -> None:
    url = site.json("/kpi", {"value": 3, "as_of": as_of})

    result = await pull_http(client, http_source(url, observed_at_selector="$.as_of"), now=NOW)

    assert (len(result.samples), result.skipped_outside_window) == ((1, 0) if inside else (0, 1))


async def test_a_pull_after_the_cycle_ends_is_skipped(site: Site, client: httpx.AsyncClient) -> None:
    result = await pull_http(client, http_source(site.json("/kpi", {"value": 3})), now=datetime(2026, 10, 1, tzinfo=UTC))

    assert result.samples == []
    assert result.skipped_outside_window == 1


async def test_header_values_are_read_from_the_environment_and_sent(site: Site, client: httpx.AsyncClient) -> None:
    url = site.json("/kpi", {"value": 3})
    source = http_source(url, headers={"Authorization": "Bearer ${BILLING_TOKEN}", "X-Team": "growth"}, env={"BILLING_TOKEN": "s3cr3t"})

    await pull_http(client, source, now=NOW)

    sent = site.received[-1][1]
    assert (sent["Authorization"], sent["X-Team"]) == ("Bearer s3cr3t", "growth")
    assert "s3cr3t" not in repr(source)


# SQL pulls against the session's PostgreSQL


@pytest.fixture
def warehouse(postgres_dsn: str, unique: str) -> Iterator[str]:
    """A schema of its own holding table ``kpi(value, observed_at, label)`` with three rows; yields the schema name."""
    schema = f"kpi_{unique}"
    rows = [(10, "2026-06-30T23:59:00Z", "10"), (11, "2026-07-01T00:00:00Z", " 11 "), (12.5, "2026-08-01T09:00:00+02:00", "x")]
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {}.kpi (value numeric, observed_at timestamptz, label text)").format(sql.Identifier(schema)))
        with conn.cursor() as cursor:
            cursor.executemany(sql.SQL("INSERT INTO {}.kpi VALUES (%s, %s, %s)").format(sql.Identifier(schema)), rows)
    yield schema
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def count_rows(dsn: str, schema: str) -> int:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(sql.SQL("SELECT count(*) FROM {}.kpi").format(sql.Identifier(schema))).fetchone()
    assert found is not None
    count: int = found[0]
    return count


@pytest.mark.integration
async def test_sql_pull_samples_a_single_value_at_the_pull_moment(postgres_dsn: str, warehouse: str) -> None:
    source = sql_source(f"SELECT sum(value) FROM {warehouse}.kpi", portfolio_id="acme", unit="users")

    result = await pull_sql(source, postgres_dsn, now=NOW)

    assert result.samples == [
        KpiSampled(
            metric="wau",
            portfolio_id="acme",
            value=33.5,
            unit="users",
            observed_at=NOW,
            source="sql:warehouse",
            source_ref="warehouse",
        )
    ]


@pytest.mark.integration
async def test_sql_rows_carry_their_own_observed_at_and_rows_outside_the_window_are_skipped(postgres_dsn: str, warehouse: str) -> None:
    source = sql_source(f"SELECT value, observed_at FROM {warehouse}.kpi ORDER BY observed_at")

    result = await pull_sql(source, postgres_dsn, now=NOW)

    assert [(s.value, s.observed_at) for s in result.samples] == [
        (11.0, datetime(2026, 7, 1, tzinfo=UTC)),
        (12.5, datetime(2026, 8, 1, 7, tzinfo=UTC)),
    ]
    assert result.skipped_outside_window == 1


@pytest.mark.integration
async def test_sql_values_may_be_numbers_held_in_text(postgres_dsn: str, warehouse: str) -> None:
    source = sql_source(f"SELECT label, observed_at FROM {warehouse}.kpi WHERE label <> 'x' ORDER BY observed_at")

    result = await pull_sql(source, postgres_dsn, now=NOW)

    assert [s.value for s in result.samples] == [11.0]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("SELECT value FROM {schema}.missing", 'query failed: relation "{schema}.missing" does not exist'),
        ("SELECT value FROM {schema}.kpi WHERE false", "query returned no rows"),
        ("SELECT value FROM {schema}.kpi", "query returned 3 rows of (value) alone; return one row or add an observed_at column"),
        ("SELECT value, observed_at, label FROM {schema}.kpi", "query must return (value) or (value, observed_at) columns, not 3"),
        ("SELECT NULL::numeric", "row 1: null is not a number"),
        ("SELECT label, observed_at FROM {schema}.kpi ORDER BY observed_at", 'row 3: "x" is not a number'),
        ("SELECT 1, '2026-08-01 10:00'::timestamp", "row 1: 2026-08-01T10:00:00 has no UTC offset"),
        ("SELECT 1, '2026-08-01'::date", 'row 1: "2026-08-01" is not a timestamp'),
    ],
)
async def test_a_failing_or_unusable_query_fails_the_pull(postgres_dsn: str, warehouse: str, query: str, reason: str) -> None:
    source = sql_source(query.format(schema=warehouse))

    failed = await failure(pull_sql(source, postgres_dsn, now=NOW))

    assert failed.source == "warehouse"
    assert failed.reason == reason.format(schema=warehouse)
    assert not failed.retryable


@pytest.mark.integration
@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("INSERT INTO {schema}.kpi VALUES (99, now(), 'w') RETURNING value", "cannot execute INSERT in a read-only transaction"),
        ("WITH added AS (INSERT INTO {schema}.kpi VALUES (99) RETURNING value) SELECT value FROM added", "in a read-only transaction"),
        ("COMMIT; INSERT INTO {schema}.kpi VALUES (99); SELECT 1", "cannot insert multiple commands into a prepared statement"),
    ],
)
async def test_the_query_runs_in_a_read_only_transaction(postgres_dsn: str, warehouse: str, query: str, reason: str) -> None:
    failed = await failure(pull_sql(sql_source(query.format(schema=warehouse)), postgres_dsn, now=NOW))

    assert failed.reason.startswith("query failed: ")
    assert reason in failed.reason
    assert count_rows(postgres_dsn, warehouse) == 3


@pytest.mark.integration
async def test_a_query_past_its_statement_timeout_is_cancelled_and_retryable(postgres_dsn: str) -> None:
    source = sql_source("SELECT 1 FROM pg_sleep(5)", statement_timeout_s=0.2)

    failed = await failure(pull_sql(source, postgres_dsn, now=NOW))

    assert failed.reason == "query failed: canceling statement due to statement timeout"
    assert failed.retryable


async def test_a_database_that_does_not_answer_is_retryable() -> None:
    failed = await failure(pull_sql(sql_source("SELECT 1"), f"postgresql://kpi:pw@127.0.0.1:{closed_port()}/kpi", now=NOW))

    assert failed.reason.startswith("cannot connect: ")
    assert "pw" not in failed.reason
    assert failed.retryable


async def test_a_malformed_dsn_is_not_quoted_in_the_reason() -> None:
    failed = await failure(pull_sql(sql_source("SELECT 1"), "password=hunter2 garbage", now=NOW))

    assert failed.reason == "the DSN in WAREHOUSE_DSN is not a valid connection string"
    assert not failed.retryable


# The scheduler


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class Sink:
    """Collects what the scheduler sinks."""

    def __init__(self) -> None:
        self.batches: list[list[KpiSampled]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, samples: list[KpiSampled]) -> None:
        self.batches.append(samples)
        self.arrived.set()


def http_entry(site: Site, name: str, path: str, interval_s: float) -> dict[str, Any]:
    """An HTTP source as the config file holds it, named after its metric."""
    return {
        "kind": "http",
        "name": name,
        "metric": name,
        "url": site.base_url + path,
        "selector": "$.value",
        "interval_s": interval_s,
        "window": WINDOW,
    }


def http_config(site: Site, **sources: tuple[str, float]) -> KpiConfig:
    """One HTTP source per keyword: its path on the site and its interval."""
    return KpiConfig.from_data({"sources": [http_entry(site, name, path, interval) for name, (path, interval) in sources.items()]})


async def test_a_source_is_pulled_again_only_when_its_interval_has_passed(site: Site, client: httpx.AsyncClient) -> None:
    site.json("/fast", {"value": 1})
    site.json("/slow", {"value": 2})
    clock, sink = Clock(NOW), Sink()
    scheduler = KpiScheduler(http_config(site, fast=("/fast", 60), slow=("/slow", 300)), client, {}, clock, sink)

    first = await scheduler.run_once(clock())
    second = await scheduler.run_once(clock.advance(59))
    third = await scheduler.run_once(clock.advance(1))

    assert first == {"fast": "ok: 1 sampled, 0 outside the window", "slow": "ok: 1 sampled, 0 outside the window"}
    assert second == {"fast": "not due until 2026-08-03T12:01:00+00:00", "slow": "not due until 2026-08-03T12:05:00+00:00"}
    assert third == {"fast": "ok: 1 sampled, 0 outside the window", "slow": "not due until 2026-08-03T12:05:00+00:00"}
    assert [[s.metric for s in batch] for batch in sink.batches] == [["fast"], ["slow"], ["fast"]]


async def test_a_failing_source_backs_off_exponentially_up_to_its_interval_without_holding_up_others(
    site: Site, client: httpx.AsyncClient
) -> None:
    site.json("/good", {"value": 1})
    site.json("/flaky", {"error": "down"}, status=503)
    clock, sink = Clock(NOW), Sink()
    scheduler = KpiScheduler(http_config(site, good=("/good", 10), flaky=("/flaky", 30)), client, {}, clock, sink, backoff_base_s=5)

    retries = []
    for _ in range(5):
        status = await scheduler.run_once(clock())
        assert status["good"].startswith(("ok", "not due"))
        retries.append(status["flaky"].rsplit("next try in ", 1)[1])
        delay = float(retries[-1].removesuffix("s"))
        assert (await scheduler.run_once(clock.advance(delay - 1)))["flaky"].startswith("not due")
        clock.advance(1)

    assert retries == ["5s", "10s", "20s", "30s", "30s"]
    assert len(sink.batches) >= 5

    site.json("/flaky", {"value": 7})
    assert (await scheduler.run_once(clock()))["flaky"] == "ok: 1 sampled, 0 outside the window"
    site.json("/flaky", {"error": "down"}, status=503)
    failed_again = await scheduler.run_once(clock.advance(30))
    assert failed_again["flaky"].endswith("next try in 5s")


async def test_a_failure_that_retrying_will_not_fix_waits_the_whole_interval(site: Site, client: httpx.AsyncClient) -> None:
    clock = Clock(NOW)
    scheduler = KpiScheduler(http_config(site, gone=("/gone", 120)), client, {}, clock, Sink(), backoff_base_s=5)

    status = await scheduler.run_once(clock())

    assert status == {"gone": f"failed: HTTP 404 Not Found from {site.base_url}/gone; next try in 120s"}


async def test_a_sql_source_without_its_dsn_fails_alone(site: Site, client: httpx.AsyncClient) -> None:
    site.json("/kpi", {"value": 1})
    source = {"kind": "sql", "name": "warehouse", "metric": "wau", "dsn_env": "WAREHOUSE_DSN", "query": "SELECT 1", "window": WINDOW}
    config = KpiConfig.from_data({"sources": [http_entry(site, "web", "/kpi", 60), source]})
    sink = Sink()

    status = await KpiScheduler(config, client, {"OTHER": "x"}, Clock(NOW), sink).run_once(NOW)

    assert status == {
        "web": "ok: 1 sampled, 0 outside the window",
        "warehouse": "failed: environment variable WAREHOUSE_DSN (its dsn_env) is not set; next try in 300s",
    }
    assert len(sink.batches) == 1


@pytest.mark.integration
async def test_the_scheduler_pulls_sql_sources_with_the_dsn_from_its_env(
    postgres_dsn: str, warehouse: str, client: httpx.AsyncClient
) -> None:
    source = {
        "kind": "sql",
        "name": "warehouse",
        "metric": "wau",
        "dsn_env": "WAREHOUSE_DSN",
        "query": f"SELECT value, observed_at FROM {warehouse}.kpi",
        "window": WINDOW,
    }
    sink = Sink()

    status = await KpiScheduler(
        KpiConfig.from_data({"sources": [source]}), client, {"WAREHOUSE_DSN": postgres_dsn}, Clock(NOW), sink
    ).run_once(NOW)

    assert status == {"warehouse": "ok: 2 sampled, 1 outside the window"}
    assert sorted(s.value for s in sink.batches[0]) == [11.0, 12.5]


async def test_failures_are_logged_without_header_secrets(site: Site, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    site.json("/kpi", {"error": "boom"}, status=500)
    data = {
        "sources": [
            {
                "kind": "http",
                "name": "billing",
                "metric": "mrr",
                "url": f"{site.base_url}/kpi",
                "selector": "$.value",
                "headers": {"Authorization": "Bearer ${TOKEN}"},
                "window": WINDOW,
            }
        ]
    }
    scheduler = KpiScheduler(KpiConfig.from_data(data, env={"TOKEN": "s3cr3t"}), client, {}, Clock(NOW), Sink())

    with caplog.at_level(logging.INFO, logger="okr_connectors.kpi"):
        await scheduler.run_once(NOW)

    assert "KPI source billing failed (HTTP 500 Internal Server Error" in caplog.text
    assert "s3cr3t" not in caplog.text
    assert site.received[-1][1]["Authorization"] == "Bearer s3cr3t"


async def test_a_failing_sink_is_not_swallowed_and_the_source_stays_due(site: Site, client: httpx.AsyncClient) -> None:
    site.json("/kpi", {"value": 1})

    async def broken(samples: list[KpiSampled]) -> None:
        raise ConnectionError("outbox unavailable")

    scheduler = KpiScheduler(http_config(site, web=("/kpi", 60)), client, {}, Clock(NOW), broken)

    with pytest.raises(ConnectionError):
        await scheduler.run_once(NOW)
    sink = Sink()
    scheduler.sink = sink
    assert await scheduler.run_once(NOW) == {"web": "ok: 1 sampled, 0 outside the window"}


async def test_run_keeps_pulling_until_stopped(site: Site, client: httpx.AsyncClient) -> None:
    site.json("/kpi", {"value": 1})
    stop = asyncio.Event()
    batches: list[list[KpiSampled]] = []

    async def sink(samples: list[KpiSampled]) -> None:
        batches.append(samples)
        if len(batches) == 3:
            stop.set()

    clock = Clock(NOW)

    def ticking() -> datetime:
        return clock.advance(0.01)

    scheduler = KpiScheduler(http_config(site, web=("/kpi", 0.02)), client, {}, ticking, sink)

    await asyncio.wait_for(scheduler.run(stop), timeout=5)

    assert len(batches) == 3


async def test_run_wakes_up_when_stopped_while_waiting(site: Site, client: httpx.AsyncClient) -> None:
    site.json("/kpi", {"value": 1})
    stop, sink = asyncio.Event(), Sink()
    scheduler = KpiScheduler(http_config(site, web=("/kpi", 300)), client, {}, Clock(NOW), sink)

    task = asyncio.create_task(scheduler.run(stop))
    await asyncio.wait_for(sink.arrived.wait(), timeout=1)
    stop.set()
    await asyncio.wait_for(task, timeout=1)

    assert len(sink.batches) == 1


# The config file

YAML_CONFIG = """\
sources:
  - kind: http
    name: billing
    metric: mrr
    portfolio_id: acme
    unit: EUR
    url: https://billing.example.com/api/summary
    selector: $.data.mrr
    observed_at_selector: $.data.as_of
    headers:
      Authorization: Bearer ${BILLING_TOKEN}
    interval_s: 600
    window: {starts_on: 2026-07-01, ends_on: 2026-09-30}
  - kind: sql
    name: warehouse
    metric: wau
    dsn_env: WAREHOUSE_DSN
    query: SELECT count(*) FROM active_users
    window: {starts_on: 2026-07-01, ends_on: 2026-09-30}
"""


def test_the_config_loads_from_yaml_and_json_alike(tmp_path: Path) -> None:
    env = {"BILLING_TOKEN": "t0k3n"}
    yaml_file = tmp_path / "kpi.yaml"
    yaml_file.write_text(YAML_CONFIG)
    json_file = tmp_path / "kpi.json"
    json_file.write_text(json.dumps({"sources": [{**source, "window": WINDOW} for source in yaml_to_data()["sources"]]}))

    from_yaml = KpiConfig.load(yaml_file, env)
    from_json = KpiConfig.load(json_file, env)

    assert from_yaml == from_json
    billing, warehouse = from_yaml.sources
    assert isinstance(billing, HttpKpiSource)
    assert (billing.headers, billing.interval_s, billing.window.end) == (
        {"Authorization": "Bearer t0k3n"},
        600,
        datetime(2026, 10, 1, tzinfo=UTC),
    )
    assert isinstance(warehouse, SqlKpiSource)
    assert (warehouse.interval_s, warehouse.statement_timeout_s, warehouse.portfolio_id) == (300, 10, None)


def yaml_to_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(YAML_CONFIG)
    return data


def test_a_header_may_hold_several_references_and_plain_dollars() -> None:
    source = http_source(
        "https://example.com/kpi",
        headers={"X-Auth": "${USER_NAME}:${USER_KEY}", "X-Price": "$5"},
        env={"USER_NAME": "kpi", "USER_KEY": "k3y"},
    )

    assert source.headers == {"X-Auth": "kpi:k3y", "X-Price": "$5"}


def test_a_reference_to_an_unset_variable_is_rejected_by_name() -> None:
    data = yaml_to_data()

    with pytest.raises(KpiConfigInvalid) as caught:
        KpiConfig.from_data(data, env={"OTHER": "x"})

    assert str(caught.value) == (
        "KPI config is invalid:\n"
        "  sources[0] (billing).headers: header Authorization refers to ${BILLING_TOKEN}, which is not set in the environment"
    )


def invalid(**changes: Any) -> dict[str, Any]:
    """The YAML example with its first source changed; a value of None removes the field."""
    data = yaml_to_data()
    first = data["sources"][0] | changes
    data["sources"][0] = {key: value for key, value in first.items() if value is not None}
    return data


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            invalid(kind="ftp"),
            "sources[0] (billing): Input tag 'ftp' found using 'kind' does not match any of the expected tags: 'http', 'sql'",
        ),
        (invalid(kind=None), "sources[0] (billing): Unable to extract tag using discriminator 'kind'"),
        (invalid(selector=None), "sources[0] (billing).selector: Field required"),
        (
            invalid(selector="$.data["),
            "sources[0] (billing).selector: '$.data[' is not a valid JSONPath: Parse error near the end of string!",
        ),
        (invalid(url="ftp://example.com/x"), "sources[0] (billing).url: must be an absolute http:// or https:// URL"),
        (invalid(url="https://me:pw@example.com/x"), "sources[0] (billing).url: must not carry credentials"),
        (invalid(window={"starts_on": "2026-09-30", "ends_on": "2026-07-01"}), "sources[0] (billing).window: ends_on 2026-07-01 is before"),
        (invalid(interval_s=0), "sources[0] (billing).interval_s: Input should be greater than 0"),
        (invalid(name="bill ing"), "sources[0] (bill ing).name: String should match pattern"),
        (invalid(unit="u" * 41), "sources[0] (billing).unit: String should have at most 40 characters"),
        (invalid(headers={"Bad Header": "x"}), "sources[0] (billing).headers: 'Bad Header' is not a valid header name"),
        (invalid(colour="blue"), "sources[0] (billing).colour: Extra inputs are not permitted"),
        (invalid(name="warehouse"), "sources: source names must be unique; repeated: warehouse"),
        ({"sources": []}, "sources: List should have at least 1 item after validation, not 0"),
        (
            {"sources": [{"kind": "sql", "name": "w", "metric": "m", "dsn_env": "W", "query": " ", "window": WINDOW}]},
            "sources[0] (w).query: must not be blank",
        ),
        (
            {"sources": [{"kind": "sql", "name": "w", "metric": "m", "dsn_env": "postgresql://x", "query": "SELECT 1", "window": WINDOW}]},
            "sources[0] (w).dsn_env: String should match pattern",
        ),
    ],
)
def test_invalid_configs_are_rejected_saying_where_and_why(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(KpiConfigInvalid) as caught:
        KpiConfig.from_data(data, env={"BILLING_TOKEN": "t0k3n"})

    assert problem in str(caught.value)
    assert "t0k3n" not in str(caught.value)


def test_a_dsn_in_the_file_is_rejected_without_repeating_it() -> None:
    source = {"kind": "sql", "name": "w", "metric": "m", "dsn": "postgresql://u:hunter2@db/x", "query": "SELECT 1", "window": WINDOW}

    with pytest.raises(KpiConfigInvalid) as caught:
        KpiConfig.from_data({"sources": [source]})

    assert "sources[0] (w): a DSN does not belong in the file: put it in an environment variable and name that in dsn_env" in str(
        caught.value
    )
    assert "hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("kpi.yaml", "sources: [unclosed", "is not valid YAML"),
        ("kpi.json", '{"sources": ', "is not valid JSON: Expecting value: line 1 column 13"),
        ("kpi.toml", "sources = []", "must be .json, .yaml or .yml, not .toml"),
        ("kpi.yml", "- kind: http", "must hold a mapping with a `sources` list, not list"),
        ("kpi.yml", "", "must hold a mapping with a `sources` list, not NoneType"),
    ],
)
def test_unreadable_files_are_rejected_by_name(tmp_path: Path, name: str, text: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(KpiConfigInvalid, match=r"KPI config .*kpi\.") as caught:
        KpiConfig.load(path)

    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_a_missing_file_is_rejected_by_name(tmp_path: Path) -> None:
    with pytest.raises(KpiConfigInvalid, match=r"cannot read KPI config .*absent\.yaml: No such file or directory"):
        KpiConfig.load(tmp_path / "absent.yaml")

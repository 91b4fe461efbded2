"""A stream of inputs through the whole system, what a portfolio ends up as, and a clean run to compare with.

The stream mixes what enters okrstream from outside: check-ins over the checkins API (each
with an `Idempotency-Key`, retried while the service is away, as a client would), KPI
samples on `okr.metrics.v1`, and Jira webhooks to the connectors (signed, retried with
the same delivery id, as Jira does). Each key result has one off-track episode (raised,
then resolved) and `churn` ends off-track, so alerts and notifications are part of it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from okr_contracts.envelope import Envelope
from okr_contracts.metrics import KpiSampled
from okr_contracts.topics import ALERTS_TOPIC, KR_EVENTS_TOPIC, METRICS_TOPIC, SCORES_TOPIC

INPUTS = 120
NODES = ("grow", "activation", "reliability", "activated", "churn", "uptime", "signups")
CHECKED_IN = ("activated", "churn", "uptime")
START = datetime.now(UTC) - timedelta(hours=2)


@dataclass(frozen=True)
class Input:
    """One thing arriving from outside: a check-in, a KPI sample or a Jira webhook."""

    kind: str
    index: int
    body: Any


def inputs(pid: str, vendors: Any) -> list[Input]:
    """The stream for portfolio `pid`: the same shape and values for every portfolio."""
    kinds = ["kpi" if i % 6 == 5 else "jira" if i % 10 == 8 else "checkin" for i in range(INPUTS)]
    krs = [CHECKED_IN[n % 3] for n in range(kinds.count("checkin"))]
    total, seen, stream = Counter(krs), Counter[str](), []
    for i, kind in enumerate(kinds):
        if kind == "kpi":
            sample = KpiSampled(
                metric=f"signups-{pid}",
                portfolio_id=pid,
                value=100 + i,
                unit="signups",
                observed_at=START + timedelta(seconds=i),
                source="http:f",
            )
            stream.append(Input(kind, i, Envelope.wrap(sample, producer="connectors", occurred_at=sample.observed_at)))
        elif kind == "jira":
            stream.append(Input(kind, i, vendors.jira_done(pid, i, START + timedelta(seconds=i))))
        else:
            kr = krs[sum(seen.values())]
            j, n = seen[kr], total[kr]
            seen[kr] += 1
            low = n // 3 <= j < n // 3 + 3 or (kr == "churn" and j >= n - 2)
            value = {"activated": 20 + 15 * j / n, "churn": 5 - 2 * j / n, "uptime": 99.95 if j % 4 else 99.5}[kr]
            body = {"confidence": 0.3 if low else 0.7, "value": round(value, 4), "what_changed": f"Step {i}."}
            stream.append(Input(kind, i, (kr, body)))
    return stream


def _retry(send: Callable[[], httpx.Response], ok: tuple[int, ...], timeout_s: float = 120) -> None:
    """A client's retry while the service is away or failing; the request carries what makes a repeat harmless."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = send()
            if response.status_code in ok:
                return
            assert response.status_code >= 500, response.text
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the service did not come back"
        time.sleep(0.2)


def feed(system: Any, pid: str, items: list[Input], vendors: Any, *, twice: bool = False) -> None:
    """Send each input (twice each with `twice`: the same request, delivery or record again)."""
    for item in items:
        for copy in range(2 if twice else 1):
            if item.kind == "checkin":
                kr, body = item.body
                headers = {"Idempotency-Key": f"{pid}-{item.index}"}
                with system.api("checkins", "ana@example.com") as ana:
                    url = f"/v1/portfolios/{pid}/key-results/{kr}/check-ins"
                    _retry(partial(ana.post, url, json=body, headers=headers), (200, 201))
            elif item.kind == "kpi":
                envelope = item.body
                system.publish(METRICS_TOPIC.name, envelope.to_json_bytes(), METRICS_TOPIC.key_for(envelope), envelope.headers())
            else:
                delivery = f"{pid}-{item.index}" + ("-again" if copy else "")
                headers = vendors.jira_signed(item.body, delivery)
                with httpx.Client(base_url=system.urls["connectors"], timeout=10) as jira:
                    _retry(partial(jira.post, "/webhooks/jira", content=item.body, headers=headers), (200,))


def _get(system: Any, service: str, path: str) -> Any:
    try:
        with system.api(service) as client:
            response = client.get(path)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def _state(text: str) -> str:
    lowered = text.lower()
    return "acknowledged" if "acknowledged" in lowered else "resolved" if "resolved" in lowered else "raised"


def snapshot(system: Any, pid: str, vendors: Any) -> dict[str, Any]:
    """What the portfolio ends up as, without its id: every node's score, drift's alerts and delivery, notifications."""
    base = f"/v1/portfolios/{pid}"
    scores = {}
    for node in NODES:
        found = _get(system, "rollup", f"{base}/nodes/{node}") or {}
        scores[node] = (found.get("status"), round(found.get("progress") or 0, 9), found.get("confidence"))
    alerts = _get(system, "drift", f"{base}/alerts?state=open&state=acknowledged&state=resolved&limit=200") or {"items": []}
    delivery = _get(system, "drift", f"{base}/key-results/activated/delivery") or {"items": []}
    slack = Counter((p["channel"].rsplit("-", 1)[1], _state(p["text"])) for p in vendors.slack.to(f"U-{pid}-"))
    mail = Counter((str(m["To"]).split("+")[0], str(m["Subject"]).replace(pid, "P")) for m in vendors.mailbox.to(pid))
    return {
        "scores": scores,
        "alerts": sorted((a["rule"], a["node_id"], a["state"]) for a in alerts["items"]),
        "delivery": sorted((i["key"].rsplit("-", 1)[1], i["status_category"]) for i in delivery["items"]),
        "slack": sorted(slack.items()),
        "mail": sorted(mail.items()),
    }


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """The topic's partitions as the cluster has them now (a consumer's own metadata knows only topics it asked about)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [description] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if description.get("error_code"):
        return []
    return sorted(p["partition"] for p in description["partitions"])


def read_all(bootstrap: str, topic: str, pid: str) -> list[Any]:
    """Every record of `topic` up to its end now whose key is `pid` or starts with `pid/`."""

    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
            if not partitions:
                return []
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            await consumer.seek_to_beginning(*partitions)
            seen: list[Any] = []
            async with asyncio.timeout(60):  # a fresh consumer's first fetches may come back empty: read up to the ends taken above
                while not all([await consumer.position(p) >= ends[p] for p in partitions]):
                    batches = await consumer.getmany(timeout_ms=500)
                    seen += [r for records in batches.values() for r in records if r.key.decode().split("/")[0] == pid]
            return seen
        finally:
            await consumer.stop()

    return asyncio.run(run())


def published(bootstrap: str, pid: str) -> dict[str, Any]:
    """What reached the topics for `pid`: history positions, and distinct score and alert events."""
    history = read_all(bootstrap, KR_EVENTS_TOPIC.name, pid)
    scores = read_all(bootstrap, SCORES_TOPIC.name, pid)
    alerts = read_all(bootstrap, ALERTS_TOPIC.name, pid)
    # A record without the envelope's headers is not an event (the poison test's), and is not counted.
    return {
        "positions": sorted({int(h["okr-chain-position"]) for h in headers_of(history) if "okr-chain-position" in h}),
        "scores": len({h["okr-event-id"] for h in headers_of(scores) if "okr-event-id" in h}),
        "alerts": len({h["okr-event-id"] for h in headers_of(alerts) if "okr-event-id" in h}),
    }


def headers_of(records: list[Any]) -> list[dict[str, bytes]]:
    return [dict(r.headers) for r in records]


@dataclass
class Reference:
    """A clean run's final state."""

    snapshot: dict[str, Any]
    topics: dict[str, Any]


class Stream:
    """The stream and its checks, bound to one running system."""

    def __init__(self, system: Any, vendors: Any, wait_for: Any, define: Any, portfolios: list[str]) -> None:
        self.system, self.vendors, self.wait_for, self.define = system, vendors, wait_for, define
        self.free = list(portfolios)
        self.clean: Reference | None = None

    def portfolio(self) -> str:
        """A fresh, routed portfolio with its definitions in place."""
        pid = self.free.pop()
        self.define(self.system, pid)
        return pid

    def inputs(self, pid: str) -> list[Input]:
        return inputs(pid, self.vendors)

    def feed(self, pid: str, items: list[Input], *, twice: bool = False) -> None:
        feed(self.system, pid, items, self.vendors, twice=twice)

    def in_background(self, action: Callable[[], None]) -> threading.Thread:
        """Run `action` (a restart) while the stream goes on."""
        thread = threading.Thread(target=action, daemon=True)
        thread.start()
        return thread

    def read_all(self, topic: str, pid: str) -> list[Any]:
        """Every record of `topic` for `pid` (key `pid` or `pid/…`) up to the topic's end."""
        return read_all(self.system.kafka_bootstrap, topic, pid)

    def snapshot(self, pid: str) -> dict[str, Any]:
        return snapshot(self.system, pid, self.vendors)

    def run_clean(self) -> Reference:
        """The stream on a portfolio of its own with no fault, settled: the reference every fault run must reach."""
        pid = self.portfolio()
        self.feed(pid, self.inputs(pid))
        last: list[dict[str, Any]] = [{}]

        def settled() -> bool:
            now = self.snapshot(pid)
            stable = now == last[0] and now["scores"]["signups"][1] > 0 and len(now["alerts"]) == 4 and len(now["delivery"]) > 0
            last[0] = now
            if not stable:
                time.sleep(1.5)
            return stable

        self.wait_for(settled, timeout_s=90)
        return Reference(last[0], published(self.system.kafka_bootstrap, pid))

    def converged(self, pid: str) -> None:
        """The portfolio reaches the clean run's state, stays there, and the topics hold no loss and no duplicate."""
        assert self.clean is not None
        clean = self.clean
        last: list[dict[str, Any]] = [{}]

        def same() -> bool:
            last[0] = self.snapshot(pid)
            return last[0] == clean.snapshot

        try:
            self.wait_for(same, timeout_s=60)
        except AssertionError:
            assert last[0] == clean.snapshot  # shows the difference
        time.sleep(1.5)  # a late duplicate notification or alert would show now
        assert self.snapshot(pid) == clean.snapshot
        topics = published(self.system.kafka_bootstrap, pid)
        assert topics == clean.topics
        assert topics["positions"] == list(range(1, len(topics["positions"]) + 1))


@pytest.fixture(scope="module")
def stream_factory(vendors: Any, wait_for: Any, portfolio_defined: Any) -> Callable[[Any, list[str]], Stream]:
    """`stream_factory(system, portfolios)`: the stream over a running system whose notifier routes `portfolios`."""

    def make(system: Any, portfolios: list[str]) -> Stream:
        return Stream(system, vendors, wait_for, portfolio_defined, portfolios)

    return make


def dump(value: Any) -> str:
    """A readable form for an assertion message."""
    return json.dumps(value, indent=1, default=str)

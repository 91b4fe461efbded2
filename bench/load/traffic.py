"""The soak's traffic: many portfolios set up through the API, then check-ins, signed Jira webhooks and KPI samples at fixed rates.

The portfolios, tokens and check-ins are bench/checkins' seeded scenario (each check-in sent by
the key result's owner, half with a value); each portfolio also gets a key result bound to a KPI
and a Jira project mapped to it in the connectors. The generator runs in a process of its own, so
its work does not share the interpreter lock of the measurements (bench/load/run.py).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from okr_contracts.envelope import Envelope
from okr_contracts.metrics import KpiSampled
from okr_contracts.topics import METRICS_TOPIC

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from checkins.scenario import Call, Scenario, build_scenario
from connectors.deliveries import Workload, build

JIRA_SECRET = "soak-jira-secret"  # noqa: S105 (the secret the soak signs with and configures the service with)
PROBE_KR = "probe"
CHUNK = 100


@dataclass(frozen=True)
class Rates:
    """Requests (or samples) per second of each kind of traffic, and for how long."""

    checkins: float
    webhooks: float
    kpi: float
    seconds: float


@dataclass
class Stream:
    """What one kind of traffic achieved: sent, answered well, failed, and each answer's latency."""

    sent: int = 0
    ok: int = 0
    failed: int = 0
    late: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        """Count a failure by its reason."""
        self.failed += 1
        self.errors[reason] = self.errors.get(reason, 0) + 1


def scenario(portfolios: int, krs: int, checkins: int, seed: int) -> Scenario:
    """bench/checkins' workload, plus per portfolio a KPI-bound key result, and the probe key result in the first."""
    found = build_scenario(portfolios=portfolios, krs_per_portfolio=krs, checkins=checkins, value_share=0.5, seed=seed)
    for calls in found.setup:
        pid = calls[0].body["portfolio_id"]
        lead = f"bench-token-lead@{pid}.acme.example"
        body = {"objective_id": "o1", "baseline": 1000.0, "target": 2000.0, "owner": f"pm1@{pid}.acme.example"}
        kpi = body | {"kr_id": "kpi", "title": "Grow weekly active users from 1000 to 2000", "kpi_binding": metric_of(pid)}
        calls.append(Call(f"/v1/portfolios/{pid}/key-results", lead, kpi))
        if pid == probe_portfolio(found):
            probe = body | {"kr_id": PROBE_KR, "title": "Raise probe conversion from 1000 to 2000 (the soak's latency probe)"}
            calls.append(Call(f"/v1/portfolios/{pid}/key-results", lead, probe))
    return found


def probe_portfolio(found: Scenario) -> str:
    """The portfolio the latency probe checks in on (the first)."""
    pid: str = found.setup[0][0].body["portfolio_id"]
    return pid


def probe_token(found: Scenario) -> str:
    """The probe key result's owner's token."""
    return f"bench-token-pm1@{probe_portfolio(found)}.acme.example"


def metric_of(portfolio_id: str) -> str:
    """The KPI a portfolio's `kpi` key result is bound to."""
    return f"weekly-active-users-{portfolio_id}"


def project_of(index: int) -> str:
    """The Jira project of the index-th portfolio (mapped to its first key result)."""
    return f"SOAK{index:02d}"


def set_up(found: Scenario, checkins_url: str) -> int:
    """Every setup call, in order, through the checkins API; returns how many."""
    done = 0
    with httpx.Client(base_url=checkins_url, timeout=30) as client:
        for calls in found.setup:
            for call in calls:
                answer = client.post(call.path, json=call.body, headers={"Authorization": f"Bearer {call.token}"})
                if answer.status_code != 201:
                    raise RuntimeError(f"setup {call.path}: {answer.status_code} {answer.text[:300]}")
                done += 1
    return done


def generate(found: Scenario, rates: Rates, urls: dict[str, str], bootstrap: str, portfolios: list[str]) -> dict[str, Any]:
    """Send the traffic for `rates.seconds` (a process of its own); returns each stream's figures."""
    return asyncio.run(_generate(found, rates, urls, bootstrap, portfolios))


async def _generate(found: Scenario, rates: Rates, urls: dict[str, str], bootstrap: str, portfolios: list[str]) -> dict[str, Any]:
    streams = {"checkins": Stream(), "webhooks": Stream(), "kpi": Stream()}
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, client_id="soak-kpi")
    await producer.start()
    start = time.monotonic() + 0.5
    try:
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            await asyncio.gather(
                _paced(start, rates.checkins, rates.seconds, streams["checkins"], _checkin_sender(client, urls["checkins"], found)),
                _paced(start, rates.webhooks, rates.seconds, streams["webhooks"], _webhook_sender(client, urls["connectors"], portfolios)),
                _paced(start, rates.kpi, rates.seconds, streams["kpi"], _kpi_sender(producer, portfolios)),
            )
    finally:
        await producer.stop()
    elapsed = time.monotonic() - start
    return {name: vars(stream) | {"elapsed_s": elapsed} for name, stream in streams.items()}


async def _paced(start: float, rate: float, seconds: float, stream: Stream, send: Any, in_flight: int = 64) -> None:
    """Open loop: the n-th request starts at `start + n / rate`, however long earlier ones take (up to `in_flight` at once)."""
    if rate <= 0:
        return
    slots = asyncio.Semaphore(in_flight)
    tasks: set[asyncio.Task[None]] = set()
    total = int(rate * seconds)
    for n in range(total):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.1:
            stream.late += 1
        await slots.acquire()
        task = asyncio.create_task(_one(send, n, stream, slots))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)


async def _one(send: Any, n: int, stream: Stream, slots: asyncio.Semaphore) -> None:
    began = time.perf_counter()
    stream.sent += 1
    try:
        await send(n)
        stream.ok += 1
        stream.latencies_ms.append((time.perf_counter() - began) * 1000)
    except Exception as exc:  # a failed request is counted by reason, not raised: the soak goes on
        stream.fail(type(exc).__name__ + (f" {exc}" if isinstance(exc, _Refused) else ""))
    finally:
        slots.release()


class _Refused(Exception):
    """The service answered with an error status."""


def _checkin_sender(client: httpx.AsyncClient, url: str, found: Scenario) -> Any:
    async def send(n: int) -> None:
        call = found.checkins[n % len(found.checkins)]
        answer = await client.post(url + call.path, json=call.body, headers={"Authorization": f"Bearer {call.token}"})
        if answer.status_code != 201:
            raise _Refused(str(answer.status_code))

    return send


def _webhook_sender(client: httpx.AsyncClient, url: str, portfolios: list[str]) -> Any:
    """Jira `jira:issue_updated` deliveries (each a different issue), built CHUNK at a time, the project rotating per chunk."""
    chunks: dict[int, list[Any]] = {}
    tag = f"soak{int(time.time())}"

    async def send(n: int) -> None:
        chunk = n // CHUNK
        if chunk not in chunks:
            project = project_of(chunk % len(portfolios))
            chunks[chunk] = build(Workload(tag, project, JIRA_SECRET, datetime.now(UTC), chunk * CHUNK, CHUNK))
            chunks.pop(chunk - 2, None)
        delivery = chunks[chunk][n % CHUNK]
        answer = await client.post(f"{url}/webhooks/jira", content=delivery.body, headers=delivery.headers)
        if answer.status_code not in (200, 202):
            raise _Refused(str(answer.status_code))

    return send


def _kpi_sender(producer: AIOKafkaProducer, portfolios: list[str]) -> Any:
    """A KPI sample on okr.metrics.v1, as the connectors' KPI pull publishes it, the portfolio rotating."""

    async def send(n: int) -> None:
        pid = portfolios[n % len(portfolios)]
        sample = KpiSampled(
            metric=metric_of(pid), portfolio_id=pid, value=1000.0 + n % 997, observed_at=datetime.now(UTC), source="http:soak"
        )
        envelope = Envelope.wrap(sample, producer="connectors")
        await producer.send_and_wait(METRICS_TOPIC.name, envelope.to_json_bytes(), key=METRICS_TOPIC.key_of(sample).encode())

    return send

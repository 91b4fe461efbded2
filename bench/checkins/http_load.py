"""The HTTP side: the check-in API served by uvicorn on a free local port, and a pool of concurrent httpx clients.

The server runs in a thread of the benchmark's process; the clients run in a
child process (`client_process`), so the service's figures are not limited by
the client's own work under the same interpreter lock.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from scenario import Call

from okr_checkins.application import CheckinsApplication
from okr_checkins.http import install_api
from okr_runtime.auth import Authenticator, TokenEntry
from okr_runtime.problems import install_problem_handlers
from okr_runtime.telemetry import Telemetry


@dataclass(frozen=True)
class LoadResult:
    """How a batch of requests went: completion times (from the start) and latencies, in seconds."""

    finished: list[float]
    latencies: list[float]
    client_cpu_s: float = 0.0

    @property
    def client_busy(self) -> float:
        """Share of one core the client process used (near 1.0 would mean the client, not the service, set the pace)."""
        return self.client_cpu_s / self.seconds if self.seconds else 0.0

    @property
    def seconds(self) -> float:
        """Wall time from the first request sent to the last answer."""
        return max(self.finished, default=0.0)

    def rate(self, first: float = 0.0, last: float = 1.0) -> float:
        """Requests per second between two fractions of the run (0.0-1.0 is all of it)."""
        done = sorted(self.finished)
        lo, hi = int(len(done) * first), int(len(done) * last)
        start = done[lo - 1] if lo else 0.0
        return (hi - lo) / (done[hi - 1] - start) if hi > lo and done[hi - 1] > start else 0.0

    def latency_ms(self, quantile: float) -> float:
        """A latency quantile in milliseconds."""
        if len(self.latencies) < 2:
            return sum(self.latencies) * 1000
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[round(quantile * 100) - 1] * 1000


def api_app(checkins: CheckinsApplication, tokens: Sequence[TokenEntry], telemetry: Telemetry) -> FastAPI:
    """The check-in API as the service builds it (problem+json, request tracing), without Kafka or the relay."""
    app = FastAPI()
    install_problem_handlers(app)
    install_api(app, checkins, Authenticator(tokens))
    FastAPIInstrumentor.instrument_app(app, tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    return app


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a free port of 127.0.0.1; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # the protocol lets asyncio set TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@contextmanager
def client_process() -> Iterator[ProcessPoolExecutor]:
    """A child process (spawned, never forked from this threaded process) that runs `drive` and `setup`."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(time.sleep, 0).result()  # pay for the start-up here, not inside a measurement
        yield pool


def drive(base_url: str, calls: Sequence[Call], clients: int, *, idempotency_keys: bool) -> LoadResult:
    """Send `calls` through `clients` concurrent keep-alive connections; every one must answer 201."""
    return asyncio.run(_drive(base_url, calls, clients, idempotency_keys))


def setup(base_url: str, per_portfolio: Sequence[Sequence[Call]], clients: int) -> None:
    """Run each portfolio's setup calls in order, several portfolios at a time."""
    asyncio.run(_setup(base_url, per_portfolio, clients))


async def _setup(base_url: str, per_portfolio: Sequence[Sequence[Call]], clients: int) -> None:
    """`clients` workers, each taking the next portfolio and sending its calls one after the other."""
    async with _client(base_url, clients) as client:
        pending = iter(per_portfolio)

        async def worker() -> None:
            """Set up portfolios until none is left."""
            for calls in pending:
                for call in calls:
                    await _post(client, call, idempotency_keys=False)

        await asyncio.gather(*(worker() for _ in range(clients)))


async def _drive(base_url: str, calls: Sequence[Call], clients: int, idempotency_keys: bool) -> LoadResult:
    """`clients` workers taking the next call as soon as their previous one is answered."""
    finished: list[float] = []
    latencies: list[float] = []
    async with _client(base_url, clients) as client:
        pending = iter(calls)
        start, cpu = time.perf_counter(), time.process_time()

        async def worker() -> None:
            """Send calls until none is left, noting when each was answered."""
            for call in pending:
                sent = time.perf_counter()
                await _post(client, call, idempotency_keys=idempotency_keys)
                now = time.perf_counter()
                latencies.append(now - sent)
                finished.append(now - start)

        await asyncio.gather(*(worker() for _ in range(clients)))
        cpu = time.process_time() - cpu
    return LoadResult(finished, latencies, cpu)


def _client(base_url: str, clients: int) -> httpx.AsyncClient:
    """An HTTP client keeping one connection per worker alive."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0)


async def _post(client: httpx.AsyncClient, call: Call, *, idempotency_keys: bool) -> None:
    """Send one call as its principal; anything but 201 stops the benchmark."""
    headers = {"Authorization": f"Bearer {call.token}"}
    if idempotency_keys:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    response = await client.post(call.path, json=call.body, headers=headers)
    if response.status_code != 201:
        raise RuntimeError(f"POST {call.path} answered {response.status_code}: {response.text[:500]}")

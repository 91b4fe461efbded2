"""PostgreSQL restarted under a running stream: every service on the PostgreSQL event store converges to the clean run.

A module of its own: the services here keep everything in a PostgreSQL of the module's own
(`restartable_postgres`), and the clean run they are compared with ran on the same system.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:6]
PORTFOLIOS = [f"pg-{RUN}-{n}" for n in range(3)]


@pytest.fixture(scope="module")
def stream(restartable_kafka: Any, restartable_postgres: Any, launch: Any, vendors: Any, stream_factory: Any) -> Any:
    """All five services on PostgreSQL (one schema of their own) and the module's broker, and the clean run's reference."""
    store = {"OKR_EVENT_STORE": "postgres", "OKR_POSTGRES_DSN": restartable_postgres.dsn, "OKR_POSTGRES_SCHEMA": f"faults_{RUN}"}
    system = launch(restartable_kafka.bootstrap, portfolios=PORTFOLIOS, slack=vendors.slack, mailbox=vendors.mailbox, env=store)
    found = stream_factory(system, PORTFOLIOS)
    found.clean = found.run_clean()
    return found


def test_postgresql_restarted_mid_stream_loses_and_repeats_nothing(stream: Any, restartable_postgres: Any) -> None:
    pid = stream.portfolio()
    items = stream.inputs(pid)
    half = len(items) // 2
    stream.feed(pid, items[:half])
    restartable_postgres.stop()
    restart = stream.in_background(restartable_postgres.start)
    stream.feed(pid, items[half:])  # check-ins and webhooks answer 5xx until the database is back; the client retries
    restart.join(120)
    stream.converged(pid)

"""Test infrastructure shared by every suite: real Kafka and PostgreSQL for one test session.

Each comes from, in order: the environment (``OKR_KAFKA_BOOTSTRAP``,
``OKR_POSTGRES_DSN``) when set; testcontainers when a Docker engine answers; the
project's own scripts in ``deploy/local/`` otherwise (on ports of their own, so a
running ``make run`` is left alone). A test that needs them is marked
``integration`` (or ``e2e``); unmarked tests are ``unit`` and need nothing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

ROOT = Path(__file__).resolve().parent
TEST_KAFKA_PORT = "29092"
TEST_KAFKA_CONTROLLER_PORT = "29093"
TEST_POSTGRES_PORT = "25432"
KAFKA_IMAGE = "apache/kafka:4.1.2"
POSTGRES_IMAGE = "postgres:15"


INFRASTRUCTURE: dict[str, str] = {}
"""What the session's infrastructure fixtures used, reported at the end of the run."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--screenshots DIR`: the browser tests save each page they visit there (`make screenshots`)."""
    parser.addoption("--screenshots", default=None, metavar="DIR", help="save the browser tests' screenshots in DIR")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which real servers the integration tests ran against."""
    if INFRASTRUCTURE:
        terminalreporter.section("infrastructure")
        for name, where in INFRASTRUCTURE.items():
            terminalreporter.write_line(f"{name}: {where}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Unmarked tests are unit tests."""
    for item in items:
        if not any(item.get_closest_marker(m) for m in ("integration", "e2e")):
            item.add_marker(pytest.mark.unit)


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    return probe.returncode == 0


def _script(name: str, command: str, env: dict[str, str]) -> str:
    """Run a deploy/local script and return what it printed on stdout (bootstrap or DSN)."""
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "local" / name), command],
        env={**os.environ, "OKR_STATE_DIR": str(ROOT / ".local" / "test"), **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{name} {command} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout.strip()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker, shared by the whole session."""
    if bootstrap := os.environ.get("OKR_KAFKA_BOOTSTRAP"):
        INFRASTRUCTURE["kafka"] = f"{bootstrap} (from OKR_KAFKA_BOOTSTRAP)"
        yield bootstrap
    elif _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
            INFRASTRUCTURE["kafka"] = f"{container.get_bootstrap_server()} (testcontainers, {KAFKA_IMAGE})"
            yield container.get_bootstrap_server()
    else:
        env = {
            "OKR_KAFKA_PORT": TEST_KAFKA_PORT,
            "OKR_KAFKA_CONTROLLER_PORT": TEST_KAFKA_CONTROLLER_PORT,
            "OKR_KAFKA_RECLAIM_PORTS": "1",  # a killed run in another clone may have left its broker here
        }
        bootstrap = _script("kafka.sh", "start", env)
        INFRASTRUCTURE["kafka"] = f"{bootstrap} (Apache Kafka started by deploy/local/kafka.sh)"
        try:
            yield bootstrap
        finally:
            _script("kafka.sh", "stop", env)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a real PostgreSQL database, shared by the whole session."""
    if dsn := os.environ.get("OKR_POSTGRES_DSN"):
        INFRASTRUCTURE["postgresql"] = "from OKR_POSTGRES_DSN"
        yield dsn
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer(POSTGRES_IMAGE, driver=None) as container:
            INFRASTRUCTURE["postgresql"] = f"testcontainers, {POSTGRES_IMAGE}"
            yield container.get_connection_url()
    else:
        env = {"OKR_POSTGRES_PORT": TEST_POSTGRES_PORT, "OKR_POSTGRES_RECLAIM_PORT": "1"}
        dsn = _script("postgres.sh", "start", env)
        INFRASTRUCTURE["postgresql"] = f"{dsn} (started by deploy/local/postgres.sh)"
        try:
            yield dsn
        finally:
            _script("postgres.sh", "stop", env)


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """A fresh, empty schema in the session's PostgreSQL, dropped after the test: tables of one test never meet another's."""
    import psycopg
    from psycopg import sql

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield schema
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@dataclass
class LocalKafka:
    """A broker started by deploy/local/kafka.sh that a test may stop and start again (same data, same port)."""

    env: dict[str, str]
    bootstrap: str = ""

    def start(self) -> str:
        self.bootstrap = _script("kafka.sh", "start", self.env)
        return self.bootstrap

    def stop(self) -> None:
        _script("kafka.sh", "stop", self.env)


@pytest.fixture(scope="module")
def restartable_kafka() -> Iterator[LocalKafka]:
    """A Kafka broker of the module's own, apart from the session's, so stopping it disturbs no other test."""
    kafka = LocalKafka({"OKR_KAFKA_PORT": "29094", "OKR_KAFKA_CONTROLLER_PORT": "29095", "OKR_KAFKA_RECLAIM_PORTS": "1"})
    kafka.start()
    INFRASTRUCTURE["kafka (restartable)"] = f"{kafka.bootstrap} (started by deploy/local/kafka.sh, stopped and restarted by tests)"
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def unique() -> str:
    """A short id unique to this test, for topic names, groups and portfolio ids on shared infrastructure."""
    return uuid.uuid4().hex[:12]


def wait_until(check: Callable[[], bool], timeout_s: float = 60) -> None:
    """Poll `check` every 0.1 s until it holds; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """`wait_for(check, timeout_s=60)`: poll until `check()` holds (a service consumed, a message arrived)."""
    return wait_until


ReadTopic = Callable[..., list[Any]]


def read_topic(
    bootstrap: str, topic_name: str, done: Callable[[list[Any]], bool], *, key: bytes | None = None, timeout_s: float = 90
) -> list[Any]:
    """Records of a topic from the beginning (only those with `key`, if given) until `done` says enough."""

    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(topic_name, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        seen: list[Any] = []
        try:
            async with asyncio.timeout(timeout_s):
                while not done(seen):
                    batches = await consumer.getmany(timeout_ms=500)
                    seen += [r for records in batches.values() for r in records if key is None or r.key == key]
        finally:
            await consumer.stop()
        return seen

    return asyncio.run(run())


@pytest.fixture
def consume() -> ReadTopic:
    """`consume(bootstrap, topic, done, key=None, timeout_s=90)`: read a topic from its start until `done(records)`."""
    return read_topic

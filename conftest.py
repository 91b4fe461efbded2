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
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI

from okr_checkins.application import CheckinsApplication
from okr_contracts.export import envelope_of
from okr_contracts.topics import KR_EVENTS_TOPIC, SCORES_TOPIC
from okr_drift.application import DriftService
from okr_drift.store import SqliteDriftStore
from okr_rollup.application import RollupService
from okr_rollup.store import ScoreStore, SqliteScoreStore
from okr_runtime.health import health_router
from okr_runtime.problems import install_problem_handlers

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
    kafka.stop()  # a broker left by a killed run, then its data: each module starts from empty topics, not an earlier run's backlog
    shutil.rmtree(ROOT / ".local" / "test" / "kafka-29094", ignore_errors=True)
    kafka.start()
    INFRASTRUCTURE["kafka (restartable)"] = f"{kafka.bootstrap} (started by deploy/local/kafka.sh, stopped and restarted by tests)"
    try:
        yield kafka
    finally:
        kafka.stop()


@dataclass
class LocalPostgres:
    """A PostgreSQL started by deploy/local/postgres.sh that a test may stop and start again (same data, same port)."""

    env: dict[str, str]
    dsn: str = ""

    def start(self) -> str:
        self.dsn = _script("postgres.sh", "start", self.env)
        return self.dsn

    def stop(self) -> None:
        _script("postgres.sh", "stop", self.env)


@pytest.fixture(scope="module")
def restartable_postgres() -> Iterator[LocalPostgres]:
    """A PostgreSQL of the module's own, apart from the session's, so restarting it disturbs no other test."""
    postgres = LocalPostgres({"OKR_POSTGRES_PORT": "25434", "OKR_POSTGRES_RECLAIM_PORT": "1"})
    postgres.start()
    INFRASTRUCTURE["postgresql (restartable)"] = f"{postgres.dsn} (started by deploy/local/postgres.sh, restarted by tests)"
    try:
        yield postgres
    finally:
        postgres.stop()


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


@pytest.fixture(scope="session")  # stateless, so module- and session-scoped fixtures may wait too
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


async def read_committed_offset(bootstrap: str, group: str, topic_name: str, partition: int = 0) -> int | None:
    """The offset consumer group `group` committed on one partition of a topic (None if it committed none)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic_name, partition))  # type: ignore[no-any-return]
    finally:
        await consumer.stop()


@pytest.fixture
def committed_offset() -> Callable[..., Awaitable[int | None]]:
    """`await committed_offset(bootstrap, group, topic, partition=0)`: what a consumer group committed there."""
    return read_committed_offset


# --- The services in process, without Kafka (the CLI's and the web pages' tests) ---------------------------------

IN_PROCESS_START = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
"""Nine in the morning (UTC) of the first Monday of the in-process stories' quarter (2026-q4)."""


class Clock:
    """The time checkins records at and drift evaluates at, moved by the tests."""

    def __init__(self) -> None:
        self.now = IN_PROCESS_START

    def __call__(self) -> datetime:
        return self.now


class Relay:
    """The checkins outbox and Kafka in miniature, delivering in order what checkins stored since the last call."""

    def __init__(self, checkins: CheckinsApplication, scores: ScoreStore, drift: DriftService) -> None:
        self.checkins, self.drift = checkins, drift
        self.rollup = RollupService(scores, self._to_drift)
        self.delivered: dict[str, int] = {}

    def __call__(self, portfolio_id: str) -> None:
        """Deliver the portfolio's new history records to the rollup and drift (and the scores they produce to drift)."""
        asyncio.run(self._deliver(portfolio_id))

    def tick(self) -> None:
        """Drift's clock tick: every node evaluated at the clock's time."""
        asyncio.run(self.drift.tick())

    async def _deliver(self, portfolio_id: str) -> None:
        for record in self.checkins.records(portfolio_id, after=self.delivered.get(portfolio_id, 0)):
            envelope = KR_EVENTS_TOPIC.decode(envelope_of(record).to_json_bytes())
            await self.rollup.handle(envelope)
            await self.drift.on_history(envelope)
            self.delivered[portfolio_id] = int(record["position"])

    async def _to_drift(self, records: Sequence[tuple[str, bytes]]) -> None:
        for _, value in records:
            await self.drift.on_score(SCORES_TOPIC.decode(value))


async def _discard(records: Sequence[tuple[str, bytes]]) -> None:
    """Drift's alert events go nowhere: its store is what its API reads."""


@pytest.fixture
def served() -> Callable[[Callable[[FastAPI], None]], FastAPI]:
    """`served(install)`: an app with problem+json answers, the health probes every service has, and one service's routes."""

    def build(install: Callable[[FastAPI], None]) -> FastAPI:
        app = FastAPI()
        install_problem_handlers(app)
        app.include_router(health_router({}))
        install(app)
        return app

    return build


@pytest.fixture
def clock() -> Clock:
    """The in-process services' clock, at `IN_PROCESS_START` until a test moves it."""
    return Clock()


@pytest.fixture
def checkins(tmp_path: Path, clock: Clock) -> Iterator[CheckinsApplication]:
    """Checkins over a SQLite event store, recording at the test's clock."""
    application = CheckinsApplication(
        {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "history.sqlite")}, clock=clock
    )
    yield application
    application.close()


@pytest.fixture
def scores(tmp_path: Path) -> Iterator[ScoreStore]:
    """The rollup's score store."""
    store = SqliteScoreStore(tmp_path / "rollup.sqlite")
    yield store
    store.close()


@pytest.fixture
def drift(tmp_path: Path, clock: Clock) -> Iterator[DriftService]:
    """Drift over a SQLite store, evaluating at the test's clock."""
    store = SqliteDriftStore(tmp_path / "drift.sqlite")
    yield DriftService(store, _discard, clock)
    store.close()


@pytest.fixture
def relay(checkins: CheckinsApplication, scores: ScoreStore, drift: DriftService) -> Relay:
    """`relay(portfolio_id)` delivers what checkins stored to the rollup and drift; `relay.tick()` is drift's clock tick."""
    return Relay(checkins, scores, drift)

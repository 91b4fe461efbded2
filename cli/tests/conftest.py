"""The services' real HTTP layers in process, as the ``okr`` commands talk to them.

Checkins runs over a SQLite event store on a clock the tests move; a relay plays the
outbox and Kafka: each newly stored history record goes, as its okr.kr-events.v1
envelope, to the rollup (scoring into a SQLite score store) and to drift, and the
rollup's score records go on to drift. The connectors keep portfolios' mappings in
their SQLite store. `okr` runs a command with CliRunner, each service reached through
a TestClient over its app.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from okr_checkins.application import CheckinsApplication
from okr_checkins.http import install_api as install_checkins
from okr_cli.api import Connect
from okr_cli.main import app as okr_app
from okr_connectors.http import install_api as install_connectors
from okr_connectors.mapping import Mapping
from okr_connectors.portfolio_mappings import LiveMapping
from okr_connectors.settings import ConnectorsSettings
from okr_connectors.store import ConnectorStore, SqliteConnectorStore
from okr_connectors.webhooks import Webhooks
from okr_contracts.export import envelope_of
from okr_contracts.topics import KR_EVENTS_TOPIC, SCORES_TOPIC
from okr_drift.application import DriftService
from okr_drift.http import install_api as install_drift
from okr_drift.store import SqliteDriftStore
from okr_rollup.application import RollupService
from okr_rollup.http import install_api as install_rollup
from okr_rollup.store import ScoreStore, SqliteScoreStore
from okr_runtime.auth import Authenticator, TokenEntry, TokenRole, hash_token
from okr_runtime.problems import install_problem_handlers

START = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
"""Nine in the morning of the first Monday of the demo's cycle (2026-q4, October to December)."""
DEMO = Path(__file__).resolve().parents[2] / "deploy" / "local" / "demo" / "portfolio.yaml"
TOKENS = [
    TokenEntry(sha256=hash_token("t-cpo"), principal="cpo@example.com", roles=frozenset({TokenRole.PORTFOLIO_LEAD})),
    TokenEntry(sha256=hash_token("t-elsewhere"), principal="cpo@example.com", portfolios=frozenset({"other"})),
]
"""The demo's portfolio lead, and the same person with a token that reaches only portfolio `other`."""


class Clock:
    """The time checkins records at and drift evaluates at, moved by the tests."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def served(install: Callable[[FastAPI], None]) -> FastAPI:
    """An app with problem+json answers and one service's routes, authenticated by `TOKENS`."""
    app = FastAPI()
    install_problem_handlers(app)
    install(app)
    return app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def checkins(tmp_path: Path, clock: Clock) -> Iterator[CheckinsApplication]:
    application = CheckinsApplication(
        {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "history.sqlite")}, clock=clock
    )
    yield application
    application.close()


@pytest.fixture
def checkins_app(checkins: CheckinsApplication) -> FastAPI:
    return served(lambda app: install_checkins(app, checkins, Authenticator(TOKENS)))


@pytest.fixture
def api(checkins_app: FastAPI) -> Iterator[TestClient]:
    """A client of the checkins API, signed in as the demo's portfolio lead; it follows no redirect, as `okr apply`'s does not."""
    with TestClient(checkins_app, headers={"Authorization": "Bearer t-cpo"}, follow_redirects=False) as client:
        yield client


@pytest.fixture
def connector_store(tmp_path: Path) -> Iterator[ConnectorStore]:
    """The connectors' store, where portfolios' mappings are kept."""
    store = SqliteConnectorStore(tmp_path / "connectors.sqlite")
    yield store
    store.close()


@pytest.fixture
def connectors_app(connector_store: ConnectorStore) -> FastAPI:
    webhooks = Webhooks(ConnectorsSettings(), connector_store, LiveMapping(Mapping(), connector_store), notify=lambda: None)
    return served(lambda app: install_connectors(app, webhooks, connector_store, Authenticator(TOKENS)))


@pytest.fixture
def connectors(connectors_app: FastAPI) -> Iterator[TestClient]:
    """A client of the connectors API, signed in as the demo's portfolio lead."""
    with TestClient(connectors_app, headers={"Authorization": "Bearer t-cpo"}, follow_redirects=False) as client:
        yield client


@pytest.fixture
def scores(tmp_path: Path) -> Iterator[ScoreStore]:
    """The rollup's score store."""
    store = SqliteScoreStore(tmp_path / "rollup.sqlite")
    yield store
    store.close()


@pytest.fixture
def drift(tmp_path: Path, clock: Clock) -> Iterator[DriftService]:
    store = SqliteDriftStore(tmp_path / "drift.sqlite")
    yield DriftService(store, discard, clock)
    store.close()


async def discard(records: Sequence[tuple[str, bytes]]) -> None:
    """Drift's alert events go nowhere: its store is what the alerts API reads."""


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


@pytest.fixture
def relay(checkins: CheckinsApplication, scores: ScoreStore, drift: DriftService) -> Relay:
    return Relay(checkins, scores, drift)


Okr = Callable[..., Result]


@pytest.fixture
def apps(checkins_app: FastAPI, connectors_app: FastAPI, scores: ScoreStore, drift: DriftService) -> dict[str, FastAPI]:
    """Each service's app by the name `okr_cli.api.connect` knows it by."""
    return {
        "checkins": checkins_app,
        "connectors": connectors_app,
        "rollup": served(lambda app: install_rollup(app, scores, Authenticator(TOKENS))),
        "drift": served(lambda app: install_drift(app, drift, Authenticator(TOKENS))),
    }


@pytest.fixture
def okr(apps: dict[str, FastAPI]) -> Okr:
    """``okr(*args, token="t-cpo", env=None, real=False)``: run a command with CliRunner (250 columns), the services in process.

    Each service's URL reaches its app in process (a TestClient made with the URL and
    the token); ``real=True`` connects for real instead. ``token=None`` runs it without OKR_TOKEN.
    """

    def run(*args: str | Path, token: str | None = "t-cpo", env: dict[str, str] | None = None, real: bool = False) -> Result:
        environment: dict[str, str | None] = {"COLUMNS": "250", "OKR_TOKEN": token, **(env or {})}
        obj = None if real else {name: in_process(app) for name, app in apps.items()}
        return CliRunner().invoke(okr_app, [str(a) for a in args], env=environment, obj=obj)

    return run


def in_process(app: FastAPI) -> Connect:
    """How a command connects to `app`: a TestClient at the URL it was given, with its token."""
    return lambda base_url, token: TestClient(app, base_url=base_url, headers={"Authorization": f"Bearer {token}"}, follow_redirects=False)


@pytest.fixture
def demo(okr: Okr, relay: Relay) -> str:
    """The demo portfolio applied with `okr apply` and delivered to the rollup and drift; its id."""
    applied = okr("apply", DEMO)
    assert applied.exit_code == 0, applied.output
    relay("demo")
    return "demo"


@pytest.fixture
def closed_url() -> str:
    """The URL of a port nothing listens on: it was free a moment ago and was closed again."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def rows() -> Callable[[str], list[list[str]]]:
    """``rows(output)``: the cells of each body row of a printed table (the header is drawn with heavy lines, so left out)."""

    def cells(output: str) -> list[list[str]]:
        return [[cell.strip() for cell in line.split("│")[1:-1]] for line in output.splitlines() if line.startswith("│")]

    return cells

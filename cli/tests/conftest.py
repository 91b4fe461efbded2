"""The services' real HTTP layers in process, as the ``okr`` commands talk to them.

Checkins, the rollup's score store, drift, their clock and the relay that plays the
outbox and Kafka are the root conftest's in-process fixtures. The connectors keep portfolios' mappings in
their SQLite store. `okr` runs a command with CliRunner, each service reached through
a TestClient over its app.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

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
from okr_drift.application import DriftService
from okr_drift.http import install_api as install_drift
from okr_rollup.http import install_api as install_rollup
from okr_rollup.store import ScoreStore
from okr_runtime.auth import Authenticator, TokenEntry, TokenRole, hash_token

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "local" / "demo" / "portfolio.yaml"
TOKENS = [
    TokenEntry(sha256=hash_token("t-cpo"), principal="cpo@example.com", roles=frozenset({TokenRole.PORTFOLIO_LEAD})),
    TokenEntry(sha256=hash_token("t-elsewhere"), principal="cpo@example.com", portfolios=frozenset({"other"})),
]
"""The demo's portfolio lead, and the same person with a token that reaches only portfolio `other`."""
Served = Callable[[Callable[[FastAPI], None]], FastAPI]
"""The root conftest's `served` fixture: an app with one service's routes."""


@pytest.fixture
def checkins_app(checkins: CheckinsApplication, served: Served) -> FastAPI:
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
def connectors_app(connector_store: ConnectorStore, served: Served) -> FastAPI:
    webhooks = Webhooks(ConnectorsSettings(), connector_store, LiveMapping(Mapping(), connector_store), notify=lambda: None)
    return served(lambda app: install_connectors(app, webhooks, connector_store, Authenticator(TOKENS)))


@pytest.fixture
def connectors(connectors_app: FastAPI) -> Iterator[TestClient]:
    """A client of the connectors API, signed in as the demo's portfolio lead."""
    with TestClient(connectors_app, headers={"Authorization": "Bearer t-cpo"}, follow_redirects=False) as client:
        yield client


Okr = Callable[..., Result]


@pytest.fixture
def apps(checkins_app: FastAPI, connectors_app: FastAPI, scores: ScoreStore, drift: DriftService, served: Served) -> dict[str, FastAPI]:
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
def demo(okr: Okr, relay: Any) -> str:
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


@pytest.fixture
def planned(demo: str, api: TestClient, relay: Any, clock: Any) -> str:
    """A day after the demo was applied: checkout-converts is primary, search-finds exploration and takes 6 more sprints of search.

    Search is then over its capacity (7 of 6) and the split (2 primary, 7 exploration) far off 60/30/10. Returns the
    moment just before the change.
    """
    before = clock.now + timedelta(hours=1)
    clock.now += timedelta(days=1)
    for path, body in (
        ("objectives/checkout-converts/classification", {"priority": "primary", "aarrr_stage": "revenue", "horizon": "grow"}),
        ("objectives/search-finds/classification", {"priority": "exploration", "aarrr_stage": "retention"}),
        ("objectives/search-finds/allocations/squad-search", {"sprints": 7}),
    ):
        assert api.put(f"/v1/portfolios/{demo}/{path}", json=body).status_code == 201
    relay(demo)
    return str(before.isoformat())

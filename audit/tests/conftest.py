"""A portfolio's quarter recorded through the real checkins API, and its export: what an auditor starts from."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from okr_checkins.application import CheckinsApplication
from okr_checkins.http import install_api
from okr_checkins.settings import CheckinsSettings
from okr_runtime.auth import Authenticator, TokenEntry, TokenRole, hash_token
from okr_runtime.eventstore import event_store_env
from okr_runtime.problems import install_problem_handlers

START = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
CPO = {"Authorization": "Bearer t-cpo"}
AUDITOR = {"Authorization": "Bearer t-auditor"}


def tokens() -> list[TokenEntry]:
    """The portfolio lead who records everything, and an auditor who only reads and exports."""
    return [
        TokenEntry(sha256=hash_token("t-cpo"), principal="cpo", roles=frozenset({TokenRole.PORTFOLIO_LEAD})),
        TokenEntry(sha256=hash_token("t-auditor"), principal="auditor", roles=frozenset({TokenRole.AUDITOR})),
    ]


class Clock:
    """The time checkins records at, moved by the story."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Story:
    """A quarter of one portfolio, told through the API: definitions, then four weeks of check-ins and changes."""

    client: TestClient
    clock: Clock
    pid: str
    week_ends: list[datetime] = field(default_factory=list)

    def post(self, path: str, body: dict[str, Any]) -> None:
        self.clock.now += timedelta(minutes=1)
        response = self.client.post(f"/v1/portfolios{path}", json=body, headers=CPO)
        assert response.status_code == 201, response.text

    def tell(self) -> Story:
        """Portfolio objective `grow` (KR `reach`, derived) fed by products alpha (weight 2) and beta, then four weeks."""
        self._define()
        for week, step in enumerate((self._week_1, self._week_2, self._week_3, self._week_4), start=1):
            self.clock.now = START + timedelta(days=7 * week)
            step()
            self.week_ends.append(self.clock.now + timedelta(hours=1))
        return self

    def _define(self) -> None:
        p = self.pid
        self.post("", {"portfolio_id": p, "name": "Acme", "owner": "cpo"})
        self.post(f"/{p}/cycles", {"cycle_id": "q3", "name": "Q3", "starts_on": "2026-07-01", "ends_on": "2026-09-30"})
        for product in ("alpha", "beta"):
            self.post(f"/{p}/products", {"product_id": product, "name": product.title(), "lead": "cpo"})
        self.post(f"/{p}/objectives", {"objective_id": "grow", "cycle_id": "q3", "tier": 1, "title": "Grow", "owner": "cpo"})
        self.post(f"/{p}/key-results", {"kr_id": "reach", "objective_id": "grow", "title": "Reach", "kind": "derived", "owner": "cpo"})
        for product, weight in (("alpha", 2), ("beta", 1)):
            objective = {"objective_id": f"o-{product}", "cycle_id": "q3", "tier": 2, "title": f"{product} wins", "owner": "cpo"}
            self.post(f"/{p}/objectives", objective | {"product_id": product, "contributes_to": {"parent_id": "reach", "weight": weight}})
        users = {"kr_id": "users", "objective_id": "o-alpha", "title": "Active users", "baseline": 0, "target": 100, "unit": "k"}
        self.post(f"/{p}/key-results", users | {"owner": "cpo"})
        churn = {"kr_id": "churn", "objective_id": "o-beta", "title": "Reduce churn from 5% to 2%", "baseline": 5, "target": 2}
        self.post(f"/{p}/key-results", churn | {"unit": "%", "owner": "cpo"})
        uptime = {"kr_id": "uptime", "objective_id": "o-beta", "title": "Keep 99.9% uptime", "kind": "threshold", "target": 99.9}
        self.post(f"/{p}/key-results", uptime | {"direction": "at_least", "unit": "%", "owner": "cpo"})

    def _week_1(self) -> None:
        self.check_in("users", 0.6, 30)
        self.check_in("churn", 0.7, 4)

    def _week_2(self) -> None:
        self.check_in("users", 0.5, 45)
        self.post(f"/{self.pid}/key-results/users/target", {"new_target": 120, "reason": "the launch went better than planned"})
        self.post(f"/{self.pid}/key-results/uptime/values", {"value": 99.95})

    def _week_3(self) -> None:
        self.post(f"/{self.pid}/nodes/o-alpha/weight", {"parent_id": "reach", "new_weight": 1, "reason": "equal bets from now on"})
        self.check_in("churn", 0.3, 6)  # the wrong way: raw progress below zero

    def _week_4(self) -> None:
        self.post(f"/{self.pid}/key-results/uptime/values", {"value": 99.5})
        self.check_in("users", 0.8, 90)

    def check_in(self, kr: str, confidence: float, value: float) -> None:
        self.post(f"/{self.pid}/key-results/{kr}/check-ins", {"confidence": confidence, "what_changed": "weekly", "value": value})

    def export(self, path: Path) -> tuple[bytes, dict[str, str]]:
        """The auditor's export of the portfolio, written to `path`; its bytes and response headers."""
        response = self.client.get(f"/v1/portfolios/{self.pid}/export", headers=AUDITOR)
        assert response.status_code == 200, response.text
        path.write_bytes(response.content)
        return response.content, dict(response.headers)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tell() -> Callable[[TestClient, Clock, str], Story]:
    """`tell(client, clock, portfolio_id)`: the story told through any checkins API (an in-process one, or the real service)."""
    return lambda client, clock, pid: Story(client, clock, pid).tell()


@pytest.fixture
def store_vars(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The event store's settings as the service (and `okr audit export --from-store`) read them: SQLite unless
    a test asks for PostgreSQL (``@pytest.mark.parametrize("store_vars", ["postgres"], indirect=True)``)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return {"OKR_EVENT_STORE": "sqlite", "OKR_SQLITE_PATH": str(tmp_path / "history.sqlite")}
    dsn, schema = request.getfixturevalue("postgres_dsn"), request.getfixturevalue("postgres_schema")
    return {"OKR_EVENT_STORE": "postgres", "OKR_POSTGRES_DSN": dsn, "OKR_POSTGRES_SCHEMA": schema}


@pytest.fixture
def checkins_api(store_vars: dict[str, str], clock: Clock) -> Iterator[tuple[TestClient, CheckinsApplication, Clock]]:
    """The checkins HTTP API over the event store of `store_vars`, on a clock the story moves."""
    checkins = CheckinsApplication(event_store_env(CheckinsSettings.model_validate(store_vars)), clock=clock)
    app = FastAPI()
    install_problem_handlers(app)
    install_api(app, checkins, Authenticator(tokens()))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, checkins, clock
    checkins.close()


@pytest.fixture
def story(checkins_api: tuple[TestClient, CheckinsApplication, Clock], tell: Callable[[TestClient, Clock, str], Story]) -> Story:
    client, _, clock = checkins_api
    return tell(client, clock, "acme")


@pytest.fixture
def exported(story: Story, tmp_path: Path) -> Path:
    """The story's history file (its head is in the export's headers, saved by the tests that need it)."""
    path = tmp_path / "acme.history.jsonl"
    story.export(path)
    return path

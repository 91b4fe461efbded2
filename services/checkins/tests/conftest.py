"""Fixtures of the check-in service's tests: the same suite runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg import sql

from okr_checkins.application import CheckinsApplication
from okr_checkins.http import install_api
from okr_runtime.auth import Authenticator, TokenEntry, TokenRole, hash_token
from okr_runtime.problems import install_problem_handlers

PRINCIPALS: dict[str, frozenset[TokenRole]] = {
    "cpo": frozenset({TokenRole.PORTFOLIO_LEAD}),
    "lead.bo": frozenset(),
    "lead.sam": frozenset(),
    "pm.ana": frozenset(),
    "pm.lee": frozenset(),
    "finance": frozenset(),
    "auditor": frozenset({TokenRole.AUDITOR}),
    "connector:kpi": frozenset({TokenRole.CONNECTOR}),
    "stranger": frozenset(),
}
"""The cast: their relations to the seeded portfolio are given by `seed`."""


class Clock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 8, 12, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def token(principal: str) -> str:
    return f"token-of-{principal}"


def as_(principal: str, **headers: str) -> dict[str, str]:
    """Headers of a request sent by `principal`."""
    return {"Authorization": f"Bearer {token(principal)}", **headers}


def authenticator(scoped: dict[str, frozenset[str]] | None = None) -> Authenticator:
    """Tokens for the whole cast; `scoped` limits some to a few portfolios."""
    entries = [
        TokenEntry(sha256=hash_token(token(p)), principal=p, roles=roles, portfolios=(scoped or {}).get(p, frozenset({"*"})))
        for p, roles in PRINCIPALS.items()
    ]
    return Authenticator(entries)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An empty event store: a SQLite file, or a fresh schema in the session's PostgreSQL."""
    if request.param == "sqlite":
        yield {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "history.sqlite")}
        return
    dsn: str = request.getfixturevalue("postgres_dsn")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    from okr_runtime.eventstore import event_store_env
    from okr_runtime.settings import RuntimeSettings

    yield event_store_env(RuntimeSettings(event_store="postgres", postgres_dsn=dsn), schema=schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@dataclass
class Api:
    """The HTTP API over one event store, with the cast's tokens and a hand-moved clock."""

    client: TestClient
    checkins: CheckinsApplication
    clock: Clock
    pid: str = "acme"
    ids: dict[str, str] = field(default_factory=dict)

    def post(self, path: str, body: dict[str, Any], principal: str, **headers: str) -> Any:
        return self.client.post(f"/v1/portfolios{path}", json=body, headers=as_(principal, **headers))

    def put(self, path: str, body: dict[str, Any], principal: str, **headers: str) -> Any:
        return self.client.put(f"/v1/portfolios{path}", json=body, headers=as_(principal, **headers))

    def get(self, path: str, principal: str, **params: Any) -> Any:
        return self.client.get(f"/v1/portfolios{path}", headers=as_(principal), params=params)

    @staticmethod
    def ok(response: Any) -> Any:
        """The JSON of a successful response, or a failure that shows the problem."""
        assert response.status_code in (200, 201), response.text
        return response.json()

    @staticmethod
    def headers(principal: str, **extra: str) -> dict[str, str]:
        """Headers of a request sent by `principal`."""
        return as_(principal, **extra)

    def seed(self) -> Api:
        """Seed the standard portfolio (see `seed`)."""
        return seed(self)

    def stored(self) -> int:
        """How many events the store holds (to prove a rejected command stored nothing)."""
        return self.checkins.recorder.max_notification_id() or 0


@pytest.fixture
def api(store_env: dict[str, str]) -> Iterator[Api]:
    clock = Clock()
    checkins = CheckinsApplication(store_env, clock=clock)
    app = FastAPI()
    install_problem_handlers(app)
    install_api(app, checkins, authenticator())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, checkins, clock)
    checkins.close()


ok = Api.ok


def seed(api: Api) -> Api:
    """A portfolio with two products, two cycles, a team, three tiers of objectives and key results."""
    p = api.pid
    ok(api.post("", {"portfolio_id": p, "name": "Acme", "owner": "cpo"}, "cpo"))
    ok(api.post(f"/{p}/products", {"product_id": "billing", "name": "Billing", "lead": "lead.bo"}, "cpo"))
    ok(api.post(f"/{p}/products", {"product_id": "search", "name": "Search", "lead": "lead.sam"}, "cpo"))
    ok(api.post(f"/{p}/teams", {"team_id": "squad-1", "name": "Squad 1", "lead": "lead.bo", "product_id": "billing"}, "lead.bo"))
    for cycle, start, end in (("q3", "2026-07-01", "2026-09-30"), ("q4", "2026-10-01", "2026-12-31")):
        ok(api.post(f"/{p}/cycles", {"cycle_id": cycle, "name": f"2026-{cycle.upper()}", "starts_on": start, "ends_on": end}, "cpo"))
    ok(api.post(f"/{p}/objectives", {"objective_id": "grow", "cycle_id": "q3", "tier": 1, "title": "Grow revenue", "owner": "cpo"}, "cpo"))
    billing = {"objective_id": "billing-grows", "cycle_id": "q3", "tier": 2, "title": "Billing keeps customers", "owner": "pm.ana"}
    ok(api.post(f"/{p}/objectives", {**billing, "product_id": "billing", "contributes_to": {"parent_id": "grow"}}, "lead.bo"))
    search = {"objective_id": "search-finds", "cycle_id": "q3", "tier": 2, "title": "Search finds", "owner": "pm.lee"}
    ok(api.post(f"/{p}/objectives", {**search, "product_id": "search", "contributes_to": {"parent_id": "grow"}}, "lead.sam"))
    churn = {"kr_id": "churn", "objective_id": "billing-grows", "title": "Reduce churn from 5% to 2%", "baseline": 5, "target": 2}
    ok(api.post(f"/{p}/key-results", {**churn, "unit": "%", "owner": "pm.ana"}, "pm.ana"))
    revenue = {"kr_id": "revenue", "objective_id": "billing-grows", "title": "Reach 1.2M ARR", "baseline": 1.0, "target": 1.2}
    ok(
        api.post(
            f"/{p}/key-results",
            {**revenue, "unit": "MEUR", "owner": "pm.ana", "scorekeeper": "finance", "kpi_binding": f"arr-{p}"},
            "pm.ana",
        )
    )
    latency = {"kr_id": "latency", "objective_id": "search-finds", "title": "p95 under 200 ms", "kind": "threshold", "target": 200}
    ok(api.post(f"/{p}/key-results", {**latency, "direction": "at_most", "unit": "ms", "owner": "pm.lee"}, "lead.sam"))
    initiative = {"objective_id": "dunning", "cycle_id": "q3", "tier": 3, "title": "Smarter dunning", "owner": "pm.ana"}
    ok(
        api.post(
            f"/{p}/objectives",
            {**initiative, "product_id": "billing", "team_id": "squad-1", "contributes_to": {"parent_id": "churn"}},
            "lead.bo",
        )
    )
    return api


@pytest.fixture
def seeded(api: Api) -> Api:
    return seed(api)

"""Fixtures of the rollup's tests: a history builder, and the store on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from okr_contracts.envelope import Envelope
from okr_contracts.history import HistoryWriter
from okr_contracts.kr_events import (
    AllocationRemoved,
    Balance,
    BalanceIntended,
    CheckInRecorded,
    CycleCadence,
    CycleStarted,
    KeyResultDefined,
    KrEvent,
    Link,
    ObjectiveAllocated,
    ObjectiveClassified,
    ObjectiveDefined,
    PortfolioDefined,
    RollupMethod,
    SquadCapacitySet,
    TeamDefined,
    ValueObserved,
)
from okr_rollup.http import install_api
from okr_rollup.store import PostgresScoreStore, ScoreStore, SqliteScoreStore
from okr_runtime.auth import Authenticator, TokenEntry, hash_token
from okr_runtime.problems import install_problem_handlers

START = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


class History:
    """Builds a portfolio's history as checkins would publish it: versions per aggregate, a minute apart."""

    def __init__(self, pid: str = "acme") -> None:
        self.pid = pid
        self.writer = HistoryWriter(pid)
        self.now = START

    def event(self, cls: type[KrEvent], aggregate_id: str, **fields: Any) -> Envelope[Any]:
        self.now += timedelta(minutes=1)
        return self.writer.event(cls, aggregate_id, at=self.now, **fields)

    def portfolio(self, method: str = "weighted", *, allow_mixed: bool = False, hit: float = 1.0) -> Envelope[Any]:
        return self.event(
            PortfolioDefined,
            self.pid,
            name="Acme",
            owner="cpo",
            rollup_method=RollupMethod(method),
            allow_mixed_methods=allow_mixed,
            say_do_hit_threshold=hit,
        )

    def objective(
        self,
        oid: str,
        tier: int,
        *,
        parent: str | None = None,
        weight: float = 1.0,
        product: str | None = None,
        cycle: str = "q3",
        title: str | None = None,
        **extra: Any,
    ) -> Envelope[Any]:
        link = Link(parent_id=parent, weight=weight) if parent else None
        return self.event(
            ObjectiveDefined,
            oid,
            objective_id=oid,
            cycle_id=cycle,
            tier=tier,
            title=title or f"Objective {oid}",
            owner="cpo",
            product_id=product,
            contributes_to=link,
            **extra,
        )

    def kr(
        self, kid: str, objective: str, tier: int, *, parent: str | None = None, link_weight: float = 1.0, **extra: Any
    ) -> Envelope[Any]:
        fields: dict[str, Any] = {"kind": "metric", "baseline": 0.0, "target": 100.0, "unit": "%", **extra}
        link = Link(parent_id=parent, weight=link_weight) if parent else None
        return self.event(
            KeyResultDefined,
            kid,
            kr_id=kid,
            objective_id=objective,
            cycle_id="q3",
            tier=tier,
            title=f"Key result {kid}",
            owner="pm",
            contributes_to=link,
            **fields,
        )

    def value(self, kid: str, value: float) -> Envelope[Any]:
        return self.event(ValueObserved, kid, kr_id=kid, value=value, observed_at=self.now + timedelta(minutes=1), source="manual")

    def check_in(self, kid: str, confidence: float) -> Envelope[Any]:
        return self.event(CheckInRecorded, kid, kr_id=kid, confidence=confidence, what_changed="weekly")

    def team(self, team_id: str, name: str | None = None) -> Envelope[Any]:
        return self.event(TeamDefined, team_id, team_id=team_id, name=name or f"Squad {team_id}", lead="lead")

    def cycle(self, cycle_id: str, name: str | None = None) -> Envelope[Any]:
        return self.event(
            CycleStarted,
            cycle_id,
            cycle_id=cycle_id,
            name=name or cycle_id.upper(),
            cadence=CycleCadence.QUARTERLY,
            starts_on=date(2026, 7, 1),
            ends_on=date(2026, 9, 30),
        )

    def capacity(self, team_id: str, sprints: float, cycle: str | None = None) -> Envelope[Any]:
        return self.event(SquadCapacitySet, team_id, team_id=team_id, sprints=sprints, cycle_id=cycle)

    def allocate(self, oid: str, team_id: str, sprints: float) -> Envelope[Any]:
        return self.event(ObjectiveAllocated, oid, objective_id=oid, team_id=team_id, sprints=sprints)

    def unallocate(self, oid: str, team_id: str, old: float) -> Envelope[Any]:
        return self.event(AllocationRemoved, oid, objective_id=oid, team_id=team_id, old_sprints=old, reason="descoped")

    def classify(self, oid: str, priority: str | None = None, stage: str | None = None, horizon: str | None = None) -> Envelope[Any]:
        return self.event(ObjectiveClassified, oid, objective_id=oid, priority=priority, aarrr_stage=stage, horizon=horizon)

    def balance(self, primary: float, secondary: float, exploration: float, margin: float = 0.1) -> Envelope[Any]:
        intended = Balance(primary=primary, secondary=secondary, exploration=exploration)
        return self.event(BalanceIntended, self.pid, intended=intended, margin=margin)

    def standard(self, method: str = "weighted") -> list[Envelope[Any]]:
        """Portfolio objective P (KR p1) fed by two products' objectives A (KRs a1, a2) and B (KR b1)."""
        return [
            self.portfolio(method),
            self.objective("P", 1),
            self.kr("p1", "P", 1, kind="derived", unit="%"),
            self.objective("A", 2, parent="p1", product="alpha", weight=2.0),
            self.kr("a1", "A", 2),
            self.kr("a2", "A", 2, baseline=10.0, target=0.0),
            self.objective("B", 2, parent="p1", product="beta"),
            self.kr("b1", "B", 2),
        ]


@pytest.fixture
def history() -> History:
    return History(f"acme-{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScoreStore]:
    """An empty store: a SQLite file, or a fresh schema in the session's PostgreSQL."""
    if request.param == "sqlite":
        found: ScoreStore = SqliteScoreStore(tmp_path / "rollup.sqlite")
        yield found
        found.close()
        return
    found = PostgresScoreStore(request.getfixturevalue("postgres_dsn"), request.getfixturevalue("postgres_schema"))
    yield found
    found.close()


@pytest.fixture
def client(store: ScoreStore) -> TestClient:
    """The read API over `store`: token `reader` reads every portfolio, token `elsewhere` only portfolio `other`."""
    app = FastAPI()
    install_problem_handlers(app)
    tokens = [
        TokenEntry(sha256=hash_token("reader"), principal="pm"),
        TokenEntry(sha256=hash_token("elsewhere"), principal="other", portfolios=frozenset({"other"})),
    ]
    install_api(app, store, Authenticator(tokens))
    return TestClient(app)

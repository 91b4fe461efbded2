"""The checkins API in process over a SQLite store, as `okr apply` talks to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from okr_checkins.application import CheckinsApplication
from okr_checkins.http import install_api
from okr_runtime.auth import Authenticator, TokenEntry, TokenRole, hash_token
from okr_runtime.problems import install_problem_handlers


@pytest.fixture
def checkins(tmp_path: Path) -> Iterator[CheckinsApplication]:
    application = CheckinsApplication({"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "history.sqlite")})
    yield application
    application.close()


@pytest.fixture
def api(checkins: CheckinsApplication) -> Iterator[TestClient]:
    """A client of the API, signed in as the portfolio lead of the demo; it follows no redirect, as `okr apply`'s does not."""
    app = FastAPI()
    install_problem_handlers(app)
    lead = TokenEntry(sha256=hash_token("t-cpo"), principal="cpo@example.com", roles=frozenset({TokenRole.PORTFOLIO_LEAD}))
    install_api(app, checkins, Authenticator([lead]))
    with TestClient(app, headers={"Authorization": "Bearer t-cpo"}, follow_redirects=False) as client:
        yield client

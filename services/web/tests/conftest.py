"""The web service in process, over the real checkins, rollup and drift apps.

The web app runs in a TestClient (its lifespan opens the Backend's clients), and
each of the Backend's clients reaches its API's real app through
`httpx.ASGITransport`. Checkins runs over a SQLite event store on a clock the tests
move; the root conftest's relay stands in for the outbox and Kafka (as in cli/tests):
it delivers each newly stored history record to the rollup and drift, and the
rollup's scores to drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from okr_checkins.application import CheckinsApplication
from okr_checkins.http import install_api as install_checkins
from okr_drift.application import DriftService
from okr_drift.http import install_api as install_drift
from okr_rollup.http import install_api as install_rollup
from okr_rollup.store import ScoreStore
from okr_runtime.auth import Authenticator, TokenEntry, TokenFile, TokenRole, hash_token
from okr_web.backend import Api, Backend
from okr_web.bootstrap import create_app
from okr_web.settings import WebSettings

START = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
"""Nine in the morning (UTC) of the first Monday of the story's quarter; 11:00 CEST in Berlin."""
PID = "acme"
CPO, ANA, BEN = "cpo@example.com", "ana@example.com", "ben@example.com"
PEOPLE = {CPO: "t-cpo", ANA: "t-ana", BEN: "t-ben"}
TOKENS = [
    TokenEntry(sha256=hash_token(token), principal=person, roles=frozenset({TokenRole.PORTFOLIO_LEAD}) if person == CPO else frozenset())
    for person, token in PEOPLE.items()
]
"""The portfolio lead and two product managers; the web service and the APIs read the same tokens."""
HERE = "http://testserver"
"""The web app's own origin, as its TestClient addresses it."""
SAME_SITE = {"Origin": HERE}


@pytest.fixture
def relay(relay: Any) -> Callable[[str], None]:
    """The root conftest's relay, with drift's clock tick after each delivery: what the pages show is evaluated at the clock's time."""

    def deliver(portfolio_id: str) -> None:
        relay(portfolio_id)
        relay.tick()

    return deliver


@pytest.fixture
def apps(checkins: CheckinsApplication, scores: ScoreStore, drift: DriftService, served: Any) -> dict[Api, FastAPI]:
    """The real HTTP layer of each API the web service reads."""
    auth = Authenticator(TOKENS)
    return {
        "checkins": served(lambda app: install_checkins(app, checkins, auth)),
        "rollup": served(lambda app: install_rollup(app, scores, auth)),
        "drift": served(lambda app: install_drift(app, drift, auth)),
    }


@pytest.fixture
def settings(tmp_path: Path) -> WebSettings:
    """The web service's settings: the same tokens, Berlin time until the browser says otherwise, one listed portfolio."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(TokenFile(tokens=TOKENS).model_dump_json())
    return WebSettings(
        tokens_file=tokens,
        time_zone="Europe/Berlin",
        portfolios=(PID,),
        checkins_url="http://checkins.invalid",  # never reached over the network: each API is served in process
        rollup_url="http://rollup.invalid",
        drift_url="http://drift.invalid",
    )


WebOver = Callable[[Mapping[Api, httpx.AsyncBaseTransport]], TestClient]


@pytest.fixture
def web_over(settings: WebSettings, apps: dict[Api, FastAPI]) -> Iterator[WebOver]:
    """`web_over({api: transport})`: a web app (started, in a TestClient that follows no redirect) whose Backend
    reaches those APIs through those transports and every other through its real app in process."""
    with ExitStack() as running:

        def start(overrides: Mapping[Api, httpx.AsyncBaseTransport]) -> TestClient:
            transports = {api: httpx.ASGITransport(app=app) for api, app in apps.items()} | dict(overrides)
            app = create_app(settings, backend=Backend(settings, transports=transports))
            return running.enter_context(TestClient(app, base_url=HERE, follow_redirects=False))

        yield start


@pytest.fixture
def web(web_over: WebOver) -> TestClient:
    """A browser without a session, on the web app over the real APIs in process."""
    return web_over({})


SignIn = Callable[..., httpx.Response]


@pytest.fixture
def sign_in(web: TestClient) -> SignIn:
    """`sign_in(person, **fields)`: send the sign-in form from this site's page; the session cookie lands in `web`'s jar."""

    def send(person: str, **fields: str) -> httpx.Response:
        response: httpx.Response = web.post("/sign-in", data={"token": PEOPLE[person], "next": "/", **fields}, headers=SAME_SITE)
        assert response.status_code == 303, response.text
        return response

    return send


class Story:
    """A quarter of portfolio `acme`, told through the checkins API by the people in it."""

    def __init__(self, apps: dict[Api, FastAPI], clock: Any) -> None:
        self.client = TestClient(apps["checkins"])
        self.clock = clock

    def post(self, person: str, path: str, body: dict[str, Any]) -> None:
        """Record something as `person` a minute after the last thing."""
        self.clock.now += timedelta(minutes=1)
        response = self.client.post(f"/v1/portfolios{path}", json=body, headers={"Authorization": f"Bearer {PEOPLE[person]}"})
        assert response.status_code == 201, response.text

    def key_result(self, kr_id: str) -> dict[str, Any]:
        """The key result as checkins shows it now."""
        response = self.client.get(f"/v1/portfolios/{PID}/key-results/{kr_id}", headers={"Authorization": f"Bearer {PEOPLE[CPO]}"})
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def define(self) -> None:
        """Objective `grow` fed by activation (Growth, weight 2) and reliability (Platform); ana owns four KRs, ben one."""
        p = f"/{PID}"
        self.post(CPO, "", {"portfolio_id": PID, "name": "Acme", "owner": CPO})
        self.post(CPO, f"{p}/products", {"product_id": "growth", "name": "Growth", "lead": CPO})
        self.post(CPO, f"{p}/products", {"product_id": "platform", "name": "Platform", "lead": CPO})
        self.post(CPO, f"{p}/cycles", {"cycle_id": "q4", "name": "Q4", "starts_on": "2026-10-01", "ends_on": "2026-12-31"})
        self.post(CPO, f"{p}/objectives", {"objective_id": "grow", "cycle_id": "q4", "tier": 1, "title": "Grow", "owner": CPO})
        for objective, title, owner, product, weight in (
            ("activation", "New customers succeed in week one", ANA, "growth", 2),
            ("reliability", "Checkout stays up", BEN, "platform", 1),
        ):
            link = {"parent_id": "grow", "weight": weight}
            body = {"objective_id": objective, "cycle_id": "q4", "tier": 2, "title": title, "owner": owner, "product_id": product}
            self.post(CPO, f"{p}/objectives", body | {"contributes_to": link})
        activation = {"objective_id": "activation", "owner": ANA}
        self.post(
            CPO, f"{p}/key-results", activation | {"kr_id": "activated", "title": "Activated 20% → 40%", "baseline": 20, "target": 40}
        )
        self.post(
            CPO, f"{p}/key-results", activation | {"kr_id": "churn", "title": "Churn 5% → 2%", "baseline": 5, "target": 2, "unit": "%"}
        )
        signups = {"kr_id": "signups", "title": "Sign-ups 100 → 200", "baseline": 100, "target": 200, "scorekeeper": BEN}
        self.post(CPO, f"{p}/key-results", activation | signups)
        self.post(CPO, f"{p}/key-results", activation | {"kr_id": "legacy", "title": "Old funnel", "baseline": 0, "target": 10})
        self.post(ANA, f"{p}/key-results/legacy/retire", {"reason": "The old funnel is gone."})
        uptime = {"kr_id": "uptime", "title": "Uptime ≥ 99.9%", "kind": "threshold", "direction": "at_least", "target": 99.9}
        self.post(CPO, f"{p}/key-results", {"objective_id": "reliability", "owner": BEN, "unit": "%"} | uptime)

    def weeks(self) -> None:
        """Three weekly check-ins on `activated`, a target change, a recovery plan on `churn` and a value of `uptime`."""
        p = f"/{PID}/key-results"
        for week, (value, confidence) in enumerate(((23, 0.7), (26, 0.65), (29, 0.6)), start=1):
            self.clock.now = START + timedelta(days=7 * week)
            self.post(ANA, f"{p}/activated/check-ins", {"confidence": confidence, "value": value, "what_changed": f"Week {week} shipped."})
        self.post(CPO, f"{p}/activated/target", {"new_target": 38, "reason": "Seasonal dip agreed at the sync."})
        self.post(ANA, f"{p}/churn/check-ins", {"confidence": 0.45, "value": 4.8, "what_changed": "Exit survey drafted."})
        plan = {"option": "change_resources", "description": "Borrow an analyst.", "owner": ANA, "decision_needed": "Move an analyst."}
        self.post(ANA, f"{p}/churn/recovery-plans", plan)
        self.post(ANA, f"{p}/churn/check-ins", {"confidence": 0.3, "value": 4.5, "what_changed": "Barely moved.", "blocker": "No analyst."})
        self.post(BEN, f"{p}/uptime/values", {"value": 99.95})


@pytest.fixture
def story(apps: dict[Api, FastAPI], clock: Any, relay: Callable[[str], None]) -> Iterator[Story]:
    """The quarter told and delivered to the rollup and drift; the clock an hour after the last thing recorded."""
    told = Story(apps, clock)
    told.define()
    told.weeks()
    clock.now += timedelta(hours=1)
    relay(PID)
    yield told
    told.client.close()

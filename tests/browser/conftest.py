"""A running local system for the browser tests: checkins, rollup, drift and the web pages as real processes on real Kafka.

Each service runs as `python -m okr_<service>` (exactly as `make run` starts it) on a
free port, with its own SQLite files, fresh consumer groups and a tokens file of
its own. A quarter is told through the checkins API before the browser looks. With
`--screenshots DIR` (what `make screenshots` passes), each page a test visits is
saved there as a PNG.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("checkins", "rollup", "drift", "web")


@pytest.fixture(scope="module")
def local_system(kafka_bootstrap: str, launch: Callable[..., Any]) -> Any:
    """checkins, rollup, drift and web running against the session's Kafka (tests/conftest.py's `LocalSystem`)."""
    return launch(kafka_bootstrap, SERVICES)


@dataclass(frozen=True)
class Quarter:
    """What the story recorded, for the tests to look for."""

    portfolio_id: str
    today: date


def tell_quarter(system: Any, portfolio_id: str) -> Quarter:
    """A portfolio objective fed by two products; six weeks of check-ins, a target change and a recovery plan."""
    today = datetime.now(UTC).date()
    now = datetime.now(UTC)
    with system.api("checkins", "cpo@example.com") as cpo, system.api("checkins", "ana@example.com") as ana:
        base = f"/v1/portfolios/{portfolio_id}"
        steps: list[tuple[httpx.Client, str, dict[str, Any]]] = [
            (cpo, "/v1/portfolios", {"portfolio_id": portfolio_id, "name": "Web story", "owner": "cpo@example.com"}),
            (cpo, f"{base}/products", {"product_id": "growth", "name": "Growth", "lead": "cpo@example.com"}),
            (cpo, f"{base}/products", {"product_id": "platform", "name": "Platform", "lead": "cpo@example.com"}),
            (
                cpo,
                f"{base}/cycles",
                {
                    "cycle_id": "q",
                    "name": "This quarter",
                    "starts_on": str(today - timedelta(days=60)),
                    "ends_on": str(today + timedelta(days=30)),
                },
            ),
            (
                cpo,
                f"{base}/objectives",
                {"objective_id": "grow", "cycle_id": "q", "tier": 1, "title": "Grow a healthy customer base", "owner": "cpo@example.com"},
            ),
            (
                cpo,
                f"{base}/objectives",
                {
                    "objective_id": "activation",
                    "cycle_id": "q",
                    "tier": 2,
                    "title": "New customers succeed in week one",
                    "owner": "ana@example.com",
                    "product_id": "growth",
                    "contributes_to": {"parent_id": "grow", "weight": 2},
                },
            ),
            (
                cpo,
                f"{base}/objectives",
                {
                    "objective_id": "reliability",
                    "cycle_id": "q",
                    "tier": 2,
                    "title": "Checkout stays up",
                    "owner": "ben@example.com",
                    "product_id": "platform",
                    "contributes_to": {"parent_id": "grow", "weight": 1},
                },
            ),
            (
                cpo,
                f"{base}/key-results",
                {
                    "kr_id": "activated",
                    "objective_id": "activation",
                    "title": "Activated accounts from 20% to 40%",
                    "baseline": 20,
                    "target": 40,
                    "unit": "%",
                    "owner": "ana@example.com",
                },
            ),
            (
                cpo,
                f"{base}/key-results",
                {
                    "kr_id": "churn",
                    "objective_id": "activation",
                    "title": "Cut first-month churn from 5% to 2%",
                    "baseline": 5,
                    "target": 2,
                    "unit": "%",
                    "owner": "ana@example.com",
                },
            ),
            (
                cpo,
                f"{base}/key-results",
                {
                    "kr_id": "uptime",
                    "objective_id": "reliability",
                    "title": "Keep checkout availability at or above 99.9%",
                    "kind": "threshold",
                    "direction": "at_least",
                    "target": 99.9,
                    "unit": "%",
                    "owner": "ben@example.com",
                },
            ),
        ]
        for week, (value, confidence) in enumerate([(23.0, 0.7), (26.0, 0.65), (29.0, 0.6)], start=1):
            at = (now - timedelta(days=42 - 14 * week)).isoformat()
            body = {
                "confidence": confidence,
                "value": value,
                "what_changed": f"Week {week}: onboarding emails shipped to cohort {week}.",
                "occurred_at": at,
            }
            steps.append((ana, f"{base}/key-results/activated/check-ins", body))
        early = (now - timedelta(days=20)).isoformat()
        plan = {
            "option": "change_resources",
            "description": "Borrow an analyst for six weeks.",
            "owner": "ana@example.com",
            "decision_needed": "Move one analyst from Platform to Growth.",
        }
        steps += [
            (cpo, f"{base}/key-results/activated/target", {"new_target": 38, "reason": "Seasonal dip in sign-ups agreed at the sync."}),
            # churn: a plan filed three weeks ago, and still off track today (the plan predates the low confidence)
            (
                ana,
                f"{base}/key-results/churn/check-ins",
                {"confidence": 0.45, "value": 4.8, "what_changed": "Exit survey drafted.", "occurred_at": early},
            ),
            (ana, f"{base}/key-results/churn/recovery-plans", plan),
            (
                ana,
                f"{base}/key-results/churn/check-ins",
                {"confidence": 0.3, "value": 4.5, "what_changed": "Churn barely moved.", "blocker": "No analyst."},
            ),
        ]
        for client, path, body in steps:
            response = client.post(path, json=body)
            assert response.status_code == 201, f"{path}: {response.text}"
    with system.api("checkins", "ben@example.com") as ben:
        response = ben.post(f"/v1/portfolios/{portfolio_id}/key-results/uptime/values", json={"value": 99.95})
        assert response.status_code == 201, response.text
    return Quarter(portfolio_id, today)


def scored_quarter(system: Any, wait_for: Callable[..., None]) -> Quarter:
    """A new portfolio's quarter, told and then scored by the rollup (the churn check-in is the last thing it scores)."""
    told = tell_quarter(system, f"web-{uuid.uuid4().hex[:8]}")

    def scored() -> bool:
        with system.api("rollup", "cpo@example.com") as rollup:
            answer = rollup.get(f"/v1/portfolios/{told.portfolio_id}/nodes/churn")
        return answer.status_code == 200 and answer.json()["confidence"] is not None

    wait_for(scored, timeout_s=120)
    return told


@pytest.fixture(scope="module")
def quarter(local_system: Any, wait_for: Callable[..., None]) -> Quarter:
    """The story, told once for the tests that only look."""
    return scored_quarter(local_system, wait_for)


@pytest.fixture
def fresh_quarter(local_system: Any, wait_for: Callable[..., None]) -> Quarter:
    """The story in a portfolio of its own, for a test that records something."""
    return scored_quarter(local_system, wait_for)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium: Debian's package (deploy/local/chromium.sh), or OKR_CHROMIUM.

    Module-scoped, like the system it looks at: while Playwright's sync API is open it runs an
    event loop on the main thread, and every later test that starts its own loop would fail.
    """
    binary = os.environ.get("OKR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        found = subprocess.run(["bash", str(ROOT / "deploy/local/chromium.sh"), "ensure"], capture_output=True, text=True, check=True)
        binary = found.stdout.strip()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=binary, headless=True)
        yield launched
        launched.close()


Shot = Callable[[Page, str], None]


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shot:
    """`shot(page, name)`: save the page as `<name>.png` in the --screenshots folder (nothing without it)."""
    folder = request.config.getoption("--screenshots")

    def take(page: Page, name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)

    return take


def signed_in(browser: Browser, system: Any, person: str, *, zone: str = "Europe/Berlin") -> Page:
    """A new browser page in time zone `zone`, signed in as `person` through the sign-in form."""
    context = browser.new_context(timezone_id=zone, locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{system.urls['web']}/sign-in")
    page.get_by_label("Your access token").fill(system.token(person))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{system.urls['web']}/")
    return page


@pytest.fixture
def sign_in(browser: Browser, local_system: Any) -> Iterator[Callable[..., Page]]:
    """`sign_in(person, zone=...)`: a signed-in page; its browser context is closed after the test."""
    pages: list[Page] = []

    def open_as(person: str, *, zone: str = "Europe/Berlin") -> Page:
        page = signed_in(browser, local_system, person, zone=zone)
        pages.append(page)
        return page

    yield open_as
    for page in pages:
        page.context.close()

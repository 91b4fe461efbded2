"""The scorecard's capacity section over the real rollup API: squads against capacity, the split against the intended balance.

The quarter is told through the checkins API (its squads included) and delivered as
usual; the capacity events that follow are delivered to the rollup as the history
carries them, each the next version of its aggregate.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from okr_contracts.history import HistoryWriter
from okr_contracts.kr_events import KrEvent, ObjectiveAllocated, ObjectiveClassified, SquadCapacitySet
from okr_rollup.application import RollupService
from okr_rollup.store import ScoreStore

CARD = "/portfolios/acme"
PID, CPO = "acme", "cpo@example.com"


async def discard(records: Sequence[tuple[str, bytes]]) -> None:
    """Capacity events produce no score records."""


Planned = tuple[type[KrEvent], str, dict[str, Any]]
"""An event to deliver: its class, its aggregate and its fields."""


async def deliver(scores: ScoreStore, at: Any, events: list[Planned]) -> None:
    """Deliver history events to the rollup, each the next version of its aggregate after what the rollup applied."""
    service = RollupService(scores, discard)
    writer = HistoryWriter(PID, actor=CPO)
    writer.versions.update((await service.projection(PID)).tree.versions)
    for cls, aggregate_id, fields in events:
        await service.handle(writer.event(cls, aggregate_id, at=at, **fields))


def allocation(objective_id: str, team_id: str, sprints: float) -> Planned:
    return ObjectiveAllocated, objective_id, {"objective_id": objective_id, "team_id": team_id, "sprints": sprints}


def tags(objective_id: str, priority: str, stage: str | None, horizon: str) -> Planned:
    return ObjectiveClassified, objective_id, {"objective_id": objective_id, "priority": priority, "aarrr_stage": stage, "horizon": horizon}


@pytest.fixture
def planned(story: Any, relay: Callable[[str], None], scores: ScoreStore, clock: Any) -> None:
    """Core (4 sprints a cycle) takes activation and reliability, 2 each, and then grow, 2 more: over by 2.
    Web (6 in q4) gives activation 1. Activation is primary (acquisition, grow), reliability secondary
    (retention, run), grow exploration (transform, no stage): 3, 2 and 2 sprints."""
    story.post(CPO, f"/{PID}/teams", {"team_id": "core", "name": "Core squad", "lead": CPO})
    story.post(CPO, f"/{PID}/teams", {"team_id": "web", "name": "Web squad", "lead": CPO})
    relay(PID)
    events: list[Planned] = [
        (SquadCapacitySet, "core", {"team_id": "core", "sprints": 4.0}),
        (SquadCapacitySet, "web", {"team_id": "web", "sprints": 6.0, "cycle_id": "q4"}),
        allocation("activation", "core", 2.0),
        allocation("reliability", "core", 2.0),
        allocation("grow", "core", 2.0),
        allocation("activation", "web", 1.0),
        tags("activation", "primary", "acquisition", "grow"),
        tags("reliability", "secondary", "retention", "run"),
        tags("grow", "exploration", None, "transform"),
    ]
    asyncio.run(deliver(scores, clock.now, events))


@pytest.fixture
def cpo(web: TestClient, planned: None, sign_in: Any) -> TestClient:
    sign_in(CPO)
    return web


def part(page: str, pattern: str) -> str:
    found = re.search(pattern, page, re.S)
    assert found, page
    return found.group(0)


def cells(row: str) -> list[str]:
    """The text of a table row's cells, tags stripped."""
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]


def test_an_over_allocated_squad_shows_a_red_number_and_says_so(cpo: TestClient) -> None:
    page = cpo.get(CARD).text
    section = part(page, r'<section class="cycle-capacity"[^>]*data-cycle="q4">.*?</section>')
    assert '<h3 id="capacity-q4">Cycle Q4</h3>' in section
    core = part(section, r'<tr data-squad="core">.*?</tr>')
    assert '<td class="num allocated over">6</td>' in core  # red, by its class
    assert cells(core)[:5] == ["Core squad", "6", "4", "−2", "⚠ Over-allocated by 2 sprints (150% used)"]  # and in words
    assert cells(core)[5] == "New customers succeed in week one (2), Grow (2), Checkout stays up (2)"  # by objective id
    web = part(section, r'<tr data-squad="web">.*?</tr>')
    assert '<td class="num allocated">1</td>' in web
    assert cells(web)[:5] == ["Web squad", "1", "6", "5", "5 sprints free (17% used)"]
    assert "⚠ Over-allocated:</strong> Core squad." in section


def test_the_split_by_priority_is_set_against_the_intended_balance_in_numbers_and_words(cpo: TestClient) -> None:
    section = part(cpo.get(CARD).text, r'<table class="balance">.*?</table>\s*<p class="verdict[^"]*">.*?</p>')
    rows = [cells(r) for r in re.findall(r"<tr data-priority=.*?</tr>", section, re.S)]
    assert rows == [
        ["Primary furthest off", "3", "43%", "70%", "−27 pts"],
        ["Secondary", "2", "29%", "20%", "+9 pts"],
        ["Exploration", "2", "29%", "10%", "+19 pts"],
    ]
    assert '<p class="verdict verdict-off">⚠ Off balance: Primary is 27 points under its intended 70% (margin 10 points).</p>' in section


def test_the_splits_by_aarrr_stage_and_horizon_are_tables_with_the_unclassified_apart(cpo: TestClient) -> None:
    page = cpo.get(CARD).text
    stages = part(page, r"<caption>Split by AARRR stage</caption>.*?</table>")
    assert [cells(r) for r in re.findall(r"<tr data-value=.*?</tr>|<tr class=\"unclassified\">.*?</tr>", stages, re.S)] == [
        ["Acquisition", "3", "60%"],
        ["Activation", "0", "0%"],
        ["Retention", "2", "40%"],
        ["Referral", "0", "0%"],
        ["Revenue", "0", "0%"],
        ["Not classified (left out of the shares)", "2", "—"],
    ]
    horizons = part(page, r"<caption>Split by run, grow and transform</caption>.*?</table>")
    assert [cells(r) for r in re.findall(r"<tr data-value=.*?</tr>", horizons, re.S)] == [
        ["Run", "2", "29%"],
        ["Grow", "3", "43%"],
        ["Transform", "2", "29%"],
    ]
    assert "unclassified" not in horizons


def test_the_capacity_shown_is_the_cycle_asked_for(cpo: TestClient) -> None:
    assert 'data-cycle="q4"' in cpo.get(CARD, params={"cycle_id": "q4"}).text
    other = cpo.get(CARD, params={"cycle_id": "q3"}).text
    assert "No portfolio objectives are scored yet." in other
    assert 'id="capacity"' not in other


def test_the_capacity_section_is_where_capacity_alerts_link_to(cpo: TestClient) -> None:
    """The notifier links an over_allocated or off_balance alert to `/portfolios/{p}#capacity`."""
    page = cpo.get(CARD).text
    assert '<section id="capacity" class="capacity" aria-labelledby="capacity-heading">' in page
    assert '<h2 id="capacity-heading">Capacity</h2>' in page


def test_the_page_with_capacity_has_no_inline_script_or_style(cpo: TestClient) -> None:
    page = cpo.get(CARD).text
    assert '<section class="cycle-capacity"' in page
    assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", page)


def test_a_scorecard_without_squads_has_no_capacity_section(web: TestClient, story: Any, sign_in: Any) -> None:
    sign_in(CPO)
    page = web.get(CARD).text
    assert '<td class="num score">48%</td>' in page
    assert 'id="capacity"' not in page


class WithoutCapacity(httpx.ASGITransport):
    """The real rollup app, except that its capacity route fails (a rollup that cannot answer it)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/capacity"):
            problem = {"title": "Service unavailable", "detail": "the capacity views are being rebuilt"}
            return httpx.Response(503, json=problem, headers={"content-type": "application/problem+json"})
        return await super().handle_async_request(request)


def test_the_scorecard_still_shows_when_the_rollup_cannot_say_the_capacity(web_over: Any, apps: dict[str, FastAPI], planned: None) -> None:
    browser = web_over({"rollup": WithoutCapacity(app=apps["rollup"])})
    answer = browser.get(CARD, headers={"Authorization": "Bearer t-cpo"})
    assert answer.status_code == 200
    assert '<td class="num score">48%</td>' in answer.text
    expected = "Capacity cannot be shown now. The rollup service says: Service unavailable: the capacity views are being rebuilt"
    assert expected in answer.text

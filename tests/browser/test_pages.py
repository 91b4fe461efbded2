"""The pages in headless Chromium against a running local system: what a portfolio lead and a PM see and do."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from okr_contracts.topics import KR_EVENTS_TOPIC

pytestmark = pytest.mark.e2e

CPO = "cpo@example.com"
ANA = "ana@example.com"


def url(system: Any, path: str) -> str:
    return f"{system.urls['web']}{path}"


def api_json(system: Any, service: str, path: str) -> Any:
    with system.api(service, CPO) as client:
        answer = client.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()


def test_the_scorecard_shows_the_seeded_numbers(local_system: Any, quarter: Any, sign_in: Callable[..., Page], shot: Any) -> None:
    page = sign_in(CPO)
    page.goto(url(local_system, f"/portfolios/{quarter.portfolio_id}"))
    row = page.locator("tr[data-objective=grow]")
    # By hand: activated (29−20)/(38−20) = 0.5, churn (4.5−5)/(2−5) = 0.167, so activation 0.333;
    # uptime 99.95 ≥ 99.9 so reliability 1; grow = (2·0.333 + 1·1)/3 = 0.556.
    expect(row.locator("td.score")).to_have_text("56%")
    card = api_json(local_system, "rollup", f"/v1/portfolios/{quarter.portfolio_id}/scorecard")
    (grow,) = card["objectives"]
    expect(row.locator("td.confidence")).to_have_text(f"{grow['confidence']:.2f}")
    expect(row).to_contain_text(grow["trend"]["arrow"])
    expect(row).to_contain_text(grow["trend"]["label"])
    expect(row.locator("svg.spark")).to_have_count(1)
    expect(row).to_contain_text("Platform (+33 pts)")  # moved most: 1 × 1/3 of the score, against Growth 0.333 × 2/3
    shot(page, "scorecard")


def test_a_drill_down_reaches_a_key_results_chart(local_system: Any, quarter: Any, sign_in: Callable[..., Page], shot: Any) -> None:
    page = sign_in(CPO)
    page.goto(url(local_system, f"/portfolios/{quarter.portfolio_id}"))
    page.get_by_role("link", name="Grow a healthy customer base").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Grow a healthy customer base")
    expect(page.locator(".formula")).to_contain_text("2")
    expect(page.get_by_role("table", name="Inputs of the score")).to_contain_text("New customers succeed in week one")
    shot(page, "objective")
    page.get_by_role("table", name="Inputs of the score").get_by_role("link", name="New customers succeed in week one").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New customers succeed in week one")
    shot(page, "product-objective")
    page.get_by_role("table", name="Inputs of the score").get_by_role("link", name="Activated accounts from 20% to 40%").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Activated accounts from 20% to 40%")
    chart = page.locator("svg.history")
    expect(chart).to_be_visible()
    expect(chart.locator("circle.value")).to_have_count(3)
    expect(chart.locator("rect.confidence")).to_have_count(3)
    expect(chart.locator(".marker.target")).to_contain_text("T1")
    expect(page.locator("dd.progress")).to_contain_text("50%")
    expect(page.locator(".timeline")).to_contain_text("Seasonal dip in sign-ups agreed at the sync.")
    expect(page.locator(".timeline")).to_contain_text(re.compile(r"\bCES?T\b"))  # dates in the viewer's zone, Europe/Berlin
    shot(page, "key-result")


def test_dates_read_in_the_viewers_time_zone(local_system: Any, quarter: Any, sign_in: Callable[..., Page]) -> None:
    page = sign_in(CPO, zone="Asia/Tokyo")
    page.goto(url(local_system, f"/portfolios/{quarter.portfolio_id}/key-results/churn"))
    expect(page.locator("footer")).to_contain_text("Times in Asia/Tokyo")
    expect(page.locator(".timeline")).to_contain_text("JST")


def test_the_weekly_check_in_is_recorded_published_and_scored(
    local_system: Any, fresh_quarter: Any, sign_in: Callable[..., Page], shot: Any, consume: Any, kafka_bootstrap: str
) -> None:
    pid = fresh_quarter.portfolio_id
    page = sign_in(ANA)
    page.goto(url(local_system, f"/portfolios/{pid}/check-in"))
    expect(page.locator("fieldset")).to_have_count(2)  # ana owns activated and churn, not uptime
    shot(page, "check-in")
    row = page.locator("fieldset[data-kr=activated]")
    row.get_by_label("Confidence (0.0 to 1.0)").fill("0.8")
    row.get_by_label("Current value (%), optional").fill("31")
    row.get_by_label("What changed since the last check-in").fill("Guided setup doubled completions.")
    row.get_by_label("One blocker, optional").fill("Waiting on legal for the new consent screen.")
    page.get_by_role("button", name="Send my check-in").click()
    expect(page.get_by_role("status")).to_contain_text("Recorded your check-in on 1 key result")

    def mine(seen: list[Any]) -> bool:
        return any(b"Guided setup doubled" in r.value for r in seen)

    with ThreadPoolExecutor(1) as reader:  # the reader runs its own event loop, beside the browser's
        records = reader.submit(consume, kafka_bootstrap, KR_EVENTS_TOPIC.name, mine, key=pid.encode()).result()
    (published,) = [json.loads(r.value) for r in records if b"Guided setup doubled" in r.value]
    assert published["type"] == "CheckInRecorded"
    assert published["data"]["confidence"] == 0.8
    assert published["data"]["actor"] == ANA
    assert published["data"]["blocker"] == "Waiting on legal for the new consent screen."

    # (31−20)/18 = 0.611 and churn 0.167, so activation 0.389; grow = (2·0.389 + 1)/3 = 0.593
    scorecard = sign_in(CPO)
    scorecard.goto(url(local_system, f"/portfolios/{pid}"))
    for _ in range(60):
        if scorecard.locator("tr[data-objective=grow] td.score").inner_text() == "59%":
            break
        scorecard.wait_for_timeout(500)
        scorecard.reload()
    expect(scorecard.locator("tr[data-objective=grow] td.score")).to_have_text("59%")


def test_a_bad_confidence_shows_its_error_and_keeps_every_field(
    local_system: Any, fresh_quarter: Any, sign_in: Callable[..., Page], shot: Any
) -> None:
    pid = fresh_quarter.portfolio_id
    before = api_json(local_system, "checkins", f"/v1/portfolios/{pid}/key-results/activated")
    page = sign_in(ANA)
    page.goto(url(local_system, f"/portfolios/{pid}/check-in"))
    first, second = page.locator("fieldset[data-kr=activated]"), page.locator("fieldset[data-kr=churn]")
    first.get_by_label("Confidence (0.0 to 1.0)").fill("1.5")
    first.get_by_label("Current value (%), optional").fill("31")
    first.get_by_label("What changed since the last check-in").fill("Guided setup doubled completions.")
    first.get_by_label("One blocker, optional").fill("Legal review.")
    second.get_by_label("Confidence (0.0 to 1.0)").fill("0,35")  # a decimal comma is a decimal
    second.get_by_label("What changed since the last check-in").fill("Exit survey live.")
    page.get_by_role("button", name="Send my check-in").click()

    expect(page.locator("#error-summary")).to_contain_text("The check-in was not sent")
    confidence = first.get_by_label("Confidence (0.0 to 1.0)")
    expect(confidence).to_have_attribute("aria-invalid", "true")
    expect(first.locator(".error")).to_contain_text("from 0.0 (will not happen) to 1.0 (certain)")
    expect(confidence).to_have_value("1.5")
    expect(first.get_by_label("Current value (%), optional")).to_have_value("31")
    expect(first.get_by_label("What changed since the last check-in")).to_have_value("Guided setup doubled completions.")
    expect(first.get_by_label("One blocker, optional")).to_have_value("Legal review.")
    expect(second.get_by_label("Confidence (0.0 to 1.0)")).to_have_value("0,35")
    expect(second.get_by_label("What changed since the last check-in")).to_have_value("Exit survey live.")
    expect(second.locator(".error")).to_have_count(0)
    shot(page, "check-in-error")
    after = api_json(local_system, "checkins", f"/v1/portfolios/{pid}/key-results/activated")
    assert after["version"] == before["version"]  # nothing recorded for any row

    confidence.fill("0.9")
    page.get_by_role("button", name="Send my check-in").click()
    expect(page.get_by_role("status")).to_contain_text("Recorded your check-in on 2 key results")
    churn = api_json(local_system, "checkins", f"/v1/portfolios/{pid}/key-results/churn")
    assert churn["confidence"] == 0.35


def test_the_exceptions_and_the_readout_show_the_off_track_key_result(
    local_system: Any, quarter: Any, sign_in: Callable[..., Page], shot: Any, wait_for: Any
) -> None:
    pid = quarter.portfolio_id

    def flagged() -> bool:
        with local_system.api("drift", CPO) as drift:
            answer = drift.get(f"/v1/portfolios/{pid}/exceptions")
        return answer.status_code == 200 and "churn" in answer.text

    wait_for(flagged, timeout_s=120)
    page = sign_in(CPO)
    page.goto(url(local_system, f"/portfolios/{pid}/exceptions"))
    expect(page.locator("main")).to_contain_text("Cut first-month churn from 5% to 2%")
    expect(page.locator("main")).to_contain_text("off track")
    expect(page.locator("main")).to_contain_text("change the resources")
    shot(page, "exceptions")
    page.goto(url(local_system, f"/portfolios/{pid}/readout"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Executive readout")
    expect(page.locator("main")).to_contain_text("Move one analyst from Platform to Growth.")
    shot(page, "readout")
    page.emulate_media(media="print")
    expect(page.locator("header.site")).to_be_hidden()  # printed, the readout is the page alone


def test_a_squad_over_its_capacity_is_a_red_number_said_in_words_in_the_scorecards_capacity_section(
    local_system: Any, fresh_quarter: Any, sign_in: Callable[..., Page], shot: Any, wait_for: Any
) -> None:
    pid = fresh_quarter.portfolio_id
    base = f"/v1/portfolios/{pid}"
    with local_system.api("checkins", CPO) as cpo:
        squad = {"team_id": "core", "name": "Core squad", "lead": CPO, "product_id": "platform"}
        assert cpo.post(f"{base}/teams", json=squad).status_code == 201
        assert cpo.put(f"{base}/teams/core/capacity", json={"sprints": 4}).status_code == 201
        tags = {
            "activation": {"priority": "primary", "aarrr_stage": "activation", "horizon": "grow"},
            "reliability": {"priority": "secondary", "aarrr_stage": "retention", "horizon": "run"},
            "grow": {"priority": "exploration", "aarrr_stage": "acquisition", "horizon": "transform"},
        }
        for objective, classification in tags.items():
            assert cpo.put(f"{base}/objectives/{objective}/allocations/core", json={"sprints": 2}).status_code == 201
            assert cpo.put(f"{base}/objectives/{objective}/classification", json=classification).status_code == 201

    def shown() -> bool:
        with local_system.api("rollup", CPO) as rollup:
            answer = rollup.get(f"{base}/capacity")
        return answer.status_code == 200 and any(s["allocated"] == 6 for c in answer.json()["cycles"] for s in c["squads"])

    wait_for(shown, timeout_s=120)
    page = sign_in(CPO)
    page.goto(url(local_system, f"/portfolios/{pid}#capacity"))
    section = page.locator("section#capacity")
    expect(section).to_be_visible()
    row = section.locator("tr[data-squad=core]")
    allocated = row.locator("td.allocated")
    expect(allocated).to_have_text("6")
    expect(allocated).to_have_css("color", "rgb(179, 38, 30)")  # the red of --bad …
    expect(row).to_contain_text("Over-allocated by 2 sprints")  # … and the words, for whoever cannot see it
    verdict = "⚠ Off balance: Primary is 37 points under its intended 70% (margin 10 points)."  # a third each
    expect(section.locator("p.verdict")).to_have_text(verdict)
    expect(section.locator("table.split tr[data-value=retention]")).to_contain_text("33%")
    shot(page, "capacity")


def test_signing_in_is_required_and_a_wrong_token_is_refused(local_system: Any, quarter: Any, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(url(local_system, f"/portfolios/{quarter.portfolio_id}"))
    expect(page).to_have_url(re.compile(r"/sign-in\?next="))
    page.get_by_label("Your access token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That token is not valid here")
    page.get_by_label("Your access token").fill("t-cpo")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(url(local_system, f"/portfolios/{quarter.portfolio_id}"))
    context.close()


def test_the_pages_are_usable_from_the_keyboard(local_system: Any, quarter: Any, sign_in: Callable[..., Page]) -> None:
    page = sign_in(CPO)
    page.goto(url(local_system, f"/portfolios/{quarter.portfolio_id}"))
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    page.keyboard.press("Enter")
    for _ in range(10):  # from the skip link, a few tabs reach the first objective's link
        page.keyboard.press("Tab")
        if page.locator(":focus").inner_text() == "Grow a healthy customer base":
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Grow a healthy customer base")

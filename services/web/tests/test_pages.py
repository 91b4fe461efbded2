"""The reading pages over the real rollup, drift and checkins APIs: what the portfolio lead sees, and the service's own answers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

CARD = "/portfolios/acme"


@pytest.fixture
def cpo(web: TestClient, story: Any, sign_in: Any) -> TestClient:
    """The portfolio lead's browser, signed in, in the told and scored quarter."""
    sign_in("cpo@example.com")
    return web


def alert(page: str) -> str:
    """The message of an error page."""
    found = re.search(r'<p role="alert">(.*?)</p>', page, re.S)
    assert found, page
    return found.group(1)


def svg(page: str, css_class: str) -> ET.Element:
    """The inline chart of class `css_class` on a page."""
    found = re.search(rf'<svg class="{css_class}".*?</svg>', page, re.S)
    assert found, page
    return ET.fromstring(found.group(0))


def test_the_scorecard_shows_each_objectives_score_confidence_and_twelve_weeks(cpo: TestClient) -> None:
    page = cpo.get(CARD)
    assert page.status_code == 200
    row = re.search(r'<tr data-objective="grow">(.*?)</tr>', page.text, re.S)
    assert row
    # By hand: activated (29−20)/(38−20) = 0.5, churn (4.5−5)/(2−5) = 0.167, signups pending 0, legacy retired,
    # so activation = 0.222; uptime 99.95 ≥ 99.9 so reliability 1; grow = (2·0.222 + 1·1)/3 = 0.48.
    assert '<td class="num score">48%</td>' in row.group(1)
    assert '<a href="/portfolios/acme/nodes/grow">Grow</a>' in row.group(1)
    spark = svg(row.group(1), "spark")
    assert spark.findtext("title", "").startswith("Grow, last 12 weeks:")


def test_an_objectives_page_shows_its_derivation_and_the_nodes_below_it(cpo: TestClient) -> None:
    page = cpo.get(f"{CARD}/nodes/grow").text
    assert '<p class="formula" aria-label="Formula">(2*0.2222 + 1*1) / (2 + 1) = 0.4815</p>' in page
    assert '<a href="/portfolios/acme/nodes/activation">New customers succeed in week one</a>' in page
    assert re.findall(r"<td>(Growth|Platform)</td>", page) == ["Growth", "Platform"]  # product names from checkins
    below = cpo.get(f"{CARD}/nodes/activation").text
    assert '<li><a href="/portfolios/acme/nodes/grow">Grow</a></li>' in below  # the trail back up
    assert '<a href="/portfolios/acme/key-results/churn">Churn 5% → 2%</a>' in below


def test_a_key_results_node_address_leads_to_its_own_page(cpo: TestClient) -> None:
    answer = cpo.get(f"{CARD}/nodes/activated")
    assert (answer.status_code, answer.headers["location"]) == (303, f"{CARD}/key-results/activated")


def test_a_key_results_page_charts_its_history_and_lists_its_timeline(cpo: TestClient) -> None:
    page = cpo.get(f"{CARD}/key-results/activated").text
    chart = svg(page, "history")
    assert len([c for c in chart.iter("circle") if c.get("class") == "value"]) == 3
    assert len([r for r in chart.iter("rect") if r.get("class") == "confidence"]) == 3
    assert [g.findtext("text") for g in chart.iter("g") if g.get("class") == "marker target"] == ["T1"]
    assert '<dd class="progress">50%' in page
    assert "from 40 to 38: Seasonal dip agreed at the sync." in page
    assert "Confidence fell over the last three check-ins" in page  # drift's open alert


def test_dates_read_in_the_configured_zone_across_the_change_from_summer_time(cpo: TestClient) -> None:
    page = cpo.get(f"{CARD}/key-results/activated").text
    assert "Mon 19 Oct 2026, 11:01 CEST" in page  # 09:01 UTC, summer time
    assert "Mon 26 Oct 2026, 10:01 CET" in page  # 09:01 UTC, the day after summer time ended


def test_dates_read_in_the_zone_the_browser_reported(cpo: TestClient) -> None:
    cpo.cookies.set("okr_tz", "Asia%2FTokyo")  # as the page's script stores it
    page = cpo.get(f"{CARD}/key-results/activated").text
    assert "Mon 26 Oct 2026, 18:01 JST" in page
    assert "Times in <strong>Asia/Tokyo</strong>" in page


def test_a_recovery_plan_is_marked_and_told_on_its_key_results_page(cpo: TestClient) -> None:
    page = cpo.get(f"{CARD}/key-results/churn").text
    assert [g.findtext("text") for g in svg(page, "history").iter("g") if g.get("class") == "marker plan"] == ["R1"]
    assert "<strong>Recovery plan</strong>: change the resources — Borrow an analyst." in page
    assert "<br>Blocker: No analyst." in page


def test_the_exceptions_list_what_needs_attention_and_skip_the_green(cpo: TestClient) -> None:
    page = cpo.get(f"{CARD}/exceptions").text
    assert '<a href="/portfolios/acme/key-results/signups">Sign-ups 100 → 200</a>' in page
    assert "<strong>stale</strong>" in page
    assert "<h2>Growth</h2>" in page
    critical = cpo.get(f"{CARD}/exceptions", params={"minimum_severity": "critical"}).text
    assert "No exceptions: every live key result is on track." in critical


def test_the_readout_is_the_months_scorecard_and_exceptions(cpo: TestClient) -> None:
    page = cpo.get(f"{CARD}/readout").text
    assert re.search(r"<h1>Executive readout: acme, \w+ \d{4}</h1>", page)
    assert '<th scope="row">Grow</th>\n      <td class="num">48%</td>' in page
    assert "<strong>Sign-ups 100 → 200</strong> (Growth)" in page


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/portfolios/nowhere", "The rollup service says: Not found: no scores for portfolio nowhere"),
        ("/portfolios/nowhere/check-in", "The checkins service says: Not found: no portfolio &#39;nowhere&#39;"),
        ("/portfolios/nowhere/exceptions", "The drift service says: Not found: drift knows no portfolio nowhere"),
        ("/portfolios/acme/key-results/nope", "The checkins service says: Not found: no key result &#39;nope&#39; in this portfolio"),
    ],
)
def test_something_unknown_is_a_404_page_naming_the_services_reason(cpo: TestClient, path: str, reason: str) -> None:
    answer = cpo.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "<h1>Not Found</h1>" in answer.text
    assert alert(answer.text) == reason


@pytest.mark.parametrize("path", ["/sign-in", CARD, "/portfolios/nowhere"])
def test_every_page_carries_the_security_headers(cpo: TestClient, path: str) -> None:
    headers = cpo.get(path).headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "form-action 'self'" in headers["content-security-policy"]
    assert (headers["x-content-type-options"], headers["referrer-policy"], headers["cache-control"]) == (
        "nosniff",
        "same-origin",
        "no-store",
    )


def test_the_pages_have_no_inline_script_or_style_the_policy_would_block(cpo: TestClient) -> None:
    for path in (CARD, f"{CARD}/key-results/activated", f"{CARD}/check-in", f"{CARD}/readout"):
        page = cpo.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), path
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", page), path


def test_the_service_is_live_and_ready_when_checkins_answers(web: TestClient) -> None:
    assert web.get("/health/live").json() == {"status": "live"}
    assert web.get("/health/ready").json() == {"status": "ready", "checks": {"checkins": "ok"}}


def test_the_static_files_are_served(web: TestClient) -> None:
    assert web.get("/static/okr.js").status_code == 200
    assert web.get("/static/style.css").headers["content-type"].startswith("text/css")


class Unreachable(httpx.AsyncBaseTransport):
    """An API nobody answers at."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)


def test_an_api_that_cannot_be_reached_is_a_502_page_and_the_service_not_ready(web_over: Any) -> None:
    browser = web_over({"rollup": Unreachable(), "checkins": Unreachable()})
    answer = browser.get(CARD, headers={"Authorization": "Bearer t-cpo"})
    assert answer.status_code == 502
    assert alert(answer.text) == "The rollup service says: the rollup service cannot be reached (ConnectError)"
    assert browser.get("/health/ready").status_code == 503
    assert browser.get("/health/live").status_code == 200


def test_pages_still_work_while_drift_cannot_be_reached_where_its_part_is_optional(web_over: Any, story: Any) -> None:
    browser = web_over({"drift": Unreachable()})
    form = browser.get("/portfolios/acme/check-in", headers={"Authorization": "Bearer t-ana"})
    assert form.status_code == 200
    assert 'data-kr="activated"' in form.text

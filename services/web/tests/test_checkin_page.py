"""My weekly check-in, sent through the page to the real checkins API: what is listed, recorded, refused and kept."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

HERE = {"Origin": "http://testserver"}
FORM = "/portfolios/acme/check-in"
SUBMISSION = "0123456789abcdef0123456789abcdef"


class Page(HTMLParser):
    """A check-in page as a browser reads it: the rows, each field's value, the errors beside them, and what is marked invalid."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.values: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.invalid: set[str] = set()
        self._into: dict[str, str] | None = None
        self._key = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "fieldset" and "data-kr" in found:
            self.rows.append(found["data-kr"])
        if tag in ("input", "textarea") and found.get("name"):
            self.values[found["name"]] = found.get("value", "")
            if found.get("aria-invalid") == "true":
                self.invalid.add(found["name"])
        if tag == "textarea":
            self._into, self._key = self.values, found["name"]
        if tag == "span" and "error" in found.get("class", "").split():
            self._into, self._key = self.errors, found["id"].removesuffix("-error")

    def handle_data(self, data: str) -> None:
        if self._into is not None:
            self._into[self._key] = self._into.get(self._key, "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("textarea", "span"):
            self._into = None


def typed(**rows: dict[str, str]) -> dict[str, str]:
    """The form's fields as posted: `kr.field` for each typed value, and the form's submission id."""
    return {"submission": SUBMISSION, **{f"{kr}.{name}": value for kr, fields in rows.items() for name, value in fields.items()}}


@pytest.fixture
def ana(web: TestClient, story: Any, sign_in: Any) -> TestClient:
    """ana's browser, signed in, in the told quarter."""
    sign_in("ana@example.com")
    return web


def test_the_form_lists_only_the_viewers_live_key_results(web: TestClient, story: Any, sign_in: Any) -> None:
    sign_in("ana@example.com")
    assert Page(web.get(FORM).text).rows == ["activated", "churn", "signups"]  # not legacy (retired), not uptime (ben's)
    sign_in("ben@example.com")
    assert Page(web.get(FORM).text).rows == ["uptime"]
    sign_in("cpo@example.com")
    assert "You own no live key results in acme." in web.get(FORM).text


def test_a_key_result_with_a_scorekeeper_asks_its_owner_to_leave_the_value_empty(ana: TestClient) -> None:
    assert "Recorded by its scorekeeper, ben@example.com; leave it empty." in ana.get(FORM).text


def test_each_form_carries_a_fresh_submission_id(ana: TestClient) -> None:
    first, second = Page(ana.get(FORM).text).values["submission"], Page(ana.get(FORM).text).values["submission"]
    assert len(first) == 32
    assert first != second


def test_a_check_in_is_recorded_and_the_form_then_says_so(ana: TestClient, story: Any) -> None:
    activated = {"confidence": "0.8", "value": "31", "what_changed": "Guided setup doubled completions.", "blocker": "Legal."}
    churn = {"confidence": "0,35", "what_changed": "Exit survey live."}  # a decimal comma is a decimal
    sent = ana.post(FORM, data=typed(activated=activated, churn=churn, signups={}), headers=HERE)
    assert (sent.status_code, sent.headers["location"]) == (303, f"{FORM}?recorded=activated%2Cchurn")
    assert "Recorded your check-in on 2 key results" in ana.get(sent.headers["location"]).text
    recorded = story.key_result("activated")
    assert (recorded["confidence"], recorded["value"]) == (0.8, 31)
    assert (recorded["last_check_in"]["actor"], recorded["last_check_in"]["blocker"]) == ("ana@example.com", "Legal.")
    assert story.key_result("churn")["confidence"] == 0.35


def test_a_bearer_token_posts_the_form_without_a_cookie_or_origin(web: TestClient, story: Any) -> None:
    check_in = {"confidence": "0.5", "what_changed": "Scripted weekly update."}
    sent = web.post(FORM, data=typed(churn=check_in), headers={"Authorization": "Bearer t-ana"})
    assert sent.status_code == 303
    assert story.key_result("churn")["confidence"] == 0.5


def test_a_bad_confidence_is_shown_beside_its_field_every_value_is_kept_and_nothing_is_recorded(ana: TestClient, story: Any) -> None:
    before = {kr: story.key_result(kr)["version"] for kr in ("activated", "churn")}
    activated = {"confidence": "1.5", "value": "31", "what_changed": "Guided <setup> & more.", "blocker": "Legal review."}
    churn = {"confidence": "0,35", "what_changed": "Exit survey live."}
    answer = ana.post(FORM, data=typed(activated=activated, churn=churn), headers=HERE)
    assert answer.status_code == 422
    assert "The check-in was not sent" in answer.text
    page = Page(answer.text)
    assert page.errors == {"activated.confidence": "Confidence is your forecast from 0.0 (will not happen) to 1.0 (certain), e.g. 0.6."}
    assert page.invalid == {"activated.confidence"}
    for kr, fields in (("activated", activated), ("churn", churn)):
        assert {name: page.values[f"{kr}.{name}"] for name in fields} == fields
    assert page.values["submission"] == SUBMISSION  # sent again, the same form
    assert {kr: story.key_result(kr)["version"] for kr in before} == before


def test_an_empty_form_asks_for_at_least_one_key_result(ana: TestClient) -> None:
    answer = ana.post(FORM, data=typed(activated={"confidence": " ", "what_changed": ""}), headers=HERE)
    assert answer.status_code == 422
    assert "Fill in at least one key result; empty rows are skipped." in answer.text


@pytest.mark.parametrize(
    "headers", [{"Origin": "https://evil.example"}, {"Referer": "https://evil.example/form"}, {}], ids=["origin", "referer", "neither"]
)
def test_a_form_posted_with_the_cookie_from_another_site_is_refused_and_nothing_recorded(
    ana: TestClient, story: Any, headers: dict[str, str]
) -> None:
    before = story.key_result("activated")["version"]
    answer = ana.post(FORM, data=typed(activated={"confidence": "0.9", "what_changed": "Forged."}), headers=headers)
    assert answer.status_code == 403
    assert "This form was not sent from an okrstream page, so nothing was recorded." in answer.text
    assert story.key_result("activated")["version"] == before


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ('{"activated.confidence": "0.9", "activated.what_changed": "JSON."}', "application/json"),
        ("activated.confidence=0.9", "text/plain"),
        ("--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--\r\n", "multipart/form-data; boundary=x"),
    ],
)
def test_a_check_in_that_is_not_a_url_encoded_form_is_refused(ana: TestClient, story: Any, content: str, content_type: str) -> None:
    before = story.key_result("activated")["version"]
    answer = ana.post(FORM, content=content, headers={**HERE, "Content-Type": content_type})
    assert answer.status_code == 415
    assert "Send the check-in form from its page." in answer.text
    assert story.key_result("activated")["version"] == before


def test_a_form_with_more_fields_than_any_of_ours_is_refused_rather_than_failing(ana: TestClient) -> None:
    crowded = "&".join(f"f{i}=1" for i in range(2001))
    answer = ana.post(FORM, content=crowded, headers={**HERE, "Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 415


def test_a_row_the_api_refuses_shows_its_reason_and_keeps_its_values_while_the_others_are_recorded(ana: TestClient, story: Any) -> None:
    before = {kr: story.key_result(kr)["version"] for kr in ("activated", "signups")}
    signups = {"confidence": "0.5", "value": "120", "what_changed": "Campaign live."}  # ben keeps its score, not ana
    activated = {"confidence": "0.8", "what_changed": "Guided setup."}
    answer = ana.post(FORM, data=typed(activated=activated, signups=signups), headers=HERE)
    assert answer.status_code == 422
    page = Page(answer.text)
    assert page.errors == {"signups.row": "Forbidden: only the connector bound to the key result or scorekeeper may record a value"}
    assert {name: page.values[f"signups.{name}"] for name in signups} == signups
    assert "activated" not in page.rows  # recorded, so no longer in the form
    assert "Recorded your check-in on 1 key result" in answer.text
    assert story.key_result("activated")["version"] > before["activated"]
    assert story.key_result("signups")["version"] == before["signups"]


def test_a_refused_row_sent_again_without_the_value_is_recorded_and_the_rest_not_twice(ana: TestClient, story: Any) -> None:
    activated = {"confidence": "0.8", "what_changed": "Guided setup."}
    signups = {"confidence": "0.5", "what_changed": "Campaign live."}
    ana.post(FORM, data=typed(activated=activated, signups={**signups, "value": "120"}), headers=HERE)
    once = story.key_result("activated")["version"]
    again = ana.post(FORM, data=typed(activated=activated, signups=signups), headers=HERE)  # the same submission id
    assert again.status_code == 303
    assert story.key_result("signups")["confidence"] == 0.5
    assert story.key_result("activated")["version"] == once


def test_sending_the_same_form_twice_records_it_once(ana: TestClient, story: Any) -> None:
    form = typed(activated={"confidence": "0.75", "value": "30", "what_changed": "Sent twice by an impatient click."})
    first = ana.post(FORM, data=form, headers=HERE)
    recorded = story.key_result("activated")["version"]
    second = ana.post(FORM, data=form, headers=HERE)
    assert (first.status_code, second.status_code) == (303, 303)
    assert story.key_result("activated")["version"] == recorded
    assert second.headers["location"] == first.headers["location"]


def test_a_checkins_api_failing_for_a_while_asks_to_send_the_form_again(web_over: Any, story: Any, apps: Any) -> None:
    browser = web_over({"checkins": WritesFail(apps["checkins"])})
    form = typed(activated={"confidence": "0.8", "what_changed": "Guided setup."})
    answer = browser.post(FORM, data=form, headers={"Authorization": "Bearer t-ana"})
    assert answer.status_code == 422
    assert Page(answer.text).errors == {
        "activated.row": "Not recorded: Service Unavailable: the event store is busy. Send the form again; nothing is recorded twice."
    }


class WritesFail(httpx.AsyncBaseTransport):
    """The checkins API answering its reads, while every write fails with 503 as it would when its event store is busy."""

    def __init__(self, app: Any) -> None:
        self.reads = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return await self.reads.handle_async_request(request)
        problem = {"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": "the event store is busy"}
        return httpx.Response(503, json=problem, headers={"Content-Type": "application/problem+json"})

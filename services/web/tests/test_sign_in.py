"""Signing in with a token, the session cookie, signing out, and the start page."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from okr_web.bootstrap import create_app

HERE = {"Origin": "http://testserver"}


def cookie(response: httpx.Response, name: str) -> dict[str, str] | None:
    """The attributes of the cookie `name` the response sets (lower-case names; its value, unquoted, under `value`), or None."""
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        key, _, value = first.partition("=")
        if key == name:
            pairs = (a.partition("=") for a in attributes)
            return {"value": value.strip('"'), **{k.lower(): v for k, _, v in pairs}}
    return None


def hidden_next(page: str) -> str:
    found = re.search(r'<input type="hidden" name="next" value="([^"]*)">', page)
    assert found, page
    return found.group(1)


def test_a_page_without_a_session_sends_the_browser_to_sign_in_and_back_afterwards(web: TestClient) -> None:
    answer = web.get("/portfolios/acme?window_days=7")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in?next=%2Fportfolios%2Facme%3Fwindow_days%3D7"
    form = web.get(answer.headers["location"])
    assert form.status_code == 200
    assert hidden_next(form.text) == "/portfolios/acme?window_days=7"


def test_the_sign_in_form_keeps_only_a_local_page_to_return_to(web: TestClient) -> None:
    assert hidden_next(web.get("/sign-in", params={"next": "//evil.example/"}).text) == "/"
    assert hidden_next(web.get("/sign-in", params={"next": "https://evil.example/"}).text) == "/"


def test_a_wrong_token_is_refused_with_a_message_and_no_session(web: TestClient) -> None:
    answer = web.post("/sign-in", data={"token": "not-a-token", "next": "/portfolios/acme"}, headers=HERE)
    assert answer.status_code == 401
    assert "That token is not valid here" in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert hidden_next(answer.text) == "/portfolios/acme"  # a second try still returns there
    assert cookie(answer, "okr_session") is None


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "https://evil.example"}, {"Referer": "https://evil.example/okr"}, {"Origin": "null"}],
    ids=["neither", "foreign-origin", "foreign-referer", "opaque-origin"],
)
def test_a_sign_in_not_sent_from_this_sites_page_is_refused_even_with_a_valid_token(web: TestClient, headers: dict[str, str]) -> None:
    answer = web.post("/sign-in", data={"token": "t-ana", "next": "/"}, headers=headers)
    assert answer.status_code == 403
    assert "Sign in from this page." in answer.text
    assert cookie(answer, "okr_session") is None


def test_a_sign_in_with_only_this_sites_referer_is_accepted(web: TestClient) -> None:
    answer = web.post("/sign-in", data={"token": "t-ana", "next": "/"}, headers={"Referer": "http://testserver/sign-in?next=%2F"})
    assert answer.status_code == 303


def test_signing_in_sets_an_http_only_same_site_strict_session_cookie(sign_in: Any) -> None:
    session = cookie(sign_in("ana@example.com"), "okr_session")
    assert session is not None
    assert session["value"] == "t-ana"
    assert "httponly" in session
    assert session["samesite"].lower() == "strict"
    assert (session["path"], session["max-age"]) == ("/", str(12 * 3600))
    assert "secure" not in session


def test_the_session_cookie_is_secure_when_the_pages_are_served_over_https(settings: Any) -> None:
    secure = settings.model_copy(update={"secure_cookies": True})
    with TestClient(create_app(secure), base_url="https://okr.example", follow_redirects=False) as browser:
        answer = browser.post("/sign-in", data={"token": "t-ana", "tz": "Asia/Tokyo"}, headers={"Origin": "https://okr.example"})
    assert answer.status_code == 303
    assert "secure" in (cookie(answer, "okr_session") or {})
    assert "secure" in (cookie(answer, "okr_tz") or {})


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/portfolios/acme/check-in", "/portfolios/acme/check-in"),
        ("/portfolios/acme?window_days=7", "/portfolios/acme?window_days=7"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
    ],
)
def test_signing_in_returns_only_to_a_page_of_this_site(web: TestClient, target: str, location: str) -> None:
    answer = web.post("/sign-in", data={"token": "t-ana", "next": target}, headers=HERE)
    assert answer.status_code == 303
    assert answer.headers["location"] == location


def test_the_browsers_time_zone_is_remembered_when_it_is_a_real_one(web: TestClient, sign_in: Any) -> None:
    remembered = cookie(sign_in("ana@example.com", tz="Asia/Tokyo"), "okr_tz")
    assert remembered is not None
    assert remembered["value"] == "Asia/Tokyo"
    assert "Times in <strong>Asia/Tokyo</strong>" in web.get("/").text


def test_an_unknown_time_zone_is_not_remembered_and_the_default_applies(web: TestClient, sign_in: Any) -> None:
    assert cookie(sign_in("ana@example.com", tz="Mars/Olympus_Mons"), "okr_tz") is None
    assert "Times in <strong>Europe/Berlin</strong>" in web.get("/").text


def test_a_bearer_token_in_the_request_works_without_a_cookie(web: TestClient) -> None:
    answer = web.get("/", headers={"Authorization": "Bearer t-ben"})
    assert answer.status_code == 200
    assert "Signed in as <strong>ben@example.com</strong>" in answer.text
    assert web.get("/", headers={"Authorization": "Bearer t-nobody"}).status_code == 303


def test_a_session_whose_token_is_no_longer_valid_signs_in_again(web: TestClient) -> None:
    web.cookies.set("okr_session", "t-revoked")
    answer = web.get("/portfolios/acme")
    assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in?next=%2Fportfolios%2Facme")


def test_signing_out_ends_the_session_only_from_this_sites_page(web: TestClient, sign_in: Any) -> None:
    sign_in("ana@example.com")
    foreign = web.post("/sign-out", headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 303
    assert web.get("/").status_code == 200  # still signed in
    answer = web.post("/sign-out", headers=HERE)
    assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in")
    assert web.get("/").status_code == 303


def test_the_start_page_lists_the_configured_portfolios(web: TestClient, sign_in: Any) -> None:
    sign_in("ana@example.com")
    page = web.get("/").text
    assert '<a href="/portfolios/acme">acme</a>' in page
    assert '<a href="/portfolios/acme/check-in">my weekly check-in</a>' in page


def test_a_portfolio_opens_by_its_id_and_a_malformed_id_is_shown_back_with_its_error(web: TestClient, sign_in: Any) -> None:
    sign_in("ana@example.com")
    opened = web.get("/", params={"portfolio": "acme-2026"})
    assert (opened.status_code, opened.headers["location"]) == (303, "/portfolios/acme-2026")
    refused = web.get("/", params={"portfolio": "../admin"})
    assert refused.status_code == 422
    assert "A portfolio id is letters, digits, dots, dashes and underscores" in refused.text
    assert 'value="../admin"' in refused.text

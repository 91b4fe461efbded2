"""Where signing in may return to, and which posted forms count as this site's own."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from fastapi import Request

from okr_runtime.auth import Authenticator
from okr_web.session import Sessions, safe_next, same_origin, sign_in_location


def request(*headers: tuple[str, str], scheme: str = "http", host: str = "okr.example") -> Request:
    """A POST to this site at `scheme://host`, with `headers`."""
    raw = [(b"host", host.encode()), *((name.encode(), value.encode()) for name, value in headers)]
    port = 443 if scheme == "https" else 80
    return Request(
        {"type": "http", "method": "POST", "scheme": scheme, "server": (host, port), "path": "/", "query_string": b"", "headers": raw}
    )


@pytest.mark.parametrize("target", ["/", "/portfolios/acme", "/portfolios/acme/check-in?recorded=a,b", "/portfolios/acme#chart"])
def test_signing_in_returns_to_a_path_on_this_site(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "//evil.example/",
        "///evil.example",
        "http://evil.example/",
        "https://evil.example/portfolios",
        "javascript:alert(1)",
        "portfolios/acme",
        "/\\evil.example",
        "\\\\evil.example",
        "/portfolios\\..\\..\\evil",
    ],
)
def test_signing_in_never_returns_to_another_host(target: str | None) -> None:
    assert safe_next(target) == "/"


def test_the_sign_in_address_carries_the_page_to_return_to_encoded() -> None:
    assert sign_in_location("/portfolios/acme?window_days=7") == "/sign-in?next=%2Fportfolios%2Facme%3Fwindow_days%3D7"


def test_a_form_from_this_sites_page_is_its_own_by_its_origin() -> None:
    assert same_origin(request(("origin", "http://okr.example")))
    assert same_origin(request(("origin", "https://okr.example"), scheme="https"))


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://okr.example.evil.example", "https://okr.example", "http://okr.example:8080", "null"]
)
def test_a_form_from_another_origin_is_not(origin: str) -> None:
    assert not same_origin(request(("origin", origin)))


def test_without_an_origin_the_referer_decides() -> None:
    assert same_origin(request(("referer", "http://okr.example/portfolios/acme/check-in")))
    assert not same_origin(request(("referer", "http://evil.example/okr.example/")))


def test_an_origin_present_wins_over_a_matching_referer() -> None:
    assert not same_origin(request(("origin", "https://evil.example"), ("referer", "http://okr.example/")))


def test_a_form_with_neither_origin_nor_referer_is_not_trusted() -> None:
    assert not same_origin(request())


def test_the_viewers_time_zone_comes_from_the_browsers_cookie_or_else_the_default() -> None:
    sessions = Sessions(Authenticator([]), "Europe/Berlin")
    assert sessions.zone_of(request(("cookie", "okr_tz=Asia%2FTokyo"))) == ZoneInfo("Asia/Tokyo")
    assert sessions.zone_of(request(("cookie", "okr_tz=Mars%2FOlympus"))) == ZoneInfo("Europe/Berlin")
    assert sessions.zone_of(request()) == ZoneInfo("Europe/Berlin")

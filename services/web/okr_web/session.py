"""Signing in with a bearer token, the session cookie, and who is viewing a page.

The pages use the same tokens as the APIs: a person signs in once with their
token, which the web service checks against the tokens file and keeps in an
HttpOnly, SameSite=Strict cookie, then sends as the bearer token of each API
call. A request may also carry `Authorization: Bearer …` itself. Forms posted
with the cookie must come from this site's own pages (Origin or Referer).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo

from fastapi import Request

from okr_runtime.auth import Authenticator
from okr_web.formats import zone_or

SESSION_COOKIE = "okr_session"
ZONE_COOKIE = "okr_tz"
SESSION_MAX_AGE_S = 12 * 3600


@dataclass(frozen=True)
class Viewer:
    """The signed-in person: whom the token names, the token itself (sent to the APIs), and their time zone."""

    principal: str
    token: str
    zone: ZoneInfo
    by_cookie: bool


class SignInNeeded(Exception):
    """The request carries no valid token: the page sends the browser to the sign-in form."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class ForeignForm(Exception):
    """A form posted with the session cookie from another site's page (cross-site request forgery)."""


class Sessions:
    """Resolves a request to its viewer, given the tokens file the APIs use and the default time zone."""

    def __init__(self, auth: Authenticator, default_zone: str) -> None:
        self.auth = auth
        self.default_zone = default_zone

    def principal_of(self, token: str) -> str | None:
        """Whom a token authenticates, or None."""
        entry = self.auth.entry_for(token)
        return entry.principal if entry else None

    def viewer(self, request: Request) -> Viewer:
        """The viewer of `request`, or SignInNeeded (a form post from elsewhere: ForeignForm)."""
        scheme, _, header_token = request.headers.get("authorization", "").partition(" ")
        by_cookie = not (scheme.lower() == "bearer" and header_token.strip())
        token = request.cookies.get(SESSION_COOKIE, "") if by_cookie else header_token.strip()
        principal = self.principal_of(token)
        if principal is None:
            raise SignInNeeded(_path_of(request))
        if by_cookie and request.method == "POST" and not same_origin(request):
            raise ForeignForm(request.url.path)
        return Viewer(principal, token, self.zone_of(request), by_cookie)

    def zone_of(self, request: Request) -> ZoneInfo:
        """The time zone the browser reported (cookie), else the configured default."""
        return zone_or(unquote(request.cookies.get(ZONE_COOKIE, "")), self.default_zone)  # the page's script URL-encodes it


def same_origin(request: Request) -> bool:
    """Whether a posted form came from a page of this site (its Origin, or failing that its Referer)."""
    here = f"{request.url.scheme}://{request.url.netloc}"
    origin = request.headers.get("origin")
    if origin is not None:
        return origin == here
    referer = urlsplit(request.headers.get("referer", ""))
    return f"{referer.scheme}://{referer.netloc}" == here


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only (never another host)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def sign_in_location(next_path: str) -> str:
    """The sign-in page's address, returning to `next_path` afterwards."""
    return f"/sign-in?next={quote(next_path, safe='')}"


def _path_of(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")

"""Signing in and out, and the start page listing the portfolios."""

# Without `from __future__ import annotations`: FastAPI must resolve the router-local `Seen` alias when routes are defined.

import re
from typing import Annotated
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from okr_web.formats import zone_or
from okr_web.render import Pages
from okr_web.session import SESSION_COOKIE, SESSION_MAX_AGE_S, ZONE_COOKIE, Sessions, Viewer, safe_next, same_origin
from okr_web.settings import WebSettings

PORTFOLIO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_SIGN_IN_BYTES = 10_000


def home_router(pages: Pages, sessions: Sessions, settings: WebSettings) -> APIRouter:
    """The start page, signing in and out, and the viewer's time zone."""
    router = APIRouter()
    Seen = Annotated[Viewer, Depends(sessions.viewer)]  # noqa: N806 (a type alias over this router's sessions)

    @router.get("/", response_class=HTMLResponse, summary="The portfolios")
    async def start(viewer: Seen, portfolio: Annotated[str | None, Query(max_length=128)] = None) -> Response:
        if portfolio is not None:
            if PORTFOLIO_ID.match(portfolio):
                return RedirectResponse(f"/portfolios/{quote(portfolio)}", status_code=303)
            error = "A portfolio id is letters, digits, dots, dashes and underscores, e.g. acme-2026."
            return pages.render("home.html", viewer, status=422, portfolios=settings.portfolios, error=error, typed=portfolio)
        return pages.render("home.html", viewer, portfolios=settings.portfolios, error=None, typed="")

    @router.get("/sign-in", response_class=HTMLResponse, summary="The sign-in form")
    async def sign_in_form(next: Annotated[str, Query(max_length=2000)] = "/") -> HTMLResponse:
        return pages.render("sign_in.html", None, next=safe_next(next), error=None)

    @router.post("/sign-in", response_class=HTMLResponse, summary="Sign in with a bearer token")
    async def sign_in(request: Request) -> Response:
        body = await request.body()
        typed = dict(parse_qsl(body[:MAX_SIGN_IN_BYTES].decode("utf-8", errors="replace"), keep_blank_values=True))
        target = safe_next(typed.get("next"))
        if not same_origin(request):
            return pages.render("sign_in.html", None, status=403, next=target, error="Sign in from this page.")
        token = typed.get("token", "").strip()
        if sessions.principal_of(token) is None:
            error = "That token is not valid here. Paste the whole token you were given (ask your okrstream operator for one)."
            return pages.render("sign_in.html", None, status=401, next=target, error=error)
        response = RedirectResponse(target, status_code=303)
        secure = settings.secure_cookies
        response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_MAX_AGE_S, httponly=True, samesite="strict", secure=secure)
        zone = typed.get("tz", "")
        if zone and str(zone_or(zone, "UTC")) == zone:
            response.set_cookie(ZONE_COOKIE, zone, max_age=365 * 86400, samesite="lax", secure=secure)
        return response

    @router.post("/sign-out", summary="Sign out")
    async def sign_out(request: Request) -> Response:
        response = RedirectResponse("/sign-in", status_code=303)
        if same_origin(request):
            response.delete_cookie(SESSION_COOKIE)
        return response

    return router

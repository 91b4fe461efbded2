"""Rendering pages: one Jinja environment, the formats every template uses, and the error pages."""

from __future__ import annotations

from functools import partial
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from okr_web import formats
from okr_web.backend import ApiError
from okr_web.session import ForeignForm, SignInNeeded, Viewer, sign_in_location

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Pages:
    """Renders templates with the viewer's time zone applied to every date."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("okr_web", "templates"),
            autoescape=select_autoescape(default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            percent=formats.percent,
            confidence=formats.confidence,
            number=formats.number,
            rule=partial(formats.words, table=formats.RULE_WORDS),
            severity=partial(formats.words, table=formats.SEVERITY_WORDS),
            status=partial(formats.words, table=formats.STATUS_WORDS),
            option=partial(formats.words, table=formats.OPTION_WORDS),
        )

    def render(self, template: str, viewer: Viewer | None, *, status: int = 200, **context: Any) -> HTMLResponse:
        """The page `template` for `viewer`, its dates in the viewer's time zone."""
        zone = viewer.zone if viewer else None
        helpers = {
            "viewer": viewer,
            "zone_name": str(zone) if zone else None,
            "moment": (lambda value: formats.moment(value, zone)) if zone else (lambda value: str(value)),
            "day": (lambda value: formats.day(value, zone)) if zone else (lambda value: str(value)),
        }
        html = self.env.get_template(template).render(**helpers, **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def install_error_pages(app: FastAPI, pages: Pages) -> None:
    """Signing in when needed, and API errors shown as pages a person can act on."""

    async def on_sign_in(request: Request, exc: Exception) -> RedirectResponse:
        target = exc.next_path if isinstance(exc, SignInNeeded) else "/"
        return RedirectResponse(sign_in_location(target), status_code=303)

    async def on_foreign(request: Request, exc: Exception) -> HTMLResponse:
        detail = "This form was not sent from an okrstream page, so nothing was recorded. Open the page again and send it from there."
        return pages.render("error.html", None, status=403, title="Form refused", detail=detail)

    async def on_api(request: Request, exc: Exception) -> HTMLResponse | RedirectResponse:
        assert isinstance(exc, ApiError)
        if exc.status == 401:
            return RedirectResponse(sign_in_location(request.url.path), status_code=303)
        title = HTTPStatus(exc.status).phrase if exc.status in HTTPStatus._value2member_map_ else "Error"
        return pages.render("error.html", None, status=exc.status, title=title, detail=f"The {exc.api} service says: {exc.reason}")

    app.add_exception_handler(SignInNeeded, on_sign_in)
    app.add_exception_handler(ForeignForm, on_foreign)
    app.add_exception_handler(ApiError, on_api)

"""The composition root: `create_app(settings)` builds the web service; nothing connects at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from okr_runtime.auth import Authenticator
from okr_runtime.health import health_router
from okr_runtime.problems import install_problem_handlers
from okr_runtime.telemetry import Telemetry, create_telemetry
from okr_web.backend import Backend
from okr_web.checkin import checkin_router
from okr_web.home import home_router
from okr_web.key_result import key_result_router
from okr_web.render import Pages, install_error_pages
from okr_web.scorecard import scorecard_router
from okr_web.session import Sessions
from okr_web.settings import WebSettings
from okr_web.sync import sync_router

DESCRIPTION = """The pages people use: the portfolio scorecard with its drill-down, a key result's history, the sync's
exceptions, the monthly readout and the weekly check-in. Server-rendered over the checkins, rollup and drift APIs,
with the signed-in person's own token (docs/web.md)."""


def create_app(settings: WebSettings, *, telemetry: Telemetry | None = None, backend: Backend | None = None) -> FastAPI:
    """The web service as one FastAPI app (`backend`: the APIs reached some other way than by their URLs, as tests do)."""
    sessions = Sessions(Authenticator.from_file(settings.tokens_file, "OKR_WEB_TOKENS_FILE"), settings.time_zone)
    telemetry = telemetry or create_telemetry(settings)
    backend = backend or Backend(settings)
    pages = Pages()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        backend.start()
        try:
            yield
        finally:
            await backend.close()
            telemetry.shutdown()

    async def checkins_live() -> bool:  # signing in works without it, but no page does
        return await backend.live("checkins")

    app = FastAPI(title="okrstream web", description=DESCRIPTION, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    install_problem_handlers(app)
    install_error_pages(app, pages)
    app.include_router(health_router({"checkins": checkins_live}))
    app.mount("/static", StaticFiles(directory=str(files("okr_web") / "static")), name="static")
    app.include_router(home_router(pages, sessions, settings))
    app.include_router(scorecard_router(pages, backend, sessions))
    app.include_router(key_result_router(pages, backend, sessions))
    app.include_router(sync_router(pages, backend, sessions))
    app.include_router(checkin_router(pages, backend, sessions))
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, excluded_urls="/health/.*,/static/.*"
    )
    return app

"""The bi-weekly sync's exceptions (green skipped) and the monthly executive readout, printable to PDF.

The readout picks exactly what the e-mailed one does (`okr_notifier.readout`): most
severe exceptions first, then lowest confidence, at most five; reallocation
requests and strategic questions from the recovery plans.
"""

# Without `from __future__ import annotations`: FastAPI must resolve the router-local `Seen` alias when routes are defined.

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from okr_notifier.readout import MIN_EXCEPTIONS, ReadoutInput, chosen_exceptions, decisions
from okr_web.backend import Backend
from okr_web.formats import parse_moment
from okr_web.render import Pages
from okr_web.scorecard import product_names
from okr_web.session import Sessions, Viewer

Severity = Annotated[str, Query(pattern="^(critical|warning|info)$", description="Leave out alerts below this severity.")]


def sync_router(pages: Pages, backend: Backend, sessions: Sessions) -> APIRouter:
    """The exceptions and readout pages."""
    router = APIRouter()
    Seen = Annotated[Viewer, Depends(sessions.viewer)]  # noqa: N806 (a type alias over this router's sessions)

    @router.get("/portfolios/{portfolio_id}/exceptions", response_class=HTMLResponse, summary="The sync's exceptions")
    async def exceptions(viewer: Seen, portfolio_id: str, minimum_severity: Severity = "warning") -> HTMLResponse:
        found, names = await asyncio.gather(
            backend.get("drift", f"/v1/portfolios/{portfolio_id}/exceptions", viewer.token, minimum_severity=minimum_severity),
            product_names(backend, viewer, portfolio_id),
        )
        return pages.render("exceptions.html", viewer, portfolio_id=portfolio_id, found=found, products=names)

    @router.get("/portfolios/{portfolio_id}/readout", response_class=HTMLResponse, summary="The monthly executive readout")
    async def readout(viewer: Seen, portfolio_id: str, window_days: Annotated[int, Query(ge=1, le=366)] = 30) -> HTMLResponse:
        card, found, names = await asyncio.gather(
            backend.get("rollup", f"/v1/portfolios/{portfolio_id}/scorecard", viewer.token, window_days=window_days),
            backend.get("drift", f"/v1/portfolios/{portfolio_id}/exceptions", viewer.token),
            product_names(backend, viewer, portfolio_id),
        )
        month = parse_moment(card["as_of"]).astimezone(viewer.zone)
        reallocations, questions = decisions(found)
        chosen = ReadoutInput.from_apis(portfolio_id, f"{month:%B %Y}", card, found, reallocations, questions)
        return pages.render(
            "readout.html",
            viewer,
            portfolio_id=portfolio_id,
            readout=chosen,
            card=card,
            exceptions=chosen_exceptions(chosen),
            minimum=MIN_EXCEPTIONS,
            products=names,
        )

    return router

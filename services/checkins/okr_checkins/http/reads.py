"""The read routes: a portfolio's current hierarchy, a key result now or as of a time, its history, the export."""

# Without `from __future__ import annotations`: FastAPI must resolve the router-local `Who` alias when routes are defined.

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from okr_checkins.application import CheckinsApplication
from okr_checkins.domain.access import TokenRole
from okr_checkins.domain.commands import known
from okr_checkins.domain.errors import NotPermitted
from okr_checkins.http.auth import actor_of
from okr_checkins.views import key_result_view, portfolio_view
from okr_contracts.export import canonical_json
from okr_runtime.auth import Authenticator, Caller
from okr_runtime.problems import Problem

JSON_LINES = "application/jsonl"
CHAIN_LENGTH = "OKR-Chain-Length"
"""Export response header: how many records the export holds (the position of the last one)."""
CHAIN_HEAD = "OKR-Chain-Head"
"""Export response header: the last record's hash, to check the file against (``okr audit verify --head``)."""


def read_router(app: CheckinsApplication, auth: Authenticator) -> APIRouter:
    """The read routes over `app`, each authenticated by `auth`."""
    router = APIRouter(prefix="/v1/portfolios", tags=["reads"])
    Who = Annotated[Caller, Depends(auth)]  # noqa: N806 (a type alias over this router's authenticator)

    @router.get("/{portfolio_id}", summary="The portfolio's settings and current hierarchy")
    def portfolio(caller: Who, portfolio_id: str) -> dict[str, Any]:
        caller.check_scope(portfolio_id)
        return portfolio_view(app.portfolio(portfolio_id).state)

    @router.get("/{portfolio_id}/key-results/{kr_id}", summary="A key result now, or as recorded at `as_of`")
    def key_result(caller: Who, portfolio_id: str, kr_id: str, response: Response, as_of: datetime | None = None) -> dict[str, Any]:
        caller.check_scope(portfolio_id)
        if as_of is not None:
            if as_of.tzinfo is None:
                raise Problem(422, "Invalid request", "as_of needs a time zone, e.g. 2026-08-12T09:30:00Z")
            past, position = app.key_result_as_of(portfolio_id, kr_id, as_of)
            return {**key_result_view(past), "as_of": as_of.isoformat(), "as_of_position": position}
        kr = known(app.portfolio(portfolio_id).state.key_results, kr_id, "key result")
        response.headers["ETag"] = f'"{kr.version}"'
        return key_result_view(kr)

    @router.get("/{portfolio_id}/key-results/{kr_id}/history", summary="A key result's events, oldest first, paginated")
    def history(
        caller: Who,
        portfolio_id: str,
        kr_id: str,
        after: Annotated[int, Query(ge=0, description="Position after which the page starts (the previous page's `next`).")] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        caller.check_scope(portfolio_id)
        items, following = app.key_result_history(portfolio_id, kr_id, after=after, limit=limit)
        return {"items": items, "next": following}

    @router.get(
        "/{portfolio_id}/export",
        summary="The portfolio's whole history as JSON Lines with its hash chain; the chain's length and head in headers",
    )
    async def export(caller: Who, portfolio_id: str) -> StreamingResponse:
        caller.check_scope(portfolio_id)
        found = await run_in_threadpool(app.portfolio, portfolio_id)
        actor = actor_of(caller)
        if TokenRole.AUDITOR not in actor.roles and actor.principal != found.state.settings.owner:
            raise NotPermitted("only the portfolio lead or an auditor may export the history", action="export the history")
        headers = {
            "Content-Disposition": f'attachment; filename="{portfolio_id}.history.jsonl"',
            CHAIN_LENGTH: str(found.version),
            CHAIN_HEAD: found.chain_head,
        }
        return StreamingResponse(_lines(app, portfolio_id, found.version), media_type=JSON_LINES, headers=headers)

    return router


def _lines(app: CheckinsApplication, portfolio_id: str, upto: int) -> Iterator[bytes]:
    """The records up to the position the response headers describe, so the export is one consistent snapshot."""
    for record in app.records(portfolio_id, upto=upto):
        yield canonical_json(record) + b"\n"

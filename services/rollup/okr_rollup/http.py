"""The read API: the portfolio scorecard, the tree, a node's explanation and its history, and capacity per cycle, now or as of a time."""

# Without `from __future__ import annotations`: FastAPI must resolve the router-local `Who` alias when routes are defined.

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.concurrency import run_in_threadpool

from okr_rollup import views
from okr_rollup.store import ScoreStore
from okr_runtime.auth import Authenticator, Caller
from okr_runtime.problems import Problem

AsOf = Annotated[datetime | None, Query(description="A past moment (ISO 8601 with time zone); now when omitted.")]


def install_api(app: FastAPI, store: ScoreStore, auth: Authenticator) -> None:
    """Mount the read routes over `store`, each authenticated by `auth`."""
    router = APIRouter(prefix="/v1/portfolios", tags=["scores"])
    Who = Annotated[Caller, Depends(auth)]  # noqa: N806 (a type alias over this router's authenticator)

    async def records(caller: Caller, portfolio_id: str, as_of: datetime | None) -> dict[str, dict[str, Any]]:
        caller.check_scope(portfolio_id)
        aware(as_of)
        found = views.payloads(await run_in_threadpool(store.latest, portfolio_id, as_of))
        if not found:
            when = f" as of {as_of.isoformat()}" if as_of else ""
            raise Problem(404, "Not found", f"no scores for portfolio {portfolio_id}{when}", type_="urn:okrstream:problem:unknown-id")
        return found

    @router.get("/{portfolio_id}/scorecard", summary="Each portfolio objective: score, confidence, trend, driving product, mixed flag")
    async def scorecard(
        caller: Who,
        portfolio_id: str,
        as_of: AsOf = None,
        window_days: Annotated[int, Query(ge=1, le=366, description="Trend window in days.")] = 14,
        cycle_id: Annotated[str | None, Query(description="Only this cycle's objectives.")] = None,
    ) -> dict[str, Any]:
        now = await records(caller, portfolio_id, as_of)
        moment = as_of or datetime.now(UTC)
        then = views.payloads(await run_in_threadpool(store.latest, portfolio_id, moment - timedelta(days=window_days)))
        cards = views.scorecard(now, then, window_days=window_days, cycle_id=cycle_id)
        return {"portfolio_id": portfolio_id, "as_of": moment.isoformat(), "window_days": window_days, "objectives": cards}

    @router.get("/{portfolio_id}/tree", summary="The hierarchy with every node's score")
    async def tree(caller: Who, portfolio_id: str, as_of: AsOf = None) -> dict[str, Any]:
        now = await records(caller, portfolio_id, as_of)
        return {"portfolio_id": portfolio_id, "as_of": as_of.isoformat() if as_of else None, "roots": views.tree(now)}

    @router.get("/{portfolio_id}/nodes/{node_id}", summary="A node's score and how it was computed (the math visible)")
    async def explain(caller: Who, portfolio_id: str, node_id: str, as_of: AsOf = None) -> dict[str, Any]:
        now = await records(caller, portfolio_id, as_of)
        if node_id not in now:
            raise Problem(404, "Not found", f"no score for {node_id} in portfolio {portfolio_id}", type_="urn:okrstream:problem:unknown-id")
        return views.explanation(now[node_id], now)

    @router.get("/{portfolio_id}/nodes/{node_id}/history", summary="A node's score records, oldest first")
    async def history(
        caller: Who,
        portfolio_id: str,
        node_id: str,
        since: AsOf = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        caller.check_scope(portfolio_id)
        rows = await run_in_threadpool(lambda: store.history(portfolio_id, node_id, since=since, limit=limit))
        items = [views.summary(p) | {"as_of": p["as_of"], "source_event_id": p["source_event_id"]} for p in map(views.payload, rows)]
        return {"node_id": node_id, "items": items}

    @router.get(
        "/{portfolio_id}/capacity",
        summary="Each cycle's squads (allocated sprints against capacity) and its split by priority, AARRR stage and horizon",
    )
    async def capacity(
        caller: Who,
        portfolio_id: str,
        as_of: AsOf = None,
        cycle_id: Annotated[str | None, Query(description="Only this cycle.")] = None,
    ) -> dict[str, Any]:
        caller.check_scope(portfolio_id)
        aware(as_of)
        stored = await run_in_threadpool(store.capacity, portfolio_id, as_of, cycle_id)
        if not stored and not await run_in_threadpool(store.known, portfolio_id):
            raise Problem(404, "Not found", f"no events of portfolio {portfolio_id}", type_="urn:okrstream:problem:unknown-id")
        cycles = views.capacity((s.view, s.as_of) for s in stored)
        return {"portfolio_id": portfolio_id, "as_of": as_of.isoformat() if as_of else None, "cycles": cycles}

    app.include_router(router)


def aware(as_of: datetime | None) -> None:
    """Refuse a moment without a time zone (422)."""
    if as_of is not None and as_of.tzinfo is None:
        raise Problem(422, "Invalid request", "as_of needs a time zone, e.g. 2026-08-12T09:30:00Z")

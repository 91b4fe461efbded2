"""The portfolio scorecard with its cycles' capacity, and its drill-down: objective → product → initiative, each with its derivation."""

# Without `from __future__ import annotations`: FastAPI must resolve the router-local `Seen` alias when routes are defined.

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from okr_web import capacity
from okr_web.backend import ApiError, Backend
from okr_web.charts import sparkline
from okr_web.formats import parse_moment
from okr_web.render import Pages
from okr_web.session import Sessions, Viewer

SPARK_DAYS = 84
"""The sparkline's window: the last twelve weeks."""


def scorecard_router(pages: Pages, backend: Backend, sessions: Sessions) -> APIRouter:
    """The scorecard and node pages."""
    router = APIRouter()
    Seen = Annotated[Viewer, Depends(sessions.viewer)]  # noqa: N806 (a type alias over this router's sessions)

    @router.get("/portfolios/{portfolio_id}", response_class=HTMLResponse, summary="The portfolio scorecard")
    async def scorecard(
        viewer: Seen,
        portfolio_id: str,
        window_days: Annotated[int, Query(ge=1, le=366)] = 14,
        cycle_id: Annotated[str | None, Query(description="Only this cycle's objectives and capacity.")] = None,
    ) -> HTMLResponse:
        card, names, load = await asyncio.gather(
            backend.get("rollup", f"/v1/portfolios/{portfolio_id}/scorecard", viewer.token, window_days=window_days, cycle_id=cycle_id),
            product_names(backend, viewer, portfolio_id),
            capacity.capacity_of(backend, viewer, portfolio_id, cycle_id),
        )
        now = parse_moment(card["as_of"])
        start = now - timedelta(days=SPARK_DAYS)
        histories = await asyncio.gather(*(history(backend, viewer, portfolio_id, o["objective_id"], start) for o in card["objectives"]))
        rows = [
            {**o, "spark": sparkline([*(h or [(start, o["score"])]), (now, o["score"])], start, now, label=f"{o['title']}, last 12 weeks")}
            for o, h in zip(card["objectives"], histories, strict=True)
        ]
        shown = [cycle_id] if cycle_id else sorted({o["cycle_id"] for o in card["objectives"]})
        cycles = [] if isinstance(load, ApiError) else capacity.sections(load, shown)
        unavailable = load.reason if isinstance(load, ApiError) else None
        return pages.render(
            "scorecard.html",
            viewer,
            portfolio_id=portfolio_id,
            card=card,
            rows=rows,
            products=names,
            cycle_id=cycle_id,
            capacity=cycles,
            capacity_unavailable=unavailable,
        )

    @router.get("/portfolios/{portfolio_id}/nodes/{node_id}", response_class=HTMLResponse, summary="A node's score and its derivation")
    async def node(viewer: Seen, portfolio_id: str, node_id: str) -> Response:
        found = await backend.get("rollup", f"/v1/portfolios/{portfolio_id}/nodes/{node_id}", viewer.token)
        if found["node_kind"] == "key_result":  # a key result's own page shows the same derivation beside its history
            return RedirectResponse(f"/portfolios/{quote(portfolio_id)}/key-results/{quote(node_id)}", status_code=303)
        tree, names = await asyncio.gather(
            backend.get("rollup", f"/v1/portfolios/{portfolio_id}/tree", viewer.token),
            product_names(backend, viewer, portfolio_id),
        )
        trail, children = locate(tree["roots"], node_id)
        return pages.render(
            "node.html",
            viewer,
            portfolio_id=portfolio_id,
            node=found,
            trail=trail,
            children=children,
            inputs=contributions(found),
            products=names,
        )

    return router


async def product_names(backend: Backend, viewer: Viewer, portfolio_id: str) -> dict[str, str]:
    """Product ids to names, from the checkins API (the ids alone when it cannot say)."""
    try:
        found = await backend.get("checkins", f"/v1/portfolios/{portfolio_id}", viewer.token)
    except ApiError:
        return {}
    return {p["product_id"]: p["name"] for p in found.get("products", [])}


async def history(backend: Backend, viewer: Viewer, portfolio_id: str, node_id: str, since: datetime) -> list[tuple[datetime, float]]:
    """A node's progress records since `since`, oldest first."""
    path = f"/v1/portfolios/{portfolio_id}/nodes/{node_id}/history"
    found = await backend.get("rollup", path, viewer.token, since=since.isoformat(), limit=1000)
    return [(parse_moment(i["as_of"]), float(i["progress"])) for i in found["items"]]


def locate(roots: list[dict[str, Any]], node_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The nodes above `node_id` (top first) and its children, found in the scored tree."""
    stack: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [(root, []) for root in roots]
    while stack:
        current, above = stack.pop()
        if current["node_id"] == node_id:
            return above, current["children"]
        stack += [(child, [*above, current]) for child in current["children"]]
    return [], []


def contributions(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Each input of a node's derivation with its share and what it added (weighted rollups: wᵢ·pᵢ / Σw)."""
    inputs = node["derivation"]["inputs"]
    if node["method"] != "weighted":
        return [{**i, "share": None, "adds": None} for i in inputs]
    weights = [i["weight"] if i["weight"] is not None else 1.0 for i in inputs]
    total = sum(weights) or 1.0
    return [{**i, "share": w / total, "adds": w / total * i["progress"]} for i, w in zip(inputs, weights, strict=True)]

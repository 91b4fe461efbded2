"""The connectors' HTTP side: the three signed webhook receivers, a status API for operators, and the portfolios' mappings."""

# Without `from __future__ import annotations`: FastAPI must resolve the router-local `Who` alias when routes are defined.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from okr_connectors.mapping import Mapping
from okr_connectors.mapping_api import mapping_router
from okr_connectors.store import ConnectorStore
from okr_connectors.webhooks import Outcome, Webhooks
from okr_runtime.auth import Authenticator, Caller


def install_api(
    app: FastAPI, webhooks: Webhooks, store: ConnectorStore, auth: Authenticator, *, file_mapping: Mapping | None = None
) -> None:
    """Mount the webhook receivers (authenticated by the vendors' signatures), the status and the mapping routes (bearer tokens).

    `file_mapping` is the operators' mapping file, named where it overrides a portfolio's stored Slack channel.
    """
    hooks = APIRouter(prefix="/webhooks", tags=["webhooks"])

    # Each answer is rendered here (FastAPI passes a Response through without validating it again); response_model documents it.
    @hooks.post(
        "/jira",
        summary="Jira admin webhook (X-Hub-Signature); deduplicated on X-Atlassian-Webhook-Identifier",
        response_model=dict[str, Any],
    )
    async def jira(request: Request) -> JSONResponse:
        return _answer(await webhooks.jira(await request.body(), request.headers))

    @hooks.post(
        "/linear",
        summary="Linear webhook (Linear-Signature, signed webhookTimestamp within 60 s); deduplicated on Linear-Delivery",
        response_model=dict[str, Any],
    )
    async def linear(request: Request) -> JSONResponse:
        return _answer(await webhooks.linear(await request.body(), request.headers))

    @hooks.post(
        "/slack",
        summary="Slack Events API (v0 signature, 5-minute window); url_verification answered; deduplicated on event_id",
        response_model=dict[str, Any],
    )
    async def slack(request: Request) -> JSONResponse:
        return _answer(await webhooks.slack(await request.body(), request.headers))

    status = APIRouter(prefix="/v1/connectors", tags=["status"])
    Who = Annotated[Caller, Depends(auth)]  # noqa: N806 (a type alias over this router's authenticator)

    @status.get("/status", summary="Accepted items per source, events waiting for Kafka, unmapped items, poller checkpoints")
    async def overview(caller: Who) -> dict[str, Any]:
        counts = await run_in_threadpool(store.counts)
        checkpoints = await run_in_threadpool(lambda: list(store.checkpoints()))
        return counts | {"checkpoints": [{"name": n, "position": p, "updated_at": u} for n, p, u in checkpoints]}

    @status.get("/unmapped", summary="Items no mapping rule claimed, most recently seen first: what to map next")
    async def unmapped(
        caller: Who,
        source: Annotated[str | None, Query(description="jira, linear or slack.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        return {"items": await run_in_threadpool(store.unmapped, source, limit)}

    app.include_router(hooks)
    app.include_router(status)
    app.include_router(mapping_router(store, auth, file_mapping or Mapping()))


def _answer(outcome: Outcome) -> JSONResponse:
    if outcome.challenge is not None:
        body: dict[str, Any] = {"challenge": outcome.challenge}
    else:
        body = {"status": outcome.status, **({"detail": outcome.detail} if outcome.detail else {})}
    return JSONResponse(body)

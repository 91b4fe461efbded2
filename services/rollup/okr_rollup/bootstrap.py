"""The composition root: `create_app(settings)` builds the rollup service; nothing connects at import time."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from okr_contracts.topics import KR_EVENTS_TOPIC, SCORES_TOPIC
from okr_rollup.application import RollupService
from okr_rollup.http import install_api
from okr_rollup.settings import RollupSettings
from okr_rollup.store import PostgresScoreStore, ScoreStore, SqliteScoreStore
from okr_runtime.auth import Authenticator
from okr_runtime.consumer import subscribe
from okr_runtime.kafka import create_broker, stored_publisher
from okr_runtime.lag import ConsumerLag
from okr_runtime.service import ServiceParts, service_app
from okr_runtime.sqlstore import open_sql_store
from okr_runtime.telemetry import Telemetry, create_telemetry, observe_backlog

DESCRIPTION = """Live, explainable scores for every objective and key result of a portfolio, projected from
`okr.kr-events.v1` and published on `okr.scores.v1` with their derivation. Scoring rules: docs/scoring.md."""


def create_app(settings: RollupSettings, *, telemetry: Telemetry | None = None) -> FastAPI:
    """The rollup service as one FastAPI app: the okr.kr-events.v1 consumer and the read API."""
    auth = Authenticator.from_file(settings.tokens_file, "OKR_ROLLUP_TOKENS_FILE")
    telemetry = telemetry or create_telemetry(settings)
    broker = create_broker(settings, telemetry)
    store = open_store(settings)
    rollup = RollupService(store, stored_publisher(broker, SCORES_TOPIC))
    subscribe(
        broker,
        KR_EVENTS_TOPIC,
        group_id=settings.group,
        handler=rollup.handle,
        batch_handler=rollup.handle_batch,
        settings=settings,
        telemetry=telemetry,
    )
    lag = ConsumerLag.watch(settings, telemetry, {settings.group: [KR_EVENTS_TOPIC.name]})
    observe_backlog(telemetry, "rollup_scores", store.unpublished_count)

    async def store_ready() -> bool:
        await asyncio.to_thread(store.portfolios)
        return True

    async def close() -> None:
        store.close()

    parts = ServiceParts(
        settings,
        telemetry,
        broker,
        consumer_groups=(settings.group,),
        readiness={"score_store": store_ready},
        on_shutdown=(close,),
        background=(lag.run,),
    )
    app = service_app(parts, title="okrstream rollup", description=DESCRIPTION)
    install_api(app, store, auth)
    app.state.rollup = rollup
    return app


def open_store(settings: RollupSettings) -> ScoreStore:
    """The configured store: the SQLite file, or PostgreSQL (in the configured schema)."""
    return open_sql_store(settings, SqliteScoreStore, PostgresScoreStore, settings.store_path)

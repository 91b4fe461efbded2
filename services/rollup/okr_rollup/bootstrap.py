"""The composition root: `create_app(settings)` builds the rollup service; nothing connects at import time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from okr_contracts.envelope import Headers
from okr_contracts.topics import KR_EVENTS_TOPIC, SCORES_TOPIC
from okr_rollup.application import Publish, RollupService
from okr_rollup.http import install_api
from okr_rollup.settings import RollupSettings
from okr_rollup.store import PostgresScoreStore, ScoreStore, SqliteScoreStore
from okr_runtime.auth import Authenticator
from okr_runtime.consumer import subscribe
from okr_runtime.eventstore import EventStoreConfigError, ensure_schema
from okr_runtime.kafka import create_broker
from okr_runtime.service import ServiceParts, service_app
from okr_runtime.telemetry import Telemetry, create_telemetry

DESCRIPTION = """Live, explainable scores for every objective and key result of a portfolio, projected from
`okr.kr-events.v1` and published on `okr.scores.v1` with their derivation. Scoring rules: docs/scoring.md."""


def create_app(settings: RollupSettings, *, telemetry: Telemetry | None = None) -> FastAPI:
    """The rollup service as one FastAPI app: the okr.kr-events.v1 consumer and the read API."""
    auth = Authenticator.from_file(settings.tokens_file, "OKR_ROLLUP_TOKENS_FILE")
    telemetry = telemetry or create_telemetry(settings)
    broker = create_broker(settings, telemetry)
    store = open_store(settings)
    rollup = RollupService(store, kafka_publisher(broker))
    subscribe(broker, KR_EVENTS_TOPIC, group_id=settings.group, handler=rollup.handle, settings=settings)

    async def store_ready() -> bool:
        await asyncio.to_thread(store.portfolios)
        return True

    async def close() -> None:
        store.close()

    parts = ServiceParts(
        settings, telemetry, broker, consumer_groups=(settings.group,), readiness={"score_store": store_ready}, on_shutdown=(close,)
    )
    app = service_app(parts, title="okrstream rollup", description=DESCRIPTION)
    install_api(app, store, auth)
    app.state.rollup = rollup
    return app


def open_store(settings: RollupSettings) -> ScoreStore:
    """The configured store: the SQLite file, or PostgreSQL (in the configured schema)."""
    if settings.event_store == "sqlite":
        return SqliteScoreStore(settings.store_path)
    if not settings.postgres_dsn:
        raise EventStoreConfigError("OKR_EVENT_STORE=postgres needs OKR_POSTGRES_DSN")
    ensure_schema(settings)
    return PostgresScoreStore(settings.postgres_dsn, settings.postgres_schema)


def kafka_publisher(broker: KafkaBroker) -> Publish:
    """Publish score records on okr.scores.v1 keyed by node id, in order, waiting for every ack."""

    async def publish(records: Sequence[tuple[str, bytes]]) -> None:
        for node_id, value in records:
            envelope = json.loads(value)
            headers = {
                Headers.EVENT_ID: envelope["event_id"],
                Headers.EVENT_TYPE: envelope["type"],
                Headers.SCHEMA_VERSION: str(envelope["schema_version"]),
                Headers.CONTENT_TYPE: "application/json",
            }
            await broker.publish(value, topic=SCORES_TOPIC.name, key=node_id.encode(), headers=headers)

    return publish

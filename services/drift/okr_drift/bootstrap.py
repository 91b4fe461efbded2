"""The composition root: `create_app(settings)` builds the drift service; nothing connects at import time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import FastAPI

from okr_contracts.topics import ALERTS_TOPIC, DELIVERY_TOPIC, KR_EVENTS_TOPIC, SCORES_TOPIC
from okr_drift.application import Clock, DriftService
from okr_drift.http import install_api
from okr_drift.metrics import count_raised
from okr_drift.settings import DriftSettings
from okr_drift.store import DriftStore, PostgresDriftStore, SqliteDriftStore
from okr_runtime.auth import Authenticator
from okr_runtime.consumer import subscribe
from okr_runtime.kafka import create_broker, stored_publisher
from okr_runtime.lag import ConsumerLag
from okr_runtime.service import ServiceParts, service_app
from okr_runtime.sqlstore import open_sql_store
from okr_runtime.telemetry import Telemetry, create_telemetry, observe_backlog

DESCRIPTION = """Drift alerts for every key result of a portfolio: stale, off-track, not moving, confidence falling,
busy but flat, and quality. Evaluated on `okr.kr-events.v1`, `okr.scores.v1`, `okr.delivery.v1` and a clock;
the lifecycle (raised, acknowledged, resolved) is published on `okr.alerts.v1`. Also lists the delivery items
(issues, chat blockers) linked to each key result. Rules: docs/drift.md."""


def system_clock() -> datetime:
    """Wall time, UTC."""
    return datetime.now(UTC)


def create_app(settings: DriftSettings, *, telemetry: Telemetry | None = None, clock: Clock = system_clock) -> FastAPI:
    """The drift service as one FastAPI app: three consumers in the shard's group, the clock, and the alert API."""
    auth = Authenticator.from_file(settings.tokens_file, "OKR_DRIFT_TOKENS_FILE")
    telemetry = telemetry or create_telemetry(settings)
    broker = create_broker(settings, telemetry)
    store = open_store(settings)
    drift = DriftService(store, stored_publisher(broker, ALERTS_TOPIC), clock, settings.owns, on_raised=count_raised(telemetry))
    group = settings.consumer_group
    inputs = (
        (KR_EVENTS_TOPIC, drift.on_history, drift.on_history_batch),
        (SCORES_TOPIC, drift.on_score, drift.on_score_batch),
        (DELIVERY_TOPIC, drift.on_delivery, drift.on_delivery_batch),
    )
    for spec, handler, batch_handler in inputs:
        subscribe(broker, spec, group_id=group, handler=handler, batch_handler=batch_handler, settings=settings, telemetry=telemetry)
    lag = ConsumerLag.watch(settings, telemetry, {group: [spec.name for spec, _, _ in inputs]})
    observe_backlog(telemetry, "drift_outbox", store.unpublished_count)

    async def store_ready() -> bool:
        await asyncio.to_thread(store.ping)
        return True

    async def close() -> None:
        store.close()

    async def clock_loop() -> None:
        await drift.run_clock(settings.tick_seconds)

    parts = ServiceParts(
        settings,
        telemetry,
        broker,
        consumer_groups=(group,),
        readiness={"drift_store": store_ready},
        on_startup=(drift.start,),
        on_shutdown=(close,),
        background=(clock_loop, lag.run),
    )
    app = service_app(parts, title="okrstream drift", description=DESCRIPTION)
    install_api(app, drift, auth)
    app.state.drift = drift
    return app


def open_store(settings: DriftSettings) -> DriftStore:
    """The configured store: the SQLite file, or PostgreSQL (in the configured schema)."""
    return open_sql_store(settings, SqliteDriftStore, PostgresDriftStore, settings.store_path)

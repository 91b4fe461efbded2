"""The composition root: `create_app(settings)` builds the check-in service; nothing connects at import time."""

from __future__ import annotations

import asyncio

from eventsourcing.persistence import TrackingRecorder
from fastapi import FastAPI

from okr_checkins.application import CheckinsApplication, Clock
from okr_checkins.http import install_api
from okr_checkins.kpi import KpiRecorder
from okr_checkins.lease import PostgresLease, lock_key
from okr_checkins.outbox import Lease, OutboxRelay, SingleProcessLease, tracking_recorder
from okr_checkins.settings import CheckinsSettings
from okr_contracts.topics import topic
from okr_runtime.auth import Authenticator
from okr_runtime.consumer import subscribe
from okr_runtime.eventstore import creating_tables, event_store_env
from okr_runtime.kafka import create_broker
from okr_runtime.lag import ConsumerLag
from okr_runtime.service import ServiceParts, service_app
from okr_runtime.telemetry import Telemetry, create_telemetry, observe_backlog

DESCRIPTION = """The write side of okrstream: define portfolios, products, teams, cycles, objectives and key results;
record check-ins, values, target changes, retirements, escalations and recovery plans. Every change is an event
of the portfolio's append-only, hash-chained history, published to `okr.kr-events.v1` by the outbox."""


def create_app(settings: CheckinsSettings, *, clock: Clock | None = None, telemetry: Telemetry | None = None) -> FastAPI:
    """The check-in service as one FastAPI app: HTTP API, outbox relay and KPI consumer."""
    auth = Authenticator.from_file(settings.tokens_file, "OKR_CHECKINS_TOKENS_FILE")
    telemetry = telemetry or create_telemetry(settings)
    broker = create_broker(settings, telemetry)
    checkins, tracking = open_event_store(settings, clock=clock)
    relay = OutboxRelay(
        checkins,
        broker,
        tracking,
        _lease(settings),
        batch=settings.relay_batch,
        idle_s=settings.relay_idle_s,
        retry_s=settings.relay_retry_s,
    )
    observe_backlog(telemetry, "checkins_outbox", relay.backlog)
    kpi = KpiRecorder(checkins)
    metrics = topic("okr.metrics.v1")
    subscribe(
        broker,
        metrics,
        group_id=settings.kpi_group,
        handler=kpi.handle,
        batch_handler=kpi.handle_batch,
        settings=settings,
        telemetry=telemetry,
    )
    lag = ConsumerLag.watch(settings, telemetry, {settings.kpi_group: [metrics.name]})

    async def store_ready() -> bool:
        await asyncio.to_thread(checkins.recorder.max_notification_id)
        return True

    async def close() -> None:
        await relay.lease.release()
        checkins.close()

    parts = ServiceParts(
        settings,
        telemetry,
        broker,
        consumer_groups=(settings.kpi_group,),
        readiness={"event_store": store_ready},
        on_shutdown=(close,),
        background=(relay.run, lag.run),
    )
    app = service_app(parts, title="okrstream checkins", description=DESCRIPTION)
    install_api(app, checkins, auth)
    app.state.checkins = checkins
    app.state.relay = relay
    return app


def open_event_store(settings: CheckinsSettings, *, clock: Clock | None = None) -> tuple[CheckinsApplication, TrackingRecorder]:
    """The history and the relay's position recorder; the library creates their tables, one replica at a time."""
    env = event_store_env(settings)
    with creating_tables(settings):
        return CheckinsApplication(env, clock=clock), tracking_recorder(env)


def _lease(settings: CheckinsSettings) -> Lease:
    if settings.event_store == "postgres" and settings.postgres_dsn:
        return PostgresLease(settings.postgres_dsn, key=lock_key(settings.postgres_schema))
    return SingleProcessLease()

"""The composition root: `create_app(settings)` builds the connectors service; nothing connects at import time."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from okr_connectors import intake
from okr_connectors.http import install_api
from okr_connectors.jira_poll import JiraPoller
from okr_connectors.kpi import KpiConfig, KpiScheduler
from okr_connectors.linear_poll import LinearPoller
from okr_connectors.mapping import Mapping, MappingSource
from okr_connectors.polling import Http
from okr_connectors.portfolio_mappings import LiveMapping
from okr_connectors.relay import OutboxRelay
from okr_connectors.settings import ConnectorsSettings
from okr_connectors.store import ConnectorStore, PostgresConnectorStore, SqliteConnectorStore
from okr_connectors.webhooks import Webhooks
from okr_contracts.metrics import KpiSampled
from okr_runtime.auth import Authenticator
from okr_runtime.kafka import create_broker
from okr_runtime.service import Loop, ServiceParts, service_app
from okr_runtime.sqlstore import open_sql_store
from okr_runtime.telemetry import Telemetry, create_telemetry, observe_backlog

log = logging.getLogger(__name__)

DESCRIPTION = """Jira, Linear and Slack webhooks (signature-checked, deduplicated, answered once stored), polling backfill
with checkpoints, and KPI pulls; normalised events on `okr.delivery.v1` and `okr.metrics.v1`. See docs/connectors.md."""


def create_app(
    settings: ConnectorsSettings, *, telemetry: Telemetry | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> FastAPI:
    """The connectors as one FastAPI app: webhook receivers, status API, the outbox relay and the pollers."""
    auth = Authenticator.from_file(settings.tokens_file, "OKR_CONNECTORS_TOKENS_FILE")
    telemetry = telemetry or create_telemetry(settings)
    broker = create_broker(settings, telemetry)
    store = open_store(settings)
    file_mapping = Mapping.load(settings.mapping_file) if settings.mapping_file else Mapping()
    mapping = LiveMapping(file_mapping, store)  # the file, then the portfolios' stored mappings, read as they change
    relay = OutboxRelay(store, broker, idle_s=settings.relay_idle_s)
    observe_backlog(telemetry, "connector_outbox", store.unpublished_count)
    webhooks = Webhooks(settings, store, mapping, relay.notify, clock)

    client = httpx.AsyncClient(timeout=30)  # connects on first use; closed at shutdown
    background: list[Loop] = [
        relay.run,
        prune_loop(store, settings.inbox_retention_days, clock),
        *poller_loops(settings, store, mapping, Http(client)),
    ]
    if settings.kpi_file is not None:
        background.append(kpi_loop(KpiConfig.load(settings.kpi_file, os.environ), client, store, relay, clock))

    async def store_ready() -> bool:
        await asyncio.to_thread(store.ping)
        return True

    async def close() -> None:
        await client.aclose()
        store.close()

    parts = ServiceParts(
        settings,
        telemetry,
        broker,
        readiness={"connector_store": store_ready},
        on_shutdown=(close,),
        background=background,
    )
    app = service_app(parts, title="okrstream connectors", description=DESCRIPTION)
    install_api(app, webhooks, store, auth, file_mapping=file_mapping)
    app.state.relay = relay
    app.state.store = store
    return app


def prune_loop(store: ConnectorStore, retention_days: float, clock: Callable[[], datetime], every_s: float = 3600) -> Loop:
    """Hourly: drop published outbox rows and inbox keys older than the retention, so the store stays bounded."""

    async def run() -> None:
        while True:
            try:
                outbox, inbox = await asyncio.to_thread(store.prune, clock() - timedelta(days=retention_days))
            except Exception:
                log.exception("pruning the connector store failed; trying again in %.0fs", every_s)
            else:
                if outbox or inbox:
                    log.info("pruned %d published outbox rows and %d inbox keys", outbox, inbox)
            await asyncio.sleep(every_s)

    return run


def poller_loops(settings: ConnectorsSettings, store: ConnectorStore, mapping: MappingSource, http: Http) -> list[Loop]:
    """A loop per poller whose interval is set; a poller missing its credentials fails the start-up with what is missing."""
    loops: list[Loop] = []
    if settings.jira_poll_s > 0:
        loops.append(functools.partial(JiraPoller.from_settings(settings, store, mapping, http).run, settings.jira_poll_s, asyncio.Event()))
    if settings.linear_poll_s > 0:
        linear = LinearPoller.from_settings(settings, store, mapping, http)
        loops.append(functools.partial(linear.run, settings.linear_poll_s, asyncio.Event()))
    return loops


def kpi_loop(
    config: KpiConfig, client: httpx.AsyncClient, store: ConnectorStore, relay: OutboxRelay, clock: Callable[[], datetime]
) -> Loop:
    """The KPI scheduler as a background loop: samples go to the outbox (deduplicated), the relay publishes them."""

    async def sink(samples: list[KpiSampled]) -> None:
        await asyncio.to_thread(store.accept, "kpi", [intake.sample_item(s) for s in samples])
        relay.notify()

    async def run() -> None:
        await KpiScheduler(config, client, os.environ, clock, sink).run(asyncio.Event())

    return run


def open_store(settings: ConnectorsSettings) -> ConnectorStore:
    """The configured store: the SQLite file, or PostgreSQL (in the configured schema)."""
    return open_sql_store(settings, SqliteConnectorStore, PostgresConnectorStore, settings.store_path)

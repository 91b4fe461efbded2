"""The skeleton every service's composition root builds on: HTTP app, broker, lifespan, serving.

``service_app`` wires the shared parts into a FastAPI app whose lifespan creates
the topics, starts the broker after the service's own resources, and on SIGTERM
(uvicorn turns it into a lifespan shutdown) stops consuming, lets in-flight
handlers finish, flushes telemetry and closes resources, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from okr_contracts.topics import TOPICS, TopicSpec, dead_letter_spec
from okr_runtime.health import ReadinessCheck, health_router
from okr_runtime.kafka import ensure_topics, require_topics
from okr_runtime.problems import install_problem_handlers
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import Telemetry

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]
Loop = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class ServiceParts:
    """What a service hands to `service_app`: its broker, telemetry and own resources."""

    settings: RuntimeSettings
    telemetry: Telemetry
    broker: KafkaBroker
    consumer_groups: Sequence[str] = ()
    readiness: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    on_startup: Sequence[Hook] = ()
    on_shutdown: Sequence[Hook] = ()
    background: Sequence[Loop] = ()
    """Long-running loops (an outbox relay, a clock): started after the broker, cancelled before it stops."""


def service_app(parts: ServiceParts, *, title: str, description: str = "") -> FastAPI:
    """A FastAPI app with health endpoints, problem+json errors, tracing and the broker's lifespan."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        topics: list[TopicSpec] = [*TOPICS, *(dead_letter_spec(g) for g in parts.consumer_groups)]
        if parts.settings.kafka_create_topics:
            created = await ensure_topics(parts.settings.kafka_bootstrap, topics, parts.settings.kafka_replication_factor)
            if created:
                log.info("created topics %s", ", ".join(created))
        else:
            await require_topics(parts.settings.kafka_bootstrap, topics)
        for hook in parts.on_startup:
            await hook()
        await parts.broker.start()
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(loop(), name=getattr(loop, "__qualname__", "background")) for loop in parts.background
        ]
        log.info("%s started", parts.settings.service_name)
        try:
            yield
        finally:
            await _cancel(tasks)
            await parts.broker.stop()
            for hook in reversed(parts.on_shutdown):
                await hook()
            parts.telemetry.shutdown()
            log.info("%s stopped", parts.settings.service_name)

    async def kafka_ready() -> bool:
        return await parts.broker.ping(timeout=1.0)

    app = FastAPI(title=title, description=description, lifespan=lifespan)
    app.state.broker = parts.broker  # its subscriptions say what the service consumes (the deploy tests read them)
    install_problem_handlers(app)
    app.include_router(health_router({"kafka": kafka_ready, **parts.readiness}))
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=parts.telemetry.tracer_provider,
        meter_provider=parts.telemetry.meter_provider,
        excluded_urls="/health/.*",
        exclude_spans=["receive", "send"],  # one span per request, not one more per ASGI message (a tenth of a webhook's CPU)
    )
    return app


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def serve(app: FastAPI, settings: RuntimeSettings) -> None:
    """Run the app until SIGTERM or SIGINT, then shut down cleanly."""
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        timeout_graceful_shutdown=20,
    )
    uvicorn.Server(config).run()

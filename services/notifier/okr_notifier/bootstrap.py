"""The composition root: `create_app(settings)` builds the notifier; nothing connects at import time."""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from okr_contracts.envelope import Headers
from okr_contracts.topics import ALERTS_TOPIC, dead_letter_topic
from okr_notifier.application import NotifierService, deliverer
from okr_notifier.cadence import CadenceRunner, ReadApis
from okr_notifier.dispatch import Dispatcher
from okr_notifier.metrics import SendCounters
from okr_notifier.routing import RoutingConfig
from okr_notifier.senders import EmailSender, SlackSender
from okr_notifier.sendlog import PostgresSendLog, Send, SqliteSendLog
from okr_notifier.settings import NotifierSettings
from okr_runtime.consumer import subscribe
from okr_runtime.kafka import create_broker
from okr_runtime.lag import ConsumerLag
from okr_runtime.service import Loop, ServiceParts, service_app
from okr_runtime.sqlstore import open_sql_store
from okr_runtime.telemetry import Telemetry, create_telemetry, observe_backlog

DESCRIPTION = """Routes drift alerts from `okr.alerts.v1` to Slack and e-mail, once per alert state and recipient,
with retries and a dead-letter topic. See docs/notifier.md."""


def create_app(
    settings: NotifierSettings,
    *,
    telemetry: Telemetry | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    require_https: bool = True,
) -> FastAPI:
    """The notifier as one FastAPI app: the okr.alerts.v1 consumer, the send log and the dispatcher."""
    telemetry = telemetry or create_telemetry(settings)
    broker = create_broker(settings, telemetry)
    sends = open_sql_store(settings, SqliteSendLog, PostgresSendLog, settings.store_path)
    routing = (
        RoutingConfig.load(settings.routing_file) if settings.routing_file else RoutingConfig(portfolios={}, link_base="http://localhost")
    )
    service = NotifierService(sends, routing, clock)
    subscribe(
        broker,
        ALERTS_TOPIC,
        group_id=settings.group,
        handler=service.on_alert,
        batch_handler=service.on_alerts,
        settings=settings,
        telemetry=telemetry,
    )
    lag = ConsumerLag.watch(settings, telemetry, {settings.group: [ALERTS_TOPIC.name]})
    observe_backlog(telemetry, "notifier_sends", sends.pending_count)
    client = httpx.AsyncClient(timeout=30)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None  # none: incoming webhooks only
    slack = SlackSender(
        client, bot_token=token, api_base=settings.slack_api_base, allowed_hosts=settings.allowed_hosts, require_https=require_https
    )
    email = None
    if settings.smtp_host:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        email = EmailSender(
            settings.smtp_host,
            settings.smtp_port,
            username=settings.smtp_username,
            password=password,
            starttls=settings.smtp_starttls,
            sender=settings.mail_from,
        )
    dispatcher = Dispatcher(
        sends,
        deliverer(slack, email, os.environ),
        dead_letter=dead_letterer(broker, settings.group),
        max_attempts=settings.max_attempts,
        clock=clock,
        outcomes=SendCounters(telemetry),
    )

    background: list[Loop] = [functools.partial(dispatcher.run, asyncio.Event(), settings.dispatch_idle_s), lag.run]
    if any(p.cadence for p in routing.portfolios.values()):
        if not (settings.drift_url and settings.rollup_url and settings.api_token):
            raise ValueError("the routing has a cadence: set OKR_NOTIFIER_DRIFT_URL, OKR_NOTIFIER_ROLLUP_URL and OKR_NOTIFIER_API_TOKEN")
        apis = ReadApis(client, settings.drift_url, settings.rollup_url, settings.api_token.get_secret_value())
        background.append(functools.partial(CadenceRunner(routing, apis, sends, clock).run, settings.cadence_tick_s))

    async def send_log_ready() -> bool:
        await asyncio.to_thread(sends.ping)
        return True

    async def close() -> None:
        await client.aclose()
        sends.close()

    parts = ServiceParts(
        settings,
        telemetry,
        broker,
        consumer_groups=(settings.group,),
        readiness={"send_log": send_log_ready},
        on_shutdown=(close,),
        background=background,
    )
    app = service_app(parts, title="okrstream notifier", description=DESCRIPTION)
    app.state.sends = sends
    app.state.dispatcher = dispatcher
    return app


def dead_letterer(broker: KafkaBroker, group: str) -> Callable[[Send, str], Awaitable[None]]:
    """Publish a send that failed for good to the group's dead-letter topic: the send as JSON, the reason in the headers."""
    topic = dead_letter_topic(group)

    async def dead_letter(send: Send, reason: str) -> None:
        value = {
            "alert_id": send.alert_id,
            "state": send.state,
            "recipient": send.recipient,
            "channel": send.channel,
            "address": send.address,
            "payload": send.payload,
        }
        headers = {
            Headers.DLQ_REASON: reason[:2000],
            Headers.DLQ_ERROR_TYPE: "SendFailed",
            Headers.DLQ_SOURCE_TOPIC: ALERTS_TOPIC.name,
            Headers.DLQ_CONSUMER_GROUP: group,
            Headers.DLQ_ATTEMPTS: str(send.attempts + 1),
            Headers.DLQ_FAILED_AT: datetime.now(UTC).isoformat(),
            Headers.CONTENT_TYPE: "application/json",
        }
        await broker.publish(json.dumps(value, sort_keys=True).encode(), topic=topic, key=send.alert_id.encode(), headers=headers)

    return dead_letter

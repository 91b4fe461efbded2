"""A minimal service built on the shared skeleton, run in a subprocess by the shutdown test."""

from __future__ import annotations

import logging
import sys

from okr_contracts import topic
from okr_contracts.envelope import Envelope, EventPayload
from okr_runtime.consumer import Delivery, subscribe
from okr_runtime.kafka import create_broker
from okr_runtime.logs import configure_logging
from okr_runtime.service import ServiceParts, serve, service_app
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import create_telemetry

log = logging.getLogger("okr.test-service")


async def on_event(envelope: Envelope[EventPayload], delivery: Delivery) -> None:
    log.info("consumed %s", envelope.type)


async def on_shutdown() -> None:
    log.info("closing own resources")


def main(bootstrap: str, port: int, group: str) -> None:
    settings = RuntimeSettings(service_name="test-service", kafka_bootstrap=bootstrap, http_port=port, log_format="text")
    configure_logging(settings)
    telemetry = create_telemetry(settings)
    broker = create_broker(settings, telemetry)
    subscribe(broker, topic("okr.kr-events.v1"), group_id=group, handler=on_event, settings=settings, telemetry=telemetry)
    parts = ServiceParts(settings, telemetry, broker, consumer_groups=(group,), on_shutdown=(on_shutdown,))
    serve(service_app(parts, title="test service"), settings)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])

"""The shared service skeleton against real Kafka: topics, readiness, clean shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from okr_contracts import TOPICS, dead_letter_topic
from okr_runtime.kafka import TopicCreationError, create_broker
from okr_runtime.readiness import free_port
from okr_runtime.service import ServiceParts, service_app
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import create_telemetry

pytestmark = pytest.mark.integration


async def topic_configs(bootstrap: str, name: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        entries = response.resources[0][4]
        return {entry[0]: entry[1] for entry in entries}
    finally:
        await admin.close()


async def test_a_service_creates_the_registry_topics_and_reports_ready(kafka_bootstrap: str, unique: str) -> None:
    settings = RuntimeSettings(service_name=f"svc-{unique}", kafka_bootstrap=kafka_bootstrap)
    telemetry = create_telemetry(settings)
    parts = ServiceParts(settings, telemetry, create_broker(settings, telemetry), consumer_groups=(f"g-{unique}",))
    app = service_app(parts, title="t")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"kafka": "ok"}
    scores = await topic_configs(kafka_bootstrap, "okr.scores.v1")
    assert scores["cleanup.policy"] == "compact"
    history = await topic_configs(kafka_bootstrap, "okr.kr-events.v1")
    assert history["retention.ms"] == "-1"
    dead = await topic_configs(kafka_bootstrap, dead_letter_topic(f"g-{unique}"))
    assert dead["retention.ms"] == str(30 * 24 * 3600 * 1000)
    assert {t.name for t in TOPICS} <= set(await list_topics(kafka_bootstrap))


async def test_where_the_deploy_owns_the_topics_a_missing_one_stops_the_start_and_the_topics_job_creates_it(
    kafka_bootstrap: str, unique: str
) -> None:
    group = f"g-{unique}"
    settings = RuntimeSettings(service_name=f"svc-{unique}", kafka_bootstrap=kafka_bootstrap, kafka_create_topics=False)
    telemetry = create_telemetry(settings)
    parts = ServiceParts(settings, telemetry, create_broker(settings, telemetry), consumer_groups=(group,))
    app = service_app(parts, title="t")
    with pytest.raises(TopicCreationError, match=re.escape(dead_letter_topic(group))):
        async with app.router.lifespan_context(app):
            pass
    assert dead_letter_topic(group) not in await list_topics(kafka_bootstrap)

    # The chart's topics job: the admin command, with the group's dead-letter topic.
    job = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "okr_runtime.admin",
        "create-topics",
        f"--dead-letter-group={group}",
        env={**os.environ, "OKR_KAFKA_BOOTSTRAP": kafka_bootstrap},
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await job.communicate()
    assert job.returncode == 0
    assert re.search(rf"{re.escape(dead_letter_topic(group))}\s+created", output.decode())
    assert (await topic_configs(kafka_bootstrap, dead_letter_topic(group)))["retention.ms"] == str(30 * 24 * 3600 * 1000)

    telemetry = create_telemetry(settings)
    parts = ServiceParts(settings, telemetry, create_broker(settings, telemetry), consumer_groups=(group,))
    app = service_app(parts, title="t")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/health/ready")).status_code == 200


async def list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def test_sigterm_stops_a_service_cleanly(kafka_bootstrap: str, unique: str) -> None:
    port = free_port()
    script = Path(__file__).with_name("service_app_for_test.py")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        kafka_bootstrap,
        str(port),
        f"sigterm-{unique}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}/health/ready", process)
        process.send_signal(signal.SIGTERM)
        output_bytes, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
    output = output_bytes.decode()
    # uvicorn re-raises the signal after a complete graceful shutdown, so supervisors see why it ended
    assert process.returncode == -signal.SIGTERM, output
    assert "LeaveGroup request succeeded" in output
    assert "closing own resources" in output
    assert "test-service stopped" in output
    assert "Application shutdown complete" in output


async def wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as client, asyncio.timeout(90):
        while True:
            if process.returncode is not None:
                raise AssertionError(f"service exited early with {process.returncode}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)

"""The check-in service through real Kafka, on SQLite and on PostgreSQL: outbox, KPI samples, a Kafka outage."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from fastapi.testclient import TestClient

from okr_checkins.bootstrap import create_app
from okr_checkins.settings import CheckinsSettings
from okr_contracts.envelope import Envelope, Headers
from okr_contracts.export import verify_chain
from okr_contracts.metrics import KpiSampled
from okr_contracts.topics import dead_letter_topic, topic
from okr_runtime.auth import hash_token

pytestmark = pytest.mark.integration

KR_EVENTS = topic("okr.kr-events.v1")
PRINCIPALS = {"cpo": ["portfolio_lead"], "pm.ana": [], "auditor": ["auditor"]}


def _headers(principal: str) -> dict[str, str]:
    return {"Authorization": f"Bearer t-{principal}"}


@pytest.fixture(params=["sqlite", pytest.param("postgres")])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Settings of an empty event store of either kind."""
    if request.param == "sqlite":
        return {"event_store": "sqlite", "sqlite_path": tmp_path / "history.sqlite"}
    dsn = request.getfixturevalue("postgres_dsn")
    return {"event_store": "postgres", "postgres_dsn": dsn, "postgres_schema": f"k_{uuid.uuid4().hex[:12]}"}


def settings_for(bootstrap: str, store: dict[str, Any], tmp_path: Path, unique: str) -> CheckinsSettings:
    tokens = [{"sha256": hash_token(f"t-{p}"), "principal": p, "roles": roles} for p, roles in PRINCIPALS.items()]
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(json.dumps({"tokens": tokens}))
    return CheckinsSettings(
        kafka_bootstrap=bootstrap,
        tokens_file=tokens_file,
        kpi_group=f"checkins.kpi.{unique}",
        relay_idle_s=0.2,
        relay_retry_s=0.5,
        dlq_retry_backoff_s=0.1,
        **store,
    )


@contextmanager
def running(settings: CheckinsSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def seed(client: TestClient, pid: str, metric: str) -> None:
    """A portfolio with one product objective and a key result bound to `metric`."""
    steps: list[tuple[str, dict[str, Any], str]] = [
        ("", {"portfolio_id": pid, "name": "Acme", "owner": "cpo"}, "cpo"),
        (f"/{pid}/products", {"product_id": "billing", "name": "Billing", "lead": "cpo"}, "cpo"),
        (f"/{pid}/cycles", {"cycle_id": "q3", "name": "Q3", "starts_on": "2026-07-01", "ends_on": "2026-09-30"}, "cpo"),
        (
            f"/{pid}/objectives",
            {"objective_id": "keep", "cycle_id": "q3", "tier": 2, "title": "Keep", "owner": "pm.ana", "product_id": "billing"},
            "cpo",
        ),
        (
            f"/{pid}/key-results",
            {
                "kr_id": "churn",
                "objective_id": "keep",
                "title": "Churn 5 to 2",
                "baseline": 5,
                "target": 2,
                "unit": "%",
                "owner": "pm.ana",
                "kpi_binding": metric,
            },
            "cpo",
        ),
    ]
    for path, body, principal in steps:
        response = client.post(f"/v1/portfolios{path}", json=body, headers=_headers(principal))
        assert response.status_code == 201, response.text


def check_in(client: TestClient, pid: str, week: int) -> None:
    body = {"confidence": 0.5 + week / 100, "what_changed": f"week {week}", "value": 5 - week / 10}
    response = client.post(f"/v1/portfolios/{pid}/key-results/churn/check-ins", json=body, headers=_headers("pm.ana"))
    assert response.status_code == 201, response.text


def export(client: TestClient, pid: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/portfolios/{pid}/export", headers=_headers("auditor"))
    return [json.loads(line) for line in response.text.splitlines()]


def publish(bootstrap: str, topic_name: str, key: str, envelope: Envelope[Any]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            headers = [(k, v.encode()) for k, v in envelope.headers().items()]
            await producer.send_and_wait(topic_name, envelope.to_json_bytes(), key=key.encode(), headers=headers)
        finally:
            await producer.stop()

    asyncio.run(run())


def test_a_check_in_appears_on_the_kr_events_topic_with_a_valid_envelope(
    kafka_bootstrap: str, store: dict[str, Any], tmp_path: Path, unique: str, consume: Any
) -> None:
    pid = f"acme-{unique}"
    with running(settings_for(kafka_bootstrap, store, tmp_path, unique)) as client:
        seed(client, pid, f"churn-{unique}")
        check_in(client, pid, 1)
        history = export(client, pid)
    records = consume(kafka_bootstrap, KR_EVENTS.name, lambda seen: len(seen) >= len(history), key=pid.encode())
    envelopes = [KR_EVENTS.decode(r.value, tolerant=False) for r in records]
    assert [str(e.event_id) for e in envelopes] == [h["event_id"] for h in history]
    assert [e.type for e in envelopes][-2:] == ["CheckInRecorded", "ValueObserved"]
    check = envelopes[-2]
    assert check.producer == "checkins"
    assert check.data.model_dump(mode="json") == history[-2]["data"]
    headers = {k: v.decode() for k, v in records[-2].headers}
    assert headers[Headers.EVENT_ID] == str(check.event_id)
    assert headers["okr-chain-hash"] == history[-2]["hash"]
    assert "traceparent" in headers


def test_kpi_samples_become_values_once_and_unknown_metrics_are_dead_lettered(
    kafka_bootstrap: str, store: dict[str, Any], tmp_path: Path, unique: str, consume: Any
) -> None:
    pid, metric = f"acme-{unique}", f"churn-{unique}"
    settings = settings_for(kafka_bootstrap, store, tmp_path, unique)
    at = datetime(2026, 8, 20, tzinfo=UTC)
    sample = Envelope.wrap(KpiSampled(metric=metric, value=3.9, unit="%", observed_at=at, source="sql:warehouse"), producer="connectors")
    later = Envelope.wrap(
        KpiSampled(metric=metric, value=3.8, unit="%", observed_at=at.replace(day=21), source="sql:warehouse"), producer="connectors"
    )
    unknown = Envelope.wrap(KpiSampled(metric=f"nps-{unique}", value=41, observed_at=at, source="http:survey"), producer="connectors")
    with running(settings) as client:
        seed(client, pid, metric)
        # same metric, same partition: once `later` is the value, the duplicate before it was consumed too
        for envelope in (sample, sample, later, unknown):
            publish(kafka_bootstrap, "okr.metrics.v1", envelope.data.metric, envelope)
        dead = consume(kafka_bootstrap, dead_letter_topic(settings.kpi_group), lambda seen: any(_names(r, unknown) for r in seen))
        deadline = time.monotonic() + 30
        while client.get(f"/v1/portfolios/{pid}/key-results/churn", headers=_headers("pm.ana")).json()["value"] != 3.8:
            assert time.monotonic() < deadline, "the samples never became the key result's value"
            time.sleep(0.2)
        values = [r for r in export(client, pid) if r["type"] == "ValueObserved"]
    assert [v["data"]["value"] for v in values] == [3.9, 3.8]
    assert {v["data"]["source"] for v in values} == {"sql:warehouse"}
    reason = next(dict(r.headers)[Headers.DLQ_REASON].decode() for r in dead if _names(r, unknown))
    assert reason == f"Rejected: no key result is bound to metric 'nps-{unique}'"


def _names(record: Any, envelope: Envelope[Any]) -> bool:
    """Whether a dead-letter record is `envelope` (a new group also reads other tests' earlier samples)."""
    return dict(record.headers).get(Headers.EVENT_ID) == str(envelope.event_id).encode()


def test_kafka_stopped_mid_run_loses_no_event_and_duplicates_none_after_dedup(
    restartable_kafka: Any, store: dict[str, Any], tmp_path: Path, unique: str, consume: Any
) -> None:
    pid = f"acme-{unique}"
    bootstrap = restartable_kafka.bootstrap
    with running(settings_for(bootstrap, store, tmp_path, unique)) as client:
        seed(client, pid, f"churn-{unique}")
        for week in range(3):
            check_in(client, pid, week)
        consume(bootstrap, KR_EVENTS.name, lambda seen: len(seen) >= 5 + 6, key=pid.encode())
        restartable_kafka.stop()
        for week in range(3, 10):
            check_in(client, pid, week)
        restartable_kafka.start()
        history = export(client, pid)
        records = consume(
            bootstrap, KR_EVENTS.name, lambda seen: len({r.value for r in seen}) >= len(history), key=pid.encode(), timeout_s=150
        )
    assert verify_chain(history) == []
    first_seen: dict[str, int] = {}
    for record in records:
        envelope = KR_EVENTS.decode(record.value, tolerant=False)
        first_seen.setdefault(str(envelope.event_id), int(dict(record.headers)["okr-chain-position"]))
    assert list(first_seen) == [h["event_id"] for h in history]
    assert list(first_seen.values()) == list(range(1, len(history) + 1))

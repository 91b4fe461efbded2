"""Key results recorded in checkins reach drift through real Kafka; alerts and their lifecycle come back on okr.alerts.v1.

Checkins and drift share one settable clock, so the tests move time forward
instead of waiting for it: the drift clock loop ticks every 0.2 s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from fastapi.testclient import TestClient

from okr_checkins.bootstrap import create_app as create_checkins
from okr_checkins.settings import CheckinsSettings
from okr_contracts.envelope import Headers
from okr_contracts.topics import ALERTS_TOPIC, DELIVERY_TOPIC, KR_EVENTS_TOPIC, dead_letter_topic
from okr_drift.bootstrap import create_app as create_drift
from okr_drift.settings import DriftSettings
from okr_runtime.auth import hash_token

pytestmark = pytest.mark.integration

CPO = {"Authorization": "Bearer t-cpo"}
OWNER = {"Authorization": "Bearer t-pm"}


@dataclass
class Clock:
    """The one clock of both services; tests move it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.json"
    tokens = [
        {"sha256": hash_token("t-cpo"), "principal": "cpo", "roles": ["portfolio_lead"]},
        {"sha256": hash_token("t-pm"), "principal": "pm-bo"},
    ]
    path.write_text(json.dumps({"tokens": tokens}))
    return path


def post(client: TestClient, path: str, body: dict[str, Any], headers: dict[str, str] = CPO) -> None:
    response = client.post(f"/v1/portfolios{path}", json=body, headers=headers)
    assert response.status_code == 201, response.text


def seed(client: TestClient, pid: str, *, starts: datetime, days: int) -> None:
    """One product objective with one metric key result owned by pm-bo, in a cycle of `days` days from `starts`."""
    ends = (starts + timedelta(days=days - 1)).date()
    post(client, "", {"portfolio_id": pid, "name": "Acme", "owner": "cpo"})
    post(client, f"/{pid}/products", {"product_id": "alpha", "name": "Alpha", "lead": "lead-ana"})
    post(client, f"/{pid}/cycles", {"cycle_id": "c1", "name": "C1", "starts_on": starts.date().isoformat(), "ends_on": ends.isoformat()})
    objective = {"objective_id": "o1", "cycle_id": "c1", "tier": 2, "title": "Activation grows", "owner": "lead-ana", "product_id": "alpha"}
    post(client, f"/{pid}/objectives", objective)
    kr = {"kr_id": "k1", "objective_id": "o1", "title": "Weekly active teams", "baseline": 0, "target": 100, "unit": "teams"}
    post(client, f"/{pid}/key-results", kr | {"owner": "pm-bo"})


def check_in(client: TestClient, pid: str, confidence: float) -> None:
    post(client, f"/{pid}/key-results/k1/check-ins", {"confidence": confidence, "what_changed": "weekly"}, OWNER)


def services(kafka_bootstrap: str, tmp_path: Path, unique: str, clock: Clock) -> tuple[TestClient, TestClient]:
    tokens = tokens_file(tmp_path)
    common: dict[str, Any] = {"kafka_bootstrap": kafka_bootstrap, "tokens_file": tokens, "dlq_retry_backoff_s": 0.1}
    checkins = CheckinsSettings(sqlite_path=tmp_path / "history.sqlite", kpi_group=f"kpi.{unique}", relay_idle_s=0.2, **common)
    drift = DriftSettings(store_path=tmp_path / "drift.sqlite", group=f"drift.{unique}", tick_seconds=0.2, **common)
    return TestClient(create_checkins(checkins, clock=clock)), TestClient(create_drift(drift, clock=clock))


class Alerts:
    """The portfolio's records on okr.alerts.v1, read from the start."""

    def __init__(self, bootstrap: str, pid: str, consume: Any) -> None:
        self.bootstrap, self.pid, self.consume = bootstrap, pid, consume

    def until(self, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        def ours(records: list[Any]) -> list[dict[str, Any]]:
            return [json.loads(r.value) for r in records if r.key == self.pid.encode()]

        return ours(self.consume(self.bootstrap, ALERTS_TOPIC.name, lambda seen: done(ours(seen))))


def has(kind: str, rule: str, **data: Any) -> Callable[[list[dict[str, Any]]], bool]:
    def check(envelopes: list[dict[str, Any]]) -> bool:
        return any(e["type"] == kind and e["data"]["rule"] == rule and data.items() <= e["data"].items() for e in envelopes)

    return check


def test_a_key_result_left_alone_turns_stale_at_fourteen_days_and_the_next_check_in_resolves_it(
    kafka_bootstrap: str, tmp_path: Path, unique: str, consume: Any, wait_for: Any
) -> None:
    pid = f"acme-{unique}"
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    writer, reader = services(kafka_bootstrap, tmp_path, unique, clock)
    alerts = Alerts(kafka_bootstrap, pid, consume)
    with writer, reader:
        drift = reader.app.state.drift  # type: ignore[attr-defined]
        seed(writer, pid, starts=clock.now - timedelta(days=5), days=90)
        check_in(writer, pid, 0.8)
        wait_for(lambda: pid in drift.drifts and drift.drifts[pid].state.krs.get("k1") and drift.drifts[pid].state.krs["k1"].confidence)

        clock.now += timedelta(days=13, hours=23)
        reader.portal.call(drift.tick)  # type: ignore[union-attr]  # a tick at 13 days 23 hours: nothing of ours is stale yet
        assert reader.get(f"/v1/portfolios/{pid}/alerts", headers=CPO, params={"rule": "stale"}).json()["items"] == []

        clock.now += timedelta(hours=1)
        raised = alerts.until(has("AlertRaised", "stale", node_id="k1"))
        [stale] = [e["data"] for e in raised if e["type"] == "AlertRaised" and e["data"]["rule"] == "stale"]
        assert stale["facts"]["idle_days"] == 14
        assert stale["recipients"] == ["pm-bo"]

        acknowledged = reader.post(f"/v1/portfolios/{pid}/alerts/{stale['alert_id']}/acknowledge", json={"note": "on it"}, headers=OWNER)
        assert acknowledged.status_code == 200, acknowledged.text
        assert acknowledged.json()["state"] == "acknowledged"

        check_in(writer, pid, 0.7)
        seen = alerts.until(has("AlertResolved", "stale", alert_id=stale["alert_id"]))
        [resolved] = [e["data"] for e in seen if e["type"] == "AlertResolved" and e["data"]["rule"] == "stale"]
        assert resolved["reason"] == "check-in recorded"
        lifecycle = [e["type"] for e in seen if e["data"]["alert_id"] == stale["alert_id"]]
        assert lifecycle == ["AlertRaised", "AlertAcknowledged", "AlertResolved"]
        assert reader.get(f"/v1/portfolios/{pid}/alerts", headers=CPO, params={"rule": "stale"}).json()["items"] == []


def test_a_low_confidence_check_in_past_mid_cycle_raises_off_track_and_the_recovery_plan_resolves_it(
    kafka_bootstrap: str, tmp_path: Path, unique: str, consume: Any
) -> None:
    pid = f"acme-{unique}"
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    writer, reader = services(kafka_bootstrap, tmp_path, unique, clock)
    alerts = Alerts(kafka_bootstrap, pid, consume)
    with writer, reader:
        seed(writer, pid, starts=clock.now - timedelta(days=60), days=90)
        check_in(writer, pid, 0.3)
        raised = alerts.until(has("AlertRaised", "off_track", node_id="k1"))
        [off_track] = [e["data"] for e in raised if e["type"] == "AlertRaised" and e["data"]["rule"] == "off_track"]
        assert off_track["facts"]["confidence"] == 0.3
        assert off_track["facts"]["cycle_elapsed"] > 0.5
        assert set(off_track["recipients"]) == {"pm-bo", "lead-ana"}
        exceptions = reader.get(f"/v1/portfolios/{pid}/exceptions", headers=CPO).json()
        assert [n["node_id"] for p in exceptions["products"] for n in p["nodes"]] == ["k1"]

        plan = {"option": "change_tactic", "description": "Switch to sales-led", "owner": "pm-bo", "decision_needed": "Two AEs"}
        post(writer, f"/{pid}/key-results/k1/recovery-plans", plan, OWNER)
        seen = alerts.until(has("AlertResolved", "off_track", alert_id=off_track["alert_id"]))
        [resolved] = [e["data"] for e in seen if e["type"] == "AlertResolved" and e["data"]["rule"] == "off_track"]
        assert resolved["reason"].startswith("recovery plan filed (change_tactic")


def test_redelivering_the_same_events_raises_nothing_twice(
    kafka_bootstrap: str, tmp_path: Path, unique: str, consume: Any, wait_for: Any
) -> None:
    pid = f"acme-{unique}"
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    writer, reader = services(kafka_bootstrap, tmp_path, unique, clock)
    alerts = Alerts(kafka_bootstrap, pid, consume)
    with writer, reader:
        drift = reader.app.state.drift  # type: ignore[attr-defined]
        seed(writer, pid, starts=clock.now - timedelta(days=60), days=90)
        for confidence in (0.7, 0.5, 0.3):  # falling, and off-track at the last
            check_in(writer, pid, confidence)
        before = alerts.until(lambda e: has("AlertRaised", "off_track")(e) and has("AlertRaised", "confidence_falling")(e))

        history = consume(kafka_bootstrap, KR_EVENTS_TOPIC.name, lambda seen: sum(r.key == pid.encode() for r in seen) >= 8)
        ours = [r for r in history if r.key == pid.encode()]

        async def redeliver() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
            await producer.start()
            try:
                for record in ours:
                    await producer.send_and_wait(KR_EVENTS_TOPIC.name, record.value, key=record.key, headers=list(record.headers))
            finally:
                await producer.stop()

        asyncio.run(redeliver())
        check_in(writer, pid, 0.6)  # after the copies in the same partition: once drift has it, it has seen them all
        wait_for(lambda: drift.drifts[pid].state.krs["k1"].confidence == 0.6)
        after = alerts.until(has("AlertResolved", "confidence_falling"))
        raised = [e["data"]["alert_id"] for e in after if e["type"] == "AlertRaised"]
        assert sorted(raised) == sorted({e["data"]["alert_id"] for e in before if e["type"] == "AlertRaised"})
        assert len({e["event_id"] for e in after}) == len(after)


def test_an_input_drift_cannot_read_goes_to_its_dead_letter_topic(kafka_bootstrap: str, tmp_path: Path, unique: str, consume: Any) -> None:
    clock = Clock(datetime.now(UTC))
    settings = DriftSettings(
        kafka_bootstrap=kafka_bootstrap, tokens_file=tokens_file(tmp_path), store_path=tmp_path / "d.sqlite", group=f"drift.{unique}"
    )
    marker = f"jira:{unique}".encode()
    poison = b'{"type": "WorkItemChanged", "event_id": "not-a-uuid"}'

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(DELIVERY_TOPIC.name, poison, key=marker)
        finally:
            await producer.stop()

    with TestClient(create_drift(settings, clock=clock)) as reader:
        asyncio.run(send())
        dead = consume(kafka_bootstrap, dead_letter_topic(settings.consumer_group), lambda seen: any(r.key == marker for r in seen))
        assert reader.get("/health/ready").status_code == 200
    [record] = [r for r in dead if r.key == marker]
    headers = {name: value.decode() for name, value in record.headers}
    assert record.value == poison
    assert "invalid WorkItemChanged" in headers[Headers.DLQ_REASON]
    assert headers[Headers.DLQ_SOURCE_TOPIC] == DELIVERY_TOPIC.name
    assert headers[Headers.DLQ_CONSUMER_GROUP] == settings.consumer_group

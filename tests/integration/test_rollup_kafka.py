"""Check-ins posted to checkins reach the rollup through real Kafka: the scorecard moves and okr.scores.v1 explains it."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from fastapi.testclient import TestClient

from okr_checkins.bootstrap import create_app as create_checkins
from okr_checkins.settings import CheckinsSettings
from okr_contracts.envelope import Headers
from okr_contracts.scores import score_key
from okr_contracts.topics import KR_EVENTS_TOPIC, SCORES_TOPIC, dead_letter_topic
from okr_rollup.bootstrap import create_app as create_rollup
from okr_rollup.settings import RollupSettings
from okr_runtime.auth import hash_token

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer t-cpo"}


def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": [{"sha256": hash_token("t-cpo"), "principal": "cpo", "roles": ["portfolio_lead"]}]}))
    return path


def post(client: TestClient, path: str, body: dict[str, Any]) -> None:
    response = client.post(f"/v1/portfolios{path}", json=body, headers=AUTH)
    assert response.status_code == 201, response.text


def seed(client: TestClient, pid: str) -> None:
    """Portfolio objective `grow` with derived KR `reach`, fed by two products' objectives with one metric KR each."""
    post(client, "", {"portfolio_id": pid, "name": "Acme", "owner": "cpo"})
    post(client, f"/{pid}/cycles", {"cycle_id": "q3", "name": "Q3", "starts_on": "2026-07-01", "ends_on": "2026-09-30"})
    for product in ("alpha", "beta"):
        post(client, f"/{pid}/products", {"product_id": product, "name": product.title(), "lead": "cpo"})
    post(client, f"/{pid}/objectives", {"objective_id": "grow", "cycle_id": "q3", "tier": 1, "title": "Grow", "owner": "cpo"})
    post(client, f"/{pid}/key-results", {"kr_id": "reach", "objective_id": "grow", "title": "Reach", "kind": "derived", "owner": "cpo"})
    for product, weight in (("alpha", 2), ("beta", 1)):
        objective = {"objective_id": f"o-{product}", "cycle_id": "q3", "tier": 2, "title": f"{product} wins", "owner": "cpo"}
        objective |= {"product_id": product, "contributes_to": {"parent_id": "reach", "weight": weight}}
        post(client, f"/{pid}/objectives", objective)
        kr = {"kr_id": f"k-{product}", "objective_id": f"o-{product}", "title": f"{product} users", "baseline": 0, "target": 100}
        post(client, f"/{pid}/key-results", kr | {"unit": "users", "owner": "cpo"})


def recomputed(data: dict[str, Any]) -> float:
    """A score recomputed by hand from the derivation the record carries."""
    derivation, inputs = data["derivation"], data["derivation"]["inputs"]
    if not inputs:
        return 0.0  # nothing to roll up yet: pending at 0
    if derivation["method"] == "weighted":
        return float(math.fsum(i["weight"] * i["progress"] for i in inputs) / math.fsum(i["weight"] for i in inputs))
    if derivation["method"] == "metric" and data["status"] == "scored":
        raw = (inputs[0]["value"] - derivation["baseline"]) / (derivation["target"] - derivation["baseline"])
        return min(1.0, max(0.0, float(raw)))
    return float(data["progress"])


def test_check_ins_move_the_scorecard_and_publish_explained_scores(
    kafka_bootstrap: str, tmp_path: Path, unique: str, consume: Any, wait_for: Any
) -> None:
    pid = f"acme-{unique}"
    tokens = tokens_file(tmp_path)
    common: dict[str, Any] = {"kafka_bootstrap": kafka_bootstrap, "tokens_file": tokens, "dlq_retry_backoff_s": 0.1}
    checkins = CheckinsSettings(sqlite_path=tmp_path / "history.sqlite", kpi_group=f"kpi.{unique}", relay_idle_s=0.2, **common)
    rollup = RollupSettings(store_path=tmp_path / "rollup.sqlite", group=f"rollup.{unique}", **common)
    with TestClient(create_checkins(checkins)) as writer, TestClient(create_rollup(rollup)) as reader:
        seed(writer, pid)
        for product, value, confidence in (("alpha", 30, 0.6), ("beta", 90, 0.8)):
            body = {"confidence": confidence, "what_changed": "weekly", "value": value}
            post(writer, f"/{pid}/key-results/k-{product}/check-ins", body)

        def card() -> dict[str, Any]:
            response = reader.get(f"/v1/portfolios/{pid}/scorecard", headers=AUTH)
            return response.json()["objectives"][0] if response.status_code == 200 and response.json()["objectives"] else {}

        wait_for(lambda: card().get("score") == pytest.approx((2 * 0.3 + 0.9) / 3))
        assert card()["confidence"] == pytest.approx((2 * 0.6 + 0.8) / 3)
        assert card()["driver"] == {"product_id": "beta", "movement": pytest.approx(0.9 / 3)}  # beta moved reach by 0.3, alpha by 0.2

        def ours(records: list[Any]) -> list[dict[str, Any]]:
            return [d for r in records if (d := json.loads(r.value)["data"])["portfolio_id"] == pid]

        nodes = {"grow", "reach", "o-alpha", "o-beta", "k-alpha", "k-beta"}

        def complete(seen: list[Any]) -> bool:  # records of different nodes sit on different partitions: wait for every node
            found = ours(seen)
            return {d["node_id"] for d in found} == nodes and any(d["node_id"] == "grow" and d["progress"] > 0.49 for d in found)

        published = consume(kafka_bootstrap, SCORES_TOPIC.name, complete)
        for data in ours(published):
            assert data["progress"] == pytest.approx(recomputed(data), abs=1e-12), data["derivation"]["formula"]
        keys = {r.key.decode() for r in published if json.loads(r.value)["data"]["portfolio_id"] == pid}
        assert keys == {score_key(pid, n) for n in nodes}


def test_an_event_that_cannot_be_scored_goes_to_the_dead_letter_topic(
    kafka_bootstrap: str, tmp_path: Path, unique: str, consume: Any
) -> None:
    group = f"rollup.{unique}"
    settings = RollupSettings(
        kafka_bootstrap=kafka_bootstrap, tokens_file=tokens_file(tmp_path), store_path=tmp_path / "r.sqlite", group=group
    )
    poison = b'{"type": "CheckInRecorded", "event_id": "not-a-uuid"}'
    marker = str(uuid.uuid4())

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(KR_EVENTS_TOPIC.name, poison, key=marker.encode(), headers=[(Headers.EVENT_ID, marker.encode())])
        finally:
            await producer.stop()

    with TestClient(create_rollup(settings)):
        asyncio.run(send())
        dead = consume(kafka_bootstrap, dead_letter_topic(group), lambda seen: any(r.key == marker.encode() for r in seen))
    [record] = [r for r in dead if r.key == marker.encode()]
    assert record.value == poison
    assert "invalid CheckInRecorded" in dict(record.headers)[Headers.DLQ_REASON].decode()

"""The journeys of the product through all five services as processes, real Kafka, real SMTP and a Slack API.

One system for the module (started once, ~10 s); each test has a portfolio of its own.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
from aiokafka import AIOKafkaConsumer

from okr_contracts.envelope import Envelope
from okr_contracts.metrics import KpiSampled
from okr_contracts.topics import KR_EVENTS_TOPIC, METRICS_TOPIC

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:8]
PORTFOLIOS = {story: f"e2e-{story}-{RUN}" for story in ("jira", "offtrack", "kpi", "downstream", "capacity")}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def system(kafka_bootstrap: str, launch: Any, vendors: Any) -> Any:
    """checkins, rollup, drift, connectors and the notifier, routing this module's portfolios to Slack and e-mail."""
    return launch(kafka_bootstrap, portfolios=PORTFOLIOS.values(), slack=vendors.slack, mailbox=vendors.mailbox)


def get_json(system: Any, service: str, path: str) -> Any:
    """The JSON of a 200 answer, else None (not there yet)."""
    with system.api(service) as client:
        response = client.get(path)
    return response.json() if response.status_code == 200 else None


def test_a_jira_issue_done_and_linked_to_a_key_result_reaches_drift_as_delivery_signal(
    system: Any, vendors: Any, portfolio_defined: Any, wait_for: Any
) -> None:
    pid = PORTFOLIOS["jira"]
    portfolio_defined(system, pid)
    body = vendors.jira_done(pid, 1, datetime.now(UTC) - timedelta(hours=1))
    with httpx.Client(base_url=system.urls["connectors"], timeout=10) as jira:
        forged = dict(vendors.jira_signed(body, "d-forged"), **{"X-Hub-Signature": "sha256=" + "0" * 64})
        assert jira.post("/webhooks/jira", content=body, headers=forged).status_code == 401
        answer = jira.post("/webhooks/jira", content=body, headers=vendors.jira_signed(body, f"d-{pid}"))
        assert answer.json() == {"status": "accepted"}
    path = f"/v1/portfolios/{pid}/key-results/activated/delivery"

    wait_for(lambda: bool((get_json(system, "drift", path) or {}).get("items")), timeout_s=60)

    [item] = get_json(system, "drift", path)["items"]
    assert item["item_id"] == f"jira:{int(vendors.jira_project(pid)[1:], 16) % 10**6 * 1000 + 1}"
    assert item["key"] == f"{vendors.jira_project(pid)}-1"
    assert item["title"] == "Onboarding step 1"
    assert item["status_category"] == "done"
    assert item["done_at"] is not None


def test_a_low_confidence_check_in_past_mid_cycle_raises_off_track_and_tells_the_owner_and_lead_on_slack_and_by_email(
    system: Any, vendors: Any, portfolio_defined: Any, wait_for: Any
) -> None:
    pid = PORTFOLIOS["offtrack"]
    portfolio_defined(system, pid)
    with system.api("checkins", "ana@example.com") as ana:
        body = {"confidence": 0.3, "value": 4.8, "what_changed": "Churn barely moved.", "blocker": "No analyst."}
        assert ana.post(f"/v1/portfolios/{pid}/key-results/churn/check-ins", json=body).status_code == 201

    def alerts() -> list[dict[str, Any]]:
        return list((get_json(system, "drift", f"/v1/portfolios/{pid}/alerts") or {}).get("items", []))

    wait_for(lambda: any(a["rule"] == "off_track" for a in alerts()), timeout_s=60)
    wait_for(lambda: len(vendors.slack.to(f"U-{pid}-")) >= 2 and len(vendors.mailbox.to(pid)) >= 2, timeout_s=60)

    [alert] = [a for a in alerts() if a["rule"] == "off_track"]
    assert (alert["node_id"], alert["severity"], alert["state"]) == ("churn", "warning", "open")
    posts = vendors.slack.to(f"U-{pid}-")
    assert sorted(p["channel"] for p in posts) == [f"U-{pid}-ana", f"U-{pid}-cpo"]  # the owner, and growth's lead
    assert all(p["text"] and "churn" in json.dumps(p["blocks"]).lower() for p in posts)
    mails = vendors.mailbox.to(pid)
    assert sorted(str(m["To"]) for m in mails) == [f"ana+{pid}@example.com", f"cpo+{pid}@example.com"]
    assert all(m.get_content_type() == "multipart/alternative" for m in mails)


def test_a_kpi_sample_moves_its_key_result_the_product_objective_and_the_portfolio_objective_by_the_weighted_rollup(
    system: Any, portfolio_defined: Any, wait_for: Any
) -> None:
    pid = PORTFOLIOS["kpi"]
    metric = f"signups-{pid}"
    portfolio_defined(system, pid, metric=metric)
    sample = KpiSampled(metric=metric, portfolio_id=pid, value=150, unit="signups", observed_at=datetime.now(UTC), source="http:e2e")
    envelope = Envelope.wrap(sample, producer="connectors", occurred_at=sample.observed_at)
    system.publish(METRICS_TOPIC.name, envelope.to_json_bytes(), METRICS_TOPIC.key_for(envelope), envelope.headers())

    def node(node_id: str) -> dict[str, Any]:
        return dict(get_json(system, "rollup", f"/v1/portfolios/{pid}/nodes/{node_id}") or {})

    wait_for(lambda: node("grow").get("progress", 0) > 0, timeout_s=60)

    signups, reliability, grow = node("signups"), node("reliability"), node("grow")
    assert (signups["status"], signups["progress"]) == ("scored", pytest.approx(0.5))  # (150 - 100) / (200 - 100)
    assert reliability["progress"] == pytest.approx(0.25)  # (1*0 [uptime, pending] + 1*0.5) / (1 + 1)
    assert grow["progress"] == pytest.approx(0.25 / 3)  # (2*0 [activation, pending] + 1*0.25) / (2 + 1)
    assert grow["derivation"]["method"] == reliability["derivation"]["method"] == "weighted"
    assert node("activation")["status"] == "pending"


def test_a_new_downstream_group_reads_every_event_of_a_portfolio_in_order_with_valid_envelopes(
    system: Any, portfolio_defined: Any, kafka_bootstrap: str
) -> None:
    pid = PORTFOLIOS["downstream"]
    portfolio_defined(system, pid)
    with system.api("checkins", "ana@example.com") as ana:
        for week, confidence in enumerate((0.7, 0.6, 0.5), start=1):
            body = {"confidence": confidence, "value": 20 + 3 * week, "what_changed": f"Week {week}."}
            assert ana.post(f"/v1/portfolios/{pid}/key-results/activated/check-ins", json=body).status_code == 201
    with system.api("checkins") as cpo:
        exported = cpo.get(f"/v1/portfolios/{pid}/export")
    stored = [json.loads(line) for line in exported.text.splitlines() if line]
    schema = json.loads((ROOT / "contracts" / "schemas" / f"{KR_EVENTS_TOPIC.name}.json").read_text())

    records = asyncio.run(read_as_new_group(kafka_bootstrap, f"downstream.{uuid.uuid4().hex[:8]}", pid, len(stored)))

    positions = [int(dict(r.headers)["okr-chain-position"]) for r in records]
    assert positions == list(range(1, len(stored) + 1))
    envelopes = [json.loads(r.value) for r in records]
    assert [e["event_id"] for e in envelopes] == [s["event_id"] for s in stored]
    versions: dict[str, list[int]] = defaultdict(list)
    for record, envelope in zip(records, envelopes, strict=True):
        jsonschema.validate(envelope, schema)
        decoded = KR_EVENTS_TOPIC.decode(record.value, tolerant=False)
        assert dict(record.headers)["okr-event-id"].decode() == str(decoded.event_id)
        versions[envelope["data"]["aggregate_id"]].append(envelope["data"]["aggregate_version"])
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
    assert [e["type"] for e in envelopes].count("CheckInRecorded") == 3


def test_a_third_objective_for_a_squad_with_capacity_for_two_raises_over_allocated_and_removing_it_resolves_it(
    system: Any, vendors: Any, portfolio_defined: Any, wait_for: Any
) -> None:
    pid = PORTFOLIOS["capacity"]
    portfolio_defined(system, pid)
    base = f"/v1/portfolios/{pid}"
    with system.api("checkins") as cpo:
        squad = {"team_id": "core", "name": "Core squad", "lead": "ben@example.com", "product_id": "platform"}
        assert cpo.post(f"{base}/teams", json=squad).status_code == 201
        assert cpo.put(f"{base}/teams/core/capacity", json={"sprints": 4}).status_code == 201
        for objective in ("activation", "reliability"):  # two objectives of two sprints each: full, not over
            assert cpo.put(f"{base}/objectives/{objective}/allocations/core", json={"sprints": 2}).status_code == 201
        assert cpo.put(f"{base}/objectives/grow/allocations/core", json={"sprints": 2}).status_code == 201  # the third

    def alerts(state: str = "open") -> list[dict[str, Any]]:
        found = get_json(system, "drift", f"{base}/alerts?rule=over_allocated&state={state}") or {}
        return list(found.get("items", []))

    wait_for(lambda: bool(alerts()), timeout_s=60)
    [alert] = alerts()
    assert (alert["node_id"], alert["severity"]) == ("core", "warning")
    assert (alert["facts"]["allocated"], alert["facts"]["capacity"]) == (6, 4)
    wait_for(lambda: len(vendors.slack.to(f"U-{pid}-")) >= 2 and len(vendors.mailbox.to(pid)) >= 2, timeout_s=60)
    posts = vendors.slack.to(f"U-{pid}-")
    assert sorted(p["channel"] for p in posts) == [f"U-{pid}-ben", f"U-{pid}-cpo"]  # the squad's lead and the portfolio lead
    assert all("Squad over capacity" in json.dumps(p["blocks"]) and f"/portfolios/{pid}#capacity" in json.dumps(p) for p in posts)

    def core() -> dict[str, Any]:
        [cycle] = (get_json(system, "rollup", f"{base}/capacity?cycle_id=q") or {"cycles": [{"squads": []}]})["cycles"]
        return next((s for s in cycle["squads"] if s["team_id"] == "core"), {})

    wait_for(lambda: core().get("allocated") == 6, timeout_s=60)  # the scorecard's number is the alert's
    assert {k: core()[k] for k in ("capacity", "allocated", "free", "over_by", "over")} == {
        "capacity": 4,
        "allocated": 6,
        "free": -2,
        "over_by": 2,
        "over": True,
    }

    with system.api("checkins") as cpo:
        removed = cpo.post(f"{base}/objectives/grow/allocations/core/remove", json={"reason": "Back to two objectives"})
        assert removed.status_code == 201

    wait_for(lambda: not alerts() and bool(alerts("resolved")), timeout_s=60)
    [cleared] = alerts("resolved")
    assert cleared["alert_id"] == alert["alert_id"]
    assert cleared["resolved_reason"] == "allocations within the capacity (or their cycles closed)"
    wait_for(lambda: core().get("allocated") == 4, timeout_s=60)
    assert core()["over"] is False


async def read_as_new_group(bootstrap: str, group: str, pid: str, count: int) -> list[Any]:
    """Records of `pid` on okr.kr-events.v1, read by a new consumer group from the beginning until `count` arrived."""
    consumer = AIOKafkaConsumer(
        KR_EVENTS_TOPIC.name, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen: list[Any] = []
    try:
        async with asyncio.timeout(60):
            while len(seen) < count:
                batches = await consumer.getmany(timeout_ms=500)
                seen += [r for records in batches.values() for r in records if r.key == pid.encode()]
            await consumer.commit()
    finally:
        await consumer.stop()
    return seen

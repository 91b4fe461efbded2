"""The history: idempotent retries, optimistic concurrency, pagination, state as of a time, export with its chain, cycle close."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from okr_contracts.export import verify_chain

CHECK_IN = {"confidence": 0.6, "what_changed": "churn fell after the dunning change", "value": 4.0}


def test_a_retried_post_with_the_same_idempotency_key_appends_once(seeded: Any) -> None:
    before = seeded.stored()
    first = seeded.post("/acme/key-results/churn/check-ins", CHECK_IN, "pm.ana", **{"Idempotency-Key": "weekly-33"})
    again = seeded.post("/acme/key-results/churn/check-ins", CHECK_IN, "pm.ana", **{"Idempotency-Key": "weekly-33"})
    assert first.status_code == again.status_code == 201
    assert again.json()["events"] == first.json()["events"]
    assert again.headers["idempotent-replayed"] == "true"
    assert seeded.stored() == before + 2  # the check-in and the value it reported


def test_an_idempotency_key_reused_for_another_request_is_refused(seeded: Any) -> None:
    seeded.ok(seeded.post("/acme/key-results/churn/check-ins", CHECK_IN, "pm.ana", **{"Idempotency-Key": "k"}))
    before = seeded.stored()
    other = seeded.post("/acme/key-results/churn/check-ins", {**CHECK_IN, "confidence": 0.9}, "pm.ana", **{"Idempotency-Key": "k"})
    assert other.status_code == 422
    assert other.json()["type"] == "urn:okrstream:problem:idempotency-key-reused"
    assert seeded.stored() == before


def test_a_stale_if_match_gets_409_with_the_current_version(seeded: Any) -> None:
    version = int(seeded.get("/acme/key-results/churn", "pm.ana").headers["etag"].strip('"'))
    seeded.ok(seeded.post("/acme/key-results/churn/check-ins", CHECK_IN, "pm.ana", **{"If-Match": f'"{version}"'}))
    stale = seeded.post("/acme/key-results/churn/check-ins", CHECK_IN, "pm.ana", **{"If-Match": f'"{version}"'})
    assert stale.status_code == 409
    assert stale.json()["current_version"] == version + 2


def test_concurrent_check_ins_never_lose_an_event(seeded: Any) -> None:
    before = seeded.stored()

    def check_in(i: int) -> int:
        kr, owner = ("churn", "pm.ana") if i % 2 else ("latency", "pm.lee")
        body = {"confidence": round(i / 40, 3), "what_changed": f"week {i}"}
        return int(seeded.post(f"/acme/key-results/{kr}/check-ins", body, owner).status_code)

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(check_in, range(40)))
    assert statuses == [201] * 40
    assert seeded.stored() == before + 40
    records = list(seeded.checkins.records("acme"))
    assert [r["position"] for r in records] == list(range(1, len(records) + 1))
    assert verify_chain(records) == []


def test_history_pages_walk_every_event_of_the_key_result_in_order(seeded: Any) -> None:
    for week in range(7):
        seeded.clock.advance(days=7)
        seeded.ok(seeded.post("/acme/key-results/churn/check-ins", {**CHECK_IN, "value": 5 - week * 0.3}, "pm.ana"))
        seeded.ok(seeded.post("/acme/key-results/latency/check-ins", {"confidence": 0.9, "what_changed": "steady"}, "pm.lee"))
    items, after = [], 0
    while True:
        page = seeded.ok(seeded.get("/acme/key-results/churn/history", "pm.ana", after=after, limit=4))
        items += page["items"]
        if page["next"] is None:
            break
        after = page["next"]
    assert len(items) == 1 + 7 * 2
    assert all(i["data"]["aggregate_id"] == "churn" for i in items)
    assert [i["data"]["aggregate_version"] for i in items] == list(range(1, 16))


def test_the_state_as_of_a_time_is_what_the_history_said_then(seeded: Any) -> None:
    seeded.clock.advance(days=7)
    seeded.ok(seeded.post("/acme/key-results/churn/check-ins", {**CHECK_IN, "confidence": 0.8, "value": 4.5}, "pm.ana"))
    then = seeded.clock.advance(days=3)
    seeded.clock.advance(days=4)
    seeded.ok(seeded.post("/acme/key-results/churn/check-ins", {**CHECK_IN, "confidence": 0.3, "value": 4.9}, "pm.ana"))
    seeded.ok(seeded.post("/acme/key-results/churn/target", {"new_target": 3, "reason": "board cut it"}, "lead.bo"))
    past = seeded.ok(seeded.get("/acme/key-results/churn", "pm.ana", as_of=then.isoformat()))
    now = seeded.ok(seeded.get("/acme/key-results/churn", "pm.ana"))
    assert (past["confidence"], past["value"], past["target"]) == (0.8, 4.5, 2)
    assert (now["confidence"], now["value"], now["target"], now["target_changes"]) == (0.3, 4.9, 3, 1)


def test_the_export_is_the_whole_history_with_an_intact_hash_chain(seeded: Any) -> None:
    seeded.ok(seeded.post("/acme/key-results/churn/check-ins", CHECK_IN, "pm.ana"))
    response = seeded.get("/acme/export", "cpo")
    assert response.headers["content-type"].startswith("application/jsonl")
    records = [json.loads(line) for line in response.text.splitlines()]
    assert len(records) == seeded.checkins.portfolio("acme").version
    assert records[0]["prev_hash"] == "0" * 64
    assert verify_chain(records) == []
    assert response.headers["OKR-Chain-Length"] == str(len(records))
    assert response.headers["OKR-Chain-Head"] == records[-1]["hash"]
    assert {r["type"] for r in records} >= {"PortfolioDefined", "TeamDefined", "KeyResultDefined", "CheckInRecorded", "ValueObserved"}


def test_closing_a_cycle_needs_a_decision_for_every_open_key_result(seeded: Any) -> None:
    undecided = seeded.post("/acme/cycles/q3/close", {"carry": ["churn"]}, "cpo")
    assert undecided.status_code == 422
    assert "revenue" in undecided.json()["detail"]
    body = {"carry": ["churn"], "default": "retire", "next_cycle_id": "q4"}
    closed = seeded.ok(seeded.post("/acme/cycles/q3/close", body, "cpo"))
    assert [e["type"] for e in closed["events"]] == ["CycleScored"]
    carried = seeded.ok(seeded.get("/acme/key-results/churn", "pm.ana"))
    assert (carried["cycle_id"], carried["status"]) == ("q4", "active")
    seeded.ok(seeded.post("/acme/key-results/churn/check-ins", CHECK_IN, "pm.ana"))
    refused = seeded.post("/acme/key-results/revenue/values", {"value": 1.1}, "finance")
    assert refused.status_code == 409
    again = seeded.post("/acme/cycles/q3/close", {"default": "retire"}, "cpo")
    assert again.json()["type"] == "urn:okrstream:problem:cycle-closed"

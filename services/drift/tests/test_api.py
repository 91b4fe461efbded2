"""The alert API over a SQLite store: lists and filters, one alert, acknowledgement and who may give it, the exceptions view, problems."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from okr_contracts.envelope import Envelope
from okr_contracts.history import HistoryWriter
from okr_contracts.kr_events import (
    CheckInRecorded,
    CycleCadence,
    CycleStarted,
    DriftThresholds,
    KeyResultDefined,
    KrEvent,
    ObjectiveDefined,
    PortfolioDefined,
    ProductDefined,
    RecoveryOption,
    RecoveryPlanFiled,
    RollupMethod,
)
from okr_drift.application import DriftService
from okr_drift.http import install_api
from okr_drift.store import AlertQuery, DriftStore, SqliteDriftStore
from okr_runtime.auth import Authenticator, TokenEntry, TokenRole, hash_token
from okr_runtime.problems import install_problem_handlers

START = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
"""Nine in the morning of the first day of cycle q3 (July to September)."""
PROBLEM = "application/problem+json"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Clock:
    """The evaluation clock, set by the test; inputs occur at its time too."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Inputs:
    """A portfolio's key-result history as checkins would publish it, each event occurring at the clock's time."""

    def __init__(self, pid: str, clock: Clock) -> None:
        self.pid = pid
        self.clock = clock
        self.writer = HistoryWriter(pid)

    def event(self, cls: type[KrEvent], aggregate_id: str, **fields: Any) -> Envelope[Any]:
        return self.writer.event(cls, aggregate_id, at=self.clock.now, **fields)

    def kr(self, kid: str, objective: str, owner: str, title: str) -> Envelope[Any]:
        return self.event(
            KeyResultDefined,
            kid,
            kr_id=kid,
            objective_id=objective,
            cycle_id="q3",
            tier=2,
            title=title,
            kind="metric",
            baseline=0.0,
            target=100.0,
            owner=owner,
        )

    def check_in(self, kid: str, confidence: float) -> Envelope[Any]:
        return self.event(CheckInRecorded, kid, kr_id=kid, confidence=confidence, what_changed="weekly")

    def definitions(self) -> list[Envelope[Any]]:
        """Lead cpo; alpha (lead lena) with a1 and a2 owned by ana; beta (lead ben) with b1 and b2 owned by bob."""
        thresholds = DriftThresholds(stale_days=7, retire_after_stale_days=30, not_moving_days=30, off_track_after_cycle_fraction=0.0)
        return [
            self.event(PortfolioDefined, self.pid, name="Acme", owner="cpo", rollup_method=RollupMethod.WEIGHTED, drift=thresholds),
            self.event(ProductDefined, "alpha", product_id="alpha", name="Alpha", lead="lena"),
            self.event(ProductDefined, "beta", product_id="beta", name="Beta", lead="ben"),
            self.event(
                CycleStarted,
                "q3",
                cycle_id="q3",
                name="2026-Q3",
                cadence=CycleCadence.QUARTERLY,
                starts_on=date(2026, 7, 1),
                ends_on=date(2026, 9, 30),
            ),
            *(
                self.event(ObjectiveDefined, o, objective_id=o, cycle_id="q3", tier=2, title=f"Objective {o}", owner="pm", product_id=p)
                for o, p in (("A", "alpha"), ("B", "beta"))
            ),
            self.kr("a1", "A", "ana", "Weekly active teams"),
            self.kr("a2", "A", "ana", "Activation rate"),
            self.kr("b1", "B", "bob", "Net revenue retention"),
            self.kr("b2", "B", "bob", "Launch the partner portal"),
        ]


@dataclass
class Seeded:
    """The seeded portfolio and its alerts' ids by (rule, node)."""

    pid: str
    ids: dict[tuple[str, str], str]

    def path(self, rule: str, node: str, suffix: str = "") -> str:
        return f"/v1/portfolios/{self.pid}/alerts/{self.ids[rule, node]}{suffix}"


async def discard(records: Sequence[tuple[str, bytes]]) -> None:
    """Kafka is not part of these tests; the store is."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DriftStore]:
    found = SqliteDriftStore(tmp_path / "drift.sqlite")
    yield found
    found.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(store: DriftStore, clock: Clock) -> DriftService:
    return DriftService(store, discard, clock)


@pytest.fixture
def client(service: DriftService) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)
    tokens = [
        *(TokenEntry(sha256=hash_token(who), principal=who) for who in ("ana", "bob", "ben", "cpo", "eve")),
        TokenEntry(sha256=hash_token("deputy"), principal="deputy", roles=frozenset({TokenRole.PORTFOLIO_LEAD})),
        TokenEntry(sha256=hash_token("elsewhere"), principal="ana", portfolios=frozenset({"other"})),
    ]
    install_api(app, service, Authenticator(tokens))
    return TestClient(app)


@pytest.fixture
async def seeded(service: DriftService, clock: Clock) -> Seeded:
    """Eleven days into the cycle: a1 and b1 stale, b1's confidence falling and its off-track alert resolved by a plan, b2 output-phrased.

    a2 is green: checked in on days 1 and 8.
    """
    inputs = Inputs(f"acme-{uuid.uuid4().hex[:8]}", clock)

    async def feed(*envelopes: Envelope[Any]) -> None:
        for envelope in envelopes:
            await service.on_history(envelope)

    def day(n: int) -> None:
        clock.now = START + timedelta(days=n)

    await feed(*inputs.definitions())
    day(1)
    await feed(inputs.check_in("a2", 0.8), inputs.check_in("b1", 0.6))
    day(2)
    await feed(inputs.check_in("b1", 0.5))
    day(3)
    await feed(inputs.check_in("b1", 0.3))
    day(4)
    await feed(
        inputs.event(
            RecoveryPlanFiled,
            "b1",
            kr_id="b1",
            option=RecoveryOption.CHANGE_RESOURCES,
            description="Two more engineers on retention",
            owner="bob",
            decision_needed="Move two engineers from alpha",
        )
    )
    day(5)
    await feed(inputs.check_in("b2", 0.7))
    day(8)
    await feed(inputs.check_in("a2", 0.8))
    assert await service.tick() == 1
    day(11)
    assert await service.tick() == 1
    every = AlertQuery(states=("open", "acknowledged", "resolved"))
    return Seeded(inputs.pid, {(a.rule.value, a.node_id): a.alert_id for a in service.store.alerts(inputs.pid, every)})


def listed(client: TestClient, seeded: Seeded, token: str = "ana", **params: Any) -> list[tuple[str, str]]:
    response = client.get(f"/v1/portfolios/{seeded.pid}/alerts", headers=bearer(token), params=params)
    assert response.status_code == 200, response.text
    assert response.json()["portfolio_id"] == seeded.pid
    return [(item["rule"], item["node_id"]) for item in response.json()["items"]]


async def test_active_alerts_are_listed_newest_first_and_filtered_by_state_product_owner_rule_and_node(
    client: TestClient, seeded: Seeded
) -> None:
    active = [("stale", "b1"), ("stale", "a1"), ("confidence_falling", "b1"), ("output_phrased", "b2")]
    assert listed(client, seeded) == active
    assert listed(client, seeded, state="open") == active
    assert listed(client, seeded, state="resolved") == [("off_track", "b1")]
    assert listed(client, seeded, state=["open", "resolved"]) == [*active[:3], ("off_track", "b1"), active[3]]
    assert listed(client, seeded, product_id="alpha") == [("stale", "a1")]
    assert listed(client, seeded, owner="bob") == [("stale", "b1"), ("confidence_falling", "b1"), ("output_phrased", "b2")]
    assert listed(client, seeded, rule="stale") == [("stale", "b1"), ("stale", "a1")]
    assert listed(client, seeded, node_id="b1") == [("stale", "b1"), ("confidence_falling", "b1")]
    assert listed(client, seeded, node_id="b1", rule="off_track") == []
    assert listed(client, seeded, owner="bob", limit=1) == [("stale", "b1")]
    assert listed(client, seeded, product_id="gamma") == []


async def test_one_alert_is_served_with_the_facts_that_raised_it(client: TestClient, seeded: Seeded) -> None:
    response = client.get(seeded.path("stale", "b1"), headers=bearer("bob"))
    assert response.status_code == 200, response.text
    alert = response.json()
    assert alert["alert_id"] == seeded.ids["stale", "b1"]
    assert (alert["state"], alert["severity"], alert["recipients"]) == ("open", "warning", ["bob"])
    assert alert["facts"] == {"idle_days": 8, "last_update": (START + timedelta(days=3)).isoformat(), "stale_days": 7}
    assert alert["subject"]["product_id"] == "beta"
    assert alert["subject"]["recipients"] == {"owner": "bob", "product_lead": "ben", "portfolio_lead": "cpo"}
    assert alert["raised_at"] == "2026-07-12T09:00:00Z"
    resolved = client.get(seeded.path("off_track", "b1"), headers=bearer("bob")).json()
    assert (resolved["state"], resolved["resolved_reason"]) == ("resolved", "recovery plan filed (change_resources, owner bob)")
    assert resolved["recipients"] == ["bob", "ben"]


async def test_unknown_alerts_and_portfolios_missing_tokens_and_foreign_portfolios_get_problems(client: TestClient, seeded: Seeded) -> None:
    base = f"/v1/portfolios/{seeded.pid}"
    cases = [
        (client.get(f"{base}/alerts/stale:a2:000000000000", headers=bearer("ana")), 404),
        (client.post(f"{base}/alerts/stale:a2:000000000000/acknowledge", headers=bearer("ana"), json={}), 404),
        (client.get("/v1/portfolios/nobody/exceptions", headers=bearer("ana")), 404),
        (client.get(f"{base}/alerts"), 401),
        (client.get(f"{base}/alerts", headers=bearer("unknown")), 401),
        (client.get(f"{base}/alerts", headers=bearer("elsewhere")), 403),
        (client.get(seeded.path("stale", "a1"), headers=bearer("elsewhere")), 403),
        (client.post(seeded.path("stale", "a1", "/acknowledge"), headers=bearer("elsewhere"), json={}), 403),
        (client.get(f"{base}/exceptions", headers=bearer("elsewhere")), 403),
        (client.get(f"{base}/alerts", headers=bearer("ana"), params={"rule": "vibes"}), 422),
        (client.get(f"{base}/alerts", headers=bearer("ana"), params={"state": "closed"}), 422),
        (client.get(f"{base}/exceptions", headers=bearer("ana"), params={"minimum_severity": "loud"}), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["status"] == status
    unknown = cases[0][0].json()
    assert unknown["type"] == "urn:okrstream:problem:unknown-id"
    assert unknown["detail"] == f"no alert stale:a2:000000000000 in portfolio {seeded.pid}"
    assert cases[2][0].json()["type"] == "urn:okrstream:problem:unknown-id"
    assert cases[3][0].headers["www-authenticate"] == "Bearer"
    assert listed(client, seeded, state="acknowledged") == []


async def test_the_owner_acknowledges_an_alert_and_the_first_acknowledgement_stands(
    client: TestClient, seeded: Seeded, clock: Clock
) -> None:
    clock.now += timedelta(hours=1)
    first = client.post(seeded.path("stale", "a1", "/acknowledge"), headers=bearer("ana"), json={"note": "updating it today"})
    assert first.status_code == 200, first.text
    done = first.json()
    assert (done["state"], done["acknowledged_by"], done["note"]) == ("acknowledged", "ana", "updating it today")
    assert done["acknowledged_at"] == "2026-07-12T10:00:00Z"
    clock.now += timedelta(hours=1)
    again = client.post(seeded.path("stale", "a1", "/acknowledge"), headers=bearer("ana"), json={"note": "really"})
    assert again.status_code == 200, again.text
    assert again.json() == done
    assert client.get(seeded.path("stale", "a1"), headers=bearer("ana")).json() == done
    assert listed(client, seeded, state="acknowledged") == [("stale", "a1")]
    assert ("stale", "a1") in listed(client, seeded)


async def test_a_stranger_may_not_acknowledge_but_a_lead_it_is_for_and_portfolio_leads_may(client: TestClient, seeded: Seeded) -> None:
    refused = client.post(seeded.path("stale", "b1", "/acknowledge"), headers=bearer("eve"), json={"note": "mine now"})
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == PROBLEM
    assert "eve is neither the owner nor a lead" in refused.json()["detail"]
    assert client.get(seeded.path("stale", "b1"), headers=bearer("bob")).json()["state"] == "open"
    accepted = [
        ("ben", "confidence_falling", "b1"),  # beta's lead, to whom the alert went
        ("ben", "output_phrased", "b2"),  # beta's lead again: an owner-only alert about a node of beta
        ("cpo", "stale", "b1"),  # the portfolio's lead
        ("deputy", "stale", "a1"),  # a token with the portfolio_lead role
    ]
    for token, rule, node in accepted:
        response = client.post(seeded.path(rule, node, "/acknowledge"), headers=bearer(token))
        assert response.status_code == 200, response.text
        assert (response.json()["state"], response.json()["acknowledged_by"], response.json()["note"]) == ("acknowledged", token, "")
    assert listed(client, seeded, state="acknowledged") == [
        ("stale", "b1"),
        ("stale", "a1"),
        ("confidence_falling", "b1"),
        ("output_phrased", "b2"),
    ]


async def test_acknowledging_a_resolved_alert_is_a_conflict(client: TestClient, seeded: Seeded) -> None:
    response = client.post(seeded.path("off_track", "b1", "/acknowledge"), headers=bearer("bob"), json={"note": "late"})
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:okrstream:problem:alert-resolved"
    assert problem["detail"] == (
        f"alert {seeded.ids['off_track', 'b1']} was resolved at 2026-07-05 09:00 UTC: recovery plan filed (change_resources, owner bob)"
    )
    assert client.get(seeded.path("off_track", "b1"), headers=bearer("bob")).json()["acknowledged_by"] is None


async def test_an_acknowledgement_with_an_unknown_field_is_invalid(client: TestClient, seeded: Seeded) -> None:
    response = client.post(seeded.path("stale", "a1", "/acknowledge"), headers=bearer("ana"), json={"note": "ok", "snooze_days": 3})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert "snooze_days" in response.json()["detail"]
    too_long = client.post(seeded.path("stale", "a1", "/acknowledge"), headers=bearer("ana"), json={"note": "x" * 4001})
    assert too_long.status_code == 422, too_long.text
    assert client.get(seeded.path("stale", "a1"), headers=bearer("ana")).json()["state"] == "open"


async def test_the_exceptions_view_skips_green_key_results_and_shows_recovery_plans(client: TestClient, seeded: Seeded) -> None:
    response = client.get(f"/v1/portfolios/{seeded.pid}/exceptions", headers=bearer("cpo"))
    assert response.status_code == 200, response.text
    view = response.json()
    assert (view["portfolio_id"], view["minimum_severity"], view["as_of"]) == (seeded.pid, "warning", "2026-07-12T09:00:00+00:00")
    assert view["counts"] == {"live_key_results": 4, "key_results_with_exceptions": 2, "skipped_green": 2, "by_rule": {"stale": 2}}
    assert [(p["product_id"], [n["node_id"] for n in p["nodes"]]) for p in view["products"]] == [("alpha", ["a1"]), ("beta", ["b1"])]
    b1 = view["products"][1]["nodes"][0]
    assert (b1["title"], b1["owner"], b1["confidence"], b1["node_kind"]) == ("Net revenue retention", "bob", 0.3, "key_result")
    assert b1["recovery_plan"] == {
        "at": "2026-07-05T09:00:00Z",
        "option": "change_resources",
        "owner": "bob",
        "decision_needed": "Move two engineers from alpha",
    }
    assert [(a["rule"], a["severity"], a["state"]) for a in b1["alerts"]] == [("stale", "warning", "open")]
    assert set(b1["alerts"][0]) == {"alert_id", "rule", "severity", "state", "summary", "asked", "raised_at", "facts"}
    assert view["products"][0]["nodes"][0]["recovery_plan"] is None

    everything = client.get(f"/v1/portfolios/{seeded.pid}/exceptions", headers=bearer("cpo"), params={"minimum_severity": "info"}).json()
    assert everything["counts"] == {
        "live_key_results": 4,
        "key_results_with_exceptions": 3,
        "skipped_green": 1,
        "by_rule": {"confidence_falling": 1, "output_phrased": 1, "stale": 2},
    }
    beta = everything["products"][1]
    assert [(n["node_id"], [a["rule"] for a in n["alerts"]]) for n in beta["nodes"]] == [
        ("b1", ["stale", "confidence_falling"]),
        ("b2", ["output_phrased"]),
    ]
    critical = client.get(f"/v1/portfolios/{seeded.pid}/exceptions", headers=bearer("cpo"), params={"minimum_severity": "critical"}).json()
    assert (critical["products"], critical["counts"]["skipped_green"]) == ([], 4)


async def test_acknowledged_alerts_stay_in_the_exceptions_view(client: TestClient, seeded: Seeded) -> None:
    client.post(seeded.path("stale", "a1", "/acknowledge"), headers=bearer("ana"), json={"note": "on it"})
    view = client.get(f"/v1/portfolios/{seeded.pid}/exceptions", headers=bearer("cpo")).json()
    [a1] = view["products"][0]["nodes"]
    assert [(a["rule"], a["state"]) for a in a1["alerts"]] == [("stale", "acknowledged")]


async def test_acknowledging_through_a_shard_that_does_not_own_the_portfolio_is_misdirected(
    store: DriftStore, clock: Clock, seeded: Seeded
) -> None:
    other_shard = DriftService(store, discard, clock, owns=lambda _: False)
    app = FastAPI()
    install_problem_handlers(app)
    install_api(app, other_shard, Authenticator([TokenEntry(sha256=hash_token("bob"), principal="bob")]))
    response = TestClient(app).post(seeded.path("stale", "b1", "/acknowledge"), headers=bearer("bob"), json={})
    assert response.status_code == 421, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "urn:okrstream:problem:other-shard"
    assert store.alert(seeded.pid, seeded.ids["stale", "b1"]).state == "open"  # type: ignore[union-attr]


async def test_check_ins_list_live_key_results_without_a_check_in_since_a_moment(client: TestClient, seeded: Seeded) -> None:
    since = (START + timedelta(days=7)).isoformat()
    response = client.get(f"/v1/portfolios/{seeded.pid}/check-ins", headers=bearer("ana"), params={"before": since})
    assert response.status_code == 200, response.text
    rows = response.json()["key_results"]
    assert [(r["kr_id"], r["last_check_in"]) for r in rows] == [
        ("a1", None),
        ("b1", (START + timedelta(days=3)).isoformat()),
        ("b2", (START + timedelta(days=5)).isoformat()),
    ]
    everyone = client.get(f"/v1/portfolios/{seeded.pid}/check-ins", headers=bearer("ana")).json()["key_results"]
    assert {r["kr_id"] for r in everyone} == {"a1", "a2", "b1", "b2"}
    assert client.get("/v1/portfolios/nobody/check-ins", headers=bearer("ana")).status_code == 404

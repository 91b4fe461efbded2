"""A node overrides the portfolio's rollup method only where mixing is allowed, and a kpi rollup adds like units (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

MIXED = "urn:okrstream:problem:mixed-methods-refused"
UNIT = "urn:okrstream:problem:unit-mismatch"
SETTINGS = {"name": "Acme", "owner": "cpo", "rollup_method": "weighted", "allow_mixed_methods": False}


def settings(api: Any, **changes: Any) -> Any:
    return api.client.put("/v1/portfolios/acme/settings", json={**SETTINGS, **changes}, headers=api.headers("cpo"))


def objective(objective_id: str, **fields: Any) -> dict[str, Any]:
    base = {"objective_id": objective_id, "cycle_id": "q3", "tier": 3, "title": "x", "owner": "pm.ana", "product_id": "billing"}
    return base | fields


def key_result(kr_id: str, objective_id: str = "billing-grows", **fields: Any) -> dict[str, Any]:
    return {"kr_id": kr_id, "objective_id": objective_id, "title": "x", "baseline": 0, "target": 10, "owner": "pm.ana"} | fields


def refused(api: Any, send: Any, problem: str) -> dict[str, Any]:
    """Send a command that must be refused with `problem`, and prove nothing was stored."""
    before, version = api.stored(), api.checkins.portfolio("acme").state.portfolio.version
    response = send()
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    answer: dict[str, Any] = response.json()
    assert answer["type"] == problem
    assert (api.stored(), api.checkins.portfolio("acme").state.portfolio.version) == (before, version)
    return answer


@pytest.fixture
def mixed(seeded: Any) -> Any:
    """The seeded portfolio allowing mixed methods, with a tier-1 key result in MEUR rolled up by kpi."""
    seeded.ok(settings(seeded, allow_mixed_methods=True))
    seeded.ok(seeded.post("/acme/key-results", key_result("arr", "grow", unit="MEUR", rollup_method="kpi", owner="cpo"), "cpo"))
    return seeded


def test_a_node_overriding_the_method_is_refused_where_mixing_is_not_allowed(seeded: Any) -> None:
    answer = refused(seeded, lambda: seeded.post("/acme/objectives", objective("o-kpi", rollup_method="kpi"), "cpo"), MIXED)
    assert "rolls up by weighted and does not allow mixed methods" in answer["detail"]
    assert (answer["node_id"], answer["rollup_method"]) == ("o-kpi", "kpi")
    refused(seeded, lambda: seeded.post("/acme/key-results", key_result("k-say-do", rollup_method="say_do"), "cpo"), MIXED)


def test_an_override_equal_to_the_portfolios_method_is_not_mixing(seeded: Any) -> None:
    seeded.ok(seeded.post("/acme/key-results", key_result("k-weighted", rollup_method="weighted"), "cpo"))
    seeded.ok(seeded.post("/acme/objectives", objective("o-weighted", rollup_method="weighted"), "cpo"))
    assert seeded.get("/acme/key-results/k-weighted", "cpo").json()["rollup_method"] == "weighted"
    objectives = {o["objective_id"]: o for o in seeded.get("/acme", "cpo").json()["objectives"]}
    assert objectives["o-weighted"]["rollup_method"] == "weighted"
    assert objectives["grow"]["rollup_method"] is None


def test_where_mixing_is_allowed_a_node_keeps_its_own_method(mixed: Any) -> None:
    mixed.ok(mixed.post("/acme/objectives", objective("o-say-do", rollup_method="say_do"), "cpo"))
    assert mixed.get("/acme/key-results/arr", "cpo").json()["rollup_method"] == "kpi"
    objectives = {o["objective_id"]: o for o in mixed.get("/acme", "cpo").json()["objectives"]}
    assert objectives["o-say-do"]["rollup_method"] == "say_do"


def test_mixing_cannot_be_disallowed_while_nodes_override_the_method(mixed: Any) -> None:
    for n in range(4):
        mixed.ok(mixed.post("/acme/objectives", objective(f"o-{n}", rollup_method="say_do"), "cpo"))
    answer = refused(mixed, lambda: settings(mixed, allow_mixed_methods=False), MIXED)
    assert "o-0 (say_do), o-1 (say_do), o-2 (say_do) and 2 more roll up by another method" in answer["detail"]
    assert sorted(answer["nodes"]) == ["arr", "o-0", "o-1", "o-2", "o-3"]


def test_the_method_cannot_change_away_from_a_nodes_override_while_mixing_is_disallowed(seeded: Any) -> None:
    seeded.ok(seeded.post("/acme/key-results", key_result("k-weighted", rollup_method="weighted"), "cpo"))
    answer = refused(seeded, lambda: settings(seeded, rollup_method="say_do"), MIXED)
    assert "k-weighted (weighted)" in answer["detail"]


def test_mixing_can_be_disallowed_when_every_override_matches_the_new_method(mixed: Any) -> None:
    mixed.ok(settings(mixed, rollup_method="kpi", allow_mixed_methods=False))
    assert mixed.get("/acme", "cpo").json()["settings"]["rollup_method"] == "kpi"


def test_a_key_result_contributes_to_a_kpi_rollup_only_in_its_unit(mixed: Any) -> None:
    answer = refused(
        mixed, lambda: mixed.post("/acme/key-results", key_result("seats", unit="seats", contributes_to={"parent_id": "arr"}), "cpo"), UNIT
    )
    assert "'seats' but arr, which rolls up by kpi, in 'MEUR'" in answer["detail"]
    assert (answer["unit"], answer["parent_unit"]) == ("seats", "MEUR")
    mixed.ok(mixed.post("/acme/key-results", key_result("upsell", unit="MEUR", contributes_to={"parent_id": "arr"}), "cpo"))


def test_a_link_change_to_a_kpi_rollup_needs_the_same_unit(mixed: Any) -> None:
    refused(mixed, lambda: mixed.post("/acme/nodes/churn/link", {"new_link": {"parent_id": "arr"}, "reason": "x"}, "cpo"), UNIT)
    mixed.ok(mixed.post("/acme/nodes/revenue/link", {"new_link": {"parent_id": "arr"}, "reason": "ARR adds up"}, "cpo"))
    assert mixed.get("/acme/key-results/revenue", "cpo").json()["contributes_to"]["parent_id"] == "arr"


def test_an_objective_cannot_contribute_to_a_kpi_rollup(mixed: Any) -> None:
    mixed.ok(mixed.post("/acme/key-results", key_result("seats", unit="seats", rollup_method="kpi"), "cpo"))
    answer = refused(
        mixed, lambda: mixed.post("/acme/objectives", objective("o-seats", contributes_to={"parent_id": "seats"}), "cpo"), UNIT
    )
    assert "objective o-seats has no value or unit" in answer["detail"]
    refused(mixed, lambda: mixed.post("/acme/nodes/dunning/link", {"new_link": {"parent_id": "seats"}, "reason": "x"}, "cpo"), UNIT)


def test_under_a_kpi_portfolio_every_key_result_link_needs_its_parents_unit(seeded: Any) -> None:
    seeded.ok(settings(seeded, rollup_method="kpi"))
    retries = key_result("retries", "dunning", unit="retries", contributes_to={"parent_id": "churn"})
    refused(seeded, lambda: seeded.post("/acme/key-results", retries, "cpo"), UNIT)
    seeded.ok(seeded.post("/acme/key-results", key_result("lost", "dunning", unit="%", contributes_to={"parent_id": "churn"}), "cpo"))

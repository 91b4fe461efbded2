"""Every rejected command answers with its problem+json and stores nothing (SQLite and PostgreSQL alike)."""

from __future__ import annotations

from typing import Any

import pytest

P = "/acme"
CHECK_IN = {"confidence": 0.5, "what_changed": "pilot customers renewed"}

CASES: list[tuple[str, str, str, Any, int, str]] = [
    ("confidence above 1", "pm.ana", f"{P}/key-results/churn/check-ins", {**CHECK_IN, "confidence": 1.2}, 422, "about:blank"),
    ("confidence below 0", "pm.ana", f"{P}/key-results/churn/check-ins", {**CHECK_IN, "confidence": -0.1}, 422, "about:blank"),
    ("confidence NaN", "pm.ana", f"{P}/key-results/churn/check-ins", b'{"confidence": NaN, "what_changed": "x"}', 422, "about:blank"),
    (
        "infinite value",
        "pm.ana",
        f"{P}/key-results/churn/check-ins",
        b'{"confidence": 0.5, "value": 1e999, "what_changed": "x"}',
        422,
        "about:blank",
    ),
    ("infinite target", "lead.bo", f"{P}/key-results/churn/target", b'{"new_target": -Infinity, "reason": "x"}', 422, "about:blank"),
    (
        "baseline equals target",
        "pm.ana",
        f"{P}/key-results",
        {"kr_id": "flat", "objective_id": "billing-grows", "title": "Keep NPS", "baseline": 40, "target": 40, "owner": "pm.ana"},
        422,
        "urn:okrstream:problem:baseline-equals-target",
    ),
    (
        "link skips a tier",
        "lead.bo",
        f"{P}/objectives",
        {"objective_id": "skip", "cycle_id": "q3", "tier": 3, "title": "x", "owner": "pm.ana", "product_id": "billing"}
        | {"contributes_to": {"parent_id": "grow"}},
        422,
        "urn:okrstream:problem:invalid-link",
    ),
    (
        "link points down",
        "lead.sam",
        f"{P}/nodes/latency/link",
        {"new_link": {"parent_id": "dunning"}, "reason": "reorg"},
        422,
        "urn:okrstream:problem:invalid-link",
    ),
    (
        "link makes a cycle",
        "lead.bo",
        f"{P}/nodes/billing-grows/link",
        {"new_link": {"parent_id": "churn"}, "reason": "reorg"},
        422,
        "urn:okrstream:problem:invalid-link",
    ),
    ("check-in on a retired KR", "pm.ana", f"{P}/key-results/old/check-ins", CHECK_IN, 409, "urn:okrstream:problem:key-result-retired"),
    (
        "value from the owner when a scorekeeper is set",
        "pm.ana",
        f"{P}/key-results/revenue/values",
        {"value": 1.1},
        403,
        "urn:okrstream:problem:forbidden",
    ),
    ("unknown key result", "pm.ana", f"{P}/key-results/nope/check-ins", CHECK_IN, 404, "urn:okrstream:problem:unknown-id"),
    ("unknown portfolio", "pm.ana", "/nowhere/key-results/churn/check-ins", CHECK_IN, 404, "urn:okrstream:problem:unknown-id"),
    (
        "unknown objective",
        "cpo",
        f"{P}/key-results",
        {"kr_id": "orphan", "objective_id": "nope", "title": "x", "baseline": 0, "target": 1, "owner": "pm.ana"},
        404,
        "urn:okrstream:problem:unknown-id",
    ),
    (
        "unknown cycle",
        "cpo",
        f"{P}/objectives",
        {"objective_id": "o9", "cycle_id": "q9", "tier": 1, "title": "x", "owner": "cpo"},
        404,
        "urn:okrstream:problem:unknown-id",
    ),
    ("target change without a reason", "lead.bo", f"{P}/key-results/churn/target", {"new_target": 1.5}, 422, "about:blank"),
    ("retire without a reason", "pm.ana", f"{P}/key-results/churn/retire", {"reason": "  "}, 422, "about:blank"),
    (
        "recovery plan with no option",
        "pm.ana",
        f"{P}/key-results/churn/recovery-plans",
        {"option": "change_everything", "description": "x", "owner": "pm.ana", "decision_needed": "y"},
        422,
        "about:blank",
    ),
    ("unknown field", "pm.ana", f"{P}/key-results/churn/check-ins", {**CHECK_IN, "progress": 0.9}, 422, "about:blank"),
    (
        "duplicate id",
        "cpo",
        f"{P}/products",
        {"product_id": "churn", "name": "x", "lead": "cpo"},
        409,
        "urn:okrstream:problem:already-defined",
    ),
]


@pytest.fixture
def with_retired(seeded: Any) -> Any:
    old = {"kr_id": "old", "objective_id": "billing-grows", "title": "Old KR", "baseline": 0, "target": 10, "owner": "pm.ana"}
    seeded.ok(seeded.post("/acme/key-results", old, "pm.ana"))
    seeded.ok(seeded.post("/acme/key-results/old/retire", {"reason": "replaced by churn"}, "pm.ana"))
    return seeded


@pytest.mark.parametrize(("case", "principal", "path", "body", "status", "problem"), CASES, ids=[c[0] for c in CASES])
def test_a_rejected_command_answers_its_problem_and_stores_nothing(
    with_retired: Any, case: str, principal: str, path: str, body: Any, status: int, problem: str
) -> None:
    api = with_retired
    before = api.stored()
    url = f"/v1/portfolios{path}"
    if isinstance(body, bytes):
        response = api.client.post(url, content=body, headers=api.headers(principal, **{"content-type": "application/json"}))
    else:
        response = api.client.post(url, json=body, headers=api.headers(principal))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    answer = response.json()
    assert answer["type"] == problem
    assert answer["status"] == status
    assert answer["detail"]
    assert api.stored() == before


@pytest.mark.parametrize(
    ("principal", "node", "parent", "says"),
    [
        ("lead.bo", "billing-grows", "churn", "makes a cycle"),
        ("lead.sam", "latency", "dunning", "cannot contribute down"),
        ("lead.bo", "dunning", "grow", "cannot skip to tier 1"),
        ("lead.sam", "latency", "churn", "both at tier 2"),
    ],
)
def test_a_refused_link_says_which_rule_it_breaks(seeded: Any, principal: str, node: str, parent: str, says: str) -> None:
    answer = seeded.post(f"/acme/nodes/{node}/link", {"new_link": {"parent_id": parent}, "reason": "reorg"}, principal).json()
    assert says in answer["detail"]


def test_a_failing_second_event_leaves_the_first_unstored(seeded: Any) -> None:
    before = seeded.stored()
    response = seeded.post("/acme/key-results/revenue/check-ins", {**CHECK_IN, "value": 1.1}, "pm.ana")
    assert response.status_code == 403
    assert seeded.stored() == before
    assert seeded.get("/acme/key-results/revenue", "pm.ana").json()["confidence"] is None


def test_requests_without_a_valid_token_are_refused(seeded: Any) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        response = seeded.client.get("/v1/portfolios/acme", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"

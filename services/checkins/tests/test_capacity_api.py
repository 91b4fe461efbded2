"""Capacity over HTTP: squads' capacity, allocations, tags and the balance are recorded, shown, refused with problem+json, replayed."""

from __future__ import annotations

from typing import Any

import pytest

from okr_checkins.application import CheckinsApplication
from okr_checkins.views import portfolio_view

P = "/acme"
BALANCE = {"primary": 0.6, "secondary": 0.3, "exploration": 0.1, "margin": 0.05}


def view(api: Any) -> dict[str, Any]:
    """The portfolio as the read API shows it, with its teams and objectives by id."""
    found: dict[str, Any] = api.ok(api.get(P, "cpo"))
    found["teams"] = {t["team_id"]: t for t in found["teams"]}
    found["objectives"] = {o["objective_id"]: o for o in found["objectives"]}
    return found


@pytest.fixture
def allocated(seeded: Any) -> Any:
    """The seeded portfolio with billing-grows taking 3 sprints of squad-1."""
    seeded.ok(seeded.put(f"{P}/objectives/billing-grows/allocations/squad-1", {"sprints": 3}, "lead.bo"))
    return seeded


def test_capacity_allocations_tags_and_balance_are_recorded_and_shown(seeded: Any) -> None:
    first = seeded.ok(seeded.put(f"{P}/teams/squad-1/capacity", {"sprints": 6}, "lead.bo"))
    assert [e["type"] for e in first["events"]] == ["SquadCapacitySet"]
    seeded.ok(seeded.put(f"{P}/teams/squad-1/capacity", {"sprints": 5, "cycle_id": "q3", "reason": "one engineer on leave"}, "cpo"))
    for objective_id, sprints in (("billing-grows", 3), ("dunning", 2), ("search-finds", 1.5)):
        seeded.ok(seeded.put(f"{P}/objectives/{objective_id}/allocations/squad-1", {"sprints": sprints}, "cpo"))
    tags = {"priority": "primary", "aarrr_stage": "retention", "horizon": "grow"}
    seeded.ok(seeded.put(f"{P}/objectives/billing-grows/classification", tags, "lead.bo"))
    seeded.ok(seeded.put(f"{P}/balance", {**BALANCE, "reason": "a platform year"}, "cpo"))
    shown = view(seeded)
    assert shown["teams"]["squad-1"]["capacity"] == {"sprints": 6.0, "cycles": {"q3": 5.0}}
    assert shown["teams"]["squad-1"]["version"] == 3
    billing = shown["objectives"]["billing-grows"]
    assert billing["allocations"] == {"squad-1": 3.0}
    assert {name: billing[name] for name in tags} == tags
    grow = shown["objectives"]["grow"]
    assert (grow["priority"], grow["aarrr_stage"], grow["horizon"], grow["allocations"]) == (None, None, None, {})
    assert sum(o["allocations"].get("squad-1", 0) for o in shown["objectives"].values()) == 6.5  # beyond the 5 sprints of q3: recorded
    assert shown["balance"] == BALANCE


def test_an_allocation_answers_with_the_objectives_version_and_a_change_says_what_it_was(allocated: Any) -> None:
    changed = allocated.put(f"{P}/objectives/billing-grows/allocations/squad-1", {"sprints": 4, "reason": "scope grew"}, "lead.bo")
    assert changed.status_code == 201
    assert changed.headers["etag"] == '"3"'
    data = [r["data"] for r in allocated.checkins.records("acme") if r["type"] == "ObjectiveAllocated"][-1]
    assert (data["sprints"], data["old_sprints"], data["reason"]) == (4.0, 3.0, "scope grew")


def test_a_removed_allocation_is_gone_from_the_view_and_its_reason_in_the_history(allocated: Any) -> None:
    removed = allocated.ok(allocated.post(f"{P}/objectives/billing-grows/allocations/squad-1/remove", {"reason": "moved"}, "cpo"))
    assert [e["type"] for e in removed["events"]] == ["AllocationRemoved"]
    assert view(allocated)["objectives"]["billing-grows"]["allocations"] == {}
    data = list(allocated.checkins.records("acme"))[-1]["data"]
    assert (data["old_sprints"], data["reason"], data["aggregate_id"]) == (3.0, "moved", "billing-grows")


def test_only_the_portfolio_lead_and_the_product_lead_remove_an_allocation(allocated: Any) -> None:
    path, before = f"{P}/objectives/billing-grows/allocations/squad-1/remove", allocated.stored()
    for principal in ("lead.sam", "pm.ana", "pm.lee", "finance", "auditor", "connector:kpi", "stranger"):
        refused = allocated.post(path, {"reason": "x"}, principal)
        assert (refused.status_code, refused.json()["type"]) == (403, "urn:okrstream:problem:forbidden"), principal
    assert allocated.stored() == before
    allocated.ok(allocated.post(path, {"reason": "x"}, "lead.bo"))


CASES: list[tuple[str, str, str, Any, int, str]] = [
    ("negative capacity", "PUT", "/teams/squad-1/capacity", {"sprints": -1}, 422, "about:blank"),
    ("capacity NaN", "PUT", "/teams/squad-1/capacity", b'{"sprints": NaN}', 422, "about:blank"),
    ("capacity beyond 10,000 sprints", "PUT", "/teams/squad-1/capacity", {"sprints": 10_001}, 422, "about:blank"),
    ("capacity with an unknown field", "PUT", "/teams/squad-1/capacity", {"sprints": 3, "cycle": "q3"}, 422, "about:blank"),
    ("capacity of an unknown team", "PUT", "/teams/squad-9/capacity", {"sprints": 3}, 404, "urn:okrstream:problem:unknown-id"),
    (
        "capacity in an unknown cycle",
        "PUT",
        "/teams/squad-1/capacity",
        {"sprints": 3, "cycle_id": "q9"},
        404,
        "urn:okrstream:problem:unknown-id",
    ),
    ("allocation of no sprints", "PUT", "/objectives/dunning/allocations/squad-1", {"sprints": 0}, 422, "about:blank"),
    ("allocation without sprints", "PUT", "/objectives/dunning/allocations/squad-1", {"reason": "x"}, 422, "about:blank"),
    ("allocation of infinite sprints", "PUT", "/objectives/dunning/allocations/squad-1", b'{"sprints": Infinity}', 422, "about:blank"),
    (
        "allocation of an unknown objective",
        "PUT",
        "/objectives/nope/allocations/squad-1",
        {"sprints": 1},
        404,
        "urn:okrstream:problem:unknown-id",
    ),
    (
        "allocation to an unknown squad",
        "PUT",
        "/objectives/dunning/allocations/squad-9",
        {"sprints": 1},
        404,
        "urn:okrstream:problem:unknown-id",
    ),
    (
        "unchanged allocation",
        "PUT",
        "/objectives/billing-grows/allocations/squad-1",
        {"sprints": 3},
        422,
        "urn:okrstream:problem:invalid-command",
    ),
    ("removal without a reason", "POST", "/objectives/billing-grows/allocations/squad-1/remove", {}, 422, "about:blank"),
    ("removal with a blank reason", "POST", "/objectives/billing-grows/allocations/squad-1/remove", {"reason": " "}, 422, "about:blank"),
    (
        "removal of no allocation",
        "POST",
        "/objectives/dunning/allocations/squad-1/remove",
        {"reason": "x"},
        404,
        "urn:okrstream:problem:unknown-id",
    ),
    ("an unknown priority", "PUT", "/objectives/dunning/classification", {"priority": "tertiary"}, 422, "about:blank"),
    ("an unknown funnel stage", "PUT", "/objectives/dunning/classification", {"aarrr_stage": "awareness"}, 422, "about:blank"),
    ("a classification changing nothing", "PUT", "/objectives/dunning/classification", {}, 422, "urn:okrstream:problem:invalid-command"),
    ("shares summing to 1.1", "PUT", "/balance", {"primary": 0.7, "secondary": 0.3, "exploration": 0.1}, 422, "about:blank"),
    ("a share above 1", "PUT", "/balance", {"primary": 1.2, "secondary": -0.2, "exploration": 0}, 422, "about:blank"),
    ("a balance without shares", "PUT", "/balance", {"margin": 0.2}, 422, "about:blank"),
    ("a margin above 1", "PUT", "/balance", {**BALANCE, "margin": 1.5}, 422, "about:blank"),
    (
        "the balance as it is",
        "PUT",
        "/balance",
        {"primary": 0.7, "secondary": 0.2, "exploration": 0.1},
        422,
        "urn:okrstream:problem:invalid-command",
    ),
    ("the balance by a product lead", "PUT", "/balance", BALANCE, 403, "urn:okrstream:problem:forbidden"),
]


@pytest.mark.parametrize(("case", "method", "path", "body", "status", "problem"), CASES, ids=[c[0] for c in CASES])
def test_a_refused_capacity_command_answers_its_problem_and_stores_nothing(
    allocated: Any, case: str, method: str, path: str, body: Any, status: int, problem: str
) -> None:
    api = allocated
    before = (api.stored(), view(api))
    principal = "lead.bo" if "product lead" in case else "cpo"
    url = f"/v1/portfolios{P}{path}"
    if isinstance(body, bytes):
        response = api.client.request(method, url, content=body, headers=api.headers(principal, **{"content-type": "application/json"}))
    else:
        response = api.client.request(method, url, json=body, headers=api.headers(principal))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    answer = response.json()
    assert (answer["type"], answer["status"]) == (problem, status)
    assert answer["detail"]
    assert (api.stored(), view(api)) == before


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        (
            "/balance",
            {"primary": 0.7, "secondary": 0.3, "exploration": 0.1},
            "the shares sum to 1.1; primary, secondary and exploration must sum to 1",
        ),
        ("/objectives/billing-grows/allocations/squad-1", {"sprints": 3}, "billing-grows already takes 3 sprints of squad-1"),
        ("/teams/squad-1/capacity", {"sprints": 2, "cycle_id": "q9"}, "no cycle 'q9' in this portfolio"),
        ("/objectives/dunning/classification", {}, "dunning is already classified so: priority none, aarrr_stage none, horizon none"),
    ],
)
def test_a_refusal_says_what_to_fix(allocated: Any, path: str, body: dict[str, Any], says: str) -> None:
    answer = allocated.put(f"{P}{path}", body, "cpo").json()
    assert says in answer["detail"], answer


def test_a_scored_cycle_takes_no_capacity_allocation_or_tags(allocated: Any) -> None:
    allocated.ok(allocated.post(f"{P}/cycles/q3/close", {"default": "retire"}, "cpo"))
    before = allocated.stored()
    for path, body in (
        ("/teams/squad-1/capacity", {"sprints": 4, "cycle_id": "q3"}),
        ("/objectives/billing-grows/allocations/squad-1", {"sprints": 4}),
        ("/objectives/billing-grows/classification", {"priority": "primary"}),
    ):
        response = allocated.put(f"{P}{path}", body, "cpo")
        assert (response.status_code, response.json()["type"]) == (409, "urn:okrstream:problem:cycle-closed"), response.text
    refused = allocated.post(f"{P}/objectives/billing-grows/allocations/squad-1/remove", {"reason": "x"}, "cpo")
    assert refused.status_code == 409
    assert allocated.stored() == before
    allocated.ok(allocated.put(f"{P}/teams/squad-1/capacity", {"sprints": 4, "cycle_id": "q4"}, "cpo"))


@pytest.mark.parametrize(
    ("path", "body", "entity"),
    [
        ("/teams/squad-1/capacity", {"sprints": 4}, "squad-1"),
        ("/objectives/billing-grows/allocations/squad-1", {"sprints": 4}, "billing-grows"),
        ("/objectives/billing-grows/classification", {"horizon": "run"}, "billing-grows"),
        ("/balance", BALANCE, "acme"),
    ],
)
def test_a_stale_if_match_is_refused_with_the_current_version(allocated: Any, path: str, body: dict[str, Any], entity: str) -> None:
    shown = view(allocated)
    current = {"acme": shown["version"], "squad-1": shown["teams"]["squad-1"]["version"], "billing-grows": 2}[entity]
    before = allocated.stored()
    stale = allocated.put(f"{P}{path}", body, "cpo", **{"If-Match": f'"{current - 1}"'})
    assert (stale.status_code, stale.json()["current_version"]) == (409, current)
    assert allocated.stored() == before
    done = allocated.put(f"{P}{path}", body, "cpo", **{"If-Match": f'"{current}"'})
    assert (done.status_code, done.headers["etag"]) == (201, f'"{current + 1}"')


def test_a_retried_put_with_the_same_idempotency_key_appends_once(seeded: Any) -> None:
    key = {"Idempotency-Key": "capacity-q3"}
    first = seeded.put(f"{P}/teams/squad-1/capacity", {"sprints": 5, "cycle_id": "q3"}, "cpo", **key)
    before = seeded.stored()
    again = seeded.put(f"{P}/teams/squad-1/capacity", {"sprints": 5, "cycle_id": "q3"}, "cpo", **key)
    assert (first.status_code, again.status_code, again.headers["idempotent-replayed"]) == (201, 201, "true")
    assert (again.json()["events"], seeded.stored()) == (first.json()["events"], before)


def test_the_stored_history_replays_into_the_same_portfolio(allocated: Any, store_env: dict[str, str]) -> None:
    allocated.ok(allocated.put(f"{P}/teams/squad-1/capacity", {"sprints": 6}, "cpo"))
    allocated.ok(allocated.put(f"{P}/teams/squad-1/capacity", {"sprints": 4, "cycle_id": "q4"}, "cpo"))
    allocated.ok(allocated.put(f"{P}/objectives/dunning/allocations/squad-1", {"sprints": 2}, "cpo"))
    allocated.ok(allocated.post(f"{P}/objectives/billing-grows/allocations/squad-1/remove", {"reason": "done early"}, "cpo"))
    allocated.ok(allocated.put(f"{P}/objectives/grow/classification", {"priority": "primary", "horizon": "transform"}, "cpo"))
    allocated.ok(allocated.put(f"{P}/balance", BALANCE, "cpo"))
    fresh = CheckinsApplication(store_env)  # no cache: the portfolio is folded from the stored events
    try:
        replayed = portfolio_view(fresh.portfolio("acme").state)
    finally:
        fresh.close()
    assert replayed == portfolio_view(allocated.checkins.portfolio("acme").state)
    allocations = {o["objective_id"]: o["allocations"] for o in replayed["objectives"]}
    assert (allocations["dunning"], allocations["billing-grows"], replayed["balance"]) == ({"squad-1": 2.0}, {}, BALANCE)

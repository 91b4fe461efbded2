"""Every role may do what its job needs and is refused the rest, with nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

CAST = ["cpo", "lead.bo", "lead.sam", "pm.ana", "pm.lee", "finance", "auditor", "connector:kpi", "stranger"]

ACTIONS: list[tuple[str, str, dict[str, Any], set[str]]] = [
    ("redefine portfolio", "PUT /settings", {"name": "Acme Corp", "owner": "cpo"}, {"cpo"}),
    ("define product", "/products", {"product_id": "ads", "name": "Ads", "lead": "lead.sam"}, {"cpo"}),
    ("define team", "/teams", {"team_id": "squad-2", "name": "Squad 2", "lead": "lead.bo", "product_id": "billing"}, {"cpo", "lead.bo"}),
    ("start cycle", "/cycles", {"cycle_id": "q1", "name": "2027-Q1", "starts_on": "2027-01-01", "ends_on": "2027-03-31"}, {"cpo"}),
    ("define tier-1 objective", "/objectives", {"objective_id": "o1", "cycle_id": "q3", "tier": 1, "title": "x", "owner": "cpo"}, {"cpo"}),
    (
        "define product objective",
        "/objectives",
        {"objective_id": "o2", "cycle_id": "q3", "tier": 2, "title": "x", "owner": "pm.ana", "product_id": "billing"},
        {"cpo", "lead.bo"},
    ),
    (
        "define key result",
        "/key-results",
        {"kr_id": "k2", "objective_id": "billing-grows", "title": "x", "baseline": 0, "target": 1, "owner": "pm.ana"},
        {"cpo", "lead.bo", "pm.ana"},
    ),
    ("check in", "/key-results/churn/check-ins", {"confidence": 0.7, "what_changed": "x"}, {"pm.ana"}),
    ("record value", "/key-results/churn/values", {"value": 4.5}, {"cpo", "lead.bo", "pm.ana"}),
    ("record scorekept value", "/key-results/revenue/values", {"value": 1.1}, {"finance", "connector:kpi"}),
    ("change target", "/key-results/churn/target", {"new_target": 1.5, "reason": "board asked"}, {"cpo", "lead.bo"}),
    ("change weight", "/nodes/churn/weight", {"parent_id": "billing-grows", "new_weight": 2, "reason": "x"}, {"cpo", "lead.bo"}),
    (
        "change an objective's link weight",
        "/nodes/billing-grows/weight",
        {"parent_id": "grow", "new_weight": 2, "reason": "x"},
        {"cpo", "lead.bo"},
    ),
    ("change link", "/nodes/dunning/link", {"new_link": None, "reason": "x"}, {"cpo", "lead.bo"}),
    ("retire", "/key-results/churn/retire", {"reason": "x"}, {"cpo", "lead.bo", "pm.ana"}),
    ("escalate", "/key-results/churn/escalations", {"escalated_to": "cpo", "reason": "x"}, {"lead.bo", "pm.ana"}),
    (
        "file recovery plan",
        "/key-results/churn/recovery-plans",
        {"option": "change_tactic", "description": "x", "owner": "pm.ana", "decision_needed": "y"},
        {"cpo", "lead.bo", "pm.ana"},
    ),
    ("close cycle", "/cycles/q3/close", {"default": "retire"}, {"cpo"}),
    ("set a squad's capacity", "PUT /teams/squad-1/capacity", {"sprints": 6}, {"cpo", "lead.bo"}),
    ("allocate a product objective", "PUT /objectives/billing-grows/allocations/squad-1", {"sprints": 2}, {"cpo", "lead.bo"}),
    ("allocate a tier-1 objective", "PUT /objectives/grow/allocations/squad-1", {"sprints": 2}, {"cpo"}),
    ("classify a product objective", "PUT /objectives/billing-grows/classification", {"priority": "primary"}, {"cpo", "lead.bo"}),
    ("classify a tier-1 objective", "PUT /objectives/grow/classification", {"priority": "primary"}, {"cpo"}),
    ("intend the balance", "PUT /balance", {"primary": 0.6, "secondary": 0.3, "exploration": 0.1}, {"cpo"}),
]


def _send(api: Any, route: str, body: dict[str, Any], principal: str) -> Any:
    method, _, path = route.rpartition(" ")
    url = f"/v1/portfolios/acme{path}"
    return api.client.request(method or "POST", url, json=body, headers=api.headers(principal))


@pytest.mark.parametrize(("action", "route", "body", "allowed"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_each_role_is_refused_what_it_may_not_do(seeded: Any, action: str, route: str, body: dict[str, Any], allowed: set[str]) -> None:
    before = seeded.stored()
    for principal in CAST:
        if principal not in allowed:
            response = _send(seeded, route, body, principal)
            assert response.status_code == 403, f"{principal} may not {action}: {response.text}"
            assert response.json()["type"] == "urn:okrstream:problem:forbidden"
    assert seeded.stored() == before
    seeded.ok(_send(seeded, route, body, sorted(allowed)[0]))


def test_the_auditor_reads_and_exports_everything(seeded: Any) -> None:
    assert seeded.ok(seeded.get("/acme", "auditor"))["portfolio_id"] == "acme"
    assert seeded.ok(seeded.get("/acme/key-results/churn/history", "auditor"))["items"]
    assert seeded.get("/acme/export", "auditor").status_code == 200


def test_only_the_portfolio_lead_and_auditors_export(seeded: Any) -> None:
    for principal in ("lead.bo", "pm.ana", "stranger", "connector:kpi"):
        assert seeded.get("/acme/export", principal).status_code == 403


def test_only_portfolio_lead_tokens_create_portfolios(api: Any) -> None:
    body = {"portfolio_id": "newco", "name": "NewCo", "owner": "pm.ana"}
    for principal in ("pm.ana", "auditor", "connector:kpi", "stranger"):
        assert api.post("", body, principal).status_code == 403
    assert api.stored() == 0
    api.ok(api.post("", body, "cpo"))


def test_a_token_scoped_to_other_portfolios_reaches_nothing_here(seeded: Any) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from okr_checkins.http import install_api
    from okr_runtime.problems import install_problem_handlers

    conftest = __import__("sys").modules[type(seeded).__module__]
    app = FastAPI()
    install_problem_handlers(app)
    install_api(app, seeded.checkins, conftest.authenticator({"pm.ana": frozenset({"other"})}))
    with TestClient(app) as client:
        response = client.get("/v1/portfolios/acme", headers=seeded.headers("pm.ana"))
    assert response.status_code == 403

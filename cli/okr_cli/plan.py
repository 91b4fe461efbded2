"""What `okr apply` would do: the declared portfolio against the recorded one, as API calls.

The history is append-only, so applying is adding: what is declared and not yet
recorded is defined; a changed target, weight or link, or changed portfolio settings,
is recorded as a change with the reason given; anything else that differs (a title,
an owner, a baseline) cannot be edited in place and is reported as a conflict, and
nothing is applied while there is one. What is recorded but no longer declared is
listed and left alone (retiring is a decision, not a side effect of a file).
Planning against what apply itself recorded finds nothing to do, so a second run
records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from okr_cli.mappings import MappingPlan
from okr_cli.spec import PortfolioSpec
from okr_contracts.kr_events import Link

NEEDS_REASON = "needs a reason"


@dataclass(frozen=True)
class Step:
    """One API call: what it does, in words and as a request."""

    summary: str
    path: str
    body: dict[str, Any]
    method: str = "POST"
    change: bool = False


@dataclass
class Plan:
    """The calls that make the recorded portfolio what the document declares, and what stands in the way."""

    portfolio_id: str
    steps: list[Step] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    mapping: MappingPlan | None = None
    """The `connectors:` section against the stored mapping; None without the section (or when it could not be read)."""

    @property
    def changes(self) -> list[Step]:
        """The steps that change something already recorded (they need a reason)."""
        return [s for s in self.steps if s.change]


def make_plan(spec: PortfolioSpec, recorded: dict[str, Any] | None, *, reason: str | None) -> Plan:
    """The plan from `recorded` (the checkins portfolio view, or None if it does not exist yet) to `spec`."""
    pid = spec.portfolio.portfolio_id
    plan = Plan(pid)
    why = reason or NEEDS_REASON
    if recorded is None:
        plan.steps.append(Step(f"create portfolio {pid}", "", _body(spec.portfolio)))
        recorded = {"settings": {}, "products": [], "teams": [], "cycles": [], "objectives": [], "key_results": []}
    else:
        _settings(plan, spec, recorded["settings"])
    _simple(plan, "product", "product_id", [_body(p) for p in spec.products], recorded["products"], f"/{pid}/products")
    _simple(plan, "team", "team_id", [_body(t) for t in spec.teams], recorded["teams"], f"/{pid}/teams")
    _simple(plan, "cycle", "cycle_id", [_body(c) for c in spec.cycles], recorded["cycles"], f"/{pid}/cycles")
    _nodes(plan, spec, recorded, why)
    return plan


def _body(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude={"key_results"})


def _settings(plan: Plan, spec: PortfolioSpec, recorded: dict[str, Any]) -> None:
    declared = _body(spec.portfolio)
    declared.pop("portfolio_id")
    differs = [k for k, v in declared.items() if recorded.get(k) != v]
    if differs:
        summary = f"change the portfolio's settings: {', '.join(f'{k} {recorded.get(k)!r} → {declared[k]!r}' for k in differs)}"
        plan.steps.append(Step(summary, f"/{plan.portfolio_id}/settings", declared, method="PUT", change=True))


def _simple(plan: Plan, kind: str, key: str, declared: list[dict[str, Any]], recorded: list[dict[str, Any]], path: str) -> None:
    """Products, teams and cycles: created when missing; they have no change commands, so a difference is a conflict."""
    found = {r[key]: r for r in recorded}
    for body in declared:
        current = found.get(body[key])
        if current is None:
            plan.steps.append(Step(f"create {kind} {body[key]}", path, body))
            continue
        for name, value in body.items():
            if name in current and current[name] != value:
                plan.conflicts.append(
                    f"{kind} {body[key]}: {name} is {current[name]!r}, the document says {value!r} ({kind}s cannot be redefined)"
                )
    declared_ids = {b[key] for b in declared}
    plan.undeclared += [f"{kind} {identifier}" for identifier in found if identifier not in declared_ids]


def _nodes(plan: Plan, spec: PortfolioSpec, recorded: dict[str, Any], why: str) -> None:
    """Objectives and key results, parents before children: tier by tier, each objective before its key results."""
    objectives = {o["objective_id"]: o for o in recorded["objectives"]}
    key_results = {k["kr_id"]: k for k in recorded["key_results"]}
    krs = {kr.kr_id: kr for kr in spec.key_results()}
    pid = plan.portfolio_id
    for objective in sorted(spec.objectives, key=lambda o: o.tier):
        body = _body(objective)
        _node(plan, "objective", objective.objective_id, body, objectives.get(objective.objective_id), f"/{pid}/objectives", why)
        for declared in objective.key_results:
            kr = _body(krs[declared.kr_id])
            _node(plan, "key result", declared.kr_id, kr, key_results.get(declared.kr_id), f"/{pid}/key-results", why)
    plan.undeclared += [f"objective {i}" for i in objectives if i not in {o.objective_id for o in spec.objectives}]
    plan.undeclared += [f"key result {i}" for i, k in key_results.items() if i not in krs and k.get("status") != "retired"]


CHANGEABLE = {"contributes_to", "target", "weight"}
"""Fields with their own change command: a difference there is a change, not a conflict."""


def _node(plan: Plan, kind: str, node_id: str, body: dict[str, Any], current: dict[str, Any] | None, path: str, why: str) -> None:
    if current is None:
        plan.steps.append(Step(f"create {kind} {node_id}", path, body))
        return
    for name, value in body.items():
        if name in CHANGEABLE or name not in current or current[name] == value:
            continue
        plan.conflicts.append(
            f"{kind} {node_id}: {name} is {current[name]!r}, the document says {value!r} "
            "(the history is append-only: define a new one and retire this one)"
        )
    pid = plan.portfolio_id
    if kind == "key result" and body.get("target") != current.get("target") and body.get("target") is not None:
        summary = f"change the target of {node_id}: {current.get('target')!r} → {body['target']!r}"
        plan.steps.append(Step(summary, f"/{pid}/key-results/{node_id}/target", {"new_target": body["target"], "reason": why}, change=True))
    if kind == "key result" and body.get("weight") != current.get("weight"):
        weight = {"parent_id": body["objective_id"], "new_weight": body["weight"], "reason": why}
        summary = f"change the weight of {node_id} in {body['objective_id']}: {current.get('weight')!r} → {body['weight']!r}"
        plan.steps.append(Step(summary, f"/{pid}/nodes/{node_id}/weight", weight, change=True))
    _link(plan, node_id, body.get("contributes_to"), current.get("contributes_to"), why)


def _link(plan: Plan, node_id: str, declared: dict[str, Any] | None, recorded: dict[str, Any] | None, why: str) -> None:
    if declared == recorded:
        return
    pid = plan.portfolio_id
    if declared and recorded and declared["parent_id"] == recorded["parent_id"]:
        body = {"parent_id": declared["parent_id"], "new_weight": declared["weight"], "reason": why}
        summary = f"change the weight of {node_id} in {declared['parent_id']}: {recorded['weight']!r} → {declared['weight']!r}"
        plan.steps.append(Step(summary, f"/{pid}/nodes/{node_id}/weight", body, change=True))
        return
    new_link = Link.model_validate(declared).model_dump(mode="json") if declared else None
    summary = f"change the link of {node_id}: {_describe(recorded)} → {_describe(declared)}"
    plan.steps.append(Step(summary, f"/{pid}/nodes/{node_id}/link", {"new_link": new_link, "reason": why}, change=True))


def _describe(link: dict[str, Any] | None) -> str:
    return f"{link['parent_id']} (weight {link['weight']!r})" if link else "none"

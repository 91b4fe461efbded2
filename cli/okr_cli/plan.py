"""What `okr apply` would do: the declared portfolio against the recorded one, as API calls.

The history is append-only, so applying is adding: what is declared and not yet
recorded is defined; a changed target, weight or link, changed portfolio settings, a
changed capacity, allocation, classification or intended balance, is recorded as a
change with the reason given; anything else that differs (a title, an owner, a
baseline) cannot be edited in place and is reported as a conflict, and nothing is
applied while there is one. What is recorded but no longer declared is listed and left
alone (retiring is a decision, not a side effect of a file), with one exception: a
declared objective's `allocations` are all of its allocations, so one the document no
longer lists is removed, with the document named as the reason. Planning against what
apply itself recorded finds nothing to do, so a second run records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from okr_cli.mappings import MappingPlan
from okr_cli.spec import ObjectiveSpec, PortfolioSpec
from okr_contracts.kr_events import Balance, Link

NEEDS_REASON = "needs a reason"
SPEC_ONLY = {"key_results", "capacity", "allocations", "priority", "aarrr_stage", "horizon"}
"""Fields of the document that are not part of a definition's body: each has commands of its own."""
TAGS = ("priority", "aarrr_stage", "horizon")
DEFAULT_BALANCE = {**Balance().model_dump(mode="json"), "margin": 0.1}
"""What a portfolio's balance is before one is intended."""


@dataclass(frozen=True)
class Step:
    """One API call: what it does, in words and as a request."""

    summary: str
    path: str
    body: dict[str, Any]
    method: str = "POST"
    change: bool = False
    """It changes something recorded, so it needs a reason."""
    removal: bool = False
    """It takes something recorded back (an allocation the document no longer lists)."""

    @property
    def sign(self) -> str:
        """How the plan shows it: ``+`` adds, ``~`` changes, ``-`` removes."""
        return "-" if self.removal else "~" if self.change else "+"


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


def make_plan(spec: PortfolioSpec, recorded: dict[str, Any] | None, *, reason: str | None, source: str = "the document") -> Plan:
    """The plan from `recorded` (the checkins portfolio view, or None if it does not exist yet) to `spec`.

    `source` names the document in the reason of a removal (``removed from portfolio.yaml``).
    """
    pid = spec.portfolio.portfolio_id
    plan = Plan(pid)
    why = reason or NEEDS_REASON
    new = recorded is None
    if recorded is None:
        plan.steps.append(Step(f"create portfolio {pid}", "", _body(spec.portfolio)))
        recorded = {"settings": {}, "products": [], "teams": [], "cycles": [], "objectives": [], "key_results": []}
    else:
        _settings(plan, spec, recorded["settings"])
    _balance(plan, spec, recorded.get("balance", DEFAULT_BALANCE), new=new, why=why)
    _simple(plan, "product", "product_id", [_body(p) for p in spec.products], recorded["products"], f"/{pid}/products")
    _simple(plan, "team", "team_id", [_body(t) for t in spec.teams], recorded["teams"], f"/{pid}/teams")
    _simple(plan, "cycle", "cycle_id", [_body(c) for c in spec.cycles], recorded["cycles"], f"/{pid}/cycles")
    _capacities(plan, spec, {t["team_id"]: t for t in recorded["teams"]}, reason=reason, why=why)
    _nodes(plan, spec, recorded, why)
    removed = f"removed from {source}" + (f": {reason}" if reason else "")
    objectives = {o["objective_id"]: o for o in recorded["objectives"]}
    for objective in spec.objectives:
        current = objectives.get(objective.objective_id, {})
        _classification(plan, objective, {tag: current.get(tag) for tag in TAGS}, why)
        _allocations(plan, objective, current.get("allocations", {}), reason=reason, why=why, removed=removed)
    return plan


def _body(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude=SPEC_ONLY)


def _reasoned(body: dict[str, Any], reason: str | None) -> dict[str, Any]:
    """A body with the reason given, if one was (an addition needs none)."""
    return {**body, "reason": reason} if reason else body


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


def _balance(plan: Plan, spec: PortfolioSpec, recorded: dict[str, Any], *, new: bool, why: str) -> None:
    """The intended balance, when the document states one that is not the recorded one."""
    if spec.balance is None:
        return
    declared = spec.balance.model_dump(mode="json")
    if declared == recorded:
        return
    path = f"/{plan.portfolio_id}/balance"
    if new:
        plan.steps.append(Step(f"intend the balance {_shares(declared)}", path, declared, method="PUT"))
    else:
        summary = f"change the intended balance: {_shares(recorded)} → {_shares(declared)}"
        plan.steps.append(Step(summary, path, {**declared, "reason": why}, method="PUT", change=True))


def _shares(balance: dict[str, Any]) -> str:
    return f"{balance['primary']:g}/{balance['secondary']:g}/{balance['exploration']:g} ±{balance['margin']:g}"


def _capacities(plan: Plan, spec: PortfolioSpec, recorded: dict[str, dict[str, Any]], *, reason: str | None, why: str) -> None:
    """Each declared squad capacity (the default, then each cycle's) that is not the recorded one."""
    for team in spec.teams:
        if team.capacity is None:
            continue
        current = recorded.get(team.team_id, {}).get("capacity") or {"sprints": None, "cycles": {}}
        declared: list[tuple[str | None, float]] = [(None, team.capacity.sprints)] if team.capacity.sprints is not None else []
        path = f"/{plan.portfolio_id}/teams/{team.team_id}/capacity"
        for cycle_id, sprints in [*declared, *team.capacity.cycles.items()]:
            old = current["sprints"] if cycle_id is None else current["cycles"].get(cycle_id)
            if old != sprints:
                plan.steps.append(_capacity_step(path, team.team_id, cycle_id, (old, sprints), reason=reason, why=why))
        if team.capacity.sprints is None and current["sprints"] is not None:
            plan.undeclared.append(f"the capacity of {team.team_id} per cycle")
        plan.undeclared += [f"the capacity of {team.team_id} in {c}" for c in current["cycles"] if c not in team.capacity.cycles]


def _capacity_step(
    path: str, team_id: str, cycle_id: str | None, sprints: tuple[float | None, float], *, reason: str | None, why: str
) -> Step:
    (old, new), scope = sprints, "per cycle" if cycle_id is None else f"in {cycle_id}"
    body = {"sprints": new, "cycle_id": cycle_id}
    if old is None:
        return Step(f"set the capacity of {team_id} {scope}: {_sprints(new)}", path, _reasoned(body, reason), method="PUT")
    summary = f"change the capacity of {team_id} {scope}: {old:g} → {_sprints(new)}"
    return Step(summary, path, {**body, "reason": why}, method="PUT", change=True)


def _classification(plan: Plan, objective: ObjectiveSpec, recorded: dict[str, str | None], why: str) -> None:
    """The objective's three tags, when they are not the recorded ones (a tag left out is none)."""
    declared = objective.model_dump(mode="json", include=set(TAGS))
    if declared == recorded:
        return
    path = f"/{plan.portfolio_id}/objectives/{objective.objective_id}/classification"
    if not any(recorded.values()):
        tags = ", ".join(f"{tag} {value}" for tag, value in declared.items() if value)
        plan.steps.append(Step(f"classify {objective.objective_id}: {tags}", path, declared, method="PUT"))
        return
    moved = ", ".join(f"{tag} {recorded[tag] or 'none'} → {value or 'none'}" for tag, value in declared.items() if value != recorded[tag])
    plan.steps.append(Step(f"reclassify {objective.objective_id}: {moved}", path, declared, method="PUT", change=True))


def _allocations(plan: Plan, objective: ObjectiveSpec, recorded: dict[str, float], *, reason: str | None, why: str, removed: str) -> None:
    """New and changed allocations of the objective to squads, and the removal of those the document no longer lists."""
    oid, pid = objective.objective_id, plan.portfolio_id
    for team_id, sprints in objective.allocations.items():
        old, path = recorded.get(team_id), f"/{pid}/objectives/{oid}/allocations/{team_id}"
        if old is None:
            plan.steps.append(
                Step(f"allocate {oid} to {team_id}: {_sprints(sprints)}", path, _reasoned({"sprints": sprints}, reason), "PUT")
            )
        elif old != sprints:
            summary = f"change the allocation of {oid} to {team_id}: {old:g} → {_sprints(sprints)}"
            plan.steps.append(Step(summary, path, {"sprints": sprints, "reason": why}, method="PUT", change=True))
    for team_id, old in recorded.items():
        if team_id not in objective.allocations:
            summary = f"remove the allocation of {oid} to {team_id} ({_sprints(old)})"
            plan.steps.append(Step(summary, f"/{pid}/objectives/{oid}/allocations/{team_id}/remove", {"reason": removed}, removal=True))


def _sprints(amount: float) -> str:
    return f"{amount:g} sprint" + ("" if amount == 1 else "s")

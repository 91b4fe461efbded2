"""OKRs as code: the YAML a portfolio is declared in, validated with errors that point at the line.

The document mirrors the checkins API's request bodies field for field (the same
models validate both), so what the YAML says is exactly what the API records::

    portfolio: {portfolio_id: acme, name: Acme, owner: cpo@example.com, rollup_method: weighted}
    balance: {primary: 0.7, secondary: 0.2, exploration: 0.1, margin: 0.1}   # optional; absent: left alone
    products: [{product_id: billing, name: Billing, lead: lead@example.com}]
    teams:
      - team_id: squad-1
        name: Squad 1
        lead: lead@example.com
        product_id: billing
        capacity: {sprints: 6, cycles: {2026-q4: 5}}   # optional: sprints per cycle by default, and cycles that differ
    cycles: [{cycle_id: 2026-q4, name: 2026 Q4, starts_on: 2026-10-01, ends_on: 2026-12-31}]
    objectives:
      - objective_id: grow
        cycle_id: 2026-q4
        tier: 1
        title: Grow revenue
        owner: cpo@example.com
        priority: primary       # optional investment tags: priority, aarrr_stage, horizon
        aarrr_stage: revenue
        horizon: grow
        allocations: {squad-1: 3}   # sprints per squad; an allocation no longer listed is removed
        key_results:            # each KR's objective_id is the objective it is listed under
          - {kr_id: arr, title: Reach 1.2M ARR, baseline: 1.0, target: 1.2, unit: MEUR, owner: cpo@example.com}
    connectors:                 # optional: the portfolio's connector mapping (the connectors' models validate it)
      rules: [{source: jira, project: BILL, kr_ids: [arr]}]       # portfolio_id: the document's
      slack_channels: {C06NRA6JLER: {kr_ids: [arr]}}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from okr_checkins.http.bodies import (
    Allocated,
    BalanceShares,
    ClassifyObjective,
    DefineKeyResult,
    DefineObjective,
    DefinePortfolio,
    DefineProduct,
    DefineTeam,
    StartCycle,
)
from okr_connectors.mapping import Mapping
from okr_contracts.kr_events import Sprints
from okr_contracts.types import Id


class KeyResultSpec(DefineKeyResult):
    """A key result as declared under its objective (its objective_id is filled in from there)."""

    objective_id: str = ""


class CapacitySpec(BaseModel):
    """A squad's capacity: sprints per cycle by default, and the cycles that differ (each set by its own PUT …/capacity)."""

    model_config = ConfigDict(extra="forbid")

    sprints: Sprints | None = Field(default=None, description="Sprints per cycle by default; absent: left as recorded.")
    cycles: dict[Id, Sprints] = Field(default_factory=dict, description="Sprints in one cycle, overriding the default, by cycle.")


class TeamSpec(DefineTeam):
    """A team or squad with its capacity."""

    capacity: CapacitySpec | None = Field(default=None, description="Absent: the recorded capacity is left alone.")


class ObjectiveSpec(DefineObjective, ClassifyObjective):
    """An objective with its investment tags, its allocations to squads and the key results that measure it."""

    allocations: dict[Id, Allocated] = Field(default_factory=dict, description="Sprints per squad; the objective's whole allocation.")
    key_results: list[KeyResultSpec] = Field(default_factory=list)


class PortfolioSpec(BaseModel):
    """One portfolio as code."""

    model_config = ConfigDict(extra="forbid")

    portfolio: DefinePortfolio
    balance: BalanceShares | None = Field(default=None, description="The intended balance; absent: the recorded one is left alone.")
    products: list[DefineProduct] = Field(default_factory=list)
    teams: list[TeamSpec] = Field(default_factory=list)
    cycles: list[StartCycle] = Field(default_factory=list)
    objectives: list[ObjectiveSpec] = Field(default_factory=list)
    connectors: Mapping | None = Field(default=None, description="The portfolio's connector mapping; absent: the stored one is left alone.")

    def key_results(self) -> list[DefineKeyResult]:
        """Every key result with its objective filled in."""
        return [
            DefineKeyResult.model_validate({**kr.model_dump(exclude_unset=True), "objective_id": objective.objective_id})
            for objective in self.objectives
            for kr in objective.key_results
        ]


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with the document, where it is."""

    line: int
    column: int
    where: str
    message: str

    def render(self, path: Path | str) -> str:
        return (
            f"{path}:{self.line}:{self.column}: {self.where}: {self.message}"
            if self.where
            else f"{path}:{self.line}:{self.column}: {self.message}"
        )


class SpecError(ValueError):
    """A document that is not a valid portfolio, with every problem found."""

    def __init__(self, path: Path | str, problems: list[SpecProblem]) -> None:
        self.path, self.problems = path, problems
        super().__init__("\n".join(p.render(path) for p in problems))


def load_spec(path: Path) -> PortfolioSpec:
    """Read and validate a portfolio document; :class:`SpecError` names the line of each problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(path, [SpecProblem(1, 1, "", f"cannot read it: {exc.strerror}")]) from exc
    return parse_spec(text, path)


def parse_spec(text: str, path: Path | str = "<portfolio>") -> PortfolioSpec:
    """Validate a portfolio document given as text."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SpecError(path, [SpecProblem(line, column, "", f"not valid YAML: {exc.problem}")]) from exc
    if node is None or not isinstance(data, dict):
        raise SpecError(path, [SpecProblem(1, 1, "", "the document must be a mapping with at least `portfolio:`")])
    marks = _marks(node)
    repeated = _repeated_keys(node)
    try:
        spec = PortfolioSpec.model_validate(_own_portfolio_by_default(data))
    except ValidationError as exc:
        raise SpecError(path, repeated + [_problem(error, marks) for error in exc.errors()]) from exc
    problems = repeated + _duplicates(spec, marks) + _capacity_problems(spec, marks) + _connector_problems(spec, marks)
    if problems:
        raise SpecError(path, problems)
    return spec


Path_ = tuple[str | int, ...]


def _marks(node: yaml.Node, here: Path_ = ()) -> dict[Path_, tuple[int, int]]:
    """Where every mapping value and sequence item starts, by its path (keys point at the key)."""
    found = {here: (node.start_mark.line + 1, node.start_mark.column + 1)}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*here, str(key.value))
            found |= _marks(value, path)
            found[path] = (key.start_mark.line + 1, key.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found |= _marks(item, (*here, index))
    return found


def _repeated_keys(node: yaml.Node, here: Path_ = ()) -> list[SpecProblem]:
    """Keys given twice in one mapping (YAML would keep the last silently): the second is the error."""
    problems: list[SpecProblem] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            name, line = str(key.value), key.start_mark.line + 1
            if name in first:
                where = _dotted((*here, name))
                problems.append(
                    SpecProblem(line, key.start_mark.column + 1, where, f"{name!r} is given again (first on line {first[name]})")
                )
            first.setdefault(name, line)
            problems += _repeated_keys(value, (*here, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _repeated_keys(item, (*here, index))
    return problems


def _own_portfolio_by_default(data: dict[str, Any]) -> dict[str, Any]:
    """Connector rules and channels without a portfolio_id are the document's portfolio's (a channel may be given bare)."""
    portfolio, connectors = data.get("portfolio"), data.get("connectors")
    pid = portfolio.get("portfolio_id") if isinstance(portfolio, dict) else None
    if not isinstance(pid, str) or not isinstance(connectors, dict):
        return data
    filled = dict(connectors)
    if isinstance(rules := connectors.get("rules"), list):
        filled["rules"] = [{"portfolio_id": pid, **rule} if isinstance(rule, dict) else rule for rule in rules]
    if isinstance(channels := connectors.get("slack_channels"), dict):
        filled["slack_channels"] = {
            channel: {"portfolio_id": pid, **(given or {})} if isinstance(given, dict) or given is None else given
            for channel, given in channels.items()
        }
    return {**data, "connectors": filled}


def _problem(error: Any, marks: dict[Path_, tuple[int, int]]) -> SpecProblem:
    loc: Path_ = tuple(error["loc"])
    probe = loc
    while probe not in marks and probe:
        probe = probe[:-1]  # a missing field is reported at the mapping that lacks it
    line, column = marks.get(probe, (1, 1))
    message = error["msg"] if error["type"] != "missing" else "this field is required here"
    return SpecProblem(line, column, _dotted(loc), message)


def _dotted(loc: Path_) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _duplicates(spec: PortfolioSpec, marks: dict[Path_, tuple[int, int]]) -> list[SpecProblem]:
    """Ids declared twice: the second declaration is the error."""
    problems: list[SpecProblem] = []
    seen: dict[str, Path_] = {}
    declared: list[tuple[Path_, str, str]] = [
        *((("products", i), "product", p.product_id) for i, p in enumerate(spec.products)),
        *((("teams", i), "team", t.team_id) for i, t in enumerate(spec.teams)),
        *((("cycles", i), "cycle", c.cycle_id) for i, c in enumerate(spec.cycles)),
        *((("objectives", i), "node", o.objective_id) for i, o in enumerate(spec.objectives)),
        *(
            (("objectives", i, "key_results", j), "node", kr.kr_id)
            for i, o in enumerate(spec.objectives)
            for j, kr in enumerate(o.key_results)
        ),
    ]
    for path, kind, identifier in declared:
        key = f"{kind}:{identifier}"
        if key in seen:
            line, column = marks.get(path, (1, 1))
            first = marks.get(seen[key], (1, 1))[0]
            problems.append(SpecProblem(line, column, _dotted(path), f"{identifier!r} is declared again (first on line {first})"))
        else:
            seen[key] = path
    return problems


def _capacity_problems(spec: PortfolioSpec, marks: dict[Path_, tuple[int, int]]) -> list[SpecProblem]:
    """Capacities and allocations name squads and cycles the document declares."""
    teams, cycles = {t.team_id for t in spec.teams}, {c.cycle_id for c in spec.cycles}
    named: list[tuple[Path_, str, str, set[str]]] = [
        *(
            (("teams", i, "capacity", "cycles", c), c, "cycle", cycles)
            for i, t in enumerate(spec.teams)
            for c in (t.capacity.cycles if t.capacity else {})
        ),
        *((("objectives", i, "allocations", t), t, "team", teams) for i, o in enumerate(spec.objectives) for t in o.allocations),
    ]
    return [
        SpecProblem(*marks.get(path, (1, 1)), _dotted(path), f"{identifier!r} is not a {kind} this document declares")
        for path, identifier, kind, declared in named
        if identifier not in declared
    ]


def _connector_problems(spec: PortfolioSpec, marks: dict[Path_, tuple[int, int]]) -> list[SpecProblem]:
    """A document maps its own portfolio only, to key results it declares."""
    if spec.connectors is None:
        return []
    pid = spec.portfolio.portfolio_id
    declared = {kr.kr_id for objective in spec.objectives for kr in objective.key_results}
    entries: list[tuple[Path_, str, tuple[str, ...]]] = [
        *((("connectors", "rules", i), r.portfolio_id, r.kr_ids) for i, r in enumerate(spec.connectors.rules)),
        *((("connectors", "slack_channels", c), s.portfolio_id, s.kr_ids) for c, s in spec.connectors.slack_channels.items()),
    ]
    problems: list[SpecProblem] = []
    for path, portfolio_id, kr_ids in entries:
        if portfolio_id != pid:
            where = (*path, "portfolio_id")
            message = f"names portfolio {portfolio_id!r}: a document maps only its own ({pid!r}); leave portfolio_id out"
            problems.append(SpecProblem(*marks.get(where, marks.get(path, (1, 1))), _dotted(where), message))
        for index, kr_id in enumerate(kr_ids):
            if kr_id not in declared:
                where = (*path, "kr_ids", index)
                message = f"{kr_id!r} is not a key result this document declares"
                problems.append(SpecProblem(*marks.get(where, marks.get(path, (1, 1))), _dotted(where), message))
    return problems

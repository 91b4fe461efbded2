"""`okr apply` and squads: capacity, allocations, investment tags and the intended balance, declared in YAML and applied once."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient

from okr_checkins.application import CheckinsApplication
from okr_cli.apply import apply_with
from okr_cli.plan import make_plan
from okr_cli.spec import SpecError, load_spec, parse_spec

from .conftest import DEMO

PAYMENTS = "{team_id: squad-payments, name: Payments squad, lead: cpo@example.com, product_id: checkout"
SEARCH_FINDS = "    aarrr_stage: retention\n    allocations: {squad-search: 1}\n"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return Path(shutil.copy(DEMO, tmp_path / "portfolio.yaml"))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def stored(checkins: CheckinsApplication) -> int:
    return checkins.recorder.max_notification_id() or 0


def status(call: Any) -> int:
    with pytest.raises(typer.Exit) as exit_:
        call()
    return int(exit_.value.exit_code)


def recorded(api: TestClient) -> dict[str, Any]:
    """The demo as checkins shows it, with teams and objectives by id."""
    view: dict[str, Any] = api.get("/v1/portfolios/demo").json()
    view["teams"] = {t["team_id"]: t for t in view["teams"]}
    view["objectives"] = {o["objective_id"]: o for o in view["objectives"]}
    return view


def test_the_document_declares_capacity_allocations_tags_and_balance(demo: Path) -> None:
    spec = load_spec(demo)
    payments = next(t for t in spec.teams if t.team_id == "squad-payments")
    assert payments.capacity is not None
    assert (payments.capacity.sprints, payments.capacity.cycles) == (6, {"2026-q4": 5})
    objectives = {o.objective_id: o for o in spec.objectives}
    assert objectives["checkout-converts"].allocations == {"squad-payments": 2}
    grow = objectives["grow-revenue"]
    assert (grow.priority, grow.aarrr_stage, grow.horizon, grow.allocations) == ("primary", "retention", "grow", {})
    assert spec.balance is not None
    assert spec.balance.intended().primary == 0.6


def test_applying_records_capacity_allocations_tags_and_balance_once(
    api: TestClient, connectors: TestClient, checkins: CheckinsApplication, demo: Path, capsys: Any
) -> None:
    apply_with(api, demo, connectors=connectors)
    shown = capsys.readouterr().out
    for line in (
        "+ intend the balance 0.6/0.3/0.1 ±0.15",
        "+ set the capacity of squad-payments per cycle: 6 sprints",
        "+ set the capacity of squad-payments in 2026-q4: 5 sprints",
        "+ classify grow-revenue: priority primary, aarrr_stage retention, horizon grow",
        "+ allocate search-finds to squad-search: 1 sprint",
    ):
        assert line in shown, shown
    view = recorded(api)
    assert view["teams"]["squad-payments"]["capacity"] == {"sprints": 6.0, "cycles": {"2026-q4": 5.0}}
    assert view["teams"]["squad-search"]["capacity"] == {"sprints": 6.0, "cycles": {}}
    assert {o: view["objectives"][o]["allocations"] for o in ("checkout-converts", "search-finds", "smarter-retries")} == {
        "checkout-converts": {"squad-payments": 2.0},
        "search-finds": {"squad-search": 1.0},
        "smarter-retries": {"squad-payments": 2.0},
    }
    assert (view["objectives"]["smarter-retries"]["horizon"], view["objectives"]["smarter-retries"]["priority"]) == ("run", None)
    assert view["balance"] == {"primary": 0.6, "secondary": 0.3, "exploration": 0.1, "margin": 0.15}
    before = stored(checkins)
    again = apply_with(api, demo, connectors=connectors)
    assert (again.steps, stored(checkins)) == ([], before)


def test_changed_capacity_allocation_tags_and_balance_need_a_reason_and_an_over_allocation_is_recorded(
    api: TestClient, connectors: TestClient, checkins: CheckinsApplication, demo: Path
) -> None:
    apply_with(api, demo, connectors=connectors)
    edit(demo, "capacity: {sprints: 6, cycles: {2026-q4: 5}}", "capacity: {sprints: 6, cycles: {2026-q4: 3}}")
    edit(demo, "    horizon: run\n    allocations: {squad-payments: 2}", "    horizon: transform\n    allocations: {squad-payments: 2.5}")
    edit(
        demo,
        "balance: {primary: 0.6, secondary: 0.3, exploration: 0.1, margin: 0.15}",
        "balance: {primary: 0.7, secondary: 0.2, exploration: 0.1}",
    )
    before = stored(checkins)
    assert status(lambda: apply_with(api, demo, connectors=connectors)) == 1
    assert stored(checkins) == before
    plan = apply_with(api, demo, connectors=connectors, reason="two engineers moved to platform")
    assert [(s.sign, s.summary) for s in plan.steps] == [
        ("~", "change the intended balance: 0.6/0.3/0.1 ±0.15 → 0.7/0.2/0.1 ±0.1"),
        ("~", "change the capacity of squad-payments in 2026-q4: 5 → 3 sprints"),
        ("~", "reclassify smarter-retries: horizon run → transform"),
        ("~", "change the allocation of smarter-retries to squad-payments: 2 → 2.5 sprints"),
    ]
    view = recorded(api)
    assert sum(o["allocations"].get("squad-payments", 0) for o in view["objectives"].values()) == 4.5  # beyond 3: recorded all the same
    reasons = [r["data"].get("reason") for r in checkins.records("demo")][-4:]
    assert reasons == ["two engineers moved to platform", "two engineers moved to platform", None, "two engineers moved to platform"]
    assert apply_with(api, demo, connectors=connectors, reason="two engineers moved to platform").steps == []


def test_an_allocation_the_document_no_longer_lists_is_removed_with_the_document_as_reason(
    api: TestClient, connectors: TestClient, checkins: CheckinsApplication, demo: Path, capsys: Any
) -> None:
    apply_with(api, demo, connectors=connectors)
    edit(demo, SEARCH_FINDS, "    aarrr_stage: retention\n")
    edit(demo, "allocations: {squad-payments: 2}\n    key_results", "allocations: {squad-search: 1}\n    key_results")
    capsys.readouterr()
    plan = apply_with(api, demo, connectors=connectors)  # removing and adding need no --reason
    assert [(s.sign, s.summary) for s in plan.steps] == [
        ("+", "allocate checkout-converts to squad-search: 1 sprint"),
        ("-", "remove the allocation of checkout-converts to squad-payments (2 sprints)"),
        ("-", "remove the allocation of search-finds to squad-search (1 sprint)"),
    ]
    assert "  - remove the allocation of search-finds to squad-search (1 sprint)" in capsys.readouterr().out
    removed = [r["data"] for r in checkins.records("demo") if r["type"] == "AllocationRemoved"]
    assert [(d["objective_id"], d["old_sprints"], d["reason"]) for d in removed] == [
        ("checkout-converts", 2.0, "removed from portfolio.yaml"),
        ("search-finds", 1.0, "removed from portfolio.yaml"),
    ]
    view = recorded(api)
    assert (view["objectives"]["search-finds"]["allocations"], view["objectives"]["checkout-converts"]["allocations"]) == (
        {},
        {"squad-search": 1.0},
    )
    assert apply_with(api, demo, connectors=connectors).steps == []


def test_a_portfolio_applied_before_squads_had_capacity_takes_it_as_additions(
    api: TestClient, connectors: TestClient, checkins: CheckinsApplication, demo: Path
) -> None:
    full = demo.read_text()
    bare = "\n".join(
        line for line in full.splitlines() if not line.lstrip().startswith(("priority:", "aarrr_stage:", "horizon:", "allocations:"))
    )
    demo.write_text(bare.replace(", capacity: {sprints: 6, cycles: {2026-q4: 5}}}", "}").replace(", capacity: {sprints: 6}}", "}"))
    apply_with(api, demo, connectors=connectors)
    demo.write_text(full)
    plan = apply_with(api, demo, connectors=connectors)  # no --reason: nothing recorded changes
    assert {s.sign for s in plan.steps} == {"+"}
    assert len(plan.steps) == 3 + 4 + 3  # capacities, classifications, allocations (the balance was applied with the portfolio)


def test_a_capacity_the_document_leaves_out_is_left_alone(api: TestClient, connectors: TestClient, demo: Path, capsys: Any) -> None:
    apply_with(api, demo, connectors=connectors)
    edit(demo, "capacity: {sprints: 6, cycles: {2026-q4: 5}}", "capacity: {cycles: {}}")
    capsys.readouterr()
    assert apply_with(api, demo, connectors=connectors).steps == []
    shown = capsys.readouterr().out
    assert "= the capacity of squad-payments per cycle is recorded but not declared: left as it is" in shown
    assert "= the capacity of squad-payments in 2026-q4 is recorded but not declared: left as it is" in shown


def test_a_plan_against_nothing_recorded_adds_everything_and_a_reason_goes_with_each_addition(demo: Path) -> None:
    plan = make_plan(load_spec(demo), None, reason="Q4 planning")
    allocate = next(s for s in plan.steps if s.summary == "allocate checkout-converts to squad-payments: 2 sprints")
    assert (allocate.method, allocate.path, allocate.body) == (
        "PUT",
        "/demo/objectives/checkout-converts/allocations/squad-payments",
        {"sprints": 2.0, "reason": "Q4 planning"},
    )
    capacity = next(s for s in plan.steps if s.summary == "set the capacity of squad-payments in 2026-q4: 5 sprints")
    assert capacity.body == {"sprints": 5.0, "cycle_id": "2026-q4", "reason": "Q4 planning"}
    assert not plan.changes


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "{squad-search: 1}",
            "{squad-serch: 1}",
            ":60:19: objectives[2].allocations.squad-serch: 'squad-serch' is not a team this document declares",
        ),
        ("{2026-q4: 5}", "{2026-q3: 5}", ":20:130: teams[0].capacity.cycles.2026-q3: '2026-q3' is not a cycle this document declares"),
        ("{squad-search: 1}", "{squad-search: 0}", ":60:19: objectives[2].allocations.squad-search: Input should be greater than 0"),
        (
            "{squad-search: 1}",
            "{squad-search: -1}",
            ":60:19: objectives[2].allocations.squad-search: Input should be greater than or equal to 0",
        ),
        ("capacity: {sprints: 6}", "capacity: {sprints: many}", ":21:103: teams[1].capacity.sprints: Input should be a valid number"),
        ("capacity: {sprints: 6}", "capacity: {sprint: 6}", ":21:103: teams[1].capacity.sprint: Extra inputs are not permitted"),
        (
            "    priority: primary",
            "    priority: tertiary",
            ":32:5: objectives[0].priority: Input should be 'primary', 'secondary' or 'exploration'",
        ),
        ("exploration: 0.1, margin", "exploration: 0.2, margin", ":12:1: balance: Value error, the shares sum to 1.1"),
        (
            "{squad-search: 1}",
            "{squad-search: 1, squad-search: 2}",
            ":60:36: objectives[2].allocations.squad-search: 'squad-search' is given again (first on line 60)",
        ),
    ],
)
def test_a_capacity_error_names_its_line(demo: Path, old: str, new: str, expected: str) -> None:
    edit(demo, old, new)
    with pytest.raises(SpecError) as error:
        load_spec(demo)
    assert expected in str(error.value), str(error.value)


def test_an_invalid_capacity_records_nothing(api: TestClient, connectors: TestClient, checkins: CheckinsApplication, demo: Path) -> None:
    edit(demo, "{squad-search: 1}", "{squad-nobody: 1}")
    assert status(lambda: apply_with(api, demo, connectors=connectors)) == 2
    assert stored(checkins) == 0


def test_a_document_without_squads_capacity_or_balance_still_parses() -> None:
    spec = parse_spec("portfolio: {portfolio_id: p, name: P, owner: cpo}\nteams: [{team_id: t, name: T, lead: x}]\n")
    assert (spec.balance, spec.teams[0].capacity) == (None, None)
    assert [s.summary for s in make_plan(spec, None, reason=None).steps] == ["create portfolio p", "create team t"]
